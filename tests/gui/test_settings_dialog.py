"""The Settings window over a real, started Nerve: each field writes settings.yaml and reloads."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox
from pytestqt.qtbot import QtBot

import nerve
from nerve.bootstrap import Nerve
from nerve.gui.core import Core
from nerve.gui.main_window import MainWindow
from nerve.gui.settings_dialog import SettingsDialog, check_panic_hotkey
from nerve.gui.tray import Tray
from nerve.options import Options
from nerve.paths import locations
from nerve.settings import DEFAULT_PANIC_HOTKEY, Settings

PACK = """\
nerve: 1
pack: {id: me.tools, name: My tools}
rules:
  - id: greet
    when: {event: x.go}
    do: [{log: hello}]
"""


@pytest.fixture
def live(nerve_env: dict[str, str]) -> Iterator[Nerve]:
    where = locations()
    where.packs.mkdir(parents=True)
    (where.packs / "tools.yaml").write_text(PACK)
    running = Nerve(where, Options())
    running.start()
    yield running
    running.stop()


class Reloads:
    """Core.reload of a real Nerve, counted."""

    def __init__(self, live: Nerve) -> None:
        self.live = live
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        self.live.reload()


@pytest.fixture
def fake_autostart(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A nerve.desktop_entry that records set_autostart calls (the real one may not exist)."""
    calls: list[bool] = []
    module = types.ModuleType("nerve.desktop_entry")
    module.autostart_enabled = lambda: bool(calls and calls[-1])  # type: ignore[attr-defined]
    module.set_autostart = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nerve.desktop_entry", module)
    monkeypatch.setattr(nerve, "desktop_entry", module, raising=False)
    return calls


def dialog_for(qtbot: QtBot, live: Nerve) -> tuple[SettingsDialog, Reloads]:
    core = Core.of(live)
    reloads = Reloads(live)
    core.reload = reloads
    dialog = SettingsDialog(core)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog, reloads


def settings_file(live: Nerve) -> Path:
    return live.locations.config / "settings.yaml"


CHANGES: list[tuple[str, Callable[[SettingsDialog], None], str, Any]] = [
    ("panic", lambda d: d.panic_edit.setText("Super+Escape"), "panic_hotkey", "super+escape"),
    ("no panic", lambda d: d.panic_edit.clear(), "panic_hotkey", None),
    (
        "listener",
        lambda d: d.listener_boxes["mouse"].setChecked(False),
        "disabled_listeners",
        ["mouse"],
    ),
    ("days", lambda d: d.days_spin.setValue(7), "retention_days", 7),
    ("events", lambda d: d.events_spin.setValue(5000), "max_events", 5000),
    ("private", lambda d: d.private_box.setChecked(True), "store_private", True),
]


@pytest.mark.parametrize("case", CHANGES, ids=[c[0] for c in CHANGES])
def test_each_setting_is_written_and_reloaded(
    qtbot: QtBot,
    live: Nerve,
    fake_autostart: list[bool],
    case: tuple[str, Callable[[SettingsDialog], None], str, Any],
) -> None:
    _, change, key, value = case
    dialog, reloads = dialog_for(qtbot, live)
    change(dialog)
    assert dialog.save_button.isEnabled()
    dialog.save_button.click()
    assert not dialog.isVisible()  # saved and closed
    assert reloads.count == 1
    assert getattr(Settings.load(settings_file(live)), key) == value
    assert getattr(live.settings, key) == value  # Nerve read it again
    assert fake_autostart == []  # start at login untouched


def test_nothing_changed_writes_nothing(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool]
) -> None:
    dialog, reloads = dialog_for(qtbot, live)
    assert dialog.save()
    assert not settings_file(live).exists()
    assert reloads.count == 0


