"""Actions about the run and the engine itself: ``delay``, ``wait_for``,
``if``, ``set``, ``log``, ``notify``, ``emit``, ``pause``, ``rule.enable``,
``rule.disable``, and the flow of a run: ``stop``, ``repeat`` and ``parallel``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from nerve.durations import DURATION_SCHEMA, parse_duration
from nerve.engine import caps
from nerve.engine.actions._common import rendered, templated, text
from nerve.engine.compiler import compile_actions, compile_conditions
from nerve.engine.registry import (
    Action,
    ActionError,
    AlreadyReported,
    CompileContext,
    Condition,
    ConfigError,
    actions,
)
from nerve.engine.runs import RunContext, Stop, Stopped, Trace, run_actions
from nerve.engine.triggers import EventTrigger
from nerve.events import reserved_type, thaw, valid_type
from nerve.templates import Names, Template, to_text

log = logging.getLogger("nerve.rules")


@actions.register
class DelayAction(Action):
    """Wait; a pause or restart cancels the wait at once."""

    key = "delay"
    description = (
        "Wait for a duration (500ms, 2s, 10m); a placeholder is read when the run gets here"
    )
    schema = DURATION_SCHEMA

    def __init__(self, seconds: float | None, template: Template | None) -> None:
        self.seconds = seconds
        self.template = template

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> DelayAction:
        if isinstance(options, str) and "{" in options:
            return cls(None, ctx.template(options))
        return cls(parse_duration(options), None)

    async def execute(self, run: RunContext) -> Any:
        seconds = self.seconds
        if seconds is None:
            assert self.template is not None
            value = self.template.render(run.scope)
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                raise ActionError(str(exc)) from None
        if run.dry_run:  # a test of the rule shows the wait, it does not make you sit through it
            return {"would_wait_s": seconds}
        await asyncio.sleep(seconds)
        return {"waited_s": seconds}


DelayAction.schema = {"anyOf": [*DURATION_SCHEMA["anyOf"], {"type": "string", "pattern": r"\{"}]}


@actions.register
class WaitForAction(Action):
    """Wait for an event (with a timeout)."""

    key = "wait_for"
    description = "Wait until an event arrives (type and data matches), at most 'timeout'"
    schema = {
        "type": "object",
        "properties": {
            "event": EventTrigger.schema,
            "timeout": DURATION_SCHEMA,
            "continue_on_timeout": {"type": "boolean"},
        },
        "required": ["event", "timeout"],
        "additionalProperties": False,
    }

    def __init__(self, trigger: EventTrigger, timeout: float, go_on: bool) -> None:
        self.trigger = trigger
        self.timeout = timeout
        self.go_on = go_on

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> WaitForAction:
        try:
            trigger = EventTrigger.compile(options["event"], ctx)
        except ConfigError as exc:
            raise ConfigError(exc.message, ("event", *exc.path)) from None
        return cls(
            trigger, parse_duration(options["timeout"]), bool(options.get("continue_on_timeout"))
        )

    def action_capabilities(self) -> frozenset[str]:
        return self.capabilities | self.concrete | self.trigger.trigger_capabilities()

    async def execute(self, run: RunContext) -> Any:
        (matcher,) = self.trigger.matchers()
        try:
            event = await run.engine.wait_for(matcher, self.timeout)
        except TimeoutError:
            if self.go_on:
                return {"timed_out": True}
            raise ActionError(f"no {self.trigger.type} event within {self.timeout:g}s") from None
        return {"event": event.id, "type": event.type}


@actions.register
class IfAction(Action):
    """``if: [conditions]`` with ``then: [actions]`` and optional ``else``."""

    key = "if"
    description = "Conditions, with 'then' actions when all hold and 'else' actions otherwise"
    schema = {"$ref": "#/$defs/conditions"}
    siblings = {
        "then": {"$ref": "#/$defs/actions"},
        "else": {"$ref": "#/$defs/actions"},
    }
    required_siblings = ("then",)

    def __init__(self, conds: list[Condition], then: list[Action], other: list[Action]):
        self.conds = conds
        self.then = then
        self.other = other

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Mapping[str, Any]) -> IfAction:
        if "then" not in siblings:
            raise ConfigError("'if' needs 'then' (the actions to run when the conditions hold)")
        base = ctx.current_path[:-1]  # the item, not its 'if' key
        before = len(ctx.errors)
        conds = compile_conditions(options, ctx, ctx.current_path)
        # A dialog's answer (a step's outputs) is defined after the 'if' only when
        # both branches give it; the two branches may use the same step id.
        start, ids = ctx.names, dict(ctx.step_ids)
        then = compile_actions(siblings["then"], ctx, (*base, "then"))
        after_then, ctx.names = ctx.names, start
        then_ids, ctx.step_ids = ctx.step_ids, dict(ids)
        other = compile_actions(siblings.get("else", []), ctx, (*base, "else"))
        ctx.names = meet(start, after_then, ctx.names)
        ctx.step_ids = {**then_ids, **ctx.step_ids}
        if len(ctx.errors) > before:
            raise AlreadyReported()
        return cls(conds, then, other)

    def children(self) -> Iterator[Action]:
        yield from self.then
        yield from self.other

    def action_capabilities(self) -> frozenset[str]:
        return frozenset()

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        for cond in self.conds:
            yield from cond.needs()

    async def execute(self, run: RunContext) -> Any:
        for i, cond in enumerate(self.conds):
            ok, why = cond.check(run)
            run.trace.condition(f"{self.path}.if[{i}]", cond.key, ok, why)
            if not ok:
                await run_actions(self.other, run)
                return {"branch": "else", "because": f"[{i}] {cond.key}: {why}"}
        await run_actions(self.then, run)
        return {"branch": "then"}


def meet(start: Names, one: Names, other: Names) -> Names:
    """What is defined after two alternative branches: what both define."""
    steps = {k: one.steps[k] & other.steps[k] for k in one.steps.keys() & other.steps.keys()}
    return replace(
        start,
        forms=one.forms & other.forms,
        steps=steps,
        step_kinds={**start.step_kinds, **one.step_kinds, **other.step_kinds},
    )


def join(start: Names, *branches: Names) -> Names:
    """What is defined after branches that all run: what any of them defines."""
    steps: dict[str, frozenset[str]] = dict(start.steps)
    kinds: dict[str, str] = dict(start.step_kinds)
    forms = start.forms
    for names in branches:
        steps.update(names.steps)
        kinds.update(names.step_kinds)
        forms |= names.forms
    return replace(start, forms=forms, steps=steps, step_kinds=kinds)


@actions.register
class SetAction(Action):
    """Set variables (they persist); a value of null removes one."""

    key = "set"
    description = "Set variables, {name: value}; null removes; they survive restarts"
    # Variables are shared: another pack's rules may pass them to programs.
    capabilities = frozenset({"writes-variables"})
    schema = {
        "type": "object",
        "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$"},
        "minProperties": 1,
    }

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> SetAction:
        return cls({k: templated(v, ctx, (k,)) for k, v in options.items()})

    async def execute(self, run: RunContext) -> Any:
        scope = run.scope
        values = {k: rendered(v, scope) for k, v in self.values.items()}
        for name, value in values.items():
            run.set_variable(name, value)
        return values


@actions.register
class LogAction(Action):
    """A line in Nerve's log and the run's trace."""

    key = "log"
    description = "Write a line to Nerve's log (and the run's trace)"
    schema = {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "level": {"enum": ["debug", "info", "warning", "error"]},
                },
                "required": ["message"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, message: Template, level: int) -> None:
        self.message = message
        self.level = level

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> LogAction:
        if isinstance(options, str):
            options = {"message": options}
        level = logging.getLevelName(options.get("level", "info").upper())
        return cls(ctx.template(options["message"], ("message",)), level)

    async def execute(self, run: RunContext) -> Any:
        message = self.message.render(run.scope)
        # A dry run (the editor's Test) must not pass for something that happened.
        dry = "(dry run) " if run.dry_run else ""
        if self.reads_clipboard:
            message = run.mask(message)  # the clipboard's text is not written to the log
        log.log(self.level, "%s[%s] %s", dry, run.rule.key, message)
        return message


@actions.register
class NotifyAction(Action):
    """A desktop notification (or a log line where there is no notification service)."""

    key = "notify"
    description = "Show a desktop notification: text, or {title, body, urgency}"
    schema = {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "body": {"type": "string"},
                    "urgency": {"enum": ["low", "normal", "critical"]},
                },
                "anyOf": [{"required": ["title"]}, {"required": ["body"]}],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, title: Template | None, body: Template | None, urgency: str) -> None:
        self.title = title
        self.body = body
        self.urgency = urgency

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> NotifyAction:
        if isinstance(options, str):
            options = {"body": options}
        title = ctx.template(options["title"], ("title",)) if "title" in options else None
        body = ctx.template(options["body"], ("body",)) if "body" in options else None
        return cls(title, body, options.get("urgency", "normal"))

    async def execute(self, run: RunContext) -> Any:
        scope = run.scope
        title = text(self.title, scope) if self.title else "Nerve"
        body = text(self.body, scope) if self.body else ""
        via = await run.blocking(run.engine.notifier, title, body, self.urgency)
        return {"title": title, "body": body, "via": via}


@actions.register
class EmitAction(Action):
    """Publish a custom event (it carries this run as its cause)."""

    key = "emit"
    description = "Publish an event: a type, or {type, data}"
    # Other packs' rules may react to it: a rule that turns it into a command
    # would otherwise run for a pack nobody approved (a confused deputy).
    capabilities = frozenset({"emits-events"})
    schema = {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {"type": {"type": "string"}, "data": {"type": "object"}},
                "required": ["type"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, type_: str, data: dict[str, Any]) -> None:
        self.type = type_
        self.data = data

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> EmitAction:
        if isinstance(options, str):
            options = {"type": options}
        if not valid_type(options["type"]):
            raise ConfigError(
                f"{options['type']!r} is not an event type: "
                "use lower-case dotted names (build.done)",
                ("type",),
            )
        if reserved_type(options["type"]):
            raise ConfigError(
                f"{options['type']!r} events come from Nerve itself; a rule cannot fake one "
                "(it would fire other rules as if it had happened). Use a type of your own, "
                f"such as 'my.{options['type']}'",
                ("type",),
            )
        action = cls(options["type"], templated(options.get("data", {}), ctx, ("data",)))
        action.concrete = frozenset({caps.cap("emits", options["type"])})
        return action

    async def execute(self, run: RunContext) -> Any:
        event = run.emit(self.type, rendered(self.data, run.scope))
        return {"event": event.id}


@actions.register
class PauseAction(Action):
    """Pause Nerve (every rule), optionally for a while."""

    key = "pause"
    description = "Pause every rule (and cancel running ones); {for: 10m} resumes by itself"
    capabilities = frozenset({"controls-nerve"})
    schema = {
        "anyOf": [
            {"type": ["null", "boolean"]},
            {
                "type": "object",
                "properties": {"for": DURATION_SCHEMA},
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> PauseAction:
        if options is False:
            raise ConfigError("'pause: false' does nothing; remove it")
        seconds = (
            parse_duration(options["for"])
            if isinstance(options, dict) and "for" in options
            else None
        )
        return cls(seconds)

    async def execute(self, run: RunContext) -> Any:
        # Pausing cancels every run, this one included. Let that cancellation
        # land here: otherwise the next action would still start (and a program,
        # a request or a notification handed to a worker thread would go ahead).
        run.engine.pause(f"rule {run.rule.key}", self.seconds)
        await _yield_if_cancelled()
        return {"paused_for_s": self.seconds}


async def _yield_if_cancelled() -> None:
    """Raise CancelledError now if this run's task was just cancelled by its own action."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        await asyncio.sleep(0)


