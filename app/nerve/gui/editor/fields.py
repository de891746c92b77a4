"""Form fields generated from JSON Schemas: the rule editor has no hand-written form per type.

:func:`make_field` maps a schema to a :class:`Field`:

=====================================  ==========================================
schema                                 field
=====================================  ==========================================
``string``                             a line (placeholders offered under ``do``)
``number`` / ``integer``               a line with a number check / a spin box
``boolean``                            a check box (optional: default / yes / no)
``enum``                               a combo box
array of enum with ``uniqueItems``     a row of check boxes (weekdays)
array of anything else                 rows with add, remove, move up and down
object with ``properties``             a nested form, one row per property
object with only ``additionalProperties``  name/value rows
``anyOf``/``oneOf`` of scalars         one line whose text picks the type
``anyOf`` with an object or a list     the richest form; a shorthand the user wrote
                                       stays a shorthand while it can say the same
a duration (``500ms``, ``2s``)         a line that shows what it means
``$ref`` to a trigger/condition/action  a type picker and that type's own form
a list of those                        rows of them, with add/remove/move
=====================================  ==========================================

Widgets by what a field is (``format`` or ``x-widget`` in the schema, else
the field's name and the type it belongs to): a hotkey recorder for combos,
file and folder pickers for paths, a cron line that lists the next fire times.

Every field remembers the value it was given and returns it untouched until
the user edits it, so opening and saving a rule changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml as pyyaml
from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nerve.durations import format_duration, parse_duration
from nerve.engine.compiler import COMMON_ACTION_KEYS
from nerve.engine.registry import Registry, actions, conditions, load_builtin_types, triggers
from nerve.engine.validation import json_type, pattern_holds
from nerve.gui.editor.checking import cron_preview
from nerve.gui.editor.hotkey import HotkeyRecorder
from nerve.packs.yamlsource import YamlError, load_yaml


class _Unset:
    """No value: the key is absent from the rule."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

#: What a ``$ref`` in a type's schema points at.
KINDS = {
    "#/$defs/trigger": "trigger",
    "#/$defs/condition": "condition",
    "#/$defs/action": "action",
}
LIST_KINDS = {"#/$defs/conditions": "condition", "#/$defs/actions": "action"}

_PATH_NAMES = frozenset({"path", "src", "dest", "cwd", "file", "folder", "dir", "directory"})
_MULTILINE_NAMES = frozenset({"body", "message", "command", "description"})
#: Types whose value, written as a bare string, is a path / a combo / long text.
_PATH_TYPES = frozenset({"open", "file.trash"})
_HOTKEY_TYPES = frozenset({"hotkey", "keys"})
_MULTILINE_TYPES = frozenset({"type", "shell", "log"})
#: Names a shorthand value most likely fills when the schema does not say.
_SHORTHAND_NAMES = (
    "body", "text", "message", "command", "url", "path", "name", "type", "combo", "key",
    "button", "direction",
)  # fmt: skip


def registry(kind: str) -> Registry[Any]:
    load_builtin_types()
    found: dict[str, Registry[Any]] = {
        "trigger": triggers,
        "condition": conditions,
        "action": actions,
    }
    return found[kind]


@dataclass(frozen=True)
class FormContext:
    """What fields need from the editor: placeholders, file dialogs, where they are."""

    #: The placeholders offered in text fields (``{event.path}``...), asked when shown.
    placeholders: Callable[[], list[str]] = list
    #: Whether text fields here take placeholders (inside ``do``).
    offer_placeholders: bool = False
    #: The trigger/condition/action type whose options these are.
    type_key: str = ""
    #: Asks the user for a path: (parent, "file" or "folder", start) -> chosen path or None.
    pick_path: Callable[[QWidget, str, str], str | None] | None = None

    def under(self, **changes: Any) -> FormContext:
        return replace(self, **changes)


# ---------------------------------------------------------------------------
# Values <-> inline YAML text


_PLAIN = re.compile(r"[A-Za-z0-9_./~$+\-][A-Za-z0-9_ ./~$+\-]*")
_RESOLVER = pyyaml.resolver.Resolver()


def _plain_ok(text: str) -> bool:
    if not _PLAIN.fullmatch(text) or text != text.strip():
        return False
    tag = _RESOLVER.resolve(pyyaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag == "tag:yaml.org,2002:str")