@pytest.mark.parametrize("combo", ["ctrl+alt+f2", "ctrl+nosuchkey", "a", "ctrl+ctrl+a"])
def test_an_invalid_panic_hotkey_is_shown_and_refused(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool], combo: str
) -> None:
    dialog, reloads = dialog_for(qtbot, live)
    dialog.days_spin.setValue(3)
    qtbot.keyClicks(dialog.panic_edit, "x")  # any edit re-validates
    dialog.panic_edit.setText(combo)
    assert dialog.panic_error.isVisible()
    assert combo in dialog.panic_error.text() or "modifiers" in dialog.panic_error.text()
    assert not dialog.save_button.isEnabled()
    assert dialog.save() is False
    assert dialog.isVisible()
    assert not settings_file(live).exists()
    assert reloads.count == 0
    dialog.panic_edit.setText("ctrl+alt+shift+q")  # fixed: the error goes, Save comes back
    assert not dialog.panic_error.isVisible()
    assert dialog.save_button.isEnabled()


def test_the_hotkey_check_uses_nerves_parser() -> None:
    assert check_panic_hotkey(" Ctrl+Alt+Shift+P ") == ("ctrl+alt+shift+p", None)
    assert check_panic_hotkey("") == (None, None)
    assert check_panic_hotkey("f9") == ("f9", None)  # a function key alone is fine
    combo, error = check_panic_hotkey("ctrl+alt+f1")
    assert combo is None
    assert error is not None
    assert "virtual terminals" in error


def test_unknown_keys_and_comments_survive(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool]
) -> None:
    path = settings_file(live)
    path.write_text("# my settings\nmqtt: {host: broker.lan}\nretention_days: 10\n")
    dialog, reloads = dialog_for(qtbot, live)
    assert dialog.problems.isVisible()  # mqtt is not a key this version knows
    assert dialog.days_spin.value() == 10
    dialog.days_spin.setValue(20)
    assert dialog.save()
    assert path.read_text() == "# my settings\nmqtt: {host: broker.lan}\nretention_days: 20\n"
    assert reloads.count == 1


def test_restore_defaults_then_save(qtbot: QtBot, live: Nerve, fake_autostart: list[bool]) -> None:
    settings_file(live).write_text("panic_hotkey: super+escape\ndisabled_listeners: [mouse]\n")
    dialog, _ = dialog_for(qtbot, live)
    assert not dialog.listener_boxes["mouse"].isChecked()
    dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.panic_edit.text() == DEFAULT_PANIC_HOTKEY
    assert dialog.listener_boxes["mouse"].isChecked()
    assert dialog.save()
    saved = Settings.load(settings_file(live))
    assert (saved.panic_hotkey, saved.disabled_listeners) == (DEFAULT_PANIC_HOTKEY, [])


def test_autostart_goes_through_desktop_entry(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool]
) -> None:
    dialog, reloads = dialog_for(qtbot, live)
    box = dialog.autostart_box
    assert box.isEnabled()
    assert not box.isChecked()
    box.setChecked(True)
    assert dialog.save()
    assert fake_autostart == [True]
    assert reloads.count == 0  # settings.yaml did not change
    dialog, _ = dialog_for(qtbot, live)
    assert dialog.autostart_box.isChecked()
    dialog.autostart_box.setChecked(False)
    assert dialog.save()
    assert fake_autostart == [True, False]


