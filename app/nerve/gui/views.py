"""The window's tabs: live events, run history, rules."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QFontDatabase, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from nerve.bus import Subscription
from nerve.events import Event
from nerve.gui.core import Core
from nerve.gui.models import (
    EventFilter,
    EventsModel,
    ObjectRole,
    RulesModel,
    RunsModel,
    TraceModel,
    event_json,
)

log = logging.getLogger(__name__)

#: Batches reach the view at most this often: wakes in between are coalesced.
REPAINT_MS = 50
#: Poll interval of the store/engine while a tab is visible.
POLL_MS = 2000
#: The monitor's own bus queue: a ten-second burst at 5,000 events/s fits.
MONITOR_QUEUE = 50_000


def _table(view: QTableView) -> None:
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setShowGrid(False)
    vertical = view.verticalHeader()
    vertical.setVisible(False)
    # Fixed row heights: no per-row size computation when thousands arrive.
    vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    vertical.setDefaultSectionSize(view.fontMetrics().height() + 6)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setHighlightSections(False)


# ------------------------------------------------------------------ events


class EventsView(QWidget):
    """The live monitor: a ring buffer of the newest events, filters, pause, details."""

    #: Emitted (queued, on the Qt thread) when the bus has events for us.
    woken = Signal()
    #: Every drained batch, paused or not (the tray watches for rule.failed).
    batch_arrived = Signal(list)

    def __init__(self, core: Core, capacity: int = 10_000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.model = EventsModel(capacity, self)
        self.proxy = EventFilter(self)
        self.proxy.setSourceModel(self.model)
        self._held: deque[Event] = deque(maxlen=capacity)
        self.drained = 0
        self.longest_drain_ms = 0.0

        self.type_filter = QLineEdit(placeholderText="Type: hotkey, file.*")
        self.source_filter = QLineEdit(placeholderText="Source")
        self.text_filter = QLineEdit(placeholderText="Search text")
        for edit in (self.type_filter, self.source_filter, self.text_filter):
            edit.setClearButtonEnabled(True)
            edit.textChanged.connect(self._filters_changed)
        self.pause_button = QPushButton("&Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Stop updating the list (events are kept meanwhile)")
        self.pause_button.toggled.connect(self.set_paused)
        self.clear_button = QPushButton("C&lear")
        self.clear_button.clicked.connect(self.clear)
        self.counter = QLabel()

        bar = QHBoxLayout()
        bar.addWidget(self.type_filter, 2)
        bar.addWidget(self.source_filter, 1)
        bar.addWidget(self.text_filter, 3)
        bar.addWidget(self.pause_button)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.counter)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        _table(self.table)
        for column, width in ((EventsModel.TIME, 100), (EventsModel.TYPE, 170)):
            self.table.setColumnWidth(column, width)
        self.table.setColumnWidth(EventsModel.SOURCE, 110)
        self.table.selectionModel().selectionChanged.connect(self._selected)

        self.details = QPlainTextEdit(readOnly=True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setPlaceholderText("Select an event to see all of it")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.details)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split)
        self.setTabOrder(self.type_filter, self.source_filter)
        self.setTabOrder(self.source_filter, self.text_filter)
        self.setTabOrder(self.text_filter, self.pause_button)
        self.setTabOrder(self.pause_button, self.table)

        self._timer = QTimer(self, singleShot=True, interval=REPAINT_MS)
        self._timer.timeout.connect(self.drain)
        # Signal emitted from a producer thread: Qt queues it to this thread.
        self.woken.connect(self._on_wake, Qt.ConnectionType.QueuedConnection)
        self.subscription: Subscription | None = core.bus.subscribe(
            "*", wake=self.woken.emit, name="gui-monitor", capacity=MONITOR_QUEUE
        )
        self._update_counter()

    # -- feeding (Qt thread)

    def _on_wake(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def drain(self) -> None:
        """Take what the bus holds for us and show it (or hold it while paused)."""
        sub = self.subscription
        if sub is None:
            return
        start = time.perf_counter()
        batch = sub.drain()
        if not batch:
            return
        self.drained += len(batch)
        self.batch_arrived.emit(batch)
        if self.paused:
            self._held.extend(batch)
        else:
            self._show(batch)
        self._update_counter()
        self.longest_drain_ms = max(self.longest_drain_ms, (time.perf_counter() - start) * 1000)

    def _show(self, batch: list[Event]) -> None:
        scroll = self.table.verticalScrollBar()
        follow = scroll.value() >= scroll.maximum() - 2
        self.model.append_events(batch)
        if follow and not self.table.selectionModel().hasSelection():
            self.table.scrollToBottom()

    @property
    def paused(self) -> bool:
        return self.pause_button.isChecked()

    def set_paused(self, paused: bool) -> None:
        """Stop (or restart) updating the list; events meanwhile are held, the newest kept."""
        if self.pause_button.isChecked() != paused:
            self.pause_button.setChecked(paused)  # toggled() calls us again
            return
        self.pause_button.setText("&Resume" if paused else "&Pause")
        if not paused and self._held:
            held = list(self._held)
            self._held.clear()
            self._show(held)
        self._update_counter()

    def clear(self) -> None:
        self._held.clear()
        self.model.clear()
        self.details.clear()
        self._update_counter()

    def _update_counter(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        plural = "" if total == 1 else "s"
        text = f"{shown:,} of {total:,}" if self.proxy.active else f"{total:,} event{plural}"
        if self._held:
            text += f", {len(self._held):,} held"
        self.counter.setText(text)

    def _filters_changed(self) -> None:
        self.proxy.set_filters(
            type_=self.type_filter.text(),
            source=self.source_filter.text(),
            text=self.text_filter.text(),
        )
        self._update_counter()

    def _selected(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.details.clear()
            return
        event = rows[0].data(ObjectRole)
        self.details.setPlainText(event_json(event) if isinstance(event, Event) else "")

    def close_subscription(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None


# -------------------------------------------------------------------- runs


class _Polling(QWidget):
    """A tab that refreshes itself every POLL_MS while (and only while) it is shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._poll = QTimer(self, interval=POLL_MS)
        self._poll.timeout.connect(self.refresh)

    def refresh(self) -> None:
        raise NotImplementedError

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()
        self._poll.start()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._poll.stop()