def inline_yaml(value: Any) -> str:
    """``value`` as one line of YAML flow text (``{exists: true}``, ``[a, b]``, ``"x: y"``)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, str):
        return value if _plain_ok(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(inline_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{inline_yaml(str(k))}: {inline_yaml(v)}" for k, v in value.items())
            + "}"
        )
    return json.dumps(str(value))


def parse_inline(text: str) -> Any:
    """The value of one line of YAML, or the text itself when it is not YAML."""
    if not text.strip():
        return UNSET
    try:
        return load_yaml(text, filename="<field>").data
    except YamlError:
        return text


def label_text(name: str) -> str:
    """``on_conflict`` -> ``On conflict``."""
    words = name.replace("_", " ").replace(".", " ").strip()
    return words[:1].upper() + words[1:] if words else name


#: Letters the editor window's tabs and buttons (Form, YAML, tEst, Test, Save, cLose) and
#: the rule's own fields (Id, Name, descriPtion, enAbled, When, Conditions, Do, Mode, maX,
#: deBounce, tHrottle, cooldOwn) use: nested fields take others, so each letter has one target.
RESERVED_MNEMONICS = frozenset("fyetsl" + "inpawcdmxbho")


def with_mnemonic(text: str, used: set[str]) -> str:
    """``text`` with an ``&`` before its first letter not yet in ``used`` (which it then joins)."""
    for i, char in enumerate(text):
        low = char.lower()
        if char.isalnum() and low not in used:
            used.add(low)
            return text[:i] + "&" + text[i:]
    return text


# ---------------------------------------------------------------------------
# Schema helpers


def branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = schema.get("anyOf") or schema.get("oneOf")
    return [b for b in found if isinstance(b, dict)] if isinstance(found, list) else []


def types_of(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema allows (``enum``/``const``: the types of their values)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    values = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if isinstance(values, list):
        return {_json_type(v) for v in values}
    if "properties" in schema or "additionalProperties" in schema:
        return {"object"}
    if "items" in schema:
        return {"array"}
    out: set[str] = set()
    for branch in branches(schema):
        out |= types_of(branch)
    return out


def _json_type(value: Any) -> str:
    return json_type(value) or "object"


def fits(schema: dict[str, Any], value: Any) -> bool:
    """A shallow check: could ``value`` be of this schema (type, enum, pattern)?"""
    if "$ref" in schema:
        return isinstance(value, dict)
    if "enum" in schema:
        return value in schema["enum"]
    if "const" in schema:
        return bool(value == schema["const"])
    own = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
    allowed = types_of(own)
    if allowed:
        kind = _json_type(value)
        if not (kind in allowed or (kind == "integer" and "number" in allowed)):
            return False
        pattern = schema.get("pattern")
        if isinstance(value, str) and pattern and not pattern_holds(pattern, value):
            return False
    subs = [b for b in branches(schema) if types_of(b) or "$ref" in b]
    return any(fits(b, value) for b in subs) if subs else True


def is_duration(schema: dict[str, Any]) -> bool:
    if str(schema.get("description", "")).startswith("A duration"):
        return True
    return any("(ms|s|m|h|d)" in str(b.get("pattern", "")) for b in branches(schema))


def _is_operator_spec(schema: dict[str, Any]) -> bool:
    props = schema.get("properties")
    return isinstance(props, dict) and {"glob", "regex", "in"} <= set(props)


def shorthand_key(obj: dict[str, Any], value: Any) -> str | None:
    """Which property of the object form a shorthand ``value`` stands for, if any."""
    props = obj.get("properties")
    if not isinstance(props, dict):
        return None
    hint = obj.get("x-shorthand")
    if isinstance(hint, str) and hint in props:
        return str(hint)
    required = [str(r) for r in obj.get("required", []) if r in props]
    if required:
        fitting = [r for r in required if fits(props[r], value)]
        return fitting[0] if len(fitting) == 1 else None
    fitting = [str(k) for k, s in props.items() if isinstance(s, dict) and s and fits(s, value)]
    if len(fitting) == 1:
        return fitting[0]
    for name in _SHORTHAND_NAMES:
        if name in fitting:
            return name
    return None


# ---------------------------------------------------------------------------
# Fields


class Field(QWidget):
    """One value of a rule, edited by the user. ``value()`` is plain data or :data:`UNSET`."""

    changed = Signal()

    def __init__(
        self,
        schema: dict[str, Any],
        ctx: FormContext,
        *,
        name: str | None = None,
        required: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.schema = schema
        self.ctx = ctx
        self.name = name
        self.required = required
        self._original: Any = UNSET
        self._touched = False
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_value(self, value: Any) -> None:
        """Show ``value`` (plain data, or UNSET for none) as not edited."""
        self._original = value
        self._touched = False
        self._show(value)

    def value(self) -> Any:
        """The value as edited; exactly what was given when nothing was edited."""
        return self._read() if self._touched else self._original

    @property
    def touched(self) -> bool:
        return self._touched

    def _edited(self) -> None:
        self._touched = True
        self.changed.emit()

    def _show(self, value: Any) -> None:
        raise NotImplementedError

    def _read(self) -> Any:
        raise NotImplementedError

    def tooltip(self) -> str:
        return str(self.schema.get("description", ""))

    def fields(self) -> Iterator[Field]:
        """This field and the fields inside it, depth first."""
        yield self


def _row(parent: QWidget) -> QHBoxLayout:
    layout = QHBoxLayout(parent)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(4)
    return layout


class PlaceholderLineEdit(QLineEdit):
    """A line edit that completes ``{event.…}`` placeholders as they are typed."""

    def __init__(self, placeholders: Callable[[], list[str]], parent: QWidget | None = None):
        super().__init__(parent)
        self._placeholders = placeholders
        self._model = QStringListModel(self)
        self.completer_ = QCompleter(self._model, self)
        self.completer_.setWidget(self)
        self.completer_.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer_.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer_.activated[str].connect(self.insert_placeholder)  # type: ignore[index]
        self.textEdited.connect(self._maybe_complete)

    def _partial(self) -> str | None:
        before = self.text()[: self.cursorPosition()]
        match = re.search(r"\{[A-Za-z0-9_.:%\-]*\Z", before)
        return match.group(0) if match else None

    def _maybe_complete(self, _text: str) -> None:
        partial = self._partial()
        if partial is None:
            self._hide_popup()
            return
        self._model.setStringList(self._placeholders())
        self.completer_.setCompletionPrefix(partial)
        if self.completer_.completionCount() == 0:
            self._hide_popup()
            return
        rect = self.cursorRect()
        rect.setWidth(260)
        self.completer_.complete(rect)

    def _hide_popup(self) -> None:
        popup = self.completer_.popup()
        if popup is not None:
            popup.hide()

    def insert_placeholder(self, placeholder: str) -> None:
        """Put ``placeholder`` at the cursor, replacing a ``{…`` being typed there."""
        partial = self._partial() or ""
        pos = self.cursorPosition()
        text = self.text()
        start = pos - len(partial)
        self.setText(text[:start] + placeholder + text[pos:])
        self.setCursorPosition(start + len(placeholder))
        self.textEdited.emit(self.text())


class PlaceholderButton(QToolButton):
    """``{…}``: a menu of the placeholders this field may use."""

    def __init__(
        self,
        placeholders: Callable[[], list[str]],
        insert: Callable[[str], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setText("{…}")
        self.setToolTip("Insert a placeholder ({event.path}, {input.name}, …)")
        self.setAccessibleName("Insert a placeholder")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.menu_ = QMenu(self)
        self.setMenu(self.menu_)
        self._placeholders = placeholders
        self._insert = insert
        self.menu_.aboutToShow.connect(self.fill)

    def fill(self) -> None:
        self.menu_.clear()
        for text in self._placeholders():
            action = self.menu_.addAction(text)
            action.triggered.connect(lambda _=False, t=text: self._insert(t))


class TextField(Field):
    """Text: a line, or a box for long text; placeholders under ``do``; a path picker."""

    def __init__(self, *args: Any, multiline: bool = False, path: bool = False, **kw: Any):
        super().__init__(*args, **kw)
        layout = _row(self)
        self.multiline = multiline
        self.edit: QLineEdit | QPlainTextEdit
        if multiline:
            box = QPlainTextEdit(self)
            box.setTabChangesFocus(True)
            box.setFixedHeight(box.fontMetrics().lineSpacing() * 3 + 12)
            box.textChanged.connect(self._on_text)
            self.edit = box
        elif self.ctx.offer_placeholders:
            line = PlaceholderLineEdit(self.ctx.placeholders, self)
            line.textEdited.connect(self._on_text)
            self.edit = line
        else:
            plain = QLineEdit(self)
            plain.textEdited.connect(self._on_text)
            self.edit = plain
        self.edit.setToolTip(self.tooltip())
        if isinstance(self.edit, QLineEdit) and self.tooltip():
            self.edit.setPlaceholderText(self.tooltip())
        layout.addWidget(self.edit, 1)
        self.setFocusProxy(self.edit)
        self.placeholder_button: PlaceholderButton | None = None
        if self.ctx.offer_placeholders:
            self.placeholder_button = PlaceholderButton(self.ctx.placeholders, self.insert, self)
            layout.addWidget(self.placeholder_button)
        if path:
            for kind, label in (("file", "File…"), ("folder", "Folder…")):
                button = QToolButton(self)
                button.setText(label)
                button.setToolTip(f"Choose a {kind}")
                button.setAccessibleName(f"Choose a {kind}")
                button.clicked.connect(lambda _=False, k=kind: self.choose(k))
                layout.addWidget(button)
        self._quiet = False

    def _on_text(self, *_args: Any) -> None:
        if not self._quiet:
            self._edited()

    def text(self) -> str:
        if isinstance(self.edit, QPlainTextEdit):
            return self.edit.toPlainText()
        return self.edit.text()

    def set_text(self, text: str) -> None:
        """Set the text as the user would (the field counts as edited)."""
        if isinstance(self.edit, QPlainTextEdit):
            self.edit.setPlainText(text)
        else:
            self.edit.setText(text)
            self._edited()

    def insert(self, placeholder: str) -> None:
        if isinstance(self.edit, PlaceholderLineEdit):
            self.edit.insert_placeholder(placeholder)
        elif isinstance(self.edit, QPlainTextEdit):
            self.edit.insertPlainText(placeholder)
        else:
            self.edit.insert(placeholder)
            self._edited()
        self.edit.setFocus()

    def choose(self, kind: str) -> None:
        start = str(Path(self.text()).expanduser()) if self.text() else str(Path.home())
        picker = self.ctx.pick_path or _dialog_pick
        chosen = picker(self, kind, start)
        if chosen:
            self.set_text(chosen)

    def _show(self, value: Any) -> None:
        self._quiet = True
        text = "" if value is UNSET or value is None else str(value)
        if isinstance(self.edit, QPlainTextEdit):
            self.edit.setPlainText(text)
        else:
            self.edit.setText(text)
        self._quiet = False

    def _read(self) -> Any:
        text = self.text()
        return text if text or self.required else UNSET


def _dialog_pick(parent: QWidget, kind: str, start: str) -> str | None:
    if kind == "folder":
        chosen = QFileDialog.getExistingDirectory(parent, "Choose a folder", start)
    else:
        chosen, _filter = QFileDialog.getOpenFileName(parent, "Choose a file", start)
    return chosen or None


class HotkeyField(Field):
    """A combo, recorded by pressing it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        self.recorder = HotkeyRecorder(self)
        layout.addWidget(self.recorder)
        self.setFocusProxy(self.recorder)
        self.recorder.edited.connect(self._edited)

    def _show(self, value: Any) -> None:
        self.recorder.set_text("" if value is UNSET or value is None else str(value))

    def _read(self) -> Any:
        text = self.recorder.text()
        return text if text or self.required else UNSET


class CronField(TextField):
    """A cron expression, in words, with the next five times it fires."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        outer = self.layout()
        assert isinstance(outer, QHBoxLayout)
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        self.edit.setParent(None)
        box.addWidget(self.edit)
        self.preview = QLabel(self)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview.setWordWrap(True)
        self.preview.setProperty("muted", True)
        box.addWidget(self.preview)
        outer.insertLayout(0, box, 1)
        self.edit.setPlaceholderText("minute hour day month weekday: */5 9-17 * * mon-fri") if (
            isinstance(self.edit, QLineEdit)
        ) else None
        self.times: list[str] = []
        self.changed.connect(self.refresh)

    def refresh(self) -> None:
        preview = cron_preview(self.text())
        if preview.error:
            self.times = []
            self.preview.setText("" if preview.error == "empty" else f"⚠ {preview.error}")
            return
        self.times = [t.strftime("%a %Y-%m-%d %H:%M") for t in preview.times]
        self.preview.setText(f"{preview.text}; next:\n" + "\n".join(f"  {t}" for t in self.times))

    def _show(self, value: Any) -> None:
        super()._show(value)
        self.refresh()


class DurationField(TextField):
    """A duration (``500ms``, ``2s``, ``1h30m``, seconds as a number), with what it means."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.meaning = QLabel(self)
        self.meaning.setProperty("muted", True)
        layout = self.layout()
        assert isinstance(layout, QHBoxLayout)
        layout.insertWidget(1, self.meaning)
        if isinstance(self.edit, QLineEdit):
            self.edit.setPlaceholderText("500ms, 2s, 10m, 1h30m")
        self.changed.connect(self.refresh)

    def refresh(self) -> None:
        text = self.text().strip()
        if not text or "{" in text:
            self.meaning.setText("")
            return
        try:
            seconds = parse_duration(text)
        except ValueError:
            self.meaning.setText("⚠ not a duration")
            return
        self.meaning.setText(
            f"= {format_duration(seconds)}" if text != format_duration(seconds) else ""
        )

    def _show(self, value: Any) -> None:
        super()._show(value)
        self.refresh()

    def _read(self) -> Any:
        text = self.text().strip()
        return _number_or_text(text) if text else UNSET


def _number_or_text(text: str) -> Any:
    """``3`` and ``2.5`` as numbers (an integer unless written with a dot), else the text."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


class NumberField(Field):
    """An integer (a spin box) or a number (a checked line)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        self.integer = "integer" in types_of(self.schema)
        self.spin: QSpinBox | None = None
        self.line: QLineEdit | None = None
        if self.integer:
            spin = QSpinBox(self)
            low = int(self.schema.get("minimum", -(2**31) + 1))
            high = int(self.schema.get("maximum", 2**31 - 1))
            if not self.required:
                low -= 1
                spin.setSpecialValueText("default")
            spin.setRange(low, high)
            spin.setToolTip(self.tooltip())
            spin.valueChanged.connect(self._on_change)
            layout.addWidget(spin)
            layout.addStretch(1)
            self.spin = spin
            self.setFocusProxy(spin)
        else:
            line = QLineEdit(self)
            line.setToolTip(self.tooltip())
            line.textEdited.connect(self._on_change)
            layout.addWidget(line)
            self.line = line
            self.setFocusProxy(line)
        self._quiet = False

    def _on_change(self, *_args: Any) -> None:
        if not self._quiet:
            self._edited()

    def _show(self, value: Any) -> None:
        self._quiet = True
        if self.spin is not None:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.spin.setValue(int(value))
            else:
                self.spin.setValue(self.spin.minimum())
        elif self.line is not None:
            self.line.setText("" if value is UNSET or value is None else inline_yaml(value))
        self._quiet = False

    def _read(self) -> Any:
        if self.spin is not None:
            if not self.required and self.spin.value() == self.spin.minimum():
                return UNSET
            return self.spin.value()
        assert self.line is not None
        text = self.line.text().strip()
        return _number_or_text(text) if text else UNSET


class BoolField(Field):
    """Yes or no; an optional one also offers "default" (the key left out)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        self.check: QCheckBox | None = None
        self.combo: QComboBox | None = None
        if self.required:
            self.check = QCheckBox(self)
            self.check.setToolTip(self.tooltip())
            self.check.toggled.connect(self._on_change)
            layout.addWidget(self.check)
            self.setFocusProxy(self.check)
        else:
            self.combo = QComboBox(self)
            self.combo.addItems(["default", "yes", "no"])
            self.combo.setToolTip(self.tooltip())
            self.combo.activated.connect(self._on_change)
            layout.addWidget(self.combo)
            self.setFocusProxy(self.combo)
        layout.addStretch(1)
        self._quiet = False

    def _on_change(self, *_args: Any) -> None:
        if not self._quiet:
            self._edited()

    def _show(self, value: Any) -> None:
        self._quiet = True
        if self.check is not None:
            self.check.setChecked(value is True)
        elif self.combo is not None:
            self.combo.setCurrentIndex(1 if value is True else 2 if value is False else 0)
        self._quiet = False

    def _read(self) -> Any:
        if self.check is not None:
            return self.check.isChecked()
        assert self.combo is not None
        return {0: UNSET, 1: True, 2: False}[self.combo.currentIndex()]


class EnumField(Field):
    """One of a list of values."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        self.values: list[Any] = list(self.schema.get("enum", []))
        self.combo = QComboBox(self)
        if not self.required:
            self.combo.addItem("default", UNSET)
        for value in self.values:
            self.combo.addItem(str(value), value)
        self.combo.setToolTip(self.tooltip())
        self.combo.activated.connect(self._on_change)
        layout.addWidget(self.combo)
        layout.addStretch(1)
        self.setFocusProxy(self.combo)

    def _on_change(self, *_args: Any) -> None:
        self._edited()

    def _show(self, value: Any) -> None:
        if value is UNSET or value not in self.values:
            self.combo.setCurrentIndex(0)
            if value is not UNSET and value not in self.values:
                self.combo.addItem(f"{value} (unknown)", value)
                self.combo.setCurrentIndex(self.combo.count() - 1)
            return
        self.combo.setCurrentIndex(self.values.index(value) + (0 if self.required else 1))

    def select(self, value: Any) -> None:
        """Choose ``value`` as the user would."""
        self.combo.setCurrentIndex(self.combo.findData(value))
        self._edited()

    def _read(self) -> Any:
        return self.combo.currentData()


class EnumSetField(Field):
    """Several of a list of values (weekdays, modifiers), as check boxes."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        items = self.schema.get("items", {})
        self.values: list[Any] = list(items.get("enum", []))
        self.boxes: list[QCheckBox] = []
        for value in self.values:
            box = QCheckBox(str(value), self)
            box.toggled.connect(self._on_change)
            layout.addWidget(box)
            self.boxes.append(box)
        layout.addStretch(1)
        if self.boxes:
            self.setFocusProxy(self.boxes[0])
        self._quiet = False

    def _on_change(self, *_args: Any) -> None:
        if not self._quiet:
            self._edited()

    def _show(self, value: Any) -> None:
        self._quiet = True
        chosen = value if isinstance(value, list) else []
        for box, item in zip(self.boxes, self.values, strict=True):
            box.setChecked(item in chosen)
        self._quiet = False

    def _read(self) -> Any:
        chosen = [v for v, box in zip(self.values, self.boxes, strict=True) if box.isChecked()]
        return chosen if chosen or self.required else UNSET


class AnyField(Field):
    """Any value, as one line of YAML (``ann``, ``{exists: true}``, ``[1, 2]``)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        self.edit = QLineEdit(self)
        self.edit.setToolTip(
            (self.tooltip() + "\n" if self.tooltip() else "") + "A YAML value: text, 3, true, "
            "[a, b] or {key: value}"
        )
        self.edit.textEdited.connect(lambda _t: self._edited())
        layout.addWidget(self.edit, 1)
        self.setFocusProxy(self.edit)

    def _show(self, value: Any) -> None:
        if isinstance(value, str) and value and parse_inline(value) == value:
            self.edit.setText(value)  # reads back as this text: no quotes needed (*terminal*)
        else:
            self.edit.setText("" if value is UNSET else inline_yaml(value))

    def _read(self) -> Any:
        value = parse_inline(self.edit.text())
        return value if value is not UNSET or not self.required else None


class ScalarUnionField(Field):
    """A value of one of several scalar types; the text decides which."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        self.allowed = types_of(self.schema)
        self.enum: list[Any] = []
        for branch in branches(self.schema):
            self.enum += list(branch.get("enum", []))
        self.edit: QLineEdit
        if self.ctx.offer_placeholders:
            self.edit = PlaceholderLineEdit(self.ctx.placeholders, self)
        else:
            self.edit = QLineEdit(self)
        if self.enum:
            completer = QCompleter([str(v) for v in self.enum], self.edit)
            self.edit.setCompleter(completer)
        self.edit.setToolTip(self.tooltip())
        if self.tooltip():
            self.edit.setPlaceholderText(self.tooltip())
        self.edit.textEdited.connect(lambda _t: self._edited())
        layout.addWidget(self.edit, 1)
        self.setFocusProxy(self.edit)

    def _show(self, value: Any) -> None:
        if value is UNSET:
            self.edit.setText("")
        elif isinstance(value, str):
            self.edit.setText(value)
        else:
            self.edit.setText(inline_yaml(value))

    def _read(self) -> Any:
        text = self.edit.text()
        if not text.strip():
            return None if self.required and "null" in self.allowed else UNSET
        stripped = text.strip()
        if self.allowed & {"integer", "number"}:
            try:
                number = float(stripped)
            except ValueError:
                pass
            else:
                if number.is_integer() and "." not in stripped and "e" not in stripped.lower():
                    return int(number)
                if "number" in self.allowed:
                    return number
        if "boolean" in self.allowed and stripped.lower() in ("true", "false"):
            return stripped.lower() == "true"
        if "null" in self.allowed and stripped in ("null", "~"):
            return None
        return text


# ---------------------------------------------------------------------------
# Collections


def _tool(parent: QWidget, text: str, tip: str, slot: Callable[[], None]) -> QToolButton:
    button = QToolButton(parent)
    button.setText(text)
    button.setToolTip(tip)
    button.setAccessibleName(tip)
    button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
    button.clicked.connect(lambda _=False: slot())
    return button


class ObjectField(Field):
    """A mapping with known properties: one form row each; other keys are kept as they are."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.children_: dict[str, Field] = {}
        self.labels: dict[str, QLabel] = {}
        required = set(self.schema.get("required", []))
        used: set[str] = set(RESERVED_MNEMONICS)
        props = self.schema.get("properties", {})
        for key, sub in props.items():
            if not isinstance(sub, dict):
                continue
            field = make_field(sub, self.ctx, name=key, required=key in required, parent=self)
            field.changed.connect(self._edited)
            text = label_text(key) + (" *" if key in required else "")
            label = QLabel(with_mnemonic(text, used), self)
            label.setBuddy(field)
            label.setToolTip(field.tooltip())
            self.form.addRow(label, field)
            self.children_[key] = field
            self.labels[key] = label
        self.extra: KeyValueField | None = None
        additional = self.schema.get("additionalProperties")
        if not props or (isinstance(additional, dict) and additional):
            extra_schema = additional if isinstance(additional, dict) else {}
            self.extra = KeyValueField(
                {"additionalProperties": extra_schema, **_names_of(self.schema)},
                self.ctx,
                parent=self,
            )
            self.extra.changed.connect(self._edited)
            self.form.addRow(self.extra)

    def field(self, key: str) -> Field:
        return self.children_[key]

    def fields(self) -> Iterator[Field]:
        yield self
        for child in self.children_.values():
            yield from child.fields()
        if self.extra is not None:
            yield from self.extra.fields()

    def _show(self, value: Any) -> None:
        data = value if isinstance(value, dict) else {}
        for key, field in self.children_.items():
            field.set_value(data.get(key, UNSET))
        if self.extra is not None:
            rest = {k: v for k, v in data.items() if k not in self.children_}
            self.extra.set_value(rest if rest else UNSET)

    def _read(self) -> Any:
        original = self._original if isinstance(self._original, dict) else {}
        out = dict(original)
        for key, field in self.children_.items():
            value = field.value()
            if value is UNSET:
                out.pop(key, None)
            else:
                out[key] = value
        if self.extra is not None:
            extra = self.extra.value()
            for key in [k for k in out if k not in self.children_]:
                del out[key]
            if isinstance(extra, dict):
                out.update(extra)
        if len(original) <= 1:
            # Written anew (or from a shorthand): the schema's order reads best.
            order = list(self.children_)
            out = dict(sorted(out.items(), key=lambda kv: _index(order, kv[0])))
        return out if out or self.required or self._original is not UNSET else UNSET


def _index(order: list[str], key: str) -> int:
    return order.index(key) if key in order else len(order)


def _names_of(schema: dict[str, Any]) -> dict[str, Any]:
    names = schema.get("propertyNames")
    return {"propertyNames": names} if isinstance(names, dict) else {}


class _Rows(Field):
    """Rows of fields with add, remove, move up and move down."""

    add_text = "Add"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)
        self.rows_box = QVBoxLayout()
        self.rows_box.setSpacing(4)
        outer.addLayout(self.rows_box)
        bar = QHBoxLayout()
        self.add_button = self._make_add_button()
        bar.addWidget(self.add_button)
        bar.addStretch(1)
        outer.addLayout(bar)
        self.rows: list[tuple[QWidget, Field]] = []

    def _make_add_button(self) -> QToolButton:
        def add() -> None:
            self.add()

        return _tool(self, f"+ {self.add_text}", self.add_text, add)

    # Subclasses: one item's field, and the value of a new item.
    def _item_field(self, parent: QWidget) -> Field:
        raise NotImplementedError

    def _new_item(self, *args: Any) -> Any:
        return UNSET

    def _wrap(self, field: Field, index: int) -> QWidget:
        frame = QWidget(self)
        layout = _row(frame)
        layout.addWidget(field, 1)
        self._row_buttons(frame, layout, field)
        return frame

    def _row_buttons(self, frame: QWidget, layout: QHBoxLayout, field: Field) -> None:
        layout.addWidget(_tool(frame, "↑", "Move up", lambda: self.move_item(field, -1)))
        layout.addWidget(_tool(frame, "↓", "Move down", lambda: self.move_item(field, 1)))
        layout.addWidget(_tool(frame, "✕", "Remove", lambda: self.remove(field)))

    def items(self) -> list[Field]:
        return [field for _frame, field in self.rows]

    def fields(self) -> Iterator[Field]:
        yield self
        for field in self.items():
            yield from field.fields()

    def _clear(self) -> None:
        for frame, _field in self.rows:
            frame.setParent(None)
            frame.deleteLater()
        self.rows = []

    def _append(self, value: Any) -> Field:
        field = self._item_field(self)
        field.set_value(value)
        field.changed.connect(self._edited)
        frame = self._wrap(field, len(self.rows))
        self.rows_box.addWidget(frame)
        self.rows.append((frame, field))
        return field

    def _show_items(self, values: list[Any]) -> None:
        self._clear()
        for value in values:
            self._append(value)
        self._renumber()

    def _renumber(self) -> None:
        """Subclasses number their rows."""

    def add(self, *args: Any) -> Field:
        """Add a new item at the end (as the user would)."""
        field = self._append(self._new_item(*args))
        field._touched = True
        self._renumber()
        self._edited()
        field.setFocus()
        return field

    def remove(self, field: Field) -> None:
        values = [f.value() for f in self.items()]
        index = self.items().index(field)
        del values[index]
        self._show_items(values)
        self._edited()
        if self.rows:
            self.items()[min(index, len(self.rows) - 1)].setFocus()
        else:
            self.add_button.setFocus()

    def move_item(self, field: Field, step: int) -> None:
        values = [f.value() for f in self.items()]
        index = self.items().index(field)
        target = index + step
        if not 0 <= target < len(values):
            return
        values[index], values[target] = values[target], values[index]
        self._show_items(values)
        self._edited()
        self.items()[target].setFocus()


