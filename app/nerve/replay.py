"""Replaying the event log through rules as a dry run: what the rules would have done.

The replay runs the live engine itself (:class:`ReplayEngine` is an
:class:`~nerve.engine.engine.Engine`) on a clock that follows the recorded
events: the same index and trigger matching, the same stateful triggers
(``count``, ``sequence``, ``for``, file, window, typed: their windows and
timers run on the replayed clock), the same rate limits (cooldown, throttle,
debounce), modes (single, queued, parallel: a run lasts as long as the
recorded run of that rule for that event did) and loop guard (a rule re-fired
by its own events is suspended, as it was; the events' causes are matched to
the recorded runs). A run is a dry run: its conditions are checked as at the
event's time and its actions are traced, never performed (see
:meth:`Engine.dry_run`).

Variables are the ones of the event's time: every change a run made is in the
log (``variable.changed``, with the value before and the id of the last event
the engine had handled then), so the replay starts from the values before the
first replayed event and applies each change where it happened (the live
engine checks a run's conditions when it handles the event, so the order is
exact). A dry run's own ``set`` only changes its scratch copy.

Said plainly per rule instead (``not_replayed``): rules on key presses or
clipboard text when those are not logged (``store_private`` off), file
triggers with ``settle`` (they look at the file on disk, now). Conditions on
the desktop (``window``, ``process``) cannot know the past and say so in
their verdicts (``caveat``). Pauses and resumes are in the log
(``app.paused``, ``app.resumed``): the replay pauses where Nerve did.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import heapq
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from nerve.bus import Bus
from nerve.engine.engine import Engine, RuleState, failed_condition
from nerve.engine.model import Rule
from nerve.engine.registry import Condition, Trigger
from nerve.engine.runs import RunContext
from nerve.events import PRIVATE_TYPES, Event, TypePattern, freeze, thaw

#: A run as the log keeps it: id, rule key, event id, started, ended, status.
RecordedRun = tuple[str, str, int | None, float, float | None, str]
_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: Runs of a rule kept as examples in the report.
EXAMPLES = 3
#: The event a run publishes for each variable it changes (``name value old``).
VARIABLE_CHANGED = "variable.changed"
#: Events the replay acts on itself (besides matching them).
_SPECIAL = frozenset({VARIABLE_CHANGED, "app.paused", "app.resumed"})
#: Conditions that read only the event, the time and the variables: a replay
#: knows them as they were. Others read the desktop now (their verdict says so).
_KNOWN_THEN = frozenset({"time", "event", "var", "all", "any", "not"})


@dataclass
class RuleReplay:
    """What one rule would have done over the replayed events."""

    key: str
    name: str
    #: Times its trigger fired (a run started, or a skip below).
    matched: int = 0
    would_run: int = 0
    conditions_false: int = 0
    failed: int = 0
    #: Runs a rate limit, its mode or its suspension refused, by reason.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Why the rule was suspended during the replay (a loop, a cascade).
    suspended: str | None = None
    #: Why its conditions did not hold the first time (``if[0] window: ...``).
    first_reason: str | None = None
    #: (event id, event time, status) of the first few runs.
    examples: list[tuple[int, float, str]] = field(default_factory=list)
    #: Why the rule cannot be replayed (None: it can).
    not_replayed: str | None = None
    #: What a replay cannot know for this rule (a condition on the desktop).
    caveat: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.key,
            "name": self.name,
            "matched": self.matched,
            "would_run": self.would_run,
            "conditions_false": self.conditions_false,
            "failed": self.failed,
            "skipped": dict(self.skipped),
            "suspended": self.suspended,
            "first_reason": self.first_reason,
            "examples": [{"event": i, "time": t, "status": s} for i, t, s in self.examples],
            "not_replayed": self.not_replayed,
            "caveat": self.caveat,
        }


def _all_triggers(trigger: Trigger) -> Iterable[Trigger]:
    yield trigger
    for child in getattr(trigger, "children", None) or ():
        yield from _all_triggers(child)


def _all_conditions(condition: Condition) -> Iterable[Condition]:
    yield condition
    for child in getattr(condition, "children", None) or ():
        yield from _all_conditions(child)


def not_replayable(rule: Rule, *, private_logged: bool = False) -> str | None:
    """Why ``rule`` cannot be replayed from the event log, or None."""
    reasons: list[str] = []
    for top in rule.triggers:
        for trigger in _all_triggers(top):
            if getattr(trigger, "settle", None):
                reasons.append(f"{trigger.key}: 'settle' looks at the file on disk, now")
            if not private_logged and any(m.type in PRIVATE_TYPES for m in trigger.matchers()):
                reasons.append(
                    f"{trigger.key}: key presses and clipboard text are not in the event log"
                    " (store_private is off)"
                )
    return ", ".join(dict.fromkeys(reasons)) or None


def caveat(rule: Rule) -> str | None:
    """What a replay cannot know about ``rule`` (conditions on the desktop), or None."""
    keys = [
        c.key for top in rule.conditions for c in _all_conditions(top) if c.key not in _KNOWN_THEN
    ]
    if not keys:
        return None
    names = ", ".join(dict.fromkeys(keys))
    return f"condition {names}: the desktop as it was then is not known, so it does not hold"


def stored_event(row: Mapping[str, Any]) -> Event:
    """An event as the store returns it (``Store.query_events``), as an Event."""
    data = row.get("data") or {}
    return Event(
        str(row["type"]),
        freeze(data) if data else MappingProxyType({}),
        str(row.get("source") or ""),
        int(row["id"]),
        float(row["time"]),
        0,
        row.get("cause"),
        int(row.get("depth") or 0),
    )


def logged_events(rows: Iterable[tuple[int, str, float, str, str, str | None, int]]) -> list[Event]:
    """Events from ``Store.raw_events`` rows: every row's data decoded in one go."""
    rows = list(rows)
    # Hundreds of thousands of new objects, none in a cycle: the collector
    # would walk them again and again for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        datas = json.loads("[" + ",".join(row[4] or "{}" for row in rows) + "]")
        return [
            Event(
                type_,
                freeze(data) if data else _EMPTY,
                source or "",
                id_,
                time_,
                0,
                cause,
                depth or 0,
            )
            for (id_, type_, time_, source, _, cause, depth), data in zip(rows, datas, strict=True)
        ]
    finally:
        if collecting:
            gc.enable()


