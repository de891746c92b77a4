"""Actions about the run and the engine itself: ``delay``, ``wait_for``,
``if``, ``set``, ``log``, ``notify``, ``emit``, ``pause``, ``rule.enable``
and ``rule.disable``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterator, Mapping
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
from nerve.engine.runs import RunContext, run_actions
from nerve.engine.triggers import EventTrigger
from nerve.events import reserved_type, valid_type
from nerve.templates import Template

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
        # A dialog's answer is defined after the 'if' only when both branches ask for it.
        start = ctx.names
        then = compile_actions(siblings["then"], ctx, (*base, "then"))
        after_then, ctx.names = ctx.names, start
        other = compile_actions(siblings.get("else", []), ctx, (*base, "else"))
        ctx.names = replace(start, forms=after_then.forms & ctx.names.forms)
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
