"""The window's tabs: live events, run history, rules."""

from __future__ import annotations

import copy
import importlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QModelIndex,
    QObject,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QFontDatabase,
    QHideEvent,
    QKeySequence,
    QShowEvent,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
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
from nerve.paths import read_user_file

log = logging.getLogger(__name__)

#: Batches reach the view at most this often: wakes in between are coalesced.
REPAINT_MS = 50
#: A tab refreshes at most this often after the engine reports changes.
CHANGE_MS = 250
#: The monitor's own bus queue: a ten-second burst at 5,000 events/s fits.
MONITOR_QUEUE = 50_000
#: The trace's Step column fits its text within these widths (pixels).
TRACE_STEP_WIDTH = (260, 460)


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
        self.text_filter = QLineEdit(placeholderText="Search text (Ctrl+F)")
        for edit in (self.type_filter, self.source_filter, self.text_filter):
            edit.setClearButtonEnabled(True)
            edit.textChanged.connect(self._filters_changed)
        # Alt+S and Alt+M: Alt+P is the Packs menu's, Alt+A the Rules tab's Add rule.
        self.pause_button = QPushButton("Pau&se")
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
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(split)
        self.setTabOrder(self.type_filter, self.source_filter)
        self.setTabOrder(self.source_filter, self.text_filter)
        self.setTabOrder(self.text_filter, self.pause_button)
        self.setTabOrder(self.pause_button, self.clear_button)
        self.setTabOrder(self.clear_button, self.table)
        self.setTabOrder(self.table, self.details)
        find = QAction(self)
        find.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        find.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.triggered.connect(lambda _=False: self.text_filter.setFocus())
        self.addAction(find)

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
        self.pause_button.setText("Resu&me" if paused else "Pau&se")
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


class ChangeWatch(QObject):
    """Calls ``refresh`` in the Qt thread, at most every CHANGE_MS, after the
    engine reported a change (:meth:`Core.watch`). Nothing polls: an idle
    window wakes nobody."""

    _poke = Signal()  # emitted on the engine's thread: queued to ours

    def __init__(self, core: Core, refresh: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self._core = core
        self._refresh = refresh
        self._timer = QTimer(self, singleShot=True, interval=CHANGE_MS)
        self._timer.timeout.connect(self._fire)
        self._poke.connect(self._poked)
        self._unwatch: Callable[[], None] | None = None

    @property
    def active(self) -> bool:
        return self._unwatch is not None

    def start(self) -> None:
        if self._unwatch is None:
            self._unwatch = self._core.watch(self._poke.emit)

    def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._timer.stop()

    def _poked(self) -> None:
        if self.active and not self._timer.isActive():
            self._timer.start()

    def _fire(self) -> None:
        self._core.change_seen()
        self._refresh()


class _Polling(QWidget):
    """A tab that keeps itself current while (and only while) it is shown."""

    core: Core

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._watch: ChangeWatch | None = None

    def refresh(self) -> None:
        raise NotImplementedError

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._watch is None:
            self._watch = ChangeWatch(self.core, self.refresh, self)
        self._watch.start()
        self.core.change_seen()
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        if self._watch is not None:
            self._watch.stop()


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
        self.show_trace()

    def show_trace(self) -> None:
        """Fill the trace of the selected run (again)."""
        self.trace.show_run(self.selected_run())
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)
        width = self.tree.columnWidth(0)
        self.tree.setColumnWidth(0, max(TRACE_STEP_WIDTH[0], min(width, TRACE_STEP_WIDTH[1])))


# ------------------------------------------------------------------- rules

#: Where "Add rule" puts a rule when no pack is selected (in the user's packs folder).
USER_PACK_FILE = "my-rules.yaml"
USER_PACK_ID = "my-rules"
USER_PACK_NAME = "My rules"
#: A rule "Add rule" writes when there is no rule editor: valid, harmless, easy to find.
NEW_RULE: dict[str, Any] = {
    "name": "New rule",
    "when": {"event": "my.event"},
    "do": [{"log": "New rule ran on {event.type}"}],
}
EDITOR_MISSING = "The rule editor is not part of this version of Nerve yet"


