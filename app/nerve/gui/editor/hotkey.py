"""A field that records a key combination: press it, read ``ctrl+alt+t``.

The text is Nerve's combo syntax (:func:`nerve.listeners.x11.normalise_combo`),
so what the field shows is what the hotkey trigger and the ``keys`` action
read. Tab and Shift+Tab still move the focus, Escape gives back the previous
combo, Backspace or Delete alone clear the field. Combos that cannot be
pressed here (one side of a modifier, keys the desktop takes) are typed after
switching recording off.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLineEdit, QToolButton, QWidget

from nerve.listeners import x11

_MODIFIER_KEYS = {
    Qt.Key.Key_Control: "ctrl",
    Qt.Key.Key_Alt: "alt",
    Qt.Key.Key_Shift: "shift",
    Qt.Key.Key_Meta: "super",
    Qt.Key.Key_Super_L: "super",
    Qt.Key.Key_Super_R: "super",
    Qt.Key.Key_AltGr: "altgr",
}

_NAMED_KEYS = {
    Qt.Key.Key_Return: "return",
    Qt.Key.Key_Enter: "kp_enter",
    Qt.Key.Key_Escape: "escape",
    Qt.Key.Key_Tab: "tab",
    Qt.Key.Key_Backtab: "tab",
    Qt.Key.Key_Backspace: "backspace",
    Qt.Key.Key_Insert: "insert",
    Qt.Key.Key_Delete: "delete",
    Qt.Key.Key_Home: "home",
    Qt.Key.Key_End: "end",
    Qt.Key.Key_PageUp: "page_up",
    Qt.Key.Key_PageDown: "page_down",
    Qt.Key.Key_Left: "left",
    Qt.Key.Key_Right: "right",
    Qt.Key.Key_Up: "up",
    Qt.Key.Key_Down: "down",
    Qt.Key.Key_Space: "space",
    Qt.Key.Key_Print: "print",
    Qt.Key.Key_Pause: "pause",
    Qt.Key.Key_Menu: "menu",
    Qt.Key.Key_CapsLock: "caps_lock",
    Qt.Key.Key_NumLock: "num_lock",
    Qt.Key.Key_ScrollLock: "scroll_lock",
    Qt.Key.Key_VolumeUp: "xf86audioraisevolume",
    Qt.Key.Key_VolumeDown: "xf86audiolowervolume",
    Qt.Key.Key_VolumeMute: "xf86audiomute",
    Qt.Key.Key_MediaPlay: "xf86audioplay",
    Qt.Key.Key_MediaTogglePlayPause: "xf86audioplay",
    Qt.Key.Key_MediaNext: "xf86audionext",
    Qt.Key.Key_MediaPrevious: "xf86audioprev",
    Qt.Key.Key_MediaStop: "xf86audiostop",
}


def modifier_names(modifiers: Qt.KeyboardModifier) -> list[str]:
    """Nerve's modifier names for Qt's modifier flags, in Nerve's order."""
    held = {
        "ctrl": Qt.KeyboardModifier.ControlModifier,
        "alt": Qt.KeyboardModifier.AltModifier,
        "shift": Qt.KeyboardModifier.ShiftModifier,
        "super": Qt.KeyboardModifier.MetaModifier,
        "altgr": Qt.KeyboardModifier.GroupSwitchModifier,
    }
    return [name for name in x11.MODIFIERS if modifiers & held[name]]


def key_text(key: int, text: str) -> str | None:
    """Nerve's name of the key ``key`` (a ``Qt.Key``), or None when it has none."""
    qkey = Qt.Key(key)
    if qkey in _NAMED_KEYS:
        return _NAMED_KEYS[qkey]
    if Qt.Key.Key_F1 <= qkey <= Qt.Key.Key_F35:
        return f"f{key - Qt.Key.Key_F1.value + 1}"
    if Qt.Key.Key_A <= qkey <= Qt.Key.Key_Z:
        return chr(key).lower()
    if Qt.Key.Key_0 <= qkey <= Qt.Key.Key_9:
        return chr(key)
    if 0x20 < key < 0x110000 and qkey not in _MODIFIER_KEYS:
        return x11.key_name(chr(key))
    if text and text.isprintable():
        return x11.key_name(text)
    return None


