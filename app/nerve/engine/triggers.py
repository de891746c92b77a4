"""The core triggers: ``event``, ``schedule``, ``sequence``, ``count`` and ``for``.

Input, file, process and window triggers live with their listeners and plug
into the same registry.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from nerve import matching
from nerve.durations import DURATION_SCHEMA, parse_duration
from nerve.engine.compiler import any_trigger_schema, compile_trigger
from nerve.engine.cron_text import describe_cron
from nerve.engine.registry import (
    AlreadyReported,
    CompileContext,
    ConfigError,
    Matcher,
    Trigger,
    triggers,
)
from nerve.events import (
    SOURCE_KINDS,
    Event,
    fields_for,
    read_capabilities,
    source_kind,
    source_pack,
    valid_type,
)
from nerve.ranges import MAX_COUNT


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


class TriggerHost(Protocol):
    """What the engine offers a trigger of one rule."""

    rule_key: str

    def fire(self, event: Event, extra: dict[str, Any] | None = None) -> None: ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Cancellable: ...

    def now_ns(self) -> int: ...

    def add_schedule(self, job: str, trigger: BaseTrigger) -> None: ...

    def remove_schedule(self, job: str) -> None: ...


def _field_getter(event: Event) -> Callable[[str], Any]:
    return lambda name: event.get(name, matching.MISSING)


# ---------------------------------------------------------------------------

FROM_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ],
    "description": (
        "Only events from these sources: 'self' (this pack's rules), 'rules' (any "
        "pack's rules), a pack id or 'pack:ID' (that pack's rules), 'cli' (`nerve emit`), "
        "'nerve' (Nerve's own listeners, schedules and engine), 'mqtt', 'nats', 'webhook'. "
        "Without it, any source (events that rules emit come only from approved packs)"
    ),
}


class SourceFilter:
    """Which sources a rule accepts an event from (its ``from:``)."""

    def __init__(self, kinds: frozenset[str], packs: frozenset[str], names: tuple[str, ...]):
        self.kinds = kinds
        self.packs = packs
        self.names = names

    @classmethod
    def compile(cls, value: Any, own_pack: str) -> SourceFilter:
        items = [value] if isinstance(value, str) else list(value)
        kinds: set[str] = set()
        packs: set[str] = set()
        for i, item in enumerate(items):
            name = item.strip()
            where: tuple[str | int, ...] = ("from",) if isinstance(value, str) else ("from", i)
            if name.startswith("pack:"):
                pack = name[5:]
            elif name in SOURCE_KINDS:
                if name == "self":
                    packs.add(own_pack)
                else:
                    kinds.add(name)
                continue
            else:
                pack = name
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]{0,99}", pack):
                raise ConfigError(
                    f"{item!r} is not a source: use {', '.join(SOURCE_KINDS)}, "
                    "or a pack id (pack:ID)",
                    where,
                )
            packs.add(pack)
        return cls(frozenset(kinds), frozenset(packs), tuple(items))

    def __call__(self, source: str) -> bool:
        pack = source_pack(source)
        if pack is not None:
            return "rules" in self.kinds or pack in self.packs
        return source_kind(source) in self.kinds


@triggers.register
class EventTrigger(Trigger):
    """Any event by type (glob allowed), with optional field matches."""

    key = "event"
    description = "Any event by type (file.*, my.custom), with optional matches on its data"
    schema = {
        "anyOf": [
            {"type": "string", "description": "An event type or type pattern"},
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "description": "Event type or pattern (file.*)"},
                    "data": {
                        "type": "object",
                        "additionalProperties": matching.SPEC_SCHEMA,
                        "description": "Field matches on the event's data",
                    },
                    "source": matching.SPEC_SCHEMA,
                    "from": FROM_SCHEMA,
                },
                "required": ["type"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(
        self, type_: str, specs: dict[str, Any], source: Any, accept: SourceFilter | None = None
    ) -> None:
        self.type = type_
        self.specs = specs
        self.source = source
        self.accept = accept
        index_field = next((k for k, v in specs.items() if matching.is_exact(v)), None)
        self.index = (index_field, specs[index_field]) if index_field else None
        rest = {k: v for k, v in specs.items() if k != index_field}
        if source is not None:
            rest["source"] = source
        check = matching.compile_fields(rest) if rest else None
        predicate: Callable[[Event], bool] | None = (
            (lambda e: check(_field_getter(e))) if check else None
        )
        if accept is not None:
            fields = predicate
            predicate = (
                (lambda e: accept(e.source) and fields(e))
                if fields is not None
                else (lambda e: accept(e.source))
            )
        self.predicate = predicate

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> EventTrigger:
        if isinstance(options, str):
            options = {"type": options}
        type_ = options["type"]
        bare = type_.replace("*", "a").replace("?", "a").replace("[", "").replace("]", "")
        if not valid_type(bare):
            raise ConfigError(
                f"{type_!r} is not an event type: use lower-case dotted names (file.created)",
                ("type",),
            )
        specs = dict(options.get("data", {}))
        for name, spec in specs.items():
            try:
                matching.compile_spec(spec)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), ("data", name)) from None
        accept = None
        if "from" in options:
            own = ctx.rule_key.rpartition("/")[0]
            accept = SourceFilter.compile(options["from"], own)
        return cls(type_, specs, options.get("source"), accept)

    def matchers(self) -> list[Matcher]:
        return [Matcher(self.type, self.index, self.predicate)]

    def mismatch(self, event: Event) -> str | None:
        """Which of its matches ``event`` fails (for ``nerve why``), or None."""
        if self.accept is not None and not self.accept(event.source):
            return f"it came from {event.source!r}; from: {', '.join(self.accept.names)}"
        specs = dict(self.specs)
        if self.source is not None:
            specs["source"] = self.source
        for name, spec in specs.items():
            value = event.get(name, matching.MISSING)
            if not matching.compile_spec(spec)(value):
                shown = "missing" if value is matching.MISSING else f"was {value!r}"
                return f"{name} {shown}, wanted {spec!r}"
        return None

    def event_fields(self) -> frozenset[str] | None:
        return fields_for(self.type)

    def trigger_capabilities(self) -> frozenset[str]:
        # Listening to key, clipboard or mouse events is reading them.
        return self.capabilities | self.concrete | read_capabilities(self.type)

    def event_hint(self) -> str:
        return f"{self.type} events"

    def describe(self) -> str:
        return f"event {self.type}"


# ---------------------------------------------------------------------------


@triggers.register
class ScheduleTrigger(Trigger):
    """Time-based: a cron expression, an interval, or a moment."""

    key = "schedule"
    description = "At times: cron ('*/5 * * * *'), every (10m), or at ('07:30', '2026-12-24 18:00')"
    schema = {
        "type": "object",
        "properties": {
            "cron": {
                "type": "string",
                "description": "Five-field cron: minute hour day month weekday",
            },
            "every": DURATION_SCHEMA,
            "at": {"type": "string", "description": "HH:MM every day, or YYYY-MM-DD HH:MM once"},
            "weekdays": {
                "type": "array",
                "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
                "description": "With 'at': only on these days",
            },
        },
        "additionalProperties": False,
        "minProperties": 1,
    }

    def __init__(self, job: str, trigger: BaseTrigger, text: str) -> None:
        self.job = job
        self.trigger = trigger
        self.text = text
        self._host: Any = None

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> ScheduleTrigger:
        kinds = [k for k in ("cron", "every", "at") if k in options]
        if len(kinds) != 1:
            raise ConfigError("give exactly one of 'cron', 'every' or 'at'")
        kind = kinds[0]
        if "weekdays" in options and kind != "at":
            raise ConfigError("'weekdays' goes with 'at'", ("weekdays",))
        trigger: BaseTrigger
        if kind == "cron":
            try:
                trigger = CronTrigger.from_crontab(_apscheduler_crontab(options["cron"]))
            except ValueError as exc:
                raise ConfigError(
                    f"bad cron expression {options['cron']!r}: {exc}", ("cron",)
                ) from None
            if not _cron_can_fire(trigger):
                raise ConfigError(
                    f"cron expression {options['cron']!r} never fires: no month it allows "
                    "has the day it asks for (February has at most 29 days; April, June, "
                    "September and November 30)",
                    ("cron",),
                )
            text = describe_cron(options["cron"])
        elif kind == "every":
            seconds = parse_duration(options["every"])
            if seconds < 0.1:
                raise ConfigError("'every' must be at least 100ms", ("every",))
            trigger = IntervalTrigger(seconds=seconds)
            text = f"every {options['every']}"
        else:
            trigger, text = _at_trigger(options["at"], options.get("weekdays"))
        job = f"{ctx.rule_key}/schedule{ctx.counter('schedule')}"
        return cls(job, trigger, text)

    def matchers(self) -> list[Matcher]:
        return [Matcher("schedule", ("job", self.job))]

    def start(self, host: Any) -> None:
        self._host = host
        host.add_schedule(self.job, self.trigger)

    def stop(self) -> None:
        if self._host is not None:
            self._host.remove_schedule(self.job)
            self._host = None

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("schedule")

    def event_hint(self) -> str:
        return "schedule events"

    def next_fire_times(self, count: int = 5, now: dt.datetime | None = None) -> list[dt.datetime]:
        """The next ``count`` times this schedule fires (for the editor's cron helper)."""
        now = now or dt.datetime.now().astimezone()
        out: list[dt.datetime] = []
        previous = None
        for _ in range(count):
            nxt = self.trigger.get_next_fire_time(previous, now)
            if nxt is None or nxt < now:  # a one-off moment already past fires no more
                break
            out.append(nxt)
            previous = nxt
            now = nxt + dt.timedelta(microseconds=1)
        return out

    def describe(self) -> str:
        return self.text


_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _cron_can_fire(trigger: CronTrigger) -> bool:
    """Whether ``trigger`` fires at all (``0 0 31 2 *`` does not).

    APScheduler answers that by searching up to the year 9999, which takes most
    of a second per expression; here every day of a leap year is tried against
    the month and day fields. The weekday needs no trying: over the 400 years
    of the Gregorian cycle every date falls on every weekday, and hours and
    minutes always exist."""
    fields = {field.name: field for field in trigger.fields}
    month, day = fields["month"], fields["day"]
    first = dt.datetime(2028, 1, 1)  # a leap year: February 29 counts
    for offset in range(366):
        date = first + dt.timedelta(days=offset)
        if month.get_next_value(date) == date.month and day.get_next_value(date) == date.day:
            return True
    return False


_CRON_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _apscheduler_crontab(expression: str) -> str:
    """``expression`` with its day-of-week numbers written as names.

    In crontab 0 (and 7) is Sunday; APScheduler 3 reads numbers as 0=Monday,
    so ``0 9 * * 1`` would fire on Tuesdays. Names mean the same to both.
    """
    fields = expression.split()
    if len(fields) != 5:
        return expression  # APScheduler explains what is wrong
    items = []
    for item in fields[4].split(","):
        spec, _, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() else None
        lo, dash, hi = spec.partition("-")
        if spec == "*":
            if step is None:
                items.append("*")
                continue
            days = list(range(0, 7, step))
        elif lo.isdigit() and (not dash or hi.isdigit()):
            first, last = int(lo), int(hi) if dash else int(lo)
            if first > 7 or last > 7 or first > last:
                items.append(item)  # let APScheduler report it
                continue
            days = list(range(first, last + 1, step or 1))
        else:
            items.append(item)  # names, or something APScheduler will report
            continue
        items.extend(dict.fromkeys(_CRON_DAYS[d] for d in days))
    fields[4] = ",".join(dict.fromkeys(items))
    return " ".join(fields)


def _at_trigger(text: str, weekdays: list[str] | None) -> tuple[BaseTrigger, str]:
    value = text.strip()
    try:
        moment = dt.datetime.strptime(value, "%H:%M")
    except ValueError:
        pass
    else:
        days = ",".join(weekdays) if weekdays else "*"
        trigger = CronTrigger(hour=moment.hour, minute=moment.minute, day_of_week=days)
        return trigger, f"at {value}" + (f" on {days}" if weekdays else "")
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            when = dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
        if weekdays:
            raise ConfigError("'weekdays' goes with a daily time (HH:MM)", ("weekdays",))
        try:
            moment = when.astimezone()
        except (ValueError, OverflowError):  # year 1 in a zone east of UTC, say
            raise ConfigError(f"{text!r} is out of the range of dates", ("at",)) from None
        return DateTrigger(run_date=moment), f"once at {value}"
    raise ConfigError(f"expected HH:MM or YYYY-MM-DD HH:MM, got {text!r}", ("at",))


# ---------------------------------------------------------------------------
# Composite triggers feed the events their children fire into a small state
# machine. Children can be any trigger, composites included.


class _ChildHost:
    """The host a composite gives a child: its fires go to the composite."""

    def __init__(self, parent: _Composite, index: int, host: TriggerHost) -> None:
        self.parent = parent
        self.index = index
        self.host = host
        self.rule_key = host.rule_key

    def fire(self, event: Event, extra: dict[str, Any] | None = None) -> None:
        self.parent.child_fired(self.index, event, self.host)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Cancellable:
        return self.host.call_later(seconds, callback)

    def now_ns(self) -> int:
        return self.host.now_ns()

    def add_schedule(self, job: str, trigger: BaseTrigger) -> None:
        self.host.add_schedule(job, trigger)

    def remove_schedule(self, job: str) -> None:
        self.host.remove_schedule(job)


class _Composite(Trigger):
    children: list[Trigger]

    def matchers(self) -> list[Matcher]:
        return [
            Matcher(m.type, m.index, m.predicate, (i, m))
            for i, child in enumerate(self.children)
            for m in child.matchers()
        ]

    def on_match(self, event: Event, matcher: Matcher, host: TriggerHost) -> None:
        index, inner = matcher.tag
        self.children[index].on_match(event, inner, _ChildHost(self, index, host))

    def start(self, host: TriggerHost) -> None:
        for i, child in enumerate(self.children):
            child.start(_ChildHost(self, i, host))

    def stop(self) -> None:
        for child in self.children:
            child.stop()
        self.reset()

    def reset(self) -> None:
        """Forget partial progress."""

    def child_fired(self, index: int, event: Event, host: TriggerHost) -> None:
        raise NotImplementedError


def _compile_children(
    nodes: list[Any], ctx: CompileContext, path: tuple[str | int, ...]
) -> list[Trigger]:
    before = len(ctx.errors)
    base = (*ctx.current_path, *path)
    children = [compile_trigger(node, ctx, (*base, i)) for i, node in enumerate(nodes)]
    if len(ctx.errors) > before or any(c is None for c in children):
        raise AlreadyReported()
    return [c for c in children if c is not None]


def _compile_one_child(node: Any, ctx: CompileContext, key: str) -> list[Trigger]:
    before = len(ctx.errors)
    child = compile_trigger(node, ctx, (*ctx.current_path, key))
    if child is None or len(ctx.errors) > before:
        raise AlreadyReported()
    return [child]


_MAX_PARTIAL = 256


@triggers.register
class SequenceTrigger(_Composite):
    """Steps in order within a time window."""

    key = "sequence"
    description = "Steps (triggers) in order within a window; other events may come between"
    schema = {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/trigger"}},
            "within": DURATION_SCHEMA,
        },
        "required": ["steps", "within"],
        "additionalProperties": False,
    }

    def __init__(self, children: list[Trigger], within_s: float) -> None:
        self.children = children
        self.within_ns = int(within_s * 1e9)
        # Each partial match: [started_ns, next_step, last_event_id, [event ids]]
        self._partials: deque[list[Any]] = deque()

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> SequenceTrigger:
        children = _compile_children(options["steps"], ctx, ("steps",))
        return cls(children, parse_duration(options["within"]))

    def reset(self) -> None:
        self._partials.clear()

    def child_fired(self, index: int, event: Event, host: TriggerHost) -> None:
        now = host.now_ns()
        partials = self._partials
        while partials and now - partials[0][0] > self.within_ns:
            partials.popleft()
        last = len(self.children) - 1
        for partial in list(partials):
            if partial[1] == index and partial[2] != event.id:
                if index == last:
                    ids = [*partial[3], event.id]
                    partials.clear()
                    host.fire(event, {"sequence": ids})
                    return
                partial[1] += 1
                partial[2] = event.id
                partial[3].append(event.id)
        if index == 0 and not any(p[2] == event.id for p in partials):
            if len(partials) >= _MAX_PARTIAL:
                partials.popleft()
            partials.append([now, 1, event.id, [event.id]])

    def event_fields(self) -> frozenset[str] | None:
        return self.children[-1].event_fields()

    def event_hint(self) -> str:
        return self.children[-1].event_hint()

    def describe(self) -> str:
        steps = " then ".join(c.describe() for c in self.children)
        return f"sequence {steps} within {self.within_ns / 1e9:g}s"