class _RuleSwitch(Action):
    enable: bool
    capabilities = frozenset({"controls-nerve"})
    schema = {"type": "string", "minLength": 1, "description": "A rule id (this pack) or pack/rule"}

    def __init__(self, target: str) -> None:
        self.target = target

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> _RuleSwitch:
        return cls(options)

    async def execute(self, run: RunContext) -> Any:
        key = self.target if "/" in self.target else f"{run.rule.pack}/{self.target}"
        if not run.engine.set_enabled(key, self.enable):
            raise ActionError(f"no rule {key!r} is loaded")
        # Disabling its own rule cancels this run (as in Home Assistant): stop here.
        await _yield_if_cancelled()
        return {"rule": key, "enabled": self.enable}


@actions.register
class EnableAction(_RuleSwitch):
    key = "rule.enable"
    description = "Enable a rule (by id within this pack, or pack/rule)"
    enable = True


@actions.register
class DisableAction(_RuleSwitch):
    key = "rule.disable"
    description = "Disable a rule (by id within this pack, or pack/rule)"
    enable = False


# ----------------------------------------------------------------- stop


@actions.register
class StopAction(Action):
    """End the run here; it is recorded as stopped (not failed), with the reason."""

    key = "stop"
    description = "End the run here, as stopped (not failed): 'stop: null' or 'stop: reason'"
    schema = {
        "anyOf": [
            {"type": "null"},
            {"type": "string", "description": "The reason, shown in the trace"},
            {
                "type": "object",
                "properties": {"reason": {"type": "string"}},
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, reason: Template | None) -> None:
        self.reason = reason

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> StopAction:
        if isinstance(options, dict):
            options = options.get("reason")
        return cls(ctx.template(options, ("reason",)) if options else None)

    async def execute(self, run: RunContext) -> Any:
        reason = text(self.reason, run.scope) if self.reason is not None else ""
        raise Stopped(reason or "stopped by a 'stop' action")


# --------------------------------------------------------------- repeat

#: A repeat's ``max`` when it gives none, and the most it may give (the engine's
#: cascade guard also bounds all the loops of one run together).
DEFAULT_REPEAT_MAX = 1000
REPEAT_HARD_LIMIT = 100_000
#: A dry run (the editor's Test) goes round a loop at most this often.
DRY_RUN_ITERATIONS = 3
#: Iterations whose actions each appear in the trace (the first ones; a failing one too).
TRACED_ITERATIONS = 20

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": REPEAT_HARD_LIMIT}


def split_lines(value: str) -> list[str]:
    """The lines of a program's output: split at line feeds, a CR before one dropped,
    no empty last line for a final line feed. Empty lines inside are kept."""
    if not value:
        return []
    parts = value.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


@actions.register
class RepeatAction(Action):
    """``repeat: {times | while | until | for_each, max, do}``."""

    key = "repeat"
    description = (
        "Repeat 'do': 'times' N, 'while' / 'until' conditions hold (until: checked after "
        "each round), or 'for_each' item of a list or line of a text ({repeat.item}, "
        f"{{repeat.index}} from 0, {{repeat.number}} from 1); at most 'max' rounds "
        f"(default {DEFAULT_REPEAT_MAX:,}, at most {REPEAT_HARD_LIMIT:,})"
    )
    schema = {
        "type": "object",
        "properties": {
            "times": {
                "anyOf": [_COUNT, {"type": "string", "pattern": r"\{"}],
                "description": "How many rounds (a number, or a placeholder)",
            },
            "while": {"$ref": "#/$defs/conditions"},
            "until": {"$ref": "#/$defs/conditions"},
            "for_each": {
                "anyOf": [{"type": "array"}, {"type": "string"}],
                "description": "A list, or a text whose lines are the items "
                '("{steps.ls.stdout}"); a placeholder giving a list gives its items',
            },
            "max": {**_COUNT, "minimum": 1, "description": "The most rounds (else the run fails)"},
            "do": {"$ref": "#/$defs/actions"},
        },
        "required": ["do"],
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        self.times: int | Template | None = None
        self.while_: list[Condition] = []
        self.until: list[Condition] = []
        self.for_each: Any = None
        self.max = DEFAULT_REPEAT_MAX
        self.body: list[Action] = []

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> RepeatAction:
        kinds = [k for k in ("times", "while", "until", "for_each") if k in options]
        if len(kinds) != 1:
            raise ConfigError(
                "a repeat needs one of 'times', 'while', 'until' or 'for_each'"
                + (f", not {' and '.join(kinds)}" if kinds else "")
            )
        self = cls()
        here = ctx.current_path
        before = len(ctx.errors)
        self.max = int(options.get("max", DEFAULT_REPEAT_MAX))
        times = options.get("times")
        if isinstance(times, str):
            self.times = ctx.template(times, ("times",))
        elif times is not None:
            self.times = int(times)
            if self.times > self.max:
                raise ConfigError(
                    f"times: {self.times} is more than max ({self.max}); raise 'max' "
                    f"(at most {REPEAT_HARD_LIMIT:,})",
                    ("times",),
                )
        if "while" in options:
            self.while_ = compile_conditions(options["while"], ctx, (*here, "while"))
        if "for_each" in options:
            self.for_each = templated(options["for_each"], ctx, ("for_each",))
        start = ctx.names
        ctx.names = replace(start, in_repeat=True)
        self.body = compile_actions(options["do"], ctx, (*here, "do"))
        if "until" in options:  # checked after each round: what the body defines is known
            self.until = compile_conditions(options["until"], ctx, (*here, "until"))
        after = replace(ctx.names, in_repeat=start.in_repeat)
        # What the body defines is known after the loop only when it surely runs once.
        once = "until" in options or (isinstance(self.times, int) and self.times > 0)
        ctx.names = after if once else start
        if len(ctx.errors) > before:
            raise AlreadyReported()
        return self

    def children(self) -> Iterator[Action]:
        yield from self.body

    def action_capabilities(self) -> frozenset[str]:
        return frozenset()

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        for cond in (*self.while_, *self.until):
            yield from cond.needs()

    def _items(self, run: RunContext) -> list[Any] | None:
        if self.for_each is None:
            return None
        if isinstance(self.for_each, Template):
            value = self.for_each.value(run.scope)
            if value is None:
                return []
            if isinstance(value, Mapping):
                raise ActionError(
                    f"repeat: for_each {self.for_each.source!r} gives a mapping, "
                    "not a list or a text"
                )
            if isinstance(value, (list, tuple)):
                return [thaw(v) for v in value]
            return split_lines(to_text(value))
        return list(rendered(self.for_each, run.scope))

    def _count(self, run: RunContext) -> int | None:
        if isinstance(self.times, Template):
            value = self.times.render(run.scope).strip()
            try:
                number = float(value)
                if not number.is_integer():
                    raise ValueError(value)
                count = int(number)
            except (ValueError, OverflowError):
                raise ActionError(f"repeat: times is {value[:80]!r}, not a whole number") from None
            if count < 0:
                raise ActionError(f"repeat: times is {count}, below 0")
            return count
        return self.times

    def _check(self, conds: list[Condition], name: str, run: RunContext, traced: bool) -> bool:
        """Whether all ``conds`` hold; traced in the first rounds and when it ends the loop."""
        checks: list[tuple[int, str, bool, str]] = []
        holds = True
        for i, cond in enumerate(conds):
            ok, why = cond.check(run)
            checks.append((i, cond.key, ok, why))
            if not ok:
                holds = False
                break
        if traced or holds == (name == "until"):
            for i, key, ok, why in checks:
                run.trace.condition(f"{self.path}.repeat.{name}[{i}]", key, ok, why)
        return holds

    async def execute(self, run: RunContext) -> Any:
        items = self._items(run)
        total = len(items) if items is not None else self._count(run)
        if total is not None and total > self.max:
            what = "items" if items is not None else "rounds"
            raise ActionError(
                f"repeat: {total} {what}, more than max {self.max}; raise 'max' "
                f"(at most {REPEAT_HARD_LIMIT:,})"
            )
        guard = run.engine.max_iterations
        done = 0
        result: dict[str, Any] = {}
        while total is None or done < total:
            traced = done < TRACED_ITERATIONS
            if self.while_ and not self._check(self.while_, "while", run, traced):
                break
            if done >= self.max:
                raise ActionError(f"repeat: still going after max {self.max} rounds; stopped it")
            if run.dry_run and done >= DRY_RUN_ITERATIONS:
                result["dry_run"] = (
                    f"went round {DRY_RUN_ITERATIONS} times only (a dry run repeats at most "
                    f"{DRY_RUN_ITERATIONS} times)"
                )
                break
            if run.count_iteration() > guard:
                raise ActionError(
                    f"repeat: this run made more than {guard:,} loop rounds in all (the "
                    "cascade guard's limit for one run); stopped it"
                )
            frame = {"index": done, "number": done + 1}
            if items is not None:
                frame["item"] = items[done]
            await self._round(run, frame, traced)
            done += 1
            if self.until and self._check(self.until, "until", run, traced):
                break
            # A body that never waits would hold the loop: let a pause or a
            # cancellation in between rounds.
            await asyncio.sleep(0)
        result["rounds"] = done
        if done > TRACED_ITERATIONS:
            result["traced_rounds"] = TRACED_ITERATIONS
        return result

    async def _round(self, run: RunContext, frame: dict[str, Any], traced: bool) -> None:
        view = run.branch()
        view.loops.append(frame)
        if traced:
            await run_actions(self.body, view)
            return
        view.trace = Trace()  # past the first rounds, only a failing round is traced
        try:
            await run_actions(self.body, view)
        except BaseException:
            run.trace.actions.extend(view.trace.actions)
            run.trace.conditions.extend(view.trace.conditions)
            raise


# ------------------------------------------------------------- parallel


@actions.register
class ParallelAction(Action):
    """Branches (lists of actions) run at once; the run goes on when all are done."""

    key = "parallel"
    description = (
        "Run lists of actions at the same time and wait for all; when one fails, "
        "the others are cancelled"
    )
    schema = {
        "type": "array",
        "items": {"$ref": "#/$defs/actions"},
        "minItems": 1,
        "description": "The branches: each a list of actions",
    }

    def __init__(self, branches: list[list[Action]]) -> None:
        self.branches = branches

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> ParallelAction:
        here = ctx.current_path
        before = len(ctx.errors)
        start = ctx.names
        branches: list[list[Action]] = []
        ends: list[Names] = []
        for i, branch in enumerate(options):
            # A branch sees what came before the parallel, not what the others define.
            ctx.names = start
            branches.append(compile_actions(branch, ctx, (*here, i)))
            ends.append(ctx.names)
        ctx.names = join(start, *ends)
        if len(ctx.errors) > before:
            raise AlreadyReported()
        return cls(branches)

    def children(self) -> Iterator[Action]:
        for branch in self.branches:
            yield from branch

    def action_capabilities(self) -> frozenset[str]:
        return frozenset()

    async def execute(self, run: RunContext) -> Any:
        tasks = [
            asyncio.ensure_future(run_actions(branch, run.branch())) for branch in self.branches
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            await _cancel(tasks)
            raise
        failed = next(
            (i for i, t in enumerate(tasks) if t.done() and not t.cancelled() and t.exception()),
            None,
        )
        if failed is None:
            return {"branches": len(tasks)}
        cancelled = [i for i, t in enumerate(tasks) if not t.done()]
        await _cancel(tasks)
        exc = tasks[failed].exception()
        assert exc is not None
        if isinstance(exc, Stop):
            raise exc
        others = (
            f"; cancelled branch{'es' if len(cancelled) > 1 else ''} "
            + ", ".join(map(str, cancelled))
            if cancelled
            else ""
        )
        raise ActionError(f"parallel: branch {failed} failed: {exc}{others}") from None


async def _cancel(tasks: Sequence[asyncio.Future[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
