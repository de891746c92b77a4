"""The main window, its status bar and tray, the single-instance hand-off, screenshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from gui.editor_support import (
    EditorWorld,
    close_editors_fixture,  # noqa: F401 - closes the editors a test opened
    open_rule,
    world_fixture,  # noqa: F401 - the `world` fixture
)
from gui.support import Running
from nerve import logs
from nerve.gui.app import DesktopApp, hand_off, start_failed
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


def test_status_bar_shows_drops(window: MainWindow, running: Running, qtbot: QtBot) -> None:
    assert window.drops_label.text() == "No events dropped"
    assert window.listeners_label.text() == "No listeners needed"
    slow = running.bus.subscribe("*", wake=lambda: None, name="slow", capacity=1)
    running.bus.publish("x.a", {})
    running.bus.publish("x.b", {})  # the slow queue is full: dropped
    # Told by the bus, not found by polling (the window has no status timer).
    qtbot.waitUntil(lambda: window.drops_label.text() == "Dropped events: 1", timeout=5000)
    running.bus.publish("x.c", {})
    qtbot.waitUntil(lambda: window.drops_label.text() == "Dropped events: 2", timeout=5000)
    slow.close()


def test_status_bar_shows_a_storage_problem_and_its_end(
    window: MainWindow, running: Running, qtbot: QtBot
) -> None:
    """The database's page limit makes it full for real: the status bar says so
    (told by the store, no polling), and clears once the held writes are in."""
    assert window.storage_label.isHidden()
    store = running.store
    conn = store._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    running.engine.call(running.engine.set_variable, "big", "x" * 50_000)
    qtbot.waitUntil(window.storage_label.isVisible, timeout=10_000)
    assert "full" in window.storage_label.text()
    assert window.tray is not None
    assert "full" in window.tray.icon.toolTip()
    conn.execute("PRAGMA max_page_count = 1073741823")
    qtbot.waitUntil(window.storage_label.isHidden, timeout=10_000)
    assert store.load_variables()["big"] == "x" * 50_000


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


# ------------------------------------------------------------ quitting, failures


RULE_PACK = """\
nerve: 1
pack: {id: me.quit, name: Quit tests}
rules:
  - id: r
    when: {event: x.go}
    do: [{log: hi}]
