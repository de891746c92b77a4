"""The desktop app collects cyclic garbage on the Qt thread only."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtCore import QObject
from pytestqt.qtbot import QtBot

from nerve.gui.app import QtThreadCollector


class Node(QObject):
    """A Qt object in a reference cycle: only the collector frees it."""

    def __init__(self) -> None:
        super().__init__()
        self.me = self


def test_garbage_is_collected_on_the_qt_thread(qtbot: QtBot) -> None:
    was_enabled = gc.isenabled()
    collector = QtThreadCollector(interval_ms=50)
    try:
        assert not gc.isenabled()
        node = Node()
        where: list[str] = []
        ref = weakref.ref(node, lambda _: where.append(threading.current_thread().name))
        del node

        # Other threads allocate past the threshold: with automatic collection
        # on, one of them would have collected (and destroyed the QObject there).
        def churn() -> None:
            for _ in range(5 * gc.get_threshold()[0]):
                cycle: list[object] = []
                cycle.append(cycle)

        worker = threading.Thread(target=churn, name="churn")
        worker.start()
        worker.join()
        assert ref() is not None
        qtbot.waitUntil(lambda: ref() is None, timeout=5000)
        assert where == [threading.main_thread().name]
    finally:
        collector.stop()
        if not was_enabled:
            gc.disable()
    assert gc.isenabled() or not was_enabled


def test_an_idle_app_is_looked_at_less_and_less_often(qtbot: QtBot) -> None:
    was_enabled = gc.isenabled()
    collector = QtThreadCollector(interval_ms=20, max_interval_ms=160)
    try:
        # Nothing allocates here: each look doubles the interval, up to the cap.
        qtbot.waitUntil(lambda: collector.current_interval_ms == 160, timeout=5000)
        collector.wake()  # events arrive
        assert collector.current_interval_ms == 20
        garbage = [[] for _ in range(10 * QtThreadCollector.QUIET)]  # busy: stays short
        collector.check()
        assert collector.current_interval_ms == 20
        del garbage
    finally:
        collector.stop()
        if not was_enabled:
            gc.disable()