def load_editor() -> Callable[..., Any] | None:
    """``nerve.gui.editor.open_editor``, or None where this version has no editor."""
    try:
        module = importlib.import_module("nerve.gui.editor")
    except ImportError:
        return None
    opener = getattr(module, "open_editor", None)
    return opener if callable(opener) else None


def fresh_id(wanted: str, taken: Iterable[str]) -> str:
    """``wanted`` if free, else ``wanted-2``, ``wanted-3``…"""
    used = set(taken)
    if wanted not in used:
        return wanted
    number = 2
    while f"{wanted}-{number}" in used:
        number += 1
    return f"{wanted}-{number}"


def copy_id(rule_id: str, taken: Iterable[str]) -> str:
    """The id of a copy: ``<id>-copy``, then ``<id>-copy-2``…"""
    return fresh_id(f"{rule_id}-copy", taken)


class PackFiles:
    """Pack documents by file, kept between changes while nobody else writes the
    file, so that undoing a deletion gives back the rule with its comments."""

    def __init__(self) -> None:
        self._docs: dict[Path, tuple[Any, bytes]] = {}

    def open(self, path: Path) -> Any:
        """The file's :class:`~nerve.packs.writer.PackDocument` (read again if it changed)."""
        from nerve.packs.writer import PackDocument

        current = read_user_file(path, max_bytes=1 << 30)
        cached = self._docs.get(path)
        if cached is not None and cached[1] == current:
            return cached[0]
        doc = PackDocument.load(path)
        self._docs[path] = (doc, current)
        return doc

    def create(self, path: Path, pack_id: str, name: str) -> Any:
        """A new pack file (written at once) with no rules."""
        from nerve.packs.writer import PackDocument

        doc = PackDocument.new(path, pack_id, name)
        self.save(path, doc)
        return doc

    def save(self, path: Path, doc: Any) -> None:
        doc.save()
        self._docs[path] = (doc, read_user_file(path, max_bytes=1 << 30))


class _PackChange(QUndoCommand):
    """One change to one pack file; redo and undo write the file and reload Nerve."""

    def __init__(self, ops: RuleOps, text: str, path: Path) -> None:
        super().__init__(text)
        self.ops = ops
        self.path = path

    def apply(self, doc: Any) -> str | None:
        """Change ``doc``; return the id of the rule to select afterwards."""
        raise NotImplementedError

    def revert(self, doc: Any) -> str | None:
        raise NotImplementedError

    def redo(self) -> None:
        self._write(self.apply)

    def undo(self) -> None:
        self._write(self.revert)

    def _write(self, change: Callable[[Any], str | None]) -> None:
        from nerve.packs.writer import PackWriteError

        try:
            doc = self.ops.files.open(self.path)
            select = change(doc)
            self.ops.files.save(self.path, doc)
            pack_id = str(doc.header().get("id", ""))
        except (PackWriteError, OSError, KeyError, ValueError) as exc:
            # A file changed or removed behind our back: this step cannot be done.
            self.setObsolete(True)
            self.ops.report(f"{self.text()}: {_reason(exc)}")
            return
        self.ops.written(f"{pack_id}/{select}" if select else None)


class InsertRule(_PackChange):
    """A rule put into a pack at a position (add, duplicate)."""

    def __init__(self, ops: RuleOps, text: str, path: Path, index: int, data: dict[str, Any]):
        super().__init__(ops, text, path)
        self.index = index
        self.data = data

    def apply(self, doc: Any) -> str | None:
        ids = doc.rule_ids()
        _check_free(str(self.data["id"]), ids)
        doc.insert_rule(max(0, min(self.index, len(ids))), copy.deepcopy(self.data))
        return str(self.data["id"])

    def revert(self, doc: Any) -> str | None:
        doc.remove_rule(str(self.data["id"]))
        ids = doc.rule_ids()
        return str(ids[min(self.index, len(ids)) - 1]) if ids and self.index > 0 else None