class RunsView(_Polling):
    """Run history, newest first, and the trace of the selected run."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.model = RunsModel(self)
        self.trace = TraceModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        _table(self.table)
        for column, width in (
            (RunsModel.STARTED, 150),
            (RunsModel.RULE, 220),
            (RunsModel.STATUS, 80),
            (RunsModel.DURATION, 80),
        ):
            self.table.setColumnWidth(column, width)
        self.table.selectionModel().selectionChanged.connect(self._selected)
        self.tree = QTreeView()
        self.tree.setModel(self.trace)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.tree.setColumnWidth(0, 260)
        self.empty = QLabel("No runs yet: they appear here when a rule fires.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.tree)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(split)

    def refresh(self) -> None:
        try:
            runs = self.core.runs()
        except Exception as exc:  # a closed store while quitting, a locked file
            log.warning("could not read the run history: %s", exc)
            return
        current = self.selected_run()
        if self.model.set_runs(runs):
            row = self.model.row_of(current["id"]) if current else None
            if row is not None:
                self.table.selectRow(row)
            else:
                self.trace.show_run(None)
        self.empty.setVisible(self.model.rowCount() == 0)

    def selected_run(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.run_at(rows[0].row()) if rows else None

    def _selected(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        self.trace.show_run(self.selected_run())
        self.tree.expandAll()


# ------------------------------------------------------------------- rules


class RulesView(_Polling):
    """Packs and rules with enable switches, last run and a search box."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.model = RulesModel(on_toggle=self._toggle, parent=self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setAutoAcceptChildRows(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.search = QLineEdit(placeholderText="Search rules")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search)
        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setColumnWidth(RulesModel.NAME, 280)
        self.tree.setColumnWidth(RulesModel.ENABLED, 110)
        self.tree.setColumnWidth(RulesModel.LAST_RUN, 150)
        self.model.modelReset.connect(self.tree.expandAll)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.errors: list[str] = []

    def refresh(self) -> None:
        try:
            summaries = self.core.rules()
        except Exception as exc:  # the engine stopped or is stuck
            log.warning("could not read the rules: %s", exc)
            return
        self.model.set_rules(summaries, self.core.pack_names())

    def _toggle(self, key: str, enabled: bool) -> None:
        try:
            self.core.set_enabled(key, enabled)
        except Exception as exc:
            self.errors.append(f"{key}: {exc}")
            log.warning("could not switch %s %s: %s", key, "on" if enabled else "off", exc)
        # Defer: we are inside the model's setData.
        QTimer.singleShot(0, self.refresh)

    def _search(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        self.tree.expandAll()

    def index_of(self, key: str, column: int = 0) -> QModelIndex:
        """The view (proxy) index of a rule."""
        return self.proxy.mapFromSource(self.model.index_of(key, column))
