"""The live monitor over a real bus: batches, a flood, filters, pause, details."""

from __future__ import annotations

import json
import threading
import time

from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from gui.support import Running
from nerve.gui.views import EventsView


def make_view(qtbot: QtBot, running: Running, capacity: int = 10_000) -> EventsView:
    view = EventsView(running.core, capacity)
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    return view


class LagProbe:
    """Ticks every 5 ms on the Qt thread and records the longest gap between ticks."""

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self.ticks = 0
        self._last = time.perf_counter()
        self.timer = QTimer(interval=5)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._tick()  # the gap up to now counts too

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest_ms = max(self.longest_ms, (now - self._last) * 1000)
        self._last = now
        self.ticks += 1


def test_a_flood_of_50000_events_keeps_the_newest_rows(qtbot: QtBot, running: Running) -> None:
    view = make_view(qtbot, running)
    probe = LagProbe()
    ids: list[int] = []

    def flood() -> None:
        for i in range(50_000):
            ids.append(running.bus.publish("x.flood", {"n": i}, source="test").id)

    started = time.perf_counter()
    producer = threading.Thread(target=flood)
    producer.start()
    qtbot.waitUntil(lambda: not producer.is_alive(), timeout=20_000)
    qtbot.waitUntil(lambda: view.drained >= 50_000, timeout=20_000)
    elapsed = time.perf_counter() - started
    probe.stop()
    producer.join()

    model = view.model
    assert model.rowCount() == 10_000
    shown = [e.id for e in model.events()]
    assert shown == ids[-10_000:]  # the newest N, in order, none lost
    assert view.counter.text() == "10,000 events"
    # Measured, loosely bounded: the loop kept ticking and no single drain froze it.
    print(
        f"\n50,000 events in {elapsed:.2f}s; longest Qt loop gap {probe.longest_ms:.0f} ms;"
        f" longest drain {view.longest_drain_ms:.0f} ms; {probe.ticks} ticks"
    )
    assert probe.longest_ms < 2000
    view.close_subscription()


def test_events_arrive_in_batches_and_filter(qtbot: QtBot, running: Running) -> None:
    view = make_view(qtbot, running)
    bus = running.bus
    for i in range(20):
        bus.publish(
            "file.created", {"path": f"/tmp/shot{i}.png", "name": f"shot{i}.png"}, source="files"
        )
    bus.publish("hotkey", {"combo": "ctrl+alt+t"}, source="keyboard")
    qtbot.waitUntil(lambda: view.model.rowCount() == 21, timeout=5000)

    view.type_filter.setText("hotkey")
    assert view.proxy.rowCount() == 1
    assert view.counter.text() == "1 of 21"
    view.type_filter.setText("file.*")
    view.text_filter.setText("shot1")  # shot1, shot10..shot19
    assert view.proxy.rowCount() == 11
    view.source_filter.setText("keyboard")
    assert view.proxy.rowCount() == 0
    view.type_filter.clear()
    view.text_filter.clear()
    assert view.proxy.rowCount() == 1
    # A new event that does not match stays hidden; one that matches appears.
    bus.publish("hotkey", {"combo": "ctrl+q"}, source="keyboard")
    bus.publish("file.deleted", {"path": "/tmp/x"}, source="files")
    qtbot.waitUntil(lambda: view.model.rowCount() == 23, timeout=5000)
    assert view.proxy.rowCount() == 2
    view.close_subscription()


def test_pause_holds_events_and_details_show_json(qtbot: QtBot, running: Running) -> None:
    view = make_view(qtbot, running)
    bus = running.bus
    bus.publish("x.one", {"k": "v"}, source="test")
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=5000)

    view.pause_button.click()
    assert view.paused
    assert view.pause_button.text() == "Resu&me"
    for i in range(5):
        bus.publish("x.more", {"i": i}, source="test")
    qtbot.waitUntil(lambda: view.drained == 6, timeout=5000)
    assert view.model.rowCount() == 1  # the list did not move
    assert view.counter.text() == "1 event, 5 held"
    view.set_paused(False)
    assert view.model.rowCount() == 6
    assert view.counter.text() == "6 events"

    view.table.selectRow(0)
    shown = json.loads(view.details.toPlainText())
    assert shown["type"] == "x.one"
    assert shown["data"] == {"k": "v"}
    assert shown["source"] == "test"
    view.clear()
    assert view.model.rowCount() == 0
    assert view.details.toPlainText() == ""
    view.close_subscription()