@triggers.register
class CountTrigger(_Composite):
    """N occurrences of a trigger within a window."""

    key = "count"
    description = "A trigger happening 'times' times within a window"
    schema = {
        "type": "object",
        "properties": {
            "of": {"$ref": "#/$defs/trigger"},
            "times": {"type": "integer", "minimum": 2, "maximum": MAX_COUNT},
            "within": DURATION_SCHEMA,
        },
        "required": ["of", "times", "within"],
        "additionalProperties": False,
    }

    def __init__(self, child: Trigger, times: int, within_s: float) -> None:
        self.children = [child]
        self.times = times
        self.within_ns = int(within_s * 1e9)
        self._seen: deque[int] = deque(maxlen=times)

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> CountTrigger:
        children = _compile_one_child(options["of"], ctx, "of")
        return cls(children[0], options["times"], parse_duration(options["within"]))

    def reset(self) -> None:
        self._seen.clear()

    def child_fired(self, index: int, event: Event, host: TriggerHost) -> None:
        now = host.now_ns()
        seen = self._seen
        while seen and now - seen[0] > self.within_ns:
            seen.popleft()
        seen.append(now)
        if len(seen) >= self.times:
            seen.clear()
            host.fire(event, {"count": self.times})

    def event_fields(self) -> frozenset[str] | None:
        return self.children[0].event_fields()

    def event_hint(self) -> str:
        return self.children[0].event_hint()

    def describe(self) -> str:
        return f"{self.children[0].describe()} {self.times} times within {self.within_ns / 1e9:g}s"