class ListField(_Rows):
    """A list of values of one schema (program arguments, globs, combos)."""

    add_text = "Add item"

    def _item_field(self, parent: QWidget) -> Field:
        items = self.schema.get("items", {})
        return make_field(items if isinstance(items, dict) else {}, self.ctx, name=self.name,
                          required=True, parent=parent)  # fmt: skip

    def _new_item(self, *args: Any) -> Any:
        items = self.schema.get("items", {})
        return _empty_for(items if isinstance(items, dict) else {})

    def _show(self, value: Any) -> None:
        self._show_items(list(value) if isinstance(value, list) else [])

    def _read(self) -> Any:
        values = [f.value() for f in self.items()]
        values = [v for v in values if v is not UNSET]
        return values if values or self.required else UNSET


class KeyValueField(_Rows):
    """A mapping of free names to values (``set``, ``data`` matches, headers)."""

    add_text = "Add entry"

    def _item_field(self, parent: QWidget) -> Field:
        return _Entry(self.schema, self.ctx, parent=parent)

    def _new_item(self, *args: Any) -> Any:
        return ("", UNSET)

    def _show(self, value: Any) -> None:
        self._show_items(list(value.items()) if isinstance(value, dict) else [])

    def _read(self) -> Any:
        out: dict[str, Any] = {}
        for field in self.items():
            pair = field.value()
            if isinstance(pair, tuple) and pair[0]:
                out[pair[0]] = None if pair[1] is UNSET else pair[1]
        return out if out or self.required else UNSET