def variables_before(current: Mapping[str, Any], events: Iterable[Event]) -> dict[str, Any]:
    """The variables as they were before ``events`` (oldest first), from their
    values now and the changes logged among the events."""
    before = dict(current)
    first: set[str] = set()
    for event in events:
        if event.type != VARIABLE_CHANGED:
            continue
        name = event.data.get("name")
        if not isinstance(name, str) or name in first:
            continue
        first.add(name)
        old = thaw(event.data.get("old"))
        if old is None:
            before.pop(name, None)
        else:
            before[name] = old
    return before


def _after(event: Event) -> int | None:
    """The ``after`` of a variable change (see :meth:`ReplayEngine.expect`), or None."""
    if event.type != VARIABLE_CHANGED:
        return None
    after = event.data.get("after")
    if isinstance(after, int) and not isinstance(after, bool) and 0 <= after < event.id:
        return after
    return None


class _Timer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _NoSchedules:
    """Schedules in a replay: their events are in the log already."""

    def add(self, job: str, trigger: BaseTrigger) -> None:
        pass

    def remove(self, job: str) -> None:
        pass

    def stop(self) -> None:
        pass


class ReplayEngine(Engine):
    """The live engine, on the clock of the recorded events, running dry runs.

    ``recorded``: the runs the log holds (``Store.run_times``): their ids tell
    the loop guard which events a rule caused itself; how long each took makes
    a run in progress refuse or queue the next as it did; and when one started
    right as its event was handled, that is the moment the engine handled the
    event (an event is published a little before it is handled: a run that
    ended in between did not make the engine busy)."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        variables: Mapping[str, Any] | None = None,
        recorded: Iterable[RecordedRun] = (),
    ) -> None:
        super().__init__(Bus(), workers=1)
        self.schedules = _NoSchedules()  # type: ignore[assignment]
        self.loop = asyncio.new_event_loop()
        self.variables.update(variables or {})
        rules = list(rules)
        # Rules whose runs start when their event is handled (not a debounce
        # or a 'for' later, not after a queue).
        at_once = {
            rule.key
            for rule in rules
            if not rule.debounce
            and rule.mode != "queued"
            and not any(t.key == "for" for top in rule.triggers for t in _all_triggers(top))
        }
        self.durations: dict[tuple[str, int], float] = {}
        self.handled_at: dict[int, int] = {}
        for run_id, rule_key, event_id, started, ended, _ in recorded:
            self._run_rules[run_id] = rule_key
            if event_id is None:
                continue
            if ended is not None:
                self.durations[(rule_key, event_id)] = max(0.0, ended - started)
            if rule_key in at_once:
                at = int(started * 1e9)
                self.handled_at[event_id] = min(self.handled_at.get(event_id, at), at)
        self._clock = 0
        self._timers: list[tuple[int, int, _Timer]] = []
        self._order = itertools.count()
        #: Per rule: when its runs in progress end (replayed clock).
        self._ends: dict[str, list[int]] = {}
        self._dry = itertools.count(1)
        self._changes: deque[tuple[int, Event]] = deque()
        self.reports: dict[str, RuleReplay] = {}
        self.set_rules(rules)

    def time_of(self, event: Event) -> int:
        """When the engine handled ``event`` (ns), as well as the log tells."""
        at = int(event.time * 1e9)
        handled = self.handled_at.get(event.id)
        return handled if handled is not None and handled > at else at

    def close(self) -> None:
        assert self.loop is not None
        self.loop.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._store_executor.shutdown(wait=False)

    # -------------------------------------------------------------- the clock

    def now_ns(self) -> int:
        return self._clock

    def call_later(self, seconds: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(callback)
        due = self._clock + max(0, int(seconds * 1e9))
        heapq.heappush(self._timers, (due, next(self._order), timer))
        return timer

    def advance(self, until_ns: int) -> None:
        """Run the timers due up to ``until_ns``, each at its time; then move there."""
        timers = self._timers
        while timers and timers[0][0] <= until_ns:
            due, _, timer = heapq.heappop(timers)
            self._clock = max(self._clock, due)
            if not timer.cancelled:
                timer.callback()
        self._clock = max(self._clock, until_ns)

    def expect(self, events: Iterable[Event]) -> None:
        """Take the variable changes among ``events`` (oldest first) ahead: each
        applies right after the event the live engine had handled last when the
        run made it (its ``after``), not where its own event sits in the log."""
        changed = VARIABLE_CHANGED
        for event in events:
            if event.type == changed:
                after = _after(event)
                if after is not None:
                    self._changes.append((after, event))

    def _apply(self, change: Event) -> None:
        name = change.data.get("name")
        if isinstance(name, str):
            value = thaw(change.data.get("value"))
            if value is None:
                self.variables.pop(name, None)
            else:
                self.variables[name] = value

    def run(self, events: Iterable[Event], only: TypePattern | None = None) -> None:
        """:meth:`feed` each event (``only``: only these types through the rules),
        with the common case (no timer due, no variable change) kept short."""
        changes, timers, handle = self._changes, self._timers, self._handle
        special, handled_at = _SPECIAL, self.handled_at
        for event in events:
            if (
                changes
                or event.type in special
                or event.id in handled_at
                or (timers and timers[0][0] <= event.time * 1e9)
                or (only is not None and not only.matches(event.type))
            ):
                self.feed(event, match=only is None or only.matches(event.type))
                continue
            now = int(event.time * 1e9)
            self._clock = max(self._clock, now)
            handle(event)

    def feed(self, event: Event, *, match: bool = True) -> None:
        """One recorded event, at its time (``match``: through the rules too)."""
        changes = self._changes
        while changes and changes[0][0] < event.id:
            self._apply(changes.popleft()[1])
        self.advance(self.time_of(event))
        if event.type == VARIABLE_CHANGED and _after(event) is None:
            self._apply(event)  # (no 'after': where it sits)
        elif event.type == "app.paused":
            self.pause(str(event.data.get("reason") or "paused"))
        elif event.type == "app.resumed":
            self.resume()
        if match:
            self._handle(event)

    # --------------------------------------------------------------- the runs

    def _admit(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        # The engine's modes, with runs that last as long as the recorded ones.
        rule = state.rule
        ends = [end for end in self._ends.get(rule.key, ()) if end > self._clock]
        self._ends[rule.key] = ends
        start = self._clock
        if ends:
            if rule.mode == "single":
                self._skip(state, "busy (mode single: a run is in progress)", event)
                return
            if rule.mode == "queued":
                if len(ends) >= rule.max:
                    self._skip(
                        state, f"queue full (max {rule.max} runs, running or waiting)", event
                    )
                    return
                start = max(ends)  # it waits for the last one
            elif rule.mode == "parallel" and len(ends) >= rule.max:
                self._skip(state, f"max ({rule.max} runs in parallel)", event)
                return
            elif rule.mode == "restart":
                self._ends[rule.key] = []
        if start > self._clock:
            # Its place is taken now; it runs when the runs before it ended.
            self._ends[rule.key].append(start + self._duration(rule, event))
            self.call_later(
                (start - self._clock) / 1e9,
                functools.partial(self._run_now, state, event, extra, reserved=True),
            )
            return
        self._start_run(state, event, extra)

    def _start_run(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        self._run_now(state, event, extra, reserved=False)

    def _duration(self, rule: Rule, event: Event) -> int:
        return int(self.durations.get((rule.key, event.id), 0.0) * 1e9)

    def _run_now(
        self, state: RuleState, event: Event, extra: dict[str, Any] | None, *, reserved: bool
    ) -> None:
        assert self.loop is not None
        if state.suspended is not None or not state.enabled:
            return
        rule = state.rule
        state.fired += 1
        state.last_fire_ns = self._clock
        ctx = RunContext(
            self, rule, event, extra, f"replay-{next(self._dry)}", dry_run=True, at=event.time
        )
        self.loop.run_until_complete(self.execute(ctx))
        report = self.reports[rule.key]
        if len(report.examples) < EXAMPLES:
            report.examples.append((event.id, event.time, ctx.status))
        if ctx.status == "condition":
            self._skip(state, "condition", event, failed_condition(ctx))
            if report.first_reason is None:
                report.first_reason = failed_condition(ctx)
            return
        state.ran += 1
        if ctx.status == "failed":
            report.failed += 1
        else:
            report.would_run += 1
        duration = self._duration(rule, event)
        end = self._clock + duration
        if not duration:
            state.last_end_ns = end
            return
        if not reserved:
            self._ends.setdefault(rule.key, []).append(end)

        def ended() -> None:
            state.last_end_ns = end

        self.call_later(duration / 1e9, ended)

    def _record(self, ctx: RunContext) -> None:
        pass

    def pause(self, reason: str = "paused", seconds: float | None = None) -> int:
        # As logged: the resume is in the log too. Runs in progress end now.
        self.paused = True
        self.pause_reason = f"paused by {reason}"
        for state in self._states.values():
            if state.debounce is not None:
                state.debounce.cancel()
                state.debounce = state.debounced = None
            if any(end > self._clock for end in self._ends.pop(state.rule.key, ())):
                state.last_end_ns = self._clock
        return 0

    def resume(self) -> None:
        self.paused = False
        self.pause_reason = None

    def _suspend(self, state: RuleState, reason: str, event: Event) -> None:
        state.suspended = reason
        self._stop_rule(state)
        self._ends.pop(state.rule.key, None)
        self._reindex()


def replay(
    rules: Iterable[Rule],
    events: Iterable[Event],
    *,
    variables: Mapping[str, Any] | None = None,
    recorded: Iterable[RecordedRun] = (),
    private_logged: bool = False,
    type_pattern: str | None = None,
    until: float | None = None,
) -> list[RuleReplay]:
    """Dry-run ``rules`` over ``events`` (oldest first); one report per rule.

    ``variables``: their values before the first event (see
    :func:`variables_before`); ``recorded``: the runs in the log (see
    :class:`ReplayEngine`); ``type_pattern``: only events of these types
    start rules (variable changes apply all the same); ``until``: the time the
    replay ends (timers due by then run; default: now)."""
    rules = list(rules)
    reports = {rule.key: RuleReplay(rule.key, rule.name) for rule in rules}
    live: list[Rule] = []
    for rule in rules:
        report = reports[rule.key]
        report.not_replayed = not_replayable(rule, private_logged=private_logged)
        report.caveat = caveat(rule)
        if report.not_replayed is None:
            live.append(rule)
    engine = ReplayEngine(live, variables=variables, recorded=recorded)
    engine.reports = reports
    only = TypePattern([type_pattern]) if type_pattern else None
    events = list(events)
    engine.expect(events)
    try:
        engine.run(events, only)
        # Timers still pending at the end of the log (a debounce, a 'for') ran
        # until now, as they did (or still will).
        engine.advance(int((until if until is not None else time.time()) * 1e9))
        for summary in engine.rules():
            report = reports[summary["key"]]
            skips = dict(summary["skips"])
            report.conditions_false = skips.pop("condition", 0)
            report.skipped = skips
            report.suspended = summary["suspended"]
            report.matched = summary["fired"] + sum(skips.values())
    finally:
        engine.close()
    return list(reports.values())