@triggers.register
class ForTrigger(_Composite):
    """A state held for a duration: ``start`` happened and ``stop`` did not follow
    within ``duration`` (also the way to say "A not followed by B")."""

    key = "for"
    description = "Fires when 'start' happened and 'stop' did not follow within 'duration'"
    schema = {
        "type": "object",
        "properties": {
            "start": {"$ref": "#/$defs/trigger"},
            "stop": {"$ref": "#/$defs/trigger"},
            "duration": DURATION_SCHEMA,
        },
        "required": ["start", "stop", "duration"],
        "additionalProperties": False,
    }

    def __init__(self, start: Trigger, stop: Trigger, duration_s: float) -> None:
        self.children = [start, stop]
        self.duration_s = duration_s
        self._timer: Cancellable | None = None

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> ForTrigger:
        start = _compile_one_child(options["start"], ctx, "start")[0]
        stop = _compile_one_child(options["stop"], ctx, "stop")[0]
        return cls(start, stop, parse_duration(options["duration"]))

    def reset(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def child_fired(self, index: int, event: Event, host: TriggerHost) -> None:
        if index == 1:
            self.reset()
            return
        if self._timer is not None:
            return  # already held since an earlier start

        def held() -> None:
            self._timer = None
            host.fire(event, {"held_s": self.duration_s})

        self._timer = host.call_later(self.duration_s, held)

    def event_fields(self) -> frozenset[str] | None:
        return self.children[0].event_fields()

    def event_hint(self) -> str:
        return self.children[0].event_hint()

    def describe(self) -> str:
        start, stop = self.children
        return f"{start.describe()} without {stop.describe()} for {self.duration_s:g}s"


def trigger_defs() -> dict[str, Any]:
    """Schema definitions that composite triggers refer to."""
    return {"trigger": any_trigger_schema()}
