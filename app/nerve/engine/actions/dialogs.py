"""Asking the user: ``form``, ``ask``, ``choose`` and ``confirm``.

Each shows a dialog through the run's prompter (:mod:`nerve.prompts`) and
waits. The answers become ``{form.<name>}`` placeholders for the actions
that follow (a placeholder naming an answer no earlier dialog gives is a
load error). Escape stops the run, as does "No" in a ``confirm``; a
``timeout`` gives the ``default`` (no default: the run stops). A password
answer is masked in the trace and the log and is never stored.

In a run started by an abbreviation, the abbreviation is erased before the
dialog takes the focus; once the dialog closed, the focus goes back to the
window the user was typing in, and the next ``type`` action types there
(with the word boundary the abbreviation was typed with, and its case).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from nerve import masking, prompts
from nerve.durations import DURATION_SCHEMA, parse_duration
from nerve.engine.actions._common import templated, text
from nerve.engine.registry import Action, ActionError, CompileContext, ConfigError, actions
from nerve.engine.runs import RunContext, Stop
from nerve.prompts import Cancelled, Field, Prompt, PromptUnavailable
from nerve.templates import Template

_CAPS = frozenset({"asks-user"})
_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
_NAME = re.compile(_NAME_PATTERN[:-1] + r"\Z")
NAME_SCHEMA = {
    "type": "string",
    "pattern": _NAME_PATTERN,
    "description": "The answer's name: letters, digits, '_' and '-' ({form.NAME})",
}
_TIMEOUT = {
    **DURATION_SCHEMA,
    "description": "Close the dialog after this long and use the default "
    "(no default: the run stops)",
}
#: Longest answer shown in a trace.
_TRACE_CHARS = 200

_FIELD_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "The field's label (a one-line text field)"},
        {
            "type": "object",
            "properties": {
                "type": {"enum": ["text", "multiline", "choice", "password", "number"]},
                "label": {"type": "string"},
                "default": {"type": ["string", "number", "boolean"]},
                "choices": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
            "additionalProperties": False,
        },
    ]
}

FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "message": {"type": "string"},
        "fields": {
            "type": "object",
            "propertyNames": {"pattern": _NAME_PATTERN},
            "additionalProperties": _FIELD_SCHEMA,
            "minProperties": 1,
            "description": "name: label, or name: {type, label, default, choices}",
        },
        "timeout": _TIMEOUT,
    },
    "required": ["fields"],
    "additionalProperties": False,
}


def _define(ctx: CompileContext, names: list[str]) -> None:
    """The answers ``names`` are defined from here on (for later placeholders)."""
    ctx.names = dataclasses.replace(ctx.names, forms=ctx.names.forms | frozenset(names))


def _timeout(options: Mapping[str, Any]) -> float | None:
    return parse_duration(options["timeout"]) if "timeout" in options else None


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _TRACE_CHARS:
        return value[: _TRACE_CHARS - 3] + "..."
    return value


class _DialogAction(Action):
    """Shows a prompt; subclasses build it and read its answer."""

    capabilities = _CAPS
    timeout: float | None = None
    title: Template | None = None
    #: Names of answers that are passwords (masked).
    secret: frozenset[str] = frozenset()

    def build(self, run: RunContext) -> Prompt:
        raise NotImplementedError

    def defaults(self, prompt: Prompt) -> dict[str, Any] | None:
        """The answer a timeout gives (None: no default, the run stops)."""
        raise NotImplementedError

    def dry_values(self, prompt: Prompt) -> dict[str, Any]:
        """The answer a dry run assumes."""
        return self.defaults(prompt) or {}

    def accept(self, values: Mapping[str, Any], run: RunContext) -> dict[str, Any]:
        """The run's new ``{form.*}`` values from the dialog's answer."""
        return dict(values)

    async def execute(self, run: RunContext) -> Any:
        prompt = self.build(run)
        if run.dry_run:  # a test of the rule shows no dialog: the defaults stand in
            values = self.dry_values(prompt)
            answers = self.accept(values, run)
            run.form.update(answers)
            return {"would_ask": prompt.kind, "answers": self._traced(answers)}
        from nerve.engine.actions.input import erase_for_dialog

        await erase_for_dialog(run)
        window = await run.blocking(prompts.active_window)
        how = "answered"
        try:
            if self.timeout is None:
                values = await run.prompter.ask(prompt)
            else:
                values = await asyncio.wait_for(run.prompter.ask(prompt), self.timeout)
        except TimeoutError:
            values = self.defaults(prompt)  # type: ignore[assignment]
            if values is None:
                raise Stop(
                    f"{self.key}: no answer within {self.timeout:g}s and no default"
                ) from None
            how = "timed out: default used"
        except Cancelled:
            raise Stop(f"{self.key}: cancelled by the user") from None
        except PromptUnavailable as exc:
            raise ActionError(f"{self.key}: {exc}") from None
        finally:
            # The window the user was in gets the focus back before anything is typed.
            await run.blocking(prompts.restore_focus, window)
        answers = self.accept(values, run)
        masking.register(answers[n] for n in self.secret if isinstance(answers.get(n), str))
        run.form.update(answers)
        return {how: self._traced(answers)}

    def _traced(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (masking.MASK if k in self.secret else _shown(v)) for k, v in answers.items()}

    def _title(self, run: RunContext) -> str:
        return text(self.title, run.scope) if self.title is not None else run.rule.name


@actions.register
class FormAction(_DialogAction):
    """A dialog with fields; each answer becomes ``{form.<field>}``."""

    key = "form"
    description = (
        "Ask for several values in one dialog (text, multiline, choice, password, number "
        "fields, with defaults); answers become {form.<field>}; Escape stops the run"
    )
    schema = FORM_SCHEMA

    def __init__(
        self,
        fields: list[tuple[Field, Any]],
        title: Template | None,
        message: Template | None,
        timeout: float | None,
    ) -> None:
        #: Each field with its (templated) default.
        self.fields = fields
        self.title = title
        self.message = message
        self.timeout = timeout
        self.secret = frozenset(f.name for f, _ in fields if f.kind == "password")

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> FormAction:
        fields: list[tuple[Field, Any]] = []
        for name, given in options["fields"].items():
            path = ("fields", name)
            if not _NAME.match(name):
                raise ConfigError("a field name is letters, digits, '_' and '-'", path)
            spec = {"label": given} if isinstance(given, str) else given
            kind = spec.get("type", "choice" if "choices" in spec else "text")
            choices = tuple(spec.get("choices", ()))
            if kind == "choice" and not choices:
                raise ConfigError("a choice field needs 'choices'", path)
            if choices and kind != "choice":
                raise ConfigError(f"'choices' belong to a choice field, not a {kind} one", path)
            default = spec.get("default")
            if kind == "number" and default is not None and not _is_number(default):
                raise ConfigError("the default of a number field is a number", (*path, "default"))
            if kind == "choice" and default is not None and str(default) not in choices:
                raise ConfigError(
                    f"the default {default!r} is not one of the choices", (*path, "default")
                )
            label = str(spec.get("label") or name.replace("_", " ").capitalize())
            value = templated(default, ctx, (*path, "default")) if default is not None else None
            fields.append((Field(name, kind, label, None, choices), value))
        title = ctx.template(options["title"], ("title",)) if "title" in options else None
        message = ctx.template(options["message"], ("message",)) if "message" in options else None
        action = cls(fields, title, message, _timeout(options))
        _define(ctx, [f.name for f, _ in fields])
        return action

    def build(self, run: RunContext) -> Prompt:
        scope = run.scope
        fields = tuple(
            dataclasses.replace(f, default=_value(default, scope)) for f, default in self.fields
        )
        message = text(self.message, scope) if self.message is not None else ""
        return Prompt("form", self._title(run), message, fields, timeout=self.timeout)

    def defaults(self, prompt: Prompt) -> dict[str, Any] | None:
        if any(f.default is None for f in prompt.fields):
            return None
        return {f.name: f.default for f in prompt.fields}

    def accept(self, values: Mapping[str, Any], run: RunContext) -> dict[str, Any]:
        out = {}
        for f, _ in self.fields:
            value = values.get(f.name, "")
            out[f.name] = _number(value, f.name) if f.kind == "number" else str(value)
        return out


@actions.register
class AskAction(_DialogAction):
    """One question: text, a password or a number; the answer is ``{form.<name>}``."""

    key = "ask"
    description = (
        "Ask one question (text, password or number); the answer becomes {form.<name>} "
        "(name: answer); Escape stops the run"
    )
    schema = {
        "anyOf": [
            {"type": "string", "description": "The question"},
            {
                "type": "object",
                "properties": {
                    "prompt": {"type": "string"},
                    "name": NAME_SCHEMA,
                    "type": {"enum": ["text", "password", "number"]},
                    "default": {"type": ["string", "number"]},
                    "title": {"type": "string"},
                    "timeout": _TIMEOUT,
                },
                "required": ["prompt"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        question: Template,
        default: Any,
        title: Template | None,
        timeout: float | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.question = question
        self.default = default
        self.title = title
        self.timeout = timeout
        self.secret = frozenset({name}) if kind == "password" else frozenset()

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> AskAction:
        if isinstance(options, str):
            options = {"prompt": options}
        kind = options.get("type", "text")
        default = options.get("default")
        if kind == "number" and default is not None and not _is_number(default):
            raise ConfigError("the default of a number question is a number", ("default",))
        action = cls(
            options.get("name", "answer"),
            kind,
            question=ctx.template(options["prompt"], ("prompt",)),
            default=templated(default, ctx, ("default",)) if default is not None else None,
            title=ctx.template(options["title"], ("title",)) if "title" in options else None,
            timeout=_timeout(options),
        )
        _define(ctx, [action.name])
        return action

    def build(self, run: RunContext) -> Prompt:
        scope = run.scope
        field = Field(self.name, self.kind, text(self.question, scope), _value(self.default, scope))
        return Prompt("form", self._title(run), "", (field,), timeout=self.timeout)

    def defaults(self, prompt: Prompt) -> dict[str, Any] | None:
        default = prompt.fields[0].default
        return None if default is None else {self.name: default}

    def accept(self, values: Mapping[str, Any], run: RunContext) -> dict[str, Any]:
        value = values.get(self.name, "")
        return {self.name: _number(value, self.name) if self.kind == "number" else str(value)}


@actions.register
class ChooseAction(_DialogAction):
    """Pick one item of a list (searchable); it becomes ``{form.<name>}``."""

    key = "choose"
    description = (
        "Pick one item from a searchable list (like a command palette); it becomes "
        "{form.<name>} (name: choice); items are text or {label, value}"
    )
    _ITEM = {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {"label": {"type": "string"}, "value": {"type": "string"}},
                "required": ["label"],
                "additionalProperties": False,
            },
        ]
    }
    schema = {
        "anyOf": [
            {"type": "array", "items": _ITEM, "minItems": 1},
            {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": _ITEM, "minItems": 1},
                    "name": NAME_SCHEMA,
                    "prompt": {"type": "string"},
                    "title": {"type": "string"},
                    "default": {"type": "string", "description": "The label picked on a timeout"},
                    "timeout": _TIMEOUT,
                },
                "required": ["items"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(
        self,
        name: str,
        items: list[tuple[Template, Template]],
        *,
        question: Template | None,
        default: int | None,
        title: Template | None,
        timeout: float | None,
    ) -> None:
        self.name = name
        #: (label, value) of each item.
        self.items = items
        self.question = question
        self.default = default
        self.title = title
        self.timeout = timeout

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> ChooseAction:
        if isinstance(options, list):
            options = {"items": options}
        items = []
        labels = []
        for i, given in enumerate(options["items"]):
            item = {"label": given} if isinstance(given, str) else given
            labels.append(item["label"])
            label = ctx.template(item["label"], ("items", i, "label"))
            value = ctx.template(item.get("value", item["label"]), ("items", i, "value"))
            items.append((label, value))
        default = options.get("default")
        if default is not None and default not in labels:
            raise ConfigError(f"the default {default!r} is not one of the items", ("default",))
        action = cls(
            options.get("name", "choice"),
            items,
            question=ctx.template(options["prompt"], ("prompt",)) if "prompt" in options else None,
            default=None if default is None else labels.index(default),
            title=ctx.template(options["title"], ("title",)) if "title" in options else None,
            timeout=_timeout(options),
        )
        _define(ctx, [action.name])
        return action

    def _labels(self, run: RunContext) -> list[str]:
        scope = run.scope
        return [label.render(scope) for label, _ in self.items]

    def build(self, run: RunContext) -> Prompt:
        labels = self._labels(run)
        default = None if self.default is None else labels[self.default]
        message = text(self.question, run.scope) if self.question is not None else ""
        return Prompt(
            "choose",
            self._title(run),
            message,
            choices=tuple(labels),
            default=default,
            timeout=self.timeout,
        )

    def defaults(self, prompt: Prompt) -> dict[str, Any] | None:
        return None if self.default is None else {"index": self.default}

    def dry_values(self, prompt: Prompt) -> dict[str, Any]:
        return {"index": self.default or 0}

    def accept(self, values: Mapping[str, Any], run: RunContext) -> dict[str, Any]:
        index = values.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise ActionError(f"{self.key}: the dialog gave no item")
        if not 0 <= index < len(self.items):
            raise ActionError(f"{self.key}: the dialog gave item {index}, which is not in the list")
        return {self.name: self.items[index][1].render(run.scope)}


@actions.register
class ConfirmAction(_DialogAction):
    """A yes/no question: "No" (or Escape) stops the run."""

    key = "confirm"
    description = (
        "Ask a yes/no question; No or Escape stops the run (with a trace entry), Yes goes on"
    )
    schema = {
        "anyOf": [
            {"type": "string", "description": "The question"},
            {
                "type": "object",
                "properties": {
                    "prompt": {"type": "string"},
                    "title": {"type": "string"},
                    "default": {"type": "boolean", "description": "The answer on a timeout"},
                    "timeout": _TIMEOUT,
                },
                "required": ["prompt"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(
        self,
        question: Template,
        default: bool | None,
        title: Template | None,
        timeout: float | None,
    ) -> None:
        self.question = question
        self.default = default
        self.title = title
        self.timeout = timeout

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> ConfirmAction:
        if isinstance(options, str):
            options = {"prompt": options}
        return cls(
            ctx.template(options["prompt"], ("prompt",)),
            options.get("default"),
            ctx.template(options["title"], ("title",)) if "title" in options else None,
            _timeout(options),
        )

    def build(self, run: RunContext) -> Prompt:
        return Prompt(
            "confirm",
            self._title(run),
            text(self.question, run.scope),
            default=self.default,
            timeout=self.timeout,
        )

    def defaults(self, prompt: Prompt) -> dict[str, Any] | None:
        return None if self.default is None else {"yes": self.default}

    def accept(self, values: Mapping[str, Any], run: RunContext) -> dict[str, Any]:
        if values.get("yes") is not True:
            raise Stop(f"{self.key}: the answer was No; the run stops here")
        return {}

    def dry_values(self, prompt: Prompt) -> dict[str, Any]:
        return {"yes": True}  # a test of the rule goes on as if Yes


def _value(value: Any, scope: Any) -> Any:
    if isinstance(value, Template):
        return value.value(scope)
    return value


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str) and "{" in value:
        return True  # a placeholder: checked when the dialog opens
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _number(value: Any, name: str) -> int | float:
    if isinstance(value, bool):
        raise ActionError(f"{name}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ActionError(f"{name}: expected a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ActionError(f"{name}: expected a finite number, got {value!r}")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
