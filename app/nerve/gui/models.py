"""Qt models over Nerve's data: live events, run history, rules.

Models hold plain data and never call the engine or the store themselves:
the views (and their controllers) feed them, so every model can be tested
with no view, no engine and no display.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel

from nerve.events import Event, thaw
from nerve.gui.icons import status_color, status_icon

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()

#: A role that answers the row's underlying object (an Event, a run dict...).
ObjectRole = Qt.ItemDataRole.UserRole + 1


def _failed() -> QColor:
    return status_color("failed")


def _ok() -> QColor:
    return status_color("ok")


def clock(epoch: float | None, *, millis: bool = False) -> str:
    """Local wall-clock time of an epoch timestamp, for a table cell."""
    if epoch is None:
        return ""
    moment = dt.datetime.fromtimestamp(epoch)
    text = moment.strftime("%H:%M:%S")
    if millis:
        text += f".{moment.microsecond // 1000:03d}"
    return text


def day_clock(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def event_summary(data: Mapping[str, Any], limit: int = 200) -> str:
    """``key=value`` pairs of an event's data on one line."""
    parts = []
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(thaw(value), default=str)
        parts.append(f"{key}={shown}")
    text = "  ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_json(event: Event) -> str:
    return json.dumps(event.as_dict(), indent=2, ensure_ascii=False, default=str)


# ------------------------------------------------------------------ events


class EventsModel(QAbstractTableModel):
    """The newest ``capacity`` events, oldest first, appended in batches.

    A batch is one row insertion (and at most one removal of the oldest rows),
    so a view repaints once per batch, not once per event.
    """

    COLUMNS = ("Time", "Type", "Source", "Data")
    TIME, TYPE, SOURCE, DATA = range(4)

    def __init__(self, capacity: int = 10_000, parent: Any = None) -> None:
        super().__init__(parent)
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._rows: list[Event] = []
        self.received = 0

    # -- feeding

    def append_events(self, batch: Sequence[Event]) -> None:
        """Add a batch (oldest first); the oldest rows go once past capacity."""
        if not batch:
            return
        self.received += len(batch)
        if len(batch) > self.capacity:
            batch = batch[-self.capacity :]
        overflow = len(self._rows) + len(batch) - self.capacity
        if overflow > 0:
            self.beginRemoveRows(_ROOT, 0, overflow - 1)
            del self._rows[:overflow]
            self.endRemoveRows()
        first = len(self._rows)
        self.beginInsertRows(_ROOT, first, first + len(batch) - 1)
        self._rows.extend(batch)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self.endResetModel()

    def event_at(self, row: int) -> Event:
        return self._rows[row]

    def events(self) -> list[Event]:
        return list(self._rows)

    # -- Qt

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        event = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.TIME:
                return clock(event.time, millis=True)
            if column == self.TYPE:
                return event.type
            if column == self.SOURCE:
                return event.source
            return event_summary(event.data)
        if role == Qt.ItemDataRole.ToolTipRole and column == self.TIME:
            return f"#{event.id} at {day_clock(event.time)}"
        if role == ObjectRole:
            return event
        if role == Qt.ItemDataRole.ForegroundRole and event.type == "rule.failed":
            return QBrush(_failed())
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.COLUMNS)
        ):
            return self.COLUMNS[section]
        return None


