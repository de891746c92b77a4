"""The Settings window: listeners, panic hotkey, start at login, retention, folders.

It edits ``settings.yaml`` (keeping its comments and any keys it does not
know), writes it atomically and asks the running Nerve to reload. Nothing is
saved while a field is invalid; the problem is shown next to the field.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from nerve import desktop
from nerve.bridges.schema import DEFAULT_LISTEN
from nerve.bridges.webhook import ConfigError, parse_listen
from nerve.gui.core import Core
from nerve.gui.icons import status_color
from nerve.settings import SCHEMA, Settings

log = logging.getLogger(__name__)

#: What each listener gives rules, in the words of the Settings window.
LISTENERS: dict[str, tuple[str, str]] = {
    "hotkeys": ("Hotkeys", "key combinations that rules own, and the panic hotkey"),
    "keyboard": ("Keyboard", "typed abbreviations and single key presses"),
    "mouse": ("Mouse", "clicks, scrolling and pointer moves"),
    "window": ("Windows", "which window is active"),
    "filesystem": ("Files", "files appearing, changing or going in watched folders"),
    "processes": ("Programs", "programs starting and exiting"),
    "clipboard": ("Clipboard", "what other programs copy"),
    "idle": ("Idle", "no keyboard or mouse input for a while"),
    "power": ("Power", "charger plugged in or out, battery low"),
    "network": ("Network", "network interfaces going up or down"),
    "devices": ("Devices", "USB and other devices plugged in or removed"),
    "display": ("Displays", "monitors added, removed or rearranged"),
    "session": ("Session", "screen locked or unlocked, suspend and resume, logins"),
}

MAX_EVENTS_LIMIT = 2_000_000_000
MAX_DAYS = 36_500
AUTOSTART_MISSING = "Start at login is not available in this version of Nerve"


def check_panic_hotkey(text: str) -> tuple[str | None, str | None]:
    """``(combo, None)`` for a usable panic hotkey (``None`` for none), else ``(None, error)``.

    Uses the parser the ``hotkey`` trigger uses; also refuses a lone
    character key, which would be taken from every application."""
    text = text.strip()
    if not text:
        return None, None
    from nerve.engine.registry import ConfigError
    from nerve.listeners import keyboard

    try:
        combo = keyboard.check_combo(text)
    except ConfigError as exc:
        return None, str(exc)
    if not combo.modifiers and len(combo.key) == 1:
        return None, (
            f"{combo}: a key without modifiers would be taken from every application; "
            "add ctrl, alt, shift or super"
        )
    return str(combo), None


def listener_ids(core: Core) -> list[str]:
    """The listeners this Nerve knows, in the order the window shows them."""
    from nerve.engine.registry import load_builtin_types

    load_builtin_types()
    if core.listeners is not None:
        known = core.listeners.registry.ids()
    else:
        from nerve.listeners.base import listeners

        known = listeners.ids()
    order = list(LISTENERS)
    return sorted(known, key=lambda lid: (order.index(lid) if lid in order else len(order), lid))


# ------------------------------------------------------------------ autostart


def _autostart() -> tuple[Any, str | None]:
    """``(nerve.desktop_entry, None)``, or ``(None, why start at login is not offered)``."""
    try:
        from nerve import desktop_entry  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None, AUTOSTART_MISSING
    if not callable(getattr(desktop_entry, "set_autostart", None)) or not callable(
        getattr(desktop_entry, "autostart_enabled", None)
    ):
        return None, AUTOSTART_MISSING
    return desktop_entry, None


def autostart_state() -> tuple[bool | None, str | None]:
    """Whether Nerve starts at login (``None``: cannot tell), and why not offered."""
    module, why = _autostart()
    if module is None:
        return None, why
    supported = getattr(module, "supported", None)
    try:
        if callable(supported) and not supported():
            return None, "Start at login is not supported on this platform"
        return bool(module.autostart_enabled()), None
    except Exception as exc:  # an unreadable entry: say so rather than guess
        return None, f"Start at login is not available here: {exc}"


# --------------------------------------------------------------------- dialog


class SettingsDialog(QDialog):
    """Edits settings.yaml; Save writes it and reloads Nerve."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Nerve Settings")
        self.setObjectName("settings")
        self.path: Path | None = (
            core.config_dir / "settings.yaml" if core.config_dir is not None else None
        )
        self.settings = Settings.load(self.path) if self.path is not None else Settings()
        self.reloads = 0

        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        if self.settings.errors:
            self.problems.setText(
                "settings.yaml has problems; the defaults are shown for them, and Save "
                "replaces them (the old file is kept as settings.yaml~):\n"
                + "\n".join(self.settings.errors)
            )
        self.problems.setVisible(bool(self.settings.errors))

        # -- keyboard
        self.panic_field, self.panic_edit, self.panic_mode = _hotkey_field()
        self.panic_error = _error_label()
        panic_hint = _hint("Pauses every rule and cancels running ones. Empty: none.")
        keyboard_box = QGroupBox("&Keyboard")
        form = QFormLayout(keyboard_box)
        form.addRow("&Panic hotkey:", self.panic_field)
        form.addRow("", self.panic_error)
        form.addRow("", panic_hint)

        # -- start-up
        self.autostart_box = QCheckBox("Start Nerve when I &log in")
        self.autostart_error = _error_label()
        self.autostart_initial, why = autostart_state()
        self.autostart_hint = _hint(why or "")
        self.autostart_hint.setVisible(self.autostart_initial is None)
        if self.autostart_initial is None:
            self.autostart_box.setEnabled(False)
            self.autostart_box.setToolTip(why or AUTOSTART_MISSING)
        else:
            self.autostart_box.setChecked(self.autostart_initial)
        startup_box = QGroupBox("Start-&up")
        startup = QVBoxLayout(startup_box)
        startup.addWidget(self.autostart_box)
        startup.addWidget(self.autostart_hint)
        startup.addWidget(self.autostart_error)

        # -- event log
        self.days_spin = QDoubleSpinBox()
        self.days_spin.setRange(0.1, MAX_DAYS)
        self.days_spin.setSuffix(" days")
        self.events_spin = QSpinBox()
        fewest = int(SCHEMA["properties"]["max_events"]["minimum"])
        self.events_spin.setRange(fewest, MAX_EVENTS_LIMIT)
        self.events_spin.setSingleStep(10_000)
        self.events_spin.setGroupSeparatorShown(True)
        self.events_spin.setSuffix(" events")
        self.private_box = QCheckBox("Also keep key presses and clipboard te&xt")
        self.private_box.setToolTip(
            "Off: key presses and clipboard contents are shown live only, never written to disk"
        )
        log_box = QGroupBox("&Event log")
        form = QFormLayout(log_box)
        form.addRow("Keep events &for:", self.days_spin)
        form.addRow("Keep at &most:", self.events_spin)
        form.addRow("", self.private_box)

        # -- bridges: the webhook (the hooks and their tokens live in settings.yaml)
        # and MQTT, in one group
        self.webhook_box = QCheckBox("Accept &webhooks (POST /hook/<name>)")
        self.webhook_box.setToolTip(
            "A call with a hook's token becomes the event webhook.<name>; see the README"
        )
        self.webhook_listen = QLineEdit()
        self.webhook_listen.setPlaceholderText(DEFAULT_LISTEN)
        self.webhook_error = _error_label()
        self.webhook_hooks = _hint("")
        self.webhook_state = _hint("")
        bridges_box = QGroupBox("&Bridges")
        form = QFormLayout(bridges_box)
        form.addRow("", self.webhook_box)
        form.addRow("Listen o&n:", self.webhook_listen)
        form.addRow("", self.webhook_error)
        form.addRow("", self.webhook_hooks)
        form.addRow("", self.webhook_state)
        self.webhook_box.toggled.connect(self.validate)
        self.webhook_listen.textChanged.connect(self.validate)
        self._mqtt_rows(form, core)

        # -- listeners
        self.listener_boxes: dict[str, QCheckBox] = {}
        states = {s["id"]: s for s in core.listener_status()}
        listeners_box = QGroupBox("Liste&ners")
        outer = QVBoxLayout(listeners_box)
        outer.addWidget(_hint("A listener that is off never starts; rules that need it stay idle."))
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.setHorizontalSpacing(12)
        outer.addLayout(grid)
        outer.addStretch(1)
        for row, lid in enumerate(listener_ids(core)):
            title, what = LISTENERS.get(lid, (lid, ""))
            box = QCheckBox(title)
            box.setObjectName(f"listener-{lid}")
            state = _state_text(states.get(lid))
            box.setToolTip(f"{lid}: {what}" + (f"\nnow: {state}" if state else ""))
            self.listener_boxes[lid] = box
            grid.addWidget(box, row, 0)
            grid.addWidget(_hint(what, wrap=False), row, 1)
            if state:
                now = _hint(state, wrap=False)
                now.setToolTip(state)
                grid.addWidget(now, row, 2)

        # -- folders
        folders_box = QGroupBox("F&olders")
        folders = QFormLayout(folders_box)
        self.folder_buttons: dict[str, QPushButton] = {}
        for key, label, path in self._folders():
            shown = QLineEdit(str(path) if path is not None else "unknown")
            shown.setReadOnly(True)
            shown.setCursorPosition(0)
            button = QPushButton("Open")
            button.setToolTip(f"Open {path}" if path is not None else "")
            button.setEnabled(path is not None and path.is_dir())
            if path is not None and not path.is_dir():
                button.setToolTip("Not created yet")
            button.clicked.connect(lambda _=False, p=path: self._open_folder(p))
            self.folder_buttons[key] = button
            row_layout = QHBoxLayout()
            row_layout.addWidget(shown, 1)
            row_layout.addWidget(button)
            folders.addRow(label, row_layout)

        # -- buttons
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.buttons.clicked.connect(self._button_clicked)
        self.footer = _error_label()
        if self.path is None:
            self.footer.setText("This Nerve has no settings folder: settings cannot be saved.")
            self.footer.show()

        left = QVBoxLayout()
        left.addWidget(keyboard_box)
        left.addWidget(startup_box)
        left.addWidget(log_box)
        left.addWidget(bridges_box)
        left.addStretch(1)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addWidget(listeners_box, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.problems)
        layout.addLayout(columns)
        layout.addWidget(folders_box)
        layout.addWidget(self.footer)
        layout.addWidget(self.buttons)

        self._show(self.settings)
        self.panic_edit.textChanged.connect(self.validate)
        for edit in self.mqtt_edits.values():
            edit.textChanged.connect(self.validate)
        self._tab_order()
        self.validate()
        # Not the hotkey field: it would record the first key pressed (Escape, Enter).
        self.save_button.setDefault(True)
        self.save_button.setFocus(Qt.FocusReason.OtherFocusReason)

    # -- fields

    def _show(self, settings: Settings) -> None:
        self.panic_edit.setText(settings.panic_hotkey or "")
        days = float(settings.retention_days)
        self.days_spin.setDecimals(0 if days.is_integer() else 2)
        self.days_spin.setValue(days)
        self.events_spin.setValue(int(settings.max_events))
        self.private_box.setChecked(bool(settings.store_private))
        block = settings.mqtt or {}
        self.mqtt_edits["host"].setText(settings.host or "")
        for key in ("broker", "username", "password_file"):
            self.mqtt_edits[key].setText(str(block.get(key, "")))
        for key in ("publish", "subscribe"):
            self.mqtt_edits[key].setText(", ".join(block.get(key, [])))
        self.discovery_box.setChecked(bool(block.get("discovery", False)))
        off = set(settings.disabled_listeners)
        for lid, box in self.listener_boxes.items():
            box.setChecked(lid not in off)
        self._show_webhook(settings.webhook)

    def _show_webhook(self, block: dict[str, Any] | None) -> None:
        self.webhook_box.setChecked(block is not None and block.get("enabled", True) is not False)
        self.webhook_listen.setText(str((block or {}).get("listen", DEFAULT_LISTEN)))
        hooks = (block or {}).get("hooks") or {}
        self.webhook_hooks.setText(
            "Hooks: "
            + ", ".join(
                f"{name} (token in {spec.get('token_file')})" for name, spec in hooks.items()
            )
            if hooks
            else "No hooks yet: add them in settings.yaml under webhook: hooks:, "
            "each with a token_file only you can read."
        )
        try:
            states = [b for b in self.core.bridges() if b.get("name") == "webhook"]
        except Exception:
            states = []
        if states:
            from nerve.cli import bridge_line

            self.webhook_state.setText("Now: " + bridge_line(states[0]))
        self.webhook_state.setVisible(bool(states))

    def _chosen_webhook(self) -> dict[str, Any] | None:
        old = self.settings.webhook
        block = dict(old or {})
        listen = self.webhook_listen.text().strip() or DEFAULT_LISTEN
        if listen != block.get("listen", DEFAULT_LISTEN):
            block["listen"] = listen
        if self.webhook_box.isChecked():
            block.pop("enabled", None)
            return block
        if old is None and block == {}:
            return None
        block["enabled"] = False  # (the hooks stay, for the next time)
        return block

    def chosen(self) -> Settings:
        """The settings as the fields show them (call :meth:`validate` first)."""
        combo, _ = check_panic_hotkey(self.panic_edit.text())
        known = set(self.listener_boxes)
        disabled = [lid for lid, box in self.listener_boxes.items() if not box.isChecked()]
        # Listeners this version does not know stay switched off as the file says.
        disabled += [lid for lid in self.settings.disabled_listeners if lid not in known]
        days = self.days_spin.value()
        return dataclasses.replace(
            self.settings,
            panic_hotkey=combo,
            retention_days=int(days) if float(days).is_integer() else days,
            max_events=self.events_spin.value(),
            store_private=self.private_box.isChecked(),
            disabled_listeners=disabled,
            webhook=self._chosen_webhook(),
            host=self.mqtt_edits["host"].text().strip() or None,
            mqtt=self._mqtt_block(),
            errors=[],
        )

    def validate(self) -> bool:
        """Show what is wrong next to its field; Save only while all is well."""
        _, error = check_panic_hotkey(self.panic_edit.text())
        self.panic_error.setText(error or "")
        self.panic_error.setVisible(bool(error))
        listen_error = None
        if self.webhook_box.isChecked():
            try:
                parse_listen(self.webhook_listen.text().strip() or DEFAULT_LISTEN)
            except ConfigError as exc:
                listen_error = str(exc)
        self.webhook_error.setText(listen_error or "")
        self.webhook_error.setVisible(bool(listen_error))
        mqtt_error = self._mqtt_problem()
        self.mqtt_error.setText(mqtt_error or "")
        self.mqtt_error.setVisible(bool(mqtt_error))
        ok = error is None and listen_error is None and mqtt_error is None
        self.save_button.setEnabled(ok and self.path is not None)
        return ok

    # -- saving

    def save(self) -> bool:
        """Write settings.yaml and reload Nerve; keeps the window open on a problem."""
        if not self.validate() or self.path is None:
            return False
        self.footer.hide()
        chosen = self.chosen()
        if chosen.values() != self.settings.values() or self.settings.errors:
            try:
                chosen.save(self.path)
            except OSError as exc:
                self._footer(f"Could not write {self.path}: {exc.strerror or exc}")
                return False
            self.settings = chosen
            self.problems.hide()
            try:
                self.core.reload()
                self.reloads += 1
            except Exception as exc:  # a pack that no longer loads, a stopped engine
                log.warning("settings saved, but Nerve did not reload: %s", exc)
                self._footer(f"Saved, but Nerve could not reload: {exc}")
                return False
        if not self._save_autostart():
            return False
        self.accept()
        return True

    # -- MQTT

    def _mqtt_rows(self, form: QFormLayout, core: Core) -> None:
        """The MQTT fields, under the webhook's in the Bridges group."""
        from nerve.bridges.mqtt import default_host

        title = QLabel("<b>MQTT</b>")
        title.setContentsMargins(0, 8, 0, 0)
        form.addRow(title)
        self.mqtt_edits: dict[str, QLineEdit] = {}
        for key, label, hint in (
            ("host", "This machine:", f"{default_host()} (its name in topics)"),
            ("broker", "MQ&TT broker:", "mqtt://192.168.1.10:1883, mqtts://… (empty: off)"),
            ("username", "User name:", "none"),
            ("password_file", "Password file:", "a file holding the password"),
            ("publish", "Publish:", "event types: build.*, file.created"),
            ("subscribe", "Subscribe:", "topics: nerve/+/build.*, home/door"),
        ):
            edit = QLineEdit()
            edit.setObjectName(f"mqtt-{key}")
            edit.setPlaceholderText(hint)
            self.mqtt_edits[key] = edit
            form.addRow(label, edit)
        self.discovery_box = QCheckBox("Home Assistant discovery")
        form.addRow("", self.discovery_box)
        self.mqtt_error = _error_label()
        form.addRow("", self.mqtt_error)
        try:
            states = [b for b in core.bridges() if b.get("name") == "mqtt"]
        except Exception:
            states = []
        for bridge in states:
            from nerve.cli import bridge_line

            form.addRow("", _hint("Now: " + bridge_line(bridge)))

    def _mqtt_block(self) -> dict[str, Any] | None:
        """The mqtt: block the fields describe; {} turns MQTT off; None: as it was."""
        text = {k: e.text().strip() for k, e in self.mqtt_edits.items()}
        if not text["broker"]:
            return {} if self.settings.mqtt else None
        # What the window does not show (queue, ca_file...) stays as the file has it.
        block: dict[str, Any] = {
            k: v
            for k, v in (self.settings.mqtt or {}).items()
            if k not in ("broker", "username", "password_file", "publish", "subscribe")
        }
        block["broker"] = text["broker"]
        for key in ("username", "password_file"):
            if text[key]:
                block[key] = text[key]
        for key in ("publish", "subscribe"):
            items = [p.strip() for p in text[key].split(",") if p.strip()]
            if items:
                block[key] = items
        if self.discovery_box.isChecked():
            block["discovery"] = True
        else:
            block.pop("discovery", None)
        return block

    def _mqtt_problem(self) -> str | None:
        from nerve.bridges.mqtt import host_problem, problems
        from nerve.engine import validation
        from nerve.settings import SCHEMA as SETTINGS_SCHEMA

        host = self.mqtt_edits["host"].text().strip()
        if host and host_problem(host):
            return f"This machine: {host_problem(host)}"
        block = self._mqtt_block()
        if not block:
            return None
        schema = SETTINGS_SCHEMA["properties"]["mqtt"]
        for where, message in [*validation.check(schema, block), *problems(block)]:
            return f"{'.'.join(map(str, where)) or 'mqtt'}: {message}"
        return None

    def _save_autostart(self) -> bool:
        if not self.autostart_box.isEnabled():
            return True
        wanted = self.autostart_box.isChecked()
        if wanted == self.autostart_initial:
            return True
        module, why = _autostart()
        if module is None:
            self._autostart_error(why or AUTOSTART_MISSING)
            return False
        try:
            module.set_autostart(wanted)
        except Exception as exc:  # a read-only autostart folder, an unsupported desktop
            self._autostart_error(f"Could not change start at login: {exc}")
            return False
        self.autostart_initial = wanted
        self.autostart_error.hide()
        return True

    def _autostart_error(self, text: str) -> None:
        self.autostart_error.setText(text)
        self.autostart_error.show()

    def _footer(self, text: str) -> None:
        self.footer.setText(text)
        self.footer.show()

    def _button_clicked(self, button: QAbstractButton) -> None:
        if self.buttons.buttonRole(button) == QDialogButtonBox.ButtonRole.ResetRole:
            self._show(Settings())
            self.validate()

    # -- folders

    def _folders(self) -> list[tuple[str, str, Path | None]]:
        core = self.core
        config = core.config_dir
        packs = core.packs_dir or (config / "packs" if config is not None else None)
        data = core.data_dir
        if data is None and core.store is not None:
            data = core.store.path.parent
        logs = core.logs_dir
        if logs is None:
            from nerve.paths import locations

            logs = locations().logs
        return [
            ("config", "Settings:", config),
            ("packs", "Your packs:", packs),
            ("data", "Event log, runs:", data),
            ("logs", "Log file:", logs),
        ]

    def _open_folder(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            desktop.open_target(str(path))
        except OSError as exc:
            self._footer(str(exc))

    def _tab_order(self) -> None:
        chain: list[QWidget] = [
            self.panic_edit,
            *([self.panic_mode] if self.panic_mode is not None else []),
            self.autostart_box,
            self.days_spin,
            self.events_spin,
            self.private_box,
            self.webhook_box,
            self.webhook_listen,
            *self.mqtt_edits.values(),
            self.discovery_box,
            *self.listener_boxes.values(),
            *self.folder_buttons.values(),
        ]
        chain += [b for b in self.buttons.buttons() if isinstance(b, QWidget)]
        for first, second in itertools.pairwise(chain):
            QWidget.setTabOrder(first, second)


def _hotkey_field() -> tuple[QWidget, QLineEdit, QWidget | None]:
    """The rule editor's hotkey recorder where there is one, else a line edit.

    Returns the widget to lay out, its line edit, and the recorder's
    press/type switch (None for a plain line edit)."""
    tip = (
        "Modifiers and a key joined by +, e.g. ctrl+alt+shift+p or super+escape. "
        "Empty: no panic hotkey."
    )
    try:
        module = importlib.import_module("nerve.gui.editor.hotkey")
        recorder = module.HotkeyRecorder()
        edit = recorder.edit
        mode = recorder.mode
    except (ImportError, AttributeError) as exc:
        log.debug("no hotkey recorder (%s): a plain field", exc)
    else:
        if isinstance(recorder, QWidget) and isinstance(edit, QLineEdit):
            # The recorder's own tooltip says how to record; ours says what it is for.
            recorder.setToolTip(tip)
            return recorder, edit, mode if isinstance(mode, QWidget) else None
    edit = QLineEdit()
    edit.setPlaceholderText("none")
    edit.setToolTip(tip)
    return edit, edit, None


def _error_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    palette = label.palette()
    palette.setColor(label.foregroundRole(), status_color("failed"))
    label.setPalette(palette)
    label.hide()
    return label


def _hint(text: str, *, wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    palette = label.palette()
    palette.setColor(label.foregroundRole(), status_color("muted"))
    label.setPalette(palette)
    return label


def _state_text(state: dict[str, Any] | None) -> str:
    """What a listener does now ("" while no rule needs it)."""
    if state is None:
        return ""
    text = str(state.get("state", ""))
    error = state.get("error")
    if error:
        short = str(error).splitlines()[0]
        text += f": {short[:60]}…" if len(short) > 60 else f": {short}"
    return text


def open_settings(core: Core, parent: QWidget | None = None) -> SettingsDialog:
    """Show the Settings window (modeless) and return it."""
    dialog = SettingsDialog(core, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