class _Entry(Field):
    """One name and value of a :class:`KeyValueField`."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        layout = _row(self)
        self.key = QLineEdit(self)
        self.key.setPlaceholderText("name")
        self.key.setAccessibleName("Name")
        self.key.setMaximumWidth(160)
        self.key.textEdited.connect(lambda _t: self._edited())
        layout.addWidget(self.key)
        layout.addWidget(QLabel(":", self))
        value_schema = self.schema.get("additionalProperties")
        value_schema = value_schema if isinstance(value_schema, dict) else {}
        simple = types_of(value_schema) <= {"string"} and not branches(value_schema)
        self.val = (
            make_field(value_schema, self.ctx, required=True, parent=self)
            if simple and types_of(value_schema)
            else AnyField(value_schema, self.ctx, required=True, parent=self)
        )
        self.val.changed.connect(self._edited)
        layout.addWidget(self.val, 1)
        self.setFocusProxy(self.key)

    def _show(self, value: Any) -> None:
        key, val = value if isinstance(value, tuple) else ("", UNSET)
        self.key.setText(str(key))
        self.val.set_value(val)

    def _read(self) -> Any:
        return (self.key.text().strip(), self.val.value())


def _empty_for(schema: dict[str, Any]) -> Any:
    """The value a new item of ``schema`` starts with."""
    kinds = types_of(schema)
    if "$ref" in schema:
        return UNSET
    if "string" in kinds:
        return ""
    if "object" in kinds:
        return {}
    if "array" in kinds:
        return []
    if schema.get("enum"):
        return schema["enum"][0]
    if kinds & {"integer", "number"}:
        return 0
    return UNSET


# ---------------------------------------------------------------------------
# Unions: shorthand and long forms


_FORM_NAMES = {
    "object": "details",
    "array": "list",
    "string": "text",
    "integer": "number",
    "number": "number",
    "boolean": "yes/no",
    "null": "nothing",
}


class UnionField(Field):
    """A value with several forms (``notify: text`` or ``notify: {title, body}``).

    The richest form (a mapping, else a list) is shown; a shorthand the user
    wrote is read into it, and written back as the shorthand while the long
    form holds nothing the shorthand could not say. The form can also be
    picked by hand."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.forms = branches(self.schema)
        layout = _row(self)
        self.picker = QComboBox(self)
        self.picker.setToolTip("The form this value is written in")
        self.picker.setAccessibleName("Form")
        for branch in self.forms:
            self.picker.addItem(self._form_name(branch))
        self.picker.activated.connect(self._picked)
        layout.addWidget(self.picker, 0, Qt.AlignmentFlag.AlignTop)
        self.holder = QVBoxLayout()
        self.holder.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.holder, 1)
        self.rich = self._richest()
        self.current = self.rich
        self.inner: Field = self._build(self.current)
        if len(self.forms) < 2:
            self.picker.hide()
        self.setFocusProxy(self.inner)
        self._shorthand: tuple[int, str | None] | None = None

    def _form_name(self, branch: dict[str, Any]) -> str:
        if branch.get("enum"):
            return "choice"
        kinds = types_of(branch)
        names = sorted({_FORM_NAMES.get(k, k) for k in kinds})
        return " or ".join(names) if names else "value"

    def _richest(self) -> int:
        objects = [
            i
            for i, b in enumerate(self.forms)
            if "object" in types_of(b) and not _is_operator_spec(b)
        ]
        if objects:
            return objects[0]
        arrays = [i for i, b in enumerate(self.forms) if "array" in types_of(b)]
        return arrays[0] if arrays else 0

    def _build(self, index: int) -> Field:
        branch = self.forms[index]
        if _is_operator_spec(branch):
            field: Field = AnyField(branch, self.ctx, name=self.name, required=True, parent=self)
        else:
            field = make_field(branch, self.ctx, name=self.name, required=True, parent=self)
        field.changed.connect(self._edited)
        self.holder.addWidget(field)
        self.picker.setCurrentIndex(index)
        return field

    def _replace(self, index: int, value: Any) -> None:
        self.inner.setParent(None)
        self.inner.deleteLater()
        self.current = index
        self.inner = self._build(index)
        self.inner.set_value(value)
        self.setFocusProxy(self.inner)

    def fields(self) -> Iterator[Field]:
        yield self
        yield from self.inner.fields()

    def _fitting(self, value: Any) -> int | None:
        for i, branch in enumerate(self.forms):
            if fits(branch, value):
                return i
        return None

    def _to_rich(self, value: Any) -> tuple[Any, str | None] | None:
        """``value`` (a shorthand) in the rich form, and the key it went to; None if it cannot."""
        rich = self.forms[self.rich]
        if "object" in types_of(rich):
            if value is None or isinstance(value, bool):
                return {}, None
            key = shorthand_key(rich, value)
            return ({key: value}, key) if key is not None else None
        if "array" in types_of(rich) and not isinstance(value, list):
            return [value], None
        return None

    def _show(self, value: Any) -> None:
        self._shorthand = None
        if value is UNSET:
            self._replace(self.rich, UNSET)
            return
        index = self._fitting(value)
        if index is None:
            # Not any of the forms (the YAML tab will say why): keep it as it is.
            self._replace_any(value)
            return
        if index == self.rich or fits(self.forms[self.rich], value):
            self._replace(self.rich, value)
            return
        converted = self._to_rich(value)
        if converted is None:
            self._replace(index, value)
            return
        self._shorthand = (index, converted[1])
        self._replace(self.rich, converted[0])

    def _replace_any(self, value: Any) -> None:
        self.inner.setParent(None)
        self.inner.deleteLater()
        self.current = -1
        self.inner = AnyField({}, self.ctx, required=True, parent=self)
        self.inner.changed.connect(self._edited)
        self.holder.addWidget(self.inner)
        self.inner.set_value(value)
        self.picker.setCurrentIndex(-1)

    def _picked(self, index: int) -> None:
        if index == self.current:
            return
        value = self._read()
        target: Any = UNSET
        if value is not UNSET and fits(self.forms[index], value):
            target = value
        elif index == self.rich and value is not UNSET:
            converted = self._to_rich(value)
            target = converted[0] if converted else UNSET
        elif isinstance(value, dict) and len(value) == 1:
            only = next(iter(value.values()))
            target = only if fits(self.forms[index], only) else UNSET
        elif isinstance(value, list) and len(value) == 1 and fits(self.forms[index], value[0]):
            target = value[0]
        self._shorthand = None
        self._replace(index, target)
        self._edited()

    def _read(self) -> Any:
        value = self.inner.value()
        if value == [] and not self.required:
            return UNSET  # an optional list left empty is no value (not "[]")
        if self._shorthand is None or self.current != self.rich:
            return value
        index, key = self._shorthand
        original = self._original
        if key is not None and isinstance(value, dict) and set(value) == {key}:
            return value[key] if fits(self.forms[index], value[key]) else value
        if value == {} and (original is None or isinstance(original, bool)):
            return original
        if isinstance(value, list) and len(value) == 1 and fits(self.forms[index], value[0]):
            return value[0]
        return value