def combo_from_event(event: QKeyEvent) -> str | None:
    """The combo a key press makes (``ctrl+alt+t``), or None for a modifier alone."""
    key = event.key()
    if Qt.Key(key) in _MODIFIER_KEYS:
        return None
    name = key_text(key, event.text())
    if name is None:
        return None
    mods = modifier_names(event.modifiers())
    if Qt.Key(key) == Qt.Key.Key_Backtab and "shift" not in mods:
        mods.append("shift")
    try:
        return x11.normalise_combo("+".join([*mods, name]))
    except x11.ComboError:
        return "+".join([*mods, name])


class HotkeyEdit(QLineEdit):
    """A line edit that, while recording, turns the next key press into a combo."""

    #: The user recorded or typed a combo (the new text).
    recorded = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.recording = True
        self._before = ""
        self.setPlaceholderText("Press a key combination")
        self.setToolTip(
            "Press the combination while this field has the focus. Escape gives back the "
            "previous one, Backspace clears; switch recording off to type a combo."
        )

    def set_recording(self, on: bool) -> None:
        self.recording = on
        self.setReadOnly(False)
        self.setPlaceholderText("Press a key combination" if on else "ctrl+alt+t")

    def event(self, event: QEvent) -> bool:
        # While recording, every combo is for this field: none of the window's shortcuts.
        if self.recording and event.type() == QEvent.Type.ShortcutOverride:
            assert isinstance(event, QKeyEvent)
            if not self._passes(event):
                event.accept()
                return True
        return super().event(event)

    def _passes(self, event: QKeyEvent) -> bool:
        """Keys that keep their usual meaning while recording: focus moves."""
        plain = not (
            event.modifiers()
            & ~(Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier)
        )
        return plain and Qt.Key(event.key()) in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab)

    def focusInEvent(self, event: QFocusEvent) -> None:
        self._before = self.text()
        super().focusInEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.recording or self._passes(event):
            super().keyPressEvent(event)
            return
        key = Qt.Key(event.key())
        mods = modifier_names(event.modifiers())
        if not mods and key == Qt.Key.Key_Escape:
            self.setText(self._before)
            return
        if not mods and key in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete):
            self.clear()
            self._before = ""
            self.recorded.emit("")
            return
        if key in _MODIFIER_KEYS:
            if not self.text().endswith("…"):
                self._before = self.text()
            # Qt leaves a modifier key's own modifier out of modifiers(): add it.
            held = {*mods, _MODIFIER_KEYS[key]}
            self.setText("+".join([*(m for m in x11.MODIFIERS if m in held), "…"]))
            return
        combo = combo_from_event(event)
        if combo is None:
            return
        self.setText(combo)
        self._before = combo
        self.recorded.emit(combo)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if self.recording and Qt.Key(event.key()) in _MODIFIER_KEYS and self.text().endswith("…"):
            # Only modifiers were pressed and released: no combo.
            self.setText(self._before)
            return
        super().keyReleaseEvent(event)


class HotkeyRecorder(QWidget):
    """A :class:`HotkeyEdit` with a button that switches between recording and typing."""

    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = HotkeyEdit(self)
        self.mode = QToolButton(self)
        self.mode.setText("⌨")
        self.mode.setCheckable(True)
        self.mode.setToolTip("Type the combination instead of pressing it")
        self.mode.setAccessibleName("Type the combination")
        self.mode.toggled.connect(lambda typing: self.edit.set_recording(not typing))
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.mode)
        self.setFocusProxy(self.edit)
        self.edit.recorded.connect(lambda _text: self.edited.emit())
        self.edit.textEdited.connect(lambda _text: self.edited.emit())

    def text(self) -> str:
        text = self.edit.text().strip()
        return "" if text.endswith("…") else text

    def set_text(self, text: str) -> None:
        self.edit.setText(text)