def test_autostart_failure_is_shown_next_to_it(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(enabled: bool) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(sys.modules["nerve.desktop_entry"], "set_autostart", refuse)
    dialog, _ = dialog_for(qtbot, live)
    dialog.autostart_box.setChecked(True)
    assert dialog.save() is False
    assert dialog.isVisible()
    assert dialog.autostart_error.isVisible()
    assert "read-only file system" in dialog.autostart_error.text()


def test_without_desktop_entry_autostart_is_off_with_a_reason(
    qtbot: QtBot, live: Nerve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nerve.desktop_entry", None)  # import fails
    monkeypatch.delattr(nerve, "desktop_entry", raising=False)
    dialog, _ = dialog_for(qtbot, live)
    assert not dialog.autostart_box.isEnabled()
    assert "not available" in dialog.autostart_box.toolTip()
    assert dialog.autostart_hint.isVisible()
    dialog.days_spin.setValue(9)
    assert dialog.save()  # the rest still saves


def test_real_desktop_entry_when_present(
    qtbot: QtBot, live: Nerve, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = pytest.importorskip("nerve.desktop_entry")
    monkeypatch.setenv("HOME", str(short_tmp))
    dialog, _ = dialog_for(qtbot, live)
    if not dialog.autostart_box.isEnabled():
        pytest.skip(f"start at login unsupported here: {dialog.autostart_box.toolTip()}")
    before = entry.autostart_enabled()
    dialog.autostart_box.setChecked(not before)
    assert dialog.save()
    assert entry.autostart_enabled() is (not before)
    entry.set_autostart(before)


def test_folders_open_with_the_desktop(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(nerve.desktop, "open_target", opened.append)
    dialog, _ = dialog_for(qtbot, live)
    dialog.folder_buttons["config"].click()
    dialog.folder_buttons["packs"].click()
    dialog.folder_buttons["data"].click()
    assert opened == [
        str(live.locations.config),
        str(live.locations.packs),
        str(live.locations.data),
    ]


def test_listener_states_are_shown(qtbot: QtBot, live: Nerve, fake_autostart: list[bool]) -> None:
    dialog, _ = dialog_for(qtbot, live)
    assert {"hotkeys", "keyboard", "mouse", "filesystem"} <= set(dialog.listener_boxes)
    assert all(box.isChecked() for box in dialog.listener_boxes.values())
    assert "keyboard" in dialog.listener_boxes["keyboard"].toolTip()


def test_window_menu_and_tray_open_one_settings_window(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool]
) -> None:
    tray = Tray()
    window = MainWindow(Core.of(live), tray=tray)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    dialog = window.settings_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible, timeout=3000)
    tray.settings_action.trigger()
    assert window.settings_dialog is dialog  # the same window, raised
    dialog.days_spin.setValue(5)
    dialog.save_button.click()
    assert live.settings.retention_days == 5
    assert "Settings saved" in window.statusBar().currentMessage()
    assert window.settings_dialog is None  # closed; the next Ctrl+, makes a fresh one
    window.shutdown()


def test_unsupported_platform_disables_autostart(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sys.modules["nerve.desktop_entry"], "supported", lambda: False, raising=False
    )
    dialog, _ = dialog_for(qtbot, live)
    assert not dialog.autostart_box.isEnabled()
    assert "not supported on this platform" in dialog.autostart_box.toolTip()
    assert dialog.save()
    assert fake_autostart == []


def test_the_panic_hotkey_is_recorded_by_pressing_it(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool]
) -> None:
    dialog, _ = dialog_for(qtbot, live)
    if dialog.panic_mode is None:
        pytest.skip("no hotkey recorder in this version: a typed field")
    dialog.panic_edit.setFocus()
    ctrl, alt = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.AltModifier
    qtbot.keyClick(dialog.panic_edit, Qt.Key.Key_F8, ctrl | alt)
    assert dialog.panic_edit.text() == "ctrl+alt+f8"
    assert "virtual terminals" in dialog.panic_error.text()  # recorded, and refused
    assert not dialog.save_button.isEnabled()
    qtbot.keyClick(dialog.panic_edit, Qt.Key.Key_F8, ctrl | Qt.KeyboardModifier.ShiftModifier)
    assert dialog.panic_edit.text() == "ctrl+shift+f8"
    assert dialog.save()
    assert live.settings.panic_hotkey == "ctrl+shift+f8"


def test_the_webhook_is_switched_and_placed_here_its_hooks_stay(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool]
) -> None:
    token = live.locations.config / "deploy.token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    settings_file(live).write_text(
        f"# mine\nwebhook:\n  listen: 127.0.0.1:0\n  hooks: {{deploy: {{token_file: {token}}}}}\n"
    )
    live.reload()
    assert [b["state"] for b in live.status()["bridges"]] == ["listening"]
    dialog, reloads = dialog_for(qtbot, live)
    assert dialog.webhook_box.isChecked()
    assert dialog.webhook_listen.text() == "127.0.0.1:0"
    assert "deploy" in dialog.webhook_hooks.text()
    assert "listening" in dialog.webhook_state.text()
    # A bad address: said next to it, and Save is off.
    dialog.webhook_listen.setText("nowhere")
    assert dialog.webhook_error.isVisible()
    assert "host:port" in dialog.webhook_error.text()
    assert not dialog.save_button.isEnabled()
    dialog.webhook_listen.setText("127.0.0.1:0")
    assert dialog.save_button.isEnabled()
    # Off: Nerve stops listening; the hooks stay in the file for next time.
    dialog.webhook_box.setChecked(False)
    dialog.save_button.click()
    assert reloads.count == 1
    saved = Settings.load(settings_file(live)).webhook
    assert saved is not None
    assert saved["enabled"] is False
    assert saved["hooks"] == {"deploy": {"token_file": str(token)}}
    assert live.status()["bridges"] == []
    assert settings_file(live).read_text().startswith("# mine")
    # On again.
    dialog, reloads = dialog_for(qtbot, live)
    assert not dialog.webhook_box.isChecked()
    dialog.webhook_box.setChecked(True)
    dialog.save_button.click()
    assert [b["state"] for b in live.status()["bridges"]] == ["listening"]
    assert "enabled" not in (Settings.load(settings_file(live)).webhook or {})