# ---------------------------------------------------------------------------
# Triggers, conditions and actions


class TypedItemField(Field):
    """One trigger, condition or action: a type picker and the form of the chosen type."""

    def __init__(self, kind: str, ctx: FormContext, parent: QWidget | None = None) -> None:
        super().__init__({}, ctx, required=True, parent=parent)
        self.kind = kind
        self.registry = registry(kind)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.type_label = QLabel(f"{kind.capitalize()} type", self)
        self.type_combo = QComboBox(self)
        self.type_combo.setAccessibleName(f"{kind} type")
        for key, cls in self.registry.items():
            self.type_combo.addItem(key, key)
            self.type_combo.setItemData(
                self.type_combo.count() - 1, cls.description, Qt.ItemDataRole.ToolTipRole
            )
        self.type_label.setBuddy(self.type_combo)
        self.type_combo.activated.connect(self._type_picked)
        head.addWidget(self.type_label)
        head.addWidget(self.type_combo, 1)
        layout.addLayout(head)
        self.about = QLabel(self)
        self.about.setWordWrap(True)
        self.about.setProperty("muted", True)
        layout.addWidget(self.about)
        self.body = QVBoxLayout()
        self.body.setContentsMargins(12, 0, 0, 0)
        layout.addLayout(self.body)
        self.type_key: str | None = None
        self.options: Field | None = None
        self.siblings: dict[str, Field] = {}
        self.extras: dict[str, Any] = {}
        self._body_widgets: list[QWidget] = []
        self.setFocusProxy(self.type_combo)

    def fields(self) -> Iterator[Field]:
        yield self
        if self.options is not None:
            yield from self.options.fields()
        for field in self.siblings.values():
            yield from field.fields()

    def _clear_body(self) -> None:
        for widget in self._body_widgets:
            widget.setParent(None)
            widget.deleteLater()
        self._body_widgets = []
        self.options = None
        self.siblings = {}

    def _build(self, type_key: str | None, data: dict[str, Any]) -> None:
        self._clear_body()
        self.type_key = type_key
        cls = self.registry.get(type_key) if type_key else None
        if cls is None:
            index = self.type_combo.findData(type_key)
            if index < 0 and type_key:
                self.type_combo.addItem(f"{type_key} (unknown)", type_key)
                index = self.type_combo.count() - 1
            self.type_combo.setCurrentIndex(index)
            self.about.setText(
                self.registry.unknown(type_key)
                if type_key
                else f"Not a {self.kind}: edit it in the YAML tab"
            )
            raw = AnyField({}, self.ctx, required=True, parent=self)
            raw.set_value(data.get(type_key, UNSET) if type_key else data)
            raw.changed.connect(self._edited)
            self.body.addWidget(raw)
            self._body_widgets.append(raw)
            self.options = raw
            return
        assert type_key is not None
        self.type_combo.setCurrentIndex(self.type_combo.findData(type_key))
        self.about.setText(cls.description)
        ctx = self.ctx.under(type_key=type_key)
        if self.kind == "action":
            ctx = ctx.under(offer_placeholders=True)
        options = make_field(cls.schema, ctx, name=None, required=True, parent=self)
        options.set_value(data.get(type_key, UNSET))
        options.changed.connect(self._edited)
        self.body.addWidget(options)
        self._body_widgets.append(options)
        self.options = options
        extra_schemas: dict[str, dict[str, Any]] = {}
        if self.kind == "action":
            extra_schemas = {**getattr(cls, "siblings", {}), **COMMON_ACTION_KEYS}
        if extra_schemas:
            holder = QWidget(self)
            form = QFormLayout(holder)
            form.setContentsMargins(0, 0, 0, 0)
            used: set[str] = set(RESERVED_MNEMONICS)
            for key, schema in extra_schemas.items():
                required = key in getattr(cls, "required_siblings", ())
                field = make_field(schema, ctx, name=key, required=required, parent=holder)
                field.set_value(data.get(key, UNSET))
                field.changed.connect(self._edited)
                label = QLabel(with_mnemonic(label_text(key), used), holder)
                label.setBuddy(field)
                label.setToolTip(field.tooltip())
                form.addRow(label, field)
                self.siblings[key] = field
            self.body.addWidget(holder)
            self._body_widgets.append(holder)
        self.extras = {k: v for k, v in data.items() if k != type_key and k not in self.siblings}

    def _type_picked(self, index: int) -> None:
        key = self.type_combo.itemData(index)
        if key == self.type_key:
            return
        self.set_type(str(key))

    def set_type(self, type_key: str) -> None:
        """Switch to another type (as the user would), starting with empty options."""
        cls = self.registry.get(type_key)
        empty = _empty_for(cls.schema) if cls is not None else UNSET
        keep = {k: f.value() for k, f in self.siblings.items() if k in COMMON_ACTION_KEYS}
        data = {type_key: empty, **{k: v for k, v in keep.items() if v is not UNSET}}
        self._build(type_key, data)
        self._edited()

    def _show(self, value: Any) -> None:
        if not isinstance(value, dict):
            self._build(None, {} if value is UNSET else {"": value})
            return
        keys = [k for k in value if k in self.registry]
        type_key = keys[0] if keys else next(iter(value), None)
        self._build(type_key, value)

    def _read(self) -> Any:
        if self.type_key is None:
            assert self.options is not None
            return self.options.value()
        original = self._original if isinstance(self._original, dict) else {}
        options = self.options.value() if self.options is not None else UNSET
        if original.get(self.type_key, UNSET) is UNSET and self.type_key not in original:
            out: dict[str, Any] = {self.type_key: None if options is UNSET else options}
        else:
            out = dict(original)
            out[self.type_key] = None if options is UNSET else options
        for key in [k for k in out if k != self.type_key and k not in self.extras]:
            if key not in self.siblings:
                del out[key]
        for key, field in self.siblings.items():
            value = field.value()
            if value is UNSET:
                out.pop(key, None)
            else:
                out[key] = value  # (one written before keeps its place)
        return out


