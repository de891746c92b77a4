"""The main window, its status bar and tray, the single-instance hand-off, screenshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from gui.support import Running
from nerve.gui.app import DesktopApp, hand_off
from nerve.gui.instance import GuiNerve
from nerve.gui.main_window import MainWindow
from nerve.gui.tray import Tray
from nerve.ipc import request
from nerve.options import Options
from nerve.paths import locations

PACK = Path(__file__).parents[1] / "cli_data" / "cli.yaml"


@pytest.fixture
def window(qtbot: QtBot, running: Running) -> Iterator[MainWindow]:
    tray = Tray()
    win = MainWindow(running.core, tray=tray)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


def test_tray_pauses_and_resumes_the_engine(window: MainWindow, running: Running) -> None:
    tray = window.tray
    assert tray is not None
    assert tray.state == "running"
    tray.pause_action.trigger()
    assert running.engine.call(lambda: running.engine.paused) is True
    assert tray.state == "paused"
    assert window.pause_action.isChecked()
    assert window.paused_label.text().startswith("⏸ Paused by the window")
    tray.pause_action.trigger()
    assert running.engine.call(lambda: running.engine.paused) is False
    assert tray.state == "running"
    assert window.paused_label.text() == "Running: 2 rule(s) on"


def test_tray_open_and_quit(window: MainWindow, qtbot: QtBot) -> None:
    tray = window.tray
    assert tray is not None
    window.hide()
    tray.open_action.trigger()
    assert window.isVisible()
    with qtbot.waitSignal(window.quit_requested, timeout=1000):
        tray.quit_action.trigger()


def test_a_failed_rule_turns_the_tray_icon_to_error(
    window: MainWindow, running: Running, qtbot: QtBot
) -> None:
    tray = window.tray
    assert tray is not None
    running.bus.publish("x.fail", {}, source="test")
    qtbot.waitUntil(lambda: tray.state == "error", timeout=10_000)
    assert window.last_failure is not None
    assert "gui.test/broken" in window.last_failure
    assert "program not found" in tray.icon.toolTip()


def test_status_bar_shows_drops(window: MainWindow, running: Running) -> None:
    assert window.drops_label.text() == "No events dropped"
    assert window.listeners_label.text() == "No listeners needed"
    slow = running.bus.subscribe("*", wake=lambda: None, name="slow", capacity=1)
    running.bus.publish("x.a", {})
    running.bus.publish("x.b", {})  # the slow queue is full: dropped
    window.refresh_status()
    assert window.drops_label.text() == "Dropped events: 1"
    slow.close()


def test_closing_with_a_tray_keeps_running(window: MainWindow, qtbot: QtBot) -> None:
    tray = window.tray
    assert tray is not None
    tray.available = True  # offscreen has no tray host; behave as if there were one
    quits: list[bool] = []
    window.quit_requested.connect(lambda: quits.append(True))
    window.close()
    assert not window.isVisible()
    assert window.close_note_shown
    window.bring_up()
    assert window.isVisible()
    window.close()
    assert quits == []
    tray.available = False  # no tray: closing the window is quitting
    window.show()
    window.close()
    assert quits == [True]


def test_a_second_launch_brings_up_the_window(qtbot: QtBot, nerve_env: dict[str, str]) -> None:
    nerve = GuiNerve(locations(), Options(rule_paths=[PACK]))
    nerve.start()
    desktop = DesktopApp(nerve, show=False)
    try:
        qtbot.addWidget(desktop.window)
        assert not desktop.window.isVisible()
        assert hand_off() is True  # what a second `nerve` does first
        qtbot.waitUntil(desktop.window.isVisible, timeout=5000)
        assert request("status")["engine"]["rules"] == 1
    finally:
        desktop.quit()
    assert nerve.stopped.is_set()
    assert hand_off() is False  # nobody listens any more


def test_screenshots_of_each_tab(
    window: MainWindow, running: Running, qtbot: QtBot, shots_dir: Callable[[], Path]
) -> None:
    bus = running.bus
    bus.publish("x.go", {"who": "ann"}, source="test")
    bus.publish("x.fail", {}, source="test")
    for i in range(30):
        bus.publish("file.created", {"path": f"/home/ann/Desktop/Screenshot {i}.png",
                                     "name": f"Screenshot {i}.png"}, source="files")  # fmt: skip
    bus.publish("hotkey", {"combo": "ctrl+alt+t"}, source="keyboard")
    qtbot.waitUntil(lambda: len(running.store.query_runs()) == 2, timeout=10_000)
    qtbot.waitUntil(lambda: window.events.model.rowCount() >= 34, timeout=5000)
    window.resize(1100, 680)
    target = shots_dir()
    for index, name in enumerate(("rules", "events", "runs")):
        window.tabs.setCurrentIndex(index)
        if name == "events":
            window.events.table.selectRow(window.events.model.rowCount() - 1)
        if name == "rules":
            window.rules.refresh()
        if name == "runs":
            window.runs.refresh()
            window.runs.table.selectRow(0)
        window.refresh_status()
        QApplication.processEvents()
        path = target / f"nerve-{name}.png"
        if name == "rules":
            assert "failed at" in window.rules.index_of("gui.test/broken", 2).data()
        assert window.grab().save(str(path))
        assert path.stat().st_size > 5000