class RemoveRule(_PackChange):
    """A rule taken out of its pack; undo puts it back where it was."""

    def __init__(self, ops: RuleOps, text: str, path: Path, rule_id: str) -> None:
        super().__init__(ops, text, path)
        self.rule_id = rule_id
        self.index = 0
        self.data: dict[str, Any] = {}

    def apply(self, doc: Any) -> str | None:
        self.index, self.data = doc.remove_rule(self.rule_id)
        ids = doc.rule_ids()
        return str(ids[min(self.index, len(ids) - 1)]) if ids else None

    def revert(self, doc: Any) -> str | None:
        ids = doc.rule_ids()
        _check_free(self.rule_id, ids)
        doc.insert_rule(min(self.index, len(ids)), copy.deepcopy(self.data))
        return self.rule_id


def _check_free(rule_id: str, ids: Iterable[str]) -> None:
    if rule_id in ids:
        raise ValueError(f"there is a rule {rule_id} already")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no rule {exc.args[0]!r} in the file any more" if exc.args else "rule not found"
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return str(exc)


class RuleOps(QObject):
    """Add, duplicate, delete and edit rules in their pack files, with undo.

    Every change goes through a pack's own file (``Pack.file``) with
    :class:`~nerve.packs.writer.PackDocument`, then Nerve reloads and the view
    refreshes; nothing here touches the engine's rules directly."""

    #: A message for the status bar (what was done, or why it could not be).
    message = Signal(str)
    #: After a write and reload: the key of the rule to select (or "").
    changed = Signal(str)

    def __init__(self, core: Core, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.files = PackFiles()
        self.stack = QUndoStack(self)
        self.errors: list[str] = []

    def pack_file(self, pack_id: str) -> Path | None:
        for pack in self.core.packs():
            if pack.id == pack_id and pack.file:
                return Path(pack.file)
        return None

    def target_file(self, pack_id: str | None) -> Path | None:
        """Where a new rule goes: the selected pack, else the user's own pack."""
        if pack_id:
            found = self.pack_file(pack_id)
            if found is not None:
                return found
        if self.core.packs_dir is not None:
            return self.core.packs_dir / USER_PACK_FILE
        packs = [Path(p.file) for p in self.core.packs() if p.usable and p.file]
        return packs[0] if packs else None

    # -- operations

    def add(self, pack_id: str | None) -> bool:
        """A new rule in ``pack_id`` (or the user's pack): the editor, or a template rule."""
        path = self.target_file(pack_id)
        if path is None:
            self.report("There is no pack to add a rule to")
            return False
        editor = load_editor()
        if editor is not None:
            # The editor writes a missing pack file when the rule is saved (and approves
            # what the rule can do): an empty file made now would be a pack nobody
            # approved, and closing the editor unsaved would leave it behind.
            return self._open_editor(editor, path, None)
        try:
            if not path.exists():
                self.files.create(path, USER_PACK_ID, USER_PACK_NAME)
            doc = self.files.open(path)
        except Exception as exc:
            self.report(f"Could not open {path}: {_reason(exc)}")
            return False
        data = {"id": fresh_id("new-rule", doc.rule_ids()), **copy.deepcopy(NEW_RULE)}
        command = InsertRule(self, f"add rule {data['id']}", path, len(doc.rule_ids()), data)
        return self._push(command, f"Added {data['id']} to {path.name}")

    def duplicate(self, key: str) -> bool:
        """A copy of the rule ``key`` right after it, with a fresh id."""
        pack_id, _, rule_id = key.partition("/")
        path = self.pack_file(pack_id)
        if path is None:
            self.report(f"The file of pack {pack_id} is not known")
            return False
        try:
            doc = self.files.open(path)
            ids = doc.rule_ids()
            data = copy.deepcopy(doc.rule(rule_id))
        except Exception as exc:
            self.report(f"Could not duplicate {key}: {_reason(exc)}")
            return False
        new_id = copy_id(rule_id, ids)
        data["id"] = new_id
        if data.get("name"):
            data["name"] = f"{data['name']} (copy)"
        command = InsertRule(self, f"duplicate {rule_id}", path, ids.index(rule_id) + 1, data)
        return self._push(command, f"Duplicated {rule_id} as {new_id}")

    def delete(self, key: str) -> bool:
        pack_id, _, rule_id = key.partition("/")
        path = self.pack_file(pack_id)
        if path is None:
            self.report(f"The file of pack {pack_id} is not known")
            return False
        command = RemoveRule(self, f"delete {rule_id}", path, rule_id)
        return self._push(command, f"Deleted {rule_id} from {path.name} (Ctrl+Z brings it back)")

    def edit(self, key: str) -> bool:
        pack_id, _, rule_id = key.partition("/")
        path = self.pack_file(pack_id)
        if path is None:
            self.report(f"The file of pack {pack_id} is not known")
            return False
        editor = load_editor()
        if editor is None:
            self.report(f"{EDITOR_MISSING}; edit {path} in a text editor")
            return False
        return self._open_editor(editor, path, rule_id)

    # -- plumbing

    def _push(self, command: _PackChange, done: str) -> bool:
        before = len(self.errors)
        self.stack.push(command)
        ok = len(self.errors) == before
        if ok:
            self.message.emit(done)
        return ok

    def _open_editor(self, editor: Callable[..., Any], path: Path, rule_id: str | None) -> bool:
        parent = self.parent()
        owner = parent if isinstance(parent, QWidget) else None
        try:
            window = editor(self.core, path, rule_id, owner)
        except Exception as exc:
            log.exception("the rule editor failed to open")
            self.report(f"The rule editor could not open: {exc}")
            return False
        saved = getattr(window, "saved", None)
        if saved is not None:  # the editor saved (and Nerve reloaded): show the rule
            saved.connect(lambda rule_id, p=path: self._editor_saved(p, str(rule_id)))
        return True

    def _editor_saved(self, path: Path, rule_id: str) -> None:
        pack_id = next((p.id for p in self.core.packs() if p.file and Path(p.file) == path), "")
        self.changed.emit(f"{pack_id}/{rule_id}" if pack_id and rule_id else "")

    def written(self, select: str | None) -> None:
        """A pack file changed: reload Nerve, then let the view show it."""
        try:
            self.core.reload()
        except Exception as exc:  # a pack input no longer given, a stopped engine
            self.report(f"Saved, but Nerve could not reload: {exc}")
        self.changed.emit(select or "")

    def report(self, text: str) -> None:
        self.errors.append(text)
        log.warning("%s", text)
        self.message.emit(text)


class RulesView(_Polling):
    """Packs and rules with enable switches, last run, a search box, and editing."""

    #: Text for the window's status bar.
    message = Signal(str)

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
        self.search = QLineEdit(placeholderText="Search rules (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._search)
        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setColumnWidth(RulesModel.NAME, 280)
        self.tree.setColumnWidth(RulesModel.ENABLED, 110)
        self.tree.setColumnWidth(RulesModel.LAST_RUN, 190)
        self.tree.setColumnWidth(RulesModel.RUNS, 130)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.doubleClicked.connect(self._double_clicked)
        self.model.modelReset.connect(self.tree.expandAll)
        self.errors: list[str] = []
        self.active = True
        self._history: dict[str, dict[str, Any] | None] = {}

        self.ops = RuleOps(core, self)
        self.undo_stack = self.ops.stack
        self.ops.message.connect(self.message)
        self.ops.changed.connect(self._changed)

        self.add_action = _action(self, "&Add rule…", "Ctrl+N", self.add_rule)
        self.add_action.setToolTip("Add a rule to the selected pack (or to your own pack)")
        self.edit_action = _action(self, "&Edit rule…", None, self.edit_rule)
        self.edit_action.setShortcuts([QKeySequence("Return"), QKeySequence("Enter")])
        self.edit_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.duplicate_action = _action(self, "Dupli&cate rule", "Ctrl+D", self.duplicate_rule)
        self.delete_action = _action(self, "&Delete rule", None, self.delete_rule)
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.why_action = _action(self, "&Why not?", None, self.why_not)
        self.why_action.setToolTip("Which recent events came near starting the rule, and why not")
        # Return and Delete act on the tree only, not on the search box.
        self.tree.addAction(self.edit_action)
        self.tree.addAction(self.delete_action)
        self.addAction(self.add_action)
        self.addAction(self.duplicate_action)
        find = QAction(self)
        find.setShortcut(QKeySequence(QKeySequence.StandardKey.Find))
        find.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.triggered.connect(self._find)
        self.addAction(find)

        # Mnemonics apart from the menus (N, E, V, P) and the tabs (R, T, U).
        self.add_button = _button(self.add_action, "&Add rule…")
        self.edit_button = _button(self.edit_action, "Ed&it…")
        self.duplicate_button = _button(self.duplicate_action, "Dupli&cate")
        self.delete_button = _button(self.delete_action, "&Delete")
        self.why_button = _button(self.why_action, "&Why not?")
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        for button in (self.add_button, self.edit_button, self.duplicate_button):
            bar.addWidget(button)
        bar.addWidget(self.delete_button)
        bar.addWidget(self.why_button)
        #: The last "Why not?" answer (shown in a dialog).
        self.why_text = ""
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.tree)
        self.setTabOrder(self.search, self.tree)
        self.setTabOrder(self.tree, self.add_button)
        self.setTabOrder(self.add_button, self.edit_button)
        self.setTabOrder(self.edit_button, self.duplicate_button)
        self.setTabOrder(self.duplicate_button, self.delete_button)
        self.setTabOrder(self.delete_button, self.why_button)
        self.tree.selectionModel().currentChanged.connect(self._update_actions)
        self.proxy.modelReset.connect(self._update_actions)
        self._update_actions()

    # -- reading

    def refresh(self) -> None:
        try:
            summaries = self.core.rules()
        except Exception as exc:  # the engine stopped or is stuck
            log.warning("could not read the rules: %s", exc)
            return
        self._fill_history(summaries)
        self.model.set_rules(summaries, self.core.pack_names())
        self._update_actions()

    def _fill_history(self, summaries: list[dict[str, Any]]) -> None:
        """Rules that have not run since Nerve started show their last stored run."""
        store = self.core.store
        for summary in summaries:
            key = str(summary.get("key", ""))
            if summary.get("last_run") or store is None:
                continue
            if key not in self._history:
                try:
                    runs = store.query_runs(rule_id=key, limit=1)
                except Exception as exc:  # a closed store while quitting
                    log.debug("no run history for %s: %s", key, exc)
                    return
                self._history[key] = (
                    {k: runs[0].get(k) for k in ("id", "status", "started", "ended", "error")}
                    if runs
                    else None
                )
            if self._history[key] is not None:
                summary["last_run"] = self._history[key]

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

    def _find(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def index_of(self, key: str, column: int = 0) -> QModelIndex:
        """The view (proxy) index of a rule."""
        return self.proxy.mapFromSource(self.model.index_of(key, column))

    # -- selection

    def current_rule(self) -> str | None:
        """The key (pack/rule) of the selected rule."""
        rule = self.model.rule_at(self.proxy.mapToSource(self.tree.currentIndex()))
        return str(rule["key"]) if rule is not None else None

    def current_pack(self) -> str | None:
        """The id of the selected pack (or of the selected rule's pack)."""
        return self.model.pack_at(self.proxy.mapToSource(self.tree.currentIndex()))

    def select(self, key: str) -> bool:
        index = self.index_of(key)
        if not index.isValid():
            return False
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index)
        return True

    def set_active(self, active: bool) -> None:
        """Whether this tab is the one shown (rule actions act only then)."""
        self.active = active
        self._update_actions()

    def _update_actions(self, *_: Any) -> None:
        on_rule = self.active and self.current_rule() is not None
        for action in (self.edit_action, self.duplicate_action, self.delete_action):
            action.setEnabled(on_rule)
        self.why_action.setEnabled(self.current_rule() is not None)

    # -- operations

    def add_rule(self) -> bool:
        return self.ops.add(self.current_pack())

    def edit_rule(self) -> bool:
        key = self.current_rule()
        return self.ops.edit(key) if key else False

    def duplicate_rule(self) -> bool:
        key = self.current_rule()
        return self.ops.duplicate(key) if key else False

    def delete_rule(self) -> bool:
        key = self.current_rule()
        return self.ops.delete(key) if key else False

    def why_not(self) -> str:
        """Show why the selected rule did not run lately; returns the text shown."""
        key = self.current_rule()
        if key is None:
            return ""
        try:
            answer = self.core.why(key)
        except Exception as exc:  # the engine stopped or is stuck
            self.message.emit(f"Could not ask the engine: {exc}")
            return ""
        self.why_text = why_text(answer) if answer else f"{key} is not loaded."
        box = QMessageBox(QMessageBox.Icon.Information, f"Why not? {key}", self.why_text)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setParent(self, box.windowFlags())
        box.open()
        self.why_box = box
        return self.why_text

    def _changed(self, select: str) -> None:
        self.refresh()
        if select:
            self.select(select)
        self.tree.setFocus(Qt.FocusReason.OtherFocusReason)

    def _double_clicked(self, index: QModelIndex) -> None:
        if index.column() != RulesModel.ENABLED and self.current_rule() is not None:
            self.edit_rule()

    def _context_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction(self.edit_action)
        menu.addAction(self.duplicate_action)
        menu.addAction(self.delete_action)
        menu.addAction(self.why_action)
        menu.addSeparator()
        menu.addAction(self.add_action)
        menu.exec(self.tree.viewport().mapToGlobal(pos))


def why_text(answer: dict[str, Any]) -> str:
    """``Engine.why``'s answer for people (the text ``nerve why`` prints)."""
    skips = answer.get("skips") or {}
    counts = f"ran {answer.get('ran', 0)}"
    if skips:
        counts += (
            f", skipped {sum(skips.values())} ("
            + ", ".join(f"{reason} {n}" for reason, n in skips.items())
            + ")"
        )
    lines = [
        f"{answer['rule']} ({answer['name']}): {answer['state']}",
        f"When: {'; '.join(answer.get('triggers') or []) or '-'}",
        f"Since Nerve started: {counts}",
        "",
    ]
    near = answer.get("near") or []
    if not near:
        lines.append("No recent event came near starting it.")
    else:
        lines.append("Recent near misses, newest first:")
    for miss in near:
        when = time.strftime("%H:%M:%S", time.localtime(miss["time"]))
        lines.append(
            f"{when}  event {miss['event']} {miss['type']}: {miss['reason']}: {miss['detail']}"
        )
    return "\n".join(lines)


def _action(
    parent: QWidget, text: str, shortcut: str | None, slot: Callable[[], object]
) -> QAction:
    action = QAction(text, parent)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(lambda _=False: slot())
    return action


def _button(action: QAction, text: str) -> QPushButton:
    """A push button that runs ``action`` and follows its enabled state."""
    button = QPushButton(text)
    button.clicked.connect(action.trigger)
    tip = action.toolTip()
    keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    button.setToolTip(f"{tip} ({keys})" if keys else tip)
    button.setEnabled(action.isEnabled())
    action.enabledChanged.connect(button.setEnabled)
    return button
