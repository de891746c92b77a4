"""The core conditions: ``time``, ``event``, ``var``, ``all``, ``any`` and ``not``.

Window and process conditions live with their listeners and plug into the
same registry.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from nerve import matching
from nerve.engine.compiler import compile_conditions
from nerve.engine.registry import (
    AlreadyReported,
    CompileContext,
    Condition,
    ConfigError,
    conditions,
)
from nerve.engine.runs import RunContext
from nerve.events import thaw

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _clock(text: str, field: str) -> dt.time:
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    raise ConfigError(f"expected a time of day such as 08:00, got {text!r}", (field,))


@conditions.register
class TimeCondition(Condition):
    """Time of day and day of week. ``after`` later than ``before`` spans midnight."""

    key = "time"
    description = "Time of day (after/before, spanning midnight when after > before) and weekdays"
    schema = {
        "type": "object",
        "properties": {
            "after": {"type": "string", "description": "HH:MM"},
            "before": {"type": "string", "description": "HH:MM"},
            "weekdays": {"type": "array", "items": {"enum": _DAYS}, "minItems": 1},
        },
        "additionalProperties": False,
        "minProperties": 1,
    }

    def __init__(self, after: dt.time | None, before: dt.time | None, days: set[int] | None):
        self.after = after
        self.before = before
        self.days = days

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> TimeCondition:
        after = _clock(options["after"], "after") if "after" in options else None
        before = _clock(options["before"], "before") if "before" in options else None
        days = {_DAYS.index(d) for d in options["weekdays"]} if "weekdays" in options else None
        return cls(after, before, days)

    def holds_at(self, now: dt.datetime) -> bool:
        t = now.time()
        if self.after is not None and self.before is not None and self.after > self.before:
            in_window = t >= self.after or t < self.before
            # Past midnight the day that counts is the one the window started on.
            day = (now - dt.timedelta(days=1)).weekday() if t < self.before else now.weekday()
        else:
            in_window = (self.after is None or t >= self.after) and (
                self.before is None or t < self.before
            )
            day = now.weekday()
        return in_window and (self.days is None or day in self.days)

    def check(self, run: RunContext) -> tuple[bool, str]:
        now = run.now()
        ok = self.holds_at(now)
        return ok, f"it is {now:%a %H:%M}"


@conditions.register
class EventCondition(Condition):
    """Fields of the event that started the run."""

    key = "event"
    description = "Matches on the triggering event's fields (type, or data fields by name)"
    schema = {"type": "object", "additionalProperties": matching.SPEC_SCHEMA, "minProperties": 1}

    def __init__(self, specs: dict[str, Any]) -> None:
        self.specs = specs
        self.check_fields = matching.compile_fields(specs)

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> EventCondition:
        for name, spec in options.items():
            try:
                matching.compile_spec(spec)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), (name,)) from None
        return cls(dict(options))

    def check(self, run: RunContext) -> tuple[bool, str]:
        event = run.event
        ok = self.check_fields(lambda n: event.get(n, matching.MISSING))
        shown = {n: thaw(event.get(n)) for n in self.specs}
        return ok, f"event has {_json(shown)}"


@conditions.register
class VarCondition(Condition):
    """Variables set by ``set`` actions (they survive restarts)."""

    key = "var"
    description = "Compares variables (set by the 'set' action) with values or operators"
    schema = {"type": "object", "additionalProperties": matching.SPEC_SCHEMA, "minProperties": 1}

    def __init__(self, specs: dict[str, Any]) -> None:
        self.specs = specs
        self.check_fields = matching.compile_fields(specs)

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> VarCondition:
        for name, spec in options.items():
            try:
                matching.compile_spec(spec)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), (name,)) from None
        return cls(dict(options))

    def check(self, run: RunContext) -> tuple[bool, str]:
        values = run.variables
        ok = self.check_fields(lambda n: values.get(n, matching.MISSING))
        shown = {n: values.get(n) for n in self.specs}
        return ok, f"variables are {_json(shown)}"


class _Group(Condition):
    children: list[Condition]

    schema = {
        "anyOf": [
            {"$ref": "#/$defs/condition"},
            {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
        ]
    }

    def __init__(self, children: list[Condition]) -> None:
        self.children = children

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> Condition:
        before = len(ctx.errors)
        # The node path is prefixed by the caller through ConfigError paths;
        # nested errors carry their full path via the context.
        children = compile_conditions(options, ctx, ctx.current_path)
        if len(ctx.errors) > before:
            raise AlreadyReported()
        return cls(children)

    def verdicts(self, run: RunContext) -> list[tuple[bool, str]]:
        return [c.check(run) for c in self.children]


@conditions.register
class AllCondition(_Group):
    key = "all"
    description = "Every condition in the list holds"

    def check(self, run: RunContext) -> tuple[bool, str]:
        for i, child in enumerate(self.children):
            ok, why = child.check(run)
            if not ok:
                return False, f"[{i}] {child.key}: {why}"
        return True, "all hold"


@conditions.register
class AnyCondition(_Group):
    key = "any"
    description = "At least one condition in the list holds"

    def check(self, run: RunContext) -> tuple[bool, str]:
        reasons = []
        for i, child in enumerate(self.children):
            ok, why = child.check(run)
            if ok:
                return True, f"[{i}] {child.key}: {why}"
            reasons.append(f"[{i}] {child.key}: {why}")
        return False, "none holds: " + "; ".join(reasons)


@conditions.register
class NotCondition(_Group):
    key = "not"
    description = "None of the conditions holds"

    def check(self, run: RunContext) -> tuple[bool, str]:
        for i, child in enumerate(self.children):
            ok, why = child.check(run)
            if ok:
                return False, f"[{i}] {child.key} holds: {why}"
        return True, "none holds"


def _json(values: dict[str, Any]) -> str:
    """Values as the user wrote them in YAML/JSON (null, true), not as Python shows them."""
    return json.dumps(values, ensure_ascii=False, default=str)