class EventFilter(QSortFilterProxyModel):
    """Filters events by type (glob, prefix or substring), source and free text."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._type = ""
        self._source = ""
        self._text = ""

    def set_filters(
        self, *, type_: str | None = None, source: str | None = None, text: str | None = None
    ) -> None:
        """Change any of the filters (``""`` turns one off)."""
        self.beginFilterChange()
        if type_ is not None:
            self._type = type_.strip().lower()
        if source is not None:
            self._source = source.strip().lower()
        if text is not None:
            self._text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    @property
    def active(self) -> bool:
        return bool(self._type or self._source or self._text)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not (self._type or self._source or self._text):
            return True
        model = self.sourceModel()
        assert isinstance(model, EventsModel)
        event = model.event_at(source_row)
        if self._type and not _type_matches(self._type, event.type):
            return False
        if self._source and self._source not in event.source.lower():
            return False
        if self._text:
            haystack = f"{event.type} {event.source} {event_summary(event.data, 10_000)}"
            if self._text not in haystack.lower():
                return False
        return True


def _type_matches(pattern: str, type_: str) -> bool:
    if any(c in pattern for c in "*?["):
        from nerve.saferegex import RegexError, glob_matcher

        try:
            return glob_matcher(pattern)(type_)
        except RegexError:
            return False
    return pattern in type_


# -------------------------------------------------------------------- runs


class RunsModel(QAbstractTableModel):
    """Rule runs as the store returns them (newest first)."""

    COLUMNS = ("Started", "Rule", "Status", "Time", "Error")
    STARTED, RULE, STATUS, DURATION, ERROR = range(5)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._runs: list[dict[str, Any]] = []

    def set_runs(self, runs: Iterable[Mapping[str, Any]]) -> bool:
        """Show these runs; returns whether anything changed."""
        fresh = [dict(r) for r in runs]
        if _run_keys(fresh) == _run_keys(self._runs):
            return False
        self.beginResetModel()
        self._runs = fresh
        self.endResetModel()
        return True

    def run_at(self, row: int) -> dict[str, Any]:
        return self._runs[row]

    def row_of(self, run_id: str) -> int | None:
        for row, run in enumerate(self._runs):
            if run.get("id") == run_id:
                return row
        return None

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._runs)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        run = self._runs[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.STARTED:
                return day_clock(run.get("started"))
            if column == self.RULE:
                return str(run.get("rule_id", ""))
            if column == self.STATUS:
                return str(run.get("status", ""))
            if column == self.DURATION:
                return duration_text(run.get("started"), run.get("ended"))
            return (run.get("error") or "").splitlines()[0] if run.get("error") else ""
        if role == Qt.ItemDataRole.ForegroundRole and column == self.STATUS:
            status = run.get("status")
            if status == "failed":
                return QBrush(_failed())
            if status in ("ok", "done", "succeeded"):
                return QBrush(_ok())
            return QBrush(status_color("muted"))  # conditions did not hold, cancelled
        if role == Qt.ItemDataRole.ToolTipRole and column == self.ERROR and run.get("error"):
            return str(run["error"])
        if role == ObjectRole:
            return run
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.COLUMNS)
        ):
            return self.COLUMNS[section]
        return None


def _run_keys(runs: Sequence[Mapping[str, Any]]) -> list[tuple[Any, Any, Any]]:
    return [(r.get("id"), r.get("status"), r.get("ended")) for r in runs]


def duration_text(started: float | None, ended: float | None) -> str:
    if started is None or ended is None:
        return ""
    ms = (ended - started) * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


class TraceModel(QStandardItemModel):
    """A run's trace as a tree: the event, each condition's verdict, each action."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setHorizontalHeaderLabels(["Step", "Result", "Time"])

    def show_run(self, run: Mapping[str, Any] | None) -> None:
        self.removeRows(0, self.rowCount())
        if run is None:
            return
        trace: Mapping[str, Any] = run.get("trace") or {}
        status = str(run.get("status", ""))
        head = _item(f"Run {str(run.get('id', ''))[:12]} of {run.get('rule_id', '')}")
        self.appendRow(
            [
                head,
                _item(status, _failed() if status == "failed" else None),
                _item(duration_text(run.get("started"), run.get("ended"))),
            ]
        )
        if run.get("error"):
            head.appendRow([_item("error"), _item(str(run["error"]), _failed()), _item("")])
        event = trace.get("event")
        if isinstance(event, Mapping):
            node = _item(f"Event {event.get('type', '?')}")
            self.appendRow(
                [node, _item(f"#{event.get('id', '')} from {event.get('source', '')}"), _item("")]
            )
            _add_fields(node, event.get("data") or {})
        if trace.get("trigger"):
            node = _item("Trigger")
            self.appendRow([node, _item(""), _item("")])
            _add_fields(node, trace["trigger"])
        conditions = trace.get("conditions") or []
        node = _item(f"Conditions ({len(conditions)})")
        self.appendRow([node, _item("" if conditions else "none"), _item("")])
        for cond in conditions:
            ok = bool(cond.get("ok"))
            verdict = "holds" if ok else "does not hold"
            detail = cond.get("detail")
            if detail:
                verdict += f": {detail}"
            node.appendRow(
                [
                    _item(f"{cond.get('condition', '?')}  ({cond.get('path', '')})"),
                    _item(verdict, _ok() if ok else _failed()),
                    _item(""),
                ]
            )
        actions = trace.get("actions") or []
        node = _item(f"Actions ({len(actions)})")
        self.appendRow([node, _item("" if actions else "none"), _item("")])
        for act in actions:
            error = act.get("error")
            if error:
                result = _item(f"error: {error}", _failed())
            else:
                value = act.get("result")
                shown = value if isinstance(value, str) else json.dumps(value, default=str)
                result = _item(shown)
            ms = act.get("ms")
            node.appendRow(
                [
                    _item(f"{act.get('action', '?')}  ({act.get('path', '')})"),
                    result,
                    _item("" if ms is None else f"{float(ms):.1f} ms"),
                ]
            )


def _item(text: str, color: QColor | None = None) -> QStandardItem:
    item = QStandardItem(text)
    item.setEditable(False)
    item.setToolTip(text)
    if color is not None:
        item.setForeground(QBrush(color))
    return item


