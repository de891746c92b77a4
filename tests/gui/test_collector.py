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