class TypedListField(_Rows):
    """Triggers, conditions or actions in order; one alone may be written without a list."""

    def __init__(self, kind: str, ctx: FormContext, *, allow_single: bool = True,
                 required: bool = False, parent: QWidget | None = None) -> None:  # fmt: skip
        self.kind = kind
        self.add_text = f"Add {kind}"
        super().__init__({}, ctx, required=required, parent=parent)
        self.allow_single = allow_single

    def _make_add_button(self) -> QToolButton:
        button = QToolButton(self)
        button.setText(f"+ {self.add_text}")
        button.setToolTip(f"Add a {self.kind} at the end")
        button.setAccessibleName(self.add_text)
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(button)
        for key, cls in registry(self.kind).items():
            action = QAction(key, menu)
            action.setToolTip(cls.description)
            action.setStatusTip(cls.description)
            action.triggered.connect(lambda _=False, k=key: self.add(k))
            menu.addAction(action)
        menu.setToolTipsVisible(True)
        button.setMenu(menu)
        return button

    def _item_field(self, parent: QWidget) -> Field:
        return TypedItemField(self.kind, self.ctx, parent=parent)

    def _new_item(self, *args: Any) -> Any:
        type_key = (
            str(args[0])
            if args
            else {"trigger": "event", "condition": "time"}.get(self.kind, "log")
        )
        cls = registry(self.kind).get(type_key)
        return {type_key: _empty_for(cls.schema) if cls is not None else None}

    def _wrap(self, field: Field, index: int) -> QWidget:
        frame = QFrame(self)
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(6, 4, 6, 6)
        head = QHBoxLayout()
        number = QLabel(frame)
        number.setObjectName("number")
        head.addWidget(number)
        head.addStretch(1)
        self._row_buttons(frame, head, field)
        layout.addLayout(head)
        layout.addWidget(field)
        return frame

    def _renumber(self) -> None:
        for i, (frame, _field) in enumerate(self.rows):
            label = frame.findChild(QLabel, "number")
            if label is not None:
                label.setText(f"<b>{self.kind.capitalize()} {i + 1}</b>")

    def _show(self, value: Any) -> None:
        if value is UNSET or value is None:
            items: list[Any] = []
        elif isinstance(value, list):
            items = list(value)
        else:
            items = [value]
        self._show_items(items)

    def _read(self) -> Any:
        values = [f.value() for f in self.items()]
        if self.allow_single and isinstance(self._original, dict) and len(values) == 1:
            return values[0]
        if not values and not self.required:
            return UNSET
        return values


