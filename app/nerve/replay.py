"""Replaying the event log through rules as a dry run: which rules would have fired.

Stored events are taken oldest first. Each one is matched against each rule's
triggers exactly as the engine matches (type, indexed field, the rest of the
trigger's matches); where a trigger fires on a single event, the rule is
dry-run for that event: its conditions are checked as at the event's time and
its actions are traced, never performed (see :meth:`Engine.dry_run`).

Not replayed, and reported as such: triggers that depend on the time between
events (``sequence``, ``count``, ``for``) or on the clock (``schedule``), and
rate controls (``debounce``, ``throttle``, ``cooldown``). Key presses and the
clipboard are not in the event log unless the user turned that on, so rules on
them have nothing to match; ``window`` conditions cannot know which window was
active then and say so in their verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nerve import matching
from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.engine.model import Rule
from nerve.engine.registry import Matcher, Trigger
from nerve.events import Event, TypePattern, freeze
from nerve.templates import EVENT_ATTRS

#: Runs of a rule kept as examples in the report.
EXAMPLES = 3


@dataclass
class RuleReplay:
    """What one rule would have done over the replayed events."""

    key: str
    name: str
    matched: int = 0
    would_run: int = 0
    conditions_false: int = 0
    failed: int = 0
    #: Why its conditions did not hold the first time (``if[0] window: ...``).
    first_reason: str | None = None
    #: (event id, event time, status) of the first few runs.
    examples: list[tuple[int, float, str]] = field(default_factory=list)
    #: Why the rule cannot be replayed (None: it can).
    not_replayed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.key,
            "name": self.name,
            "matched": self.matched,
            "would_run": self.would_run,
            "conditions_false": self.conditions_false,
            "failed": self.failed,
            "first_reason": self.first_reason,
            "examples": [{"event": i, "time": t, "status": s} for i, t, s in self.examples],
            "not_replayed": self.not_replayed,
        }


def not_replayable(rule: Rule) -> str | None:
    """Why ``rule`` cannot be replayed event by event, or None."""
    reasons = [_why_not(trigger) for trigger in rule.triggers]
    if reasons and all(reasons):
        return ", ".join(dict.fromkeys(r for r in reasons if r))
    return None


def _why_not(trigger: Trigger) -> str | None:
    if getattr(trigger, "children", None) or type(trigger).on_match is not Trigger.on_match:
        return f"{trigger.key}: depends on the time between events"
    if not trigger.matchers():
        return f"{trigger.key}: fires on the clock"
    return None


def _hits(matcher: Matcher, pattern: TypePattern, event: Event) -> bool:
    """Whether ``event`` fires ``matcher``, with the engine's index semantics."""
    if not pattern.matches(event.type):
        return False
    if matcher.index is not None:
        name, want = matcher.index
        top = "." not in name and name not in EVENT_ATTRS
        value = event.data.get(name) if top else event.get(name)
        if value is None:
            return False
        if isinstance(want, str):
            if (value if type(value) is str else matching.text_key(value)) != want:
                return False
        elif matching.number_key(value) != float(want):
            return False
    return matcher.predicate is None or matcher.predicate(event)


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


def replay(
    rules: Iterable[Rule],
    events: Iterable[Event],
    *,
    variables: Mapping[str, Any] | None = None,
) -> list[RuleReplay]:
    """Dry-run ``rules`` over ``events`` (oldest first); one report per rule."""
    rules = list(rules)
    reports = {rule.key: RuleReplay(rule.key, rule.name) for rule in rules}
    live: list[tuple[Rule, list[tuple[Matcher, TypePattern]]]] = []
    for rule in rules:
        reason = not_replayable(rule)
        if reason:
            reports[rule.key].not_replayed = reason
            continue
        matchers = [
            (m, TypePattern([m.type]))
            for trigger in rule.triggers
            if _why_not(trigger) is None
            for m in trigger.matchers()
        ]
        live.append((rule, matchers))
    engine = Engine(Bus())
    engine.variables.update(variables or {})
    engine.start()
    try:
        assert engine.loop is not None
        for event in events:
            for rule, matchers in live:
                if not any(_hits(m, pattern, event) for m, pattern in matchers):
                    continue
                report = reports[rule.key]
                report.matched += 1
                future = asyncio.run_coroutine_threadsafe(
                    engine.dry_run(rule, event, at=event.time), engine.loop
                )
                ctx = future.result(timeout=30)
                if ctx.status == "condition":
                    report.conditions_false += 1
                    if report.first_reason is None:
                        failed = [c for c in ctx.trace.conditions if not c.get("ok")]
                        if failed:
                            first = failed[0]
                            report.first_reason = (
                                f"{first.get('path')} {first.get('condition')}: "
                                f"{first.get('detail')}"
                            )
                elif ctx.status == "failed":
                    report.failed += 1
                else:
                    report.would_run += 1
                if len(report.examples) < EXAMPLES:
                    report.examples.append((event.id, event.time, ctx.status))
    finally:
        engine.stop()
    return list(reports.values())