"""


def test_quit_asks_about_unsaved_rule_edits_and_cancel_keeps_running(
    qtbot: QtBot, world: EditorWorld
) -> None:
    desktop = DesktopApp(show=False)  # the quitting is what matters here, not a Nerve
    qtbot.addWidget(desktop.window)
    pack = world.add_pack("quit.yaml", RULE_PACK)
    world.reload()
    editor = open_rule(qtbot, world, pack, "r")
    editor.tabs.setCurrentIndex(1)
    editor.yaml.setPlainText(editor.text.replace("hi", "hello"))
    editor.flush()
    assert editor.unsaved
    asked: list[str] = []

    def keep() -> str:
        asked.append("cancel")
        return "cancel"

    editor.confirm_close = keep  # type: ignore[method-assign]
    desktop.tray.quit_action.trigger()  # Quit in the tray's menu
    assert asked == ["cancel"]
    assert not desktop.stopped
    assert editor.isVisible()
    assert "hello" in editor.text
    assert "Quit cancelled" in desktop.window.statusBar().currentMessage()

    editor.confirm_close = lambda: "save"  # type: ignore[method-assign]
    desktop.window.quit_requested.emit()  # Quit in the window's menu, Ctrl+Q
    assert desktop.stopped
    assert not editor.isVisible()
    assert "log: hello" in pack.read_text()  # saved, as the user chose


def test_sigterm_quits_without_asking(qtbot: QtBot, world: EditorWorld) -> None:
    desktop = DesktopApp(show=False)
    qtbot.addWidget(desktop.window)
    pack = world.add_pack("quit.yaml", RULE_PACK)
    world.reload()
    editor = open_rule(qtbot, world, pack, "r")
    editor.tabs.setCurrentIndex(1)
    editor.yaml.setPlainText(editor.text.replace("hi", "hello"))
    editor.flush()

    def never() -> str:
        raise AssertionError("SIGTERM must not ask")

    editor.confirm_close = never  # type: ignore[method-assign]
    assert desktop.quit(ask=False)  # what the signal handler and the end of exec() do
    assert desktop.stopped
    editor.confirm_close = lambda: "discard"  # type: ignore[method-assign]


def test_without_a_tray_a_cancelled_quit_keeps_the_window(qtbot: QtBot, world: EditorWorld) -> None:
    desktop = DesktopApp(show=True)
    qtbot.addWidget(desktop.window)
    desktop.tray.available = False  # closing the window is quitting
    pack = world.add_pack("quit.yaml", RULE_PACK)
    world.reload()
    editor = open_rule(qtbot, world, pack, "r")
    editor.tabs.setCurrentIndex(1)
    editor.yaml.setPlainText(editor.text.replace("hi", "hello"))
    editor.flush()
    editor.confirm_close = lambda: "cancel"  # type: ignore[method-assign]
    desktop.window.close()
    assert not desktop.stopped
    assert desktop.window.isVisible()  # not a Nerve running with no window to reach it
    editor.confirm_close = lambda: "discard"  # type: ignore[method-assign]
    desktop.window.close()
    assert desktop.stopped
    assert not desktop.window.isVisible()


def test_seeing_a_failure_clears_the_tray_error(
    window: MainWindow, running: Running, qtbot: QtBot
) -> None:
    tray = window.tray
    assert tray is not None
    running.bus.publish("x.fail", {}, source="test")
    qtbot.waitUntil(lambda: tray.state == "error", timeout=10_000)
    window.hide()
    tray.open_action.trigger()  # the user brings the window up
    assert window.last_failure is None
    assert tray.state == "running"
    assert "failed" not in tray.icon.toolTip()

    running.bus.publish("x.fail", {}, source="test")
    qtbot.waitUntil(lambda: tray.state == "error", timeout=10_000)
    window.show_tab(2)  # the Runs tab: where the failure is
    assert window.last_failure is None
    assert tray.state == "running"


def test_a_failed_start_is_said_once_and_shown_in_a_dialog(
    qtbot: QtBot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = logs.add_file(tmp_path / "logs" / "nerve.log")
    assert log_file is not None
    seen: list[tuple[str, str, str]] = []

    def answer() -> None:
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]
        shown = [b for b in boxes if b.isVisible()]
        if not shown:
            QTimer.singleShot(10, answer)
            return
        box = shown[0]
        seen.append((box.windowTitle(), box.text(), box.informativeText()))
        box.accept()

    try:
        QTimer.singleShot(0, answer)
        try:
            raise FileExistsError(17, "File exists", "/home/ann/.local/share/nerve")
        except FileExistsError as exc:
            start_failed(exc)
        err = capsys.readouterr().err
        start_failed(ValueError("settings.yaml:3: bad value"), dialog=False)  # no dialog: returns
        quiet = capsys.readouterr().err
    finally:
        logs.close_file()
    assert seen == [
        (
            "Nerve could not start",
            "Nerve could not start.",
            "/home/ann/.local/share/nerve: File exists\n\n"
            f"The log file has the details:\n{log_file}",
        )
    ]
    assert err == (
        f"nerve: could not start: /home/ann/.local/share/nerve: File exists"
        f" (details in {log_file})\n"
    )
    assert quiet.count("could not start") == 1
    assert "Traceback" in log_file.read_text()  # the details are in the log file


def test_status_bar_shows_the_bridges(qtbot: QtBot, running: Running) -> None:
    """The bridges' states (the webhook, MQTT...): told by the bridges, no polling."""
    states = [
        {
            "name": "webhook",
            "state": "listening",
            "address": "127.0.0.1:8765",
            "counts": {"accepted": 2},
            "last_error": None,
        }
    ]
    told: list[Callable[[], None]] = []
    running.core.bridges = lambda: [dict(s) for s in states]
    running.core.watch_bridges = told.append
    win = MainWindow(running.core)
    qtbot.addWidget(win)
    win.show()
    try:
        assert win.bridges_label.isVisible()
        assert win.bridges_label.text() == "webhook listening"
        assert "127.0.0.1:8765, 2 accepted" in win.bridges_label.toolTip()
        states[0].update(state="failed", last_error="could not start: address in use")
        assert told
        told[-1]()  # (a bridge's thread) its state changed
        qtbot.waitUntil(lambda: win.bridges_label.text() == "⚠ webhook failed", timeout=5000)
        assert "address in use" in win.bridges_label.toolTip()
        states.clear()
        told[-1]()
        qtbot.waitUntil(win.bridges_label.isHidden, timeout=5000)
    finally:
        win.shutdown()


def test_status_bar_shows_the_mqtt_bridge(qtbot: QtBot, running: Running, tmp_path: Path) -> None:
    """A real broker: connected, then (broker killed) reconnecting, then
    connected again; told by the bridge, no polling."""
    import shutil

    from mosquitto import MOSQUITTO, Mosquitto
    from nerve.bridges.base import start_all, stop_all
    from nerve.bridges.mqtt import MqttBridge, MqttConfig

    if MOSQUITTO is None or shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    broker = Mosquitto(tmp_path / "broker").start()
    config = MqttConfig.from_settings({"broker": broker.url, "publish": ["x.*"]})
    bridge = MqttBridge(config, "guihost", running.bus, running.engine)
    running.core.bridges = lambda: [bridge.status()]
    running.core.watch_bridges = lambda callback: setattr(bridge, "on_change", callback)
    win = MainWindow(running.core)
    qtbot.addWidget(win)
    win.show()
    loop = running.engine.loop
    assert loop is not None
    try:
        start_all(loop, [bridge])
        qtbot.waitUntil(lambda: win.bridges_label.text() == "mqtt connected", timeout=10_000)
        assert win.bridges_label.isVisible()
        assert "bridge mqtt: connected (mqtt://127.0.0.1:" in win.bridges_label.toolTip()
        broker.kill()
        qtbot.waitUntil(lambda: win.bridges_label.text() == "⚠ mqtt reconnecting", timeout=10_000)
        broker.start()
        qtbot.waitUntil(lambda: win.bridges_label.text() == "mqtt connected", timeout=20_000)
    finally:
        stop_all(loop, [bridge])
        win.shutdown()
        broker.stop()
