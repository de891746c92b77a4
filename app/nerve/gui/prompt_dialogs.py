"""The dialogs of ``form``, ``ask``, ``choose`` and ``confirm`` (:mod:`nerve.prompts`).

Each dialog emits :attr:`PromptDialog.answered` once: the answer's values
(``{"values": {...}}``) or ``{"cancelled": True}`` (Escape, the close
button). Used by the desktop app (on its GUI thread) and by the helper
process headless Nerve starts (:mod:`nerve.gui.prompt`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from PySide6.QtCore import QEvent, QLocale, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QDoubleValidator, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from nerve.prompts import Field, Prompt

#: What a list item keeps: its index in the prompt's choices.
_INDEX = Qt.ItemDataRole.UserRole


class PromptDialog(QDialog):
    """A dialog that answers a :class:`Prompt` once."""

    answered = Signal(object)

    def __init__(self, prompt: Prompt, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt = prompt
        self._sent = False
        self.setWindowTitle(prompt.title or "Nerve")
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(14, 12, 14, 12)
        self.layout_.setSpacing(10)
        self.countdown = QLabel("")
        self.countdown.setObjectName("countdown")
        self.countdown.setStyleSheet("color: palette(placeholder-text);")
        self._deadline = time.monotonic() + prompt.timeout if prompt.timeout else None
        self._tick = QTimer(self)
        self._tick.timeout.connect(self._update_countdown)

    # -------------------------------------------------------------- answering

    def answer(self) -> dict[str, Any]:
        """The values the dialog holds now (subclasses)."""
        raise NotImplementedError

    def valid(self) -> str:
        """Why the values cannot be accepted ('' if they can)."""
        return ""

    def accept(self) -> None:
        problem = self.valid()
        if problem:
            self.show_problem(problem)
            return
        self._send({"values": self.answer()})
        super().accept()

    def reject(self) -> None:
        self._send({"cancelled": True})
        super().reject()

    def closeEvent(self, event: Any) -> None:
        self._send({"cancelled": True})
        super().closeEvent(event)

    def close_quietly(self) -> None:
        """Closed from outside (the run stopped waiting): no answer is sent."""
        self._sent = True
        self.done(QDialog.DialogCode.Rejected)

    def _send(self, answer: dict[str, Any]) -> None:
        if not self._sent:
            self._sent = True
            self.answered.emit(answer)

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.show()

    # --------------------------------------------------------------- layout

    def finish_layout(self, buttons: QDialogButtonBox) -> None:
        self.problem = QLabel("")
        self.problem.setObjectName("problem")
        self.problem.setStyleSheet("color: #b00020;")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.layout_.addWidget(self.problem)
        self.buttons = buttons
        if self._deadline is not None:
            row = QVBoxLayout()
            row.addWidget(self.countdown)
            self.layout_.addLayout(row)
            self._update_countdown()
            self._tick.start(250)
        self.layout_.addWidget(buttons)
        self.setMinimumWidth(380)

    def _update_countdown(self) -> None:
        if self._deadline is None:
            return
        left = max(0, math.ceil(self._deadline - time.monotonic()))
        self.countdown.setText(f"Closes in {left} s" + self._default_hint())

    def _default_hint(self) -> str:
        return ""

    def present(self) -> None:
        """Show it in front, with the keyboard focus."""
        self.show()
        self.raise_()
        self.activateWindow()


def _message(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setObjectName("message")
    return label


class FormDialog(PromptDialog):
    """Fields in a form: text, multi-line, choice, password, number."""

    def __init__(self, prompt: Prompt, parent: QWidget | None = None) -> None:
        super().__init__(prompt, parent)
        if prompt.message:
            self.layout_.addWidget(_message(prompt.message))
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.widgets: dict[str, QWidget] = {}
        for field in prompt.fields:
            widget = self._widget(field)
            widget.setObjectName(f"field-{field.name}")
            self.widgets[field.name] = widget
            label = QLabel(field.label or field.name)
            label.setBuddy(widget)
            form.addRow(label, widget)
        self.layout_.addLayout(form)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.finish_layout(buttons)
        if prompt.fields:
            self.widgets[prompt.fields[0].name].setFocus()

    def _widget(self, field: Field) -> QWidget:
        default = "" if field.default is None else str(field.default)
        if field.kind == "multiline":
            edit = QPlainTextEdit(default)
            edit.setTabChangesFocus(True)
            edit.setFixedHeight(edit.fontMetrics().lineSpacing() * 4 + 14)
            # Ctrl+Enter accepts the form (Enter is a new line here).
            edit.installEventFilter(self)
            return edit
        if field.kind == "choice":
            box = QComboBox()
            box.addItems(list(field.choices))
            if default in field.choices:
                box.setCurrentIndex(field.choices.index(default))
            return box
        line = QLineEdit(default)
        line.setMinimumWidth(240)
        if field.kind == "password":
            line.setEchoMode(QLineEdit.EchoMode.Password)
        elif field.kind == "number":
            validator = QDoubleValidator(line)
            validator.setLocale(QLocale.c())
            line.setValidator(validator)
            line.setPlaceholderText("a number")
        return line

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            if enter and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                self.accept()
                return True
        return super().eventFilter(watched, event)

    def answer(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        kinds = {f.name: f.kind for f in self.prompt.fields}
        for name, widget in self.widgets.items():
            if kinds[name] == "number" and isinstance(widget, QLineEdit):
                values[name] = widget.text().strip().replace(",", ".")
            elif isinstance(widget, QPlainTextEdit):
                values[name] = widget.toPlainText()
            elif isinstance(widget, QComboBox):
                values[name] = widget.currentText()
            elif isinstance(widget, QLineEdit):
                values[name] = widget.text()
        return values

    def valid(self) -> str:
        for field in self.prompt.fields:
            widget = self.widgets[field.name]
            if field.kind == "number" and isinstance(widget, QLineEdit):
                try:
                    number = float(widget.text().replace(",", "."))
                except ValueError:
                    widget.setFocus()
                    return f"{field.label or field.name}: enter a number"
                if not math.isfinite(number):
                    return f"{field.label or field.name}: enter a number"
        return ""

    def _default_hint(self) -> str:
        if all(f.default is not None for f in self.prompt.fields):
            return " (then the defaults are used)"
        return ""


class ChooseDialog(PromptDialog):
    """A searchable list, like a command palette: type to filter, Up/Down to
    move, Enter to pick, Escape to cancel."""

    def __init__(self, prompt: Prompt, parent: QWidget | None = None) -> None:
        super().__init__(prompt, parent)
        if prompt.message:
            self.layout_.addWidget(_message(prompt.message))
        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText("Type to search…")
        self.search.setClearButtonEnabled(True)
        self.search.installEventFilter(self)
        self.layout_.addWidget(self.search)
        self.list = QListWidget()
        self.list.setObjectName("choices")
        self.list.setUniformItemSizes(True)
        self.list.setStyleSheet("QListWidget::item { padding: 3px 4px; }")
        for index, label in enumerate(prompt.choices):
            item = QListWidgetItem(label.replace("\n", " ⏎ "))
            item.setData(_INDEX, index)
            self.list.addItem(item)
        rows = min(max(len(prompt.choices), 3), 10)
        self.list.setMinimumHeight(self.list.sizeHintForRow(0) * rows + 8)
        self.list.itemActivated.connect(lambda _item: self.accept())
        self.layout_.addWidget(self.list)
        self.search.textChanged.connect(self._filter)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.finish_layout(buttons)
        start = 0
        if prompt.default in prompt.choices:
            start = prompt.choices.index(prompt.default)
        self.list.setCurrentRow(start)
        self.search.setFocus()

    def _filter(self, text: str) -> None:
        words = text.casefold().split()
        first = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            label = self.prompt.choices[item.data(_INDEX)].casefold()
            hidden = not all(word in label for word in words)
            item.setHidden(hidden)
            if not hidden and first is None:
                first = row
        current = self.list.currentItem()
        if current is None or current.isHidden():
            if first is None:
                self.list.setCurrentRow(-1)
            else:
                self.list.setCurrentRow(first)

    def _visible_rows(self) -> list[int]:
        return [r for r in range(self.list.count()) if not self.list.item(r).isHidden()]

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up, Qt.Key.Key_PageDown, Qt.Key.Key_PageUp):
                rows = self._visible_rows()
                if rows:
                    current = self.list.currentRow()
                    at = rows.index(current) if current in rows else -1
                    step = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1}.get(Qt.Key(key), 0)
                    if key == Qt.Key.Key_PageDown:
                        step = 8
                    elif key == Qt.Key.Key_PageUp:
                        step = -8
                    at = min(max(at + step, 0), len(rows) - 1)
                    self.list.setCurrentRow(rows[at])
                return True
        return super().eventFilter(watched, event)

    def answer(self) -> dict[str, Any]:
        item = self.list.currentItem()
        return {"index": int(item.data(_INDEX))}

    def valid(self) -> str:
        item = self.list.currentItem()
        if item is None or item.isHidden():
            return "Nothing matches; change the search or press Escape"
        return ""

    def _default_hint(self) -> str:
        return f" (then “{self.prompt.default}”)" if self.prompt.default is not None else ""


class ConfirmDialog(PromptDialog):
    """A yes/no question."""

    def __init__(self, prompt: Prompt, parent: QWidget | None = None) -> None:
        super().__init__(prompt, parent)
        self.layout_.addWidget(_message(prompt.message))
        buttons = QDialogButtonBox()
        self.yes: QPushButton = buttons.addButton("&Yes", QDialogButtonBox.ButtonRole.YesRole)
        self.no: QPushButton = buttons.addButton("&No", QDialogButtonBox.ButtonRole.NoRole)
        self.yes.clicked.connect(lambda: self._decide(True))
        self.no.clicked.connect(lambda: self._decide(False))
        self._yes = False
        self.finish_layout(buttons)
        target = self.no if prompt.default is False else self.yes
        target.setDefault(True)
        target.setFocus()

    def _decide(self, yes: bool) -> None:
        self._yes = yes
        self.accept()

    def answer(self) -> dict[str, Any]:
        return {"yes": self._yes}

    def _default_hint(self) -> str:
        if self.prompt.default is None:
            return ""
        return " (then “Yes”)" if self.prompt.default else " (then “No”)"


def make_dialog(prompt: Prompt, parent: QWidget | None = None) -> PromptDialog:
    """The dialog for ``prompt``."""
    if prompt.kind == "choose":
        return ChooseDialog(prompt, parent)
    if prompt.kind == "confirm":
        return ConfirmDialog(prompt, parent)
    return FormDialog(prompt, parent)