def test_no_webhook_block_stays_none(qtbot: QtBot, live: Nerve, fake_autostart: list[bool]) -> None:
    dialog, _ = dialog_for(qtbot, live)
    assert not dialog.webhook_box.isChecked()
    assert "No hooks yet" in dialog.webhook_hooks.text()
    assert dialog.chosen().webhook is None


def test_mqtt_settings_are_written_and_the_bridge_starts(
    qtbot: QtBot, live: Nerve, fake_autostart: list[bool], tmp_path: Path
) -> None:
    """A real broker: the window's MQTT fields write the mqtt block, the reload
    starts the bridge, and it connects; clearing the broker turns it off."""
    import shutil

    from conftest import wait_until
    from mosquitto import MOSQUITTO, Mosquitto

    if MOSQUITTO is None or shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    broker = Mosquitto(tmp_path / "broker").start()
    try:
        dialog, reloads = dialog_for(qtbot, live)
        edits = dialog.mqtt_edits
        edits["host"].setText("my-laptop")
        edits["broker"].setText("http://nope")
        assert not dialog.save_button.isEnabled()
        assert "broker" in dialog.mqtt_error.text()
        edits["broker"].setText(broker.url)
        edits["publish"].setText("build.*, x.done")
        edits["subscribe"].setText("nerve/+/build.*")
        dialog.discovery_box.setChecked(True)
        assert dialog.save_button.isEnabled()
        dialog.save_button.click()
        assert reloads.count == 1
        saved = Settings.load(settings_file(live))
        assert saved.host == "my-laptop"
        assert saved.mqtt == {
            "broker": broker.url,
            "publish": ["build.*", "x.done"],
            "subscribe": ["nerve/+/build.*"],
            "discovery": True,
        }
        wait_until(
            lambda: [b.status()["state"] for b in live.bridges] == ["connected"],
            what="the bridge connected",
        )
        assert live.bridges[0].status()["host"] == "my-laptop"

        # Shown again as saved; cleared broker: off, and the block is gone.
        again, _ = dialog_for(qtbot, live)
        assert again.mqtt_edits["broker"].text() == broker.url
        assert again.mqtt_edits["publish"].text() == "build.*, x.done"
        again.mqtt_edits["broker"].clear()
        again.save_button.click()
        assert "mqtt" not in settings_file(live).read_text()
        assert live.bridges == []
    finally:
        broker.stop()