def _add_fields(node: QStandardItem, data: Any) -> None:
    if not isinstance(data, Mapping):
        node.appendRow([_item("value"), _item(json.dumps(data, default=str)), _item("")])
        return
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        node.appendRow([_item(str(key)), _item(shown), _item("")])


# ------------------------------------------------------------------- rules

_PACK = 0  # internalId of a pack row; a rule row's internalId is its pack's row + 1


class RulesModel(QAbstractItemModel):
    """Packs and their rules from ``engine.rules()`` summaries, in a tree.

    The Enabled column of a rule is checkable; checking it calls
    ``on_toggle(rule_key, enabled)`` (the controller forwards it to the engine
    and refreshes the model from the engine's answer).
    """

    COLUMNS = ("Rule", "Enabled", "Last run", "Runs", "Triggers")
    NAME, ENABLED, LAST_RUN, RUNS, TRIGGERS = range(5)

    def __init__(
        self,
        on_toggle: Callable[[str, bool], None] | None = None,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.on_toggle = on_toggle
        self._packs: list[str] = []
        self._pack_names: dict[str, str] = {}
        self._rules: dict[str, list[dict[str, Any]]] = {}

    # -- feeding

    def set_rules(
        self,
        summaries: Iterable[Mapping[str, Any]],
        pack_names: Mapping[str, str] | None = None,
    ) -> None:
        """Show these rule summaries; updates in place when the shape is unchanged."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for summary in summaries:
            pack = str(summary.get("key", "")).partition("/")[0]
            grouped.setdefault(pack, []).append(dict(summary))
        packs = list(grouped)
        names = dict(pack_names or {})
        same_shape = packs == self._packs and all(
            [r["key"] for r in grouped[p]] == [r["key"] for r in self._rules[p]] for p in packs
        )
        if not same_shape:
            self.beginResetModel()
            self._packs, self._rules, self._pack_names = packs, grouped, names
            self.endResetModel()
            return
        self._rules, self._pack_names = grouped, names
        last = len(self.COLUMNS) - 1
        for row, pack in enumerate(packs):
            parent = self.index(row, 0)
            self.dataChanged.emit(self.index(row, 0), self.index(row, last))
            count = len(grouped[pack])
            if count:
                self.dataChanged.emit(self.index(0, 0, parent), self.index(count - 1, last, parent))

    def rule_at(self, index: Index) -> dict[str, Any] | None:
        if not index.isValid() or index.internalId() == _PACK:
            return None
        return self._rules[self._packs[index.internalId() - 1]][index.row()]

    def pack_at(self, index: Index) -> str | None:
        if not index.isValid():
            return None
        if index.internalId() == _PACK:
            return self._packs[index.row()]
        return self._packs[index.internalId() - 1]

    def index_of(self, key: str, column: int = 0) -> QModelIndex:
        pack = key.partition("/")[0]
        if pack not in self._rules:
            return QModelIndex()
        for row, rule in enumerate(self._rules[pack]):
            if rule["key"] == key:
                return self.index(row, column, self.index(self._packs.index(pack), 0))
        return QModelIndex()

    # -- Qt structure

    def index(self, row: int, column: int, parent: Index = _ROOT) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, _PACK)
        return self.createIndex(row, column, parent.row() + 1)

    def parent(self, index: Index = _ROOT) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or index.internalId() == _PACK:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, _PACK)

    def rowCount(self, parent: Index = _ROOT) -> int:
        if not parent.isValid():
            return len(self._packs)
        if parent.internalId() == _PACK and parent.column() == 0:
            return len(self._rules[self._packs[parent.row()]])
        return 0

    def columnCount(self, parent: Index = _ROOT) -> int:
        return len(self.COLUMNS)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == self.ENABLED and index.internalId() != _PACK:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    # -- Qt data

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        column = index.column()
        if index.internalId() == _PACK:
            pack = self._packs[index.row()]
            rules = self._rules[pack]
            if role == Qt.ItemDataRole.DisplayRole:
                if column == self.NAME:
                    name = self._pack_names.get(pack)
                    return f"{name} ({pack})" if name and name != pack else pack
                if column == self.ENABLED:
                    count = sum(1 for r in rules if r.get("enabled") and not r.get("suspended"))
                    return f"{count} of {len(rules)} on"
            if role == ObjectRole:
                return pack
            return None
        rule = self._rules[self._packs[index.internalId() - 1]][index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.NAME:
                return str(rule.get("name") or rule["key"].partition("/")[2])
            if column == self.ENABLED:
                if rule.get("suspended"):
                    return "suspended"
                return "on" if rule.get("enabled") else "off"
            if column == self.LAST_RUN:
                return last_run_text(rule.get("last_run"))
            if column == self.RUNS:
                return counts_text(rule)
            return ", ".join(str(t) for t in rule.get("triggers") or [])
        if role == Qt.ItemDataRole.CheckStateRole and column == self.ENABLED:
            on = rule.get("enabled") and not rule.get("suspended")
            return Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DecorationRole and column == self.LAST_RUN:
            return status_icon(run_state(rule))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.ENABLED and rule.get("suspended"):
                return f"suspended: {rule['suspended']}"
            if column == self.LAST_RUN:
                return last_run_tip(rule)
            if column == self.RUNS:
                return counts_tip(rule)
            return str(rule["key"])
        if role == Qt.ItemDataRole.ForegroundRole and column in (self.LAST_RUN, self.ENABLED):
            last = rule.get("last_run") or {}
            failed = column == self.LAST_RUN and last.get("status") == "failed"
            if rule.get("suspended") or failed:
                return QBrush(_failed())
            if column == self.LAST_RUN and not last:
                return QBrush(status_color("muted"))
        if role == ObjectRole:
            return rule
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if (
            role != Qt.ItemDataRole.CheckStateRole
            or index.column() != self.ENABLED
            or index.internalId() == _PACK
        ):
            return False
        rule = self.rule_at(index)
        assert rule is not None
        state = value.value if isinstance(value, Qt.CheckState) else int(value)
        enabled = state == Qt.CheckState.Checked.value
        rule["enabled"] = enabled
        if enabled:
            rule["suspended"] = None
        self.dataChanged.emit(index, index)
        self.dataChanged.emit(index.parent(), index.parent().siblingAtColumn(self.ENABLED))
        if self.on_toggle is not None:
            self.on_toggle(str(rule["key"]), enabled)
        return True

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.COLUMNS)
        ):
            return self.COLUMNS[section]
        return None


def last_run_text(last: Mapping[str, Any] | None) -> str:
    """``ok at 14:03:12`` today, ``failed at 2025-11-24 09:12`` before; ``never``."""
    if not last:
        return "never"
    status = str(last.get("status", ""))
    status = _STATUS_WORDS.get(status, status)
    when = last.get("started") or last.get("ended")
    if when is None:
        return status
    moment = dt.datetime.fromtimestamp(when)
    if moment.date() == dt.date.today():
        return f"{status} at {moment.strftime('%H:%M:%S')}"
    return f"{status} at {moment.strftime('%Y-%m-%d %H:%M')}"


#: How a run's status reads in the Last run column.
_STATUS_WORDS = {"condition": "skipped", "cancelled": "cancelled"}


def run_state(rule: Mapping[str, Any]) -> str:
    """What a rule's status mark shows: running, suspended, ok, failed, skipped or never."""
    if rule.get("running"):
        return "running"
    if rule.get("suspended"):
        return "suspended"
    last = rule.get("last_run") or {}
    if not last:
        return "never"
    status = last.get("status")
    if status in ("ok", "failed"):
        return str(status)
    return "skipped"  # conditions did not hold, or cancelled


def counts_text(rule: Mapping[str, Any]) -> str:
    """The Runs column: ``3 ran, 5 skipped`` since Nerve started."""
    ran = int(rule.get("ran") or 0)
    skipped = sum((rule.get("skips") or {}).values())
    return f"{ran} ran, {skipped} skipped" if skipped else f"{ran} ran"


def counts_tip(rule: Mapping[str, Any]) -> str:
    """The Runs column's tooltip: the skips by reason."""
    skips: Mapping[str, int] = rule.get("skips") or {}
    lines = [f"Since Nerve started: ran {int(rule.get('ran') or 0)} time(s)"]
    words = {
        "condition": "its conditions did not hold",
        "cooldown": "in its cooldown",
        "throttle": "throttled",
        "debounce": "debounced (a newer event came)",
        "busy": "busy (its mode refused another run)",
        "paused": "Nerve was paused",
        "held": "its pack is held for approval",
        "suspended": "suspended",
    }
    for reason, count in skips.items():
        lines.append(f"skipped {count}: {words.get(reason, reason)}")
    if skips:
        lines.append("Why not? tells which events came near and what stopped them.")
    return "\n".join(lines)


def last_run_tip(rule: Mapping[str, Any]) -> str:
    last: Mapping[str, Any] = rule.get("last_run") or {}
    lines = []
    if rule.get("running"):
        lines.append(f"running now ({rule['running']})")
    if last:
        started = last.get("started") or last.get("ended")
        status = str(last.get("status", ""))
        if status == "condition":
            status = "skipped: its conditions did not hold"
        lines.append(f"last run {status} at {day_clock(started)}")
        took = duration_text(last.get("started"), last.get("ended"))
        if took:
            lines[-1] += f", took {took}"
        if last.get("error"):
            lines.append(str(last["error"]))
    else:
        lines.append("no run recorded")
    if rule.get("fired"):
        lines.append(f"fired {rule['fired']} time(s) since Nerve started")
    return "\n".join(lines)
