"""The Test tab: a synthetic event to edit, and the trace of a dry run with it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from nerve.gui.editor.fields import UNSET, inline_yaml, parse_inline
from nerve.gui.models import TraceModel


class TestPanel(QWidget):
    """Edit the test event (type and fields), then show what a dry run did."""

    #: The user asked to run the test / to fill the event from the trigger again.
    run_requested = Signal()
    reset_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "A dry run checks the conditions and goes through the actions with this event. "
            "Actions that change something outside Nerve (programs, files, keys, requests, "
            "notifications) are skipped and reported; log, set, if and delay run.",
            self,
        )
        intro.setWordWrap(True)
        intro.setProperty("muted", True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.type_edit = QLineEdit(self)
        self.type_edit.setPlaceholderText("event type, e.g. file.created")
        type_label = QLabel("E&vent type", self)
        type_label.setBuddy(self.type_edit)
        form.addRow(type_label, self.type_edit)
        layout.addLayout(form)
        self.fields = QTableWidget(0, 2, self)
        self.fields.setHorizontalHeaderLabels(["Field", "Value (YAML)"])
        self.fields.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents
        )
        self.fields.horizontalHeader().setStretchLastSection(True)
        self.fields.verticalHeader().hide()
        self.fields.setTabKeyNavigation(False)
        self.fields.setAccessibleName("Event fields")
        fields_label = QLabel("Event f&ields", self)
        fields_label.setBuddy(self.fields)
        layout.addWidget(fields_label)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.fields)
        results = QWidget(splitter)
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.add_button = QPushButton("&Add field", self)
        self.add_button.clicked.connect(self.add_field)
        self.remove_button = QPushButton("&Remove field", self)
        self.remove_button.clicked.connect(self.remove_field)
        self.reset_button = QPushButton("From the tri&gger", self)
        self.reset_button.setToolTip("Fill the event again from the rule's first trigger")
        self.reset_button.clicked.connect(self.reset_requested)
        self.run_button = QPushButton("Ru&n test", self)
        self.run_button.clicked.connect(self.run_requested)
        self.stop_button = QPushButton("Sto&p", self)
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_requested)
        for button in (self.add_button, self.remove_button, self.reset_button):
            bar.addWidget(button)
        bar.addStretch(1)
        bar.addWidget(self.run_button)
        bar.addWidget(self.stop_button)
        results_layout.addLayout(bar)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        results_layout.addWidget(self.status)
        self.trace_model = TraceModel(self)
        self.trace = QTreeView(results)
        self.trace.setModel(self.trace_model)
        self.trace.setUniformRowHeights(True)
        self.trace.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.trace.setAccessibleName("Test trace")
        results_layout.addWidget(self.trace, 1)
        splitter.addWidget(results)
        splitter.setStretchFactor(1, 2)
        layout.addWidget(splitter, 1)
        self.filled = False

    def fill(self, event_type: str, data: dict[str, Any]) -> None:
        """Show an event to test with."""
        self.type_edit.setText(event_type)
        self.fields.setRowCount(0)
        for key, value in data.items():
            self._add_row(key, inline_yaml(value))
        self.filled = True

    def _add_row(self, key: str, value: str) -> None:
        row = self.fields.rowCount()
        self.fields.insertRow(row)
        self.fields.setItem(row, 0, QTableWidgetItem(key))
        self.fields.setItem(row, 1, QTableWidgetItem(value))

    def add_field(self) -> None:
        self._add_row("", "")
        self.fields.setCurrentCell(self.fields.rowCount() - 1, 0)
        self.fields.setFocus()
        item = self.fields.item(self.fields.rowCount() - 1, 0)
        if item is not None:
            self.fields.editItem(item)

    def remove_field(self) -> None:
        row = self.fields.currentRow()
        if row >= 0:
            self.fields.removeRow(row)

    def set_field(self, key: str, value: Any) -> None:
        """Set one field of the test event (a new row if there is none)."""
        for row in range(self.fields.rowCount()):
            item = self.fields.item(row, 0)
            if item is not None and item.text() == key:
                self.fields.setItem(row, 1, QTableWidgetItem(inline_yaml(value)))
                return
        self._add_row(key, inline_yaml(value))

    def test_event(self) -> tuple[str, dict[str, Any]]:
        """The test event: its type and data."""
        data: dict[str, Any] = {}
        for row in range(self.fields.rowCount()):
            key_item = self.fields.item(row, 0)
            value_item = self.fields.item(row, 1)
            key = key_item.text().strip() if key_item is not None else ""
            if not key:
                continue
            value = parse_inline(value_item.text() if value_item is not None else "")
            data[key] = None if value is UNSET else value
        return self.type_edit.text().strip(), data

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if running:
            self.status.setText("Running…")
            self.trace_model.show_run(None)

    def show_record(self, record: dict[str, Any]) -> None:
        """Show a dry run's record (status, error, trace)."""
        self.set_running(False)
        self.trace_model.show_run(record)
        self.trace.expandAll()
        for column in range(self.trace_model.columnCount()):
            self.trace.resizeColumnToContents(column)
        status = str(record.get("status", ""))
        error = record.get("error")
        text = {
            "ok": "✔ The rule would run: every condition holds.",
            "condition": "✘ A condition does not hold: the actions would not run.",
            "failed": "✘ The run failed.",
            "cancelled": "Stopped.",
            "stopped": "✔ The rule would run, and a 'stop' action ends it:",
        }.get(status, status)
        if error and status != "cancelled":
            text += f" {error}"
        self.status.setText(text)

    def show_error(self, message: str) -> None:
        self.set_running(False)
        self.trace_model.show_run(None)
        self.status.setText(f"⚠ {message}")