# ---------------------------------------------------------------------------
# The mapper


def _hint(schema: dict[str, Any], name: str | None, ctx: FormContext) -> str | None:
    declared = schema.get("x-widget") or schema.get("format")
    if isinstance(declared, str):
        aliases = {"directory": "path", "file": "path", "uri-reference": "path"}
        return aliases.get(str(declared), str(declared))
    if name == "combo" or (ctx.type_key in _HOTKEY_TYPES and name in (None, "combo")):
        return "hotkey"
    if name == "cron":
        return "cron"
    if name in _PATH_NAMES or (ctx.type_key in _PATH_TYPES and name is None):
        return "path"
    if ctx.type_key.startswith("file.") and ctx.type_key != "file.trash" and name is None:
        return "path"
    if name in _MULTILINE_NAMES or (ctx.type_key in _MULTILINE_TYPES and name in (None, "text")):
        return "multiline"
    return None


def make_field(
    schema: dict[str, Any],
    ctx: FormContext,
    *,
    name: str | None = None,
    required: bool = False,
    parent: QWidget | None = None,
) -> Field:
    """The field for a value of ``schema`` (see the module's table)."""
    kw: dict[str, Any] = {"name": name, "required": required, "parent": parent}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in LIST_KINDS:
            return TypedListField(LIST_KINDS[ref], ctx, required=required, parent=parent)
        if ref in KINDS:
            return TypedItemField(KINDS[ref], ctx, parent=parent)
        return AnyField(schema, ctx, **kw)
    # anyOf/oneOf that only say which keys are required (notify: title or body) are no forms.
    subs = [b for b in branches(schema) if types_of(b) or "$ref" in b]
    if subs and not ("type" in schema or "properties" in schema):
        refs = [b.get("$ref") for b in subs]
        for b in subs:
            items = b.get("items")
            item_ref = items.get("$ref") if isinstance(items, dict) else None
            if b.get("type") == "array" and item_ref and item_ref in refs:
                kind = KINDS.get(str(item_ref))
                if kind is not None:
                    return TypedListField(kind, ctx, allow_single=True, required=required,
                                          parent=parent)  # fmt: skip
        if is_duration(schema):
            return DurationField(schema, ctx, **kw)
        if any(_is_operator_spec(b) for b in subs):
            # A match: a value, a glob, !negation or {regex: ...}: one line of YAML says it best.
            return AnyField(schema, ctx, **kw)
        kinds = types_of(schema)
        if not kinds & {"object", "array"}:
            hint = _hint(schema, name, ctx)
            if hint == "hotkey" and kinds <= {"string"}:
                return HotkeyField(schema, ctx, **kw)
            return ScalarUnionField(schema, ctx, **kw)
        return UnionField(schema, ctx, **kw)
    if "enum" in schema:
        return EnumField(schema, ctx, **kw)
    kinds = types_of(schema)
    if kinds == {"string"}:
        hint = _hint(schema, name, ctx)
        if hint == "hotkey":
            return HotkeyField(schema, ctx, **kw)
        if hint == "cron":
            return CronField(schema, ctx, **kw)
        if hint == "duration":
            return DurationField(schema, ctx, **kw)
        return TextField(schema, ctx, multiline=hint == "multiline", path=hint == "path", **kw)
    if kinds in ({"integer"}, {"number"}):
        return NumberField(schema, ctx, **kw)
    if kinds == {"boolean"}:
        return BoolField(schema, ctx, **kw)
    if kinds == {"array"}:
        items = schema.get("items")
        if isinstance(items, dict) and items.get("enum") and schema.get("uniqueItems", True):
            return EnumSetField(schema, ctx, **kw)
        return ListField(schema, ctx, **kw)
    if kinds == {"object"}:
        return ObjectField(schema, ctx, **kw)
    if len(kinds) > 1 and not kinds & {"object", "array"}:
        return ScalarUnionField(schema, ctx, **kw)
    return AnyField(schema, ctx, **kw)


__all__ = [
    "UNSET",
    "Field",
    "FormContext",
    "QKeySequence",
    "make_field",
]
