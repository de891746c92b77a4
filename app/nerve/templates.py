"""Placeholders in rule text: ``{event.path}``, ``{input.target}``, ``{var.mode}``,
``{rule.id}``, ``{now:%Y-%m-%d}``, ``{now+1d:%Y-%m-%d}`` (moved by a duration),
``{form.name}`` (an answer given in a dialog earlier in the run),
``{clipboard}`` (the text on the clipboard when the action runs; actions only).
``{steps.ID.stdout}`` (an output of the action with ``id: ID`` earlier in the
run; ``{steps.ID.json.items.0.name}`` goes into an http step's JSON answer),
``{repeat.index}`` / ``{repeat.item}`` (inside a ``repeat``).

Substitution is text, never evaluated. Templates are parsed once when a pack is
loaded, so an unknown placeholder is an error at load time, not at run time.
``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nerve.durations import parse_duration

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*", re.ASCII)

ROOTS = ("event", "input", "var", "rule", "now", "run", "form", "steps", "repeat")
#: The placeholder for the clipboard's text.
CLIPBOARD = "clipboard"
#: What ``{repeat.*}`` names inside a repeat.
REPEAT_FIELDS = ("index", "number", "item")
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)(?:\.([A-Za-z_]+)(.*))?", re.ASCII | re.DOTALL)
#: ``now``, optionally moved by a duration (``now+1d``, ``now-2h30m``), then ``:FORMAT``.
_NOW = re.compile(r"now(?:\s*([+-])\s*([0-9][0-9a-z. ]*?)\s*)?(?::(.*))?", re.DOTALL)


class TemplateError(ValueError):
    """A placeholder that cannot be resolved; the message is for the user."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What placeholders resolve against at run time."""

    event: Any  # nerve.events.Event (kept loose to avoid an import cycle)
    inputs: Mapping[str, Any]
    variables: Mapping[str, Any]
    rule: Mapping[str, Any]
    run: Mapping[str, Any]
    #: Answers given in the run's dialogs so far (``{form.name}``).
    form: Mapping[str, Any] = field(default_factory=dict)
    #: The clipboard's text, read for the action being run (see :data:`CLIPBOARD`).
    clipboard: str | None = None
    #: Outputs of the steps with an ``id`` so far (``{steps.id.field}``).
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The innermost repeat's ``index``, ``number`` and ``item`` (``{repeat.*}``).
    repeat: Mapping[str, Any] = field(default_factory=dict)


# A compiled part: literal text, or a function of the scope.
_Part = str | Callable[[Scope], Any]


def to_text(value: Any) -> str:
    """How a value is written into text: JSON for structures, '' for none."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    from nerve.events import thaw

    return json.dumps(thaw(value), ensure_ascii=False, sort_keys=True)


class Template:
    """A parsed text with placeholders.

    ``render`` gives text. ``value`` gives the raw value when the whole text is
    one placeholder (``"{event.size}"`` stays a number), else the text.
    """

    __slots__ = ("_parts", "names", "source")

    def __init__(self, source: str, parts: list[_Part], names: tuple[str, ...]) -> None:
        self.source = source
        self._parts = parts
        self.names = names

    @property
    def is_constant(self) -> bool:
        return not self.names

    @property
    def pieces(self) -> tuple[str | None, ...]:
        """The literal text in order, with None where each placeholder goes."""
        return tuple(p if isinstance(p, str) else None for p in self._parts)

    def render(
        self,
        scope: Scope,
        quote: Callable[[str], str] | Sequence[Callable[[str], str]] | None = None,
    ) -> str:
        """The text with every placeholder replaced, each passed through ``quote``
        if given (one function for all, or one per placeholder in order)."""
        out: list[str] = []
        quoters = iter(quote) if quote is not None and not callable(quote) else None
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            else:
                text = to_text(part(scope))
                q = next(quoters) if quoters is not None else quote
                out.append(q(text) if callable(q) else text)
        return "".join(out)

    def placeholder_texts(self, scope: Scope) -> list[str]:
        """The text of each placeholder's value, in order (``names`` names them)."""
        return [to_text(part(scope)) for part in self._parts if not isinstance(part, str)]

    def value(self, scope: Scope) -> Any:
        if len(self._parts) == 1 and not isinstance(self._parts[0], str):
            return self._parts[0](scope)
        return self.render(scope)

    def static(self, inputs: Mapping[str, Any], keep: frozenset[str] = frozenset()) -> str | None:
        """The text as known when the pack loads: ``{input.*}`` placeholders
        filled in with the pack's input values (those named in ``keep``, secret
        ones, stay written as placeholders); None when any other placeholder
        (an event's field, a variable, the time) is in it."""
        out: list[str] = []
        names = iter(self.names)
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            expr = next(names, "")
            root, _, rest = expr.partition(".")
            if root != "input" or rest not in inputs:
                return None
            out.append(f"{{input.{rest}}}" if rest in keep else to_text(inputs[rest]))
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


@dataclass(frozen=True)
class Names:
    """What may be named in placeholders of one rule.

    ``event_fields`` None means any field (custom events); ``inputs`` are the
    pack's declared inputs.
    """

    event_fields: frozenset[str] | None
    inputs: frozenset[str]
    event_hint: str = ""
    #: Answers defined by the dialogs (form, ask, choose) before this point of the rule.
    forms: frozenset[str] = frozenset()
    #: Steps (actions with an ``id``) run before this point, with the outputs each gives.
    steps: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    #: The action type of each step, for messages.
    step_kinds: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: Inside a ``repeat`` (``{repeat.*}`` may be used).
    in_repeat: bool = False
    #: Every step id of the rule, with where it is (to say "it runs later").
    all_steps: Mapping[str, str] = field(default_factory=dict, hash=False)


EVENT_ATTRS = frozenset({"type", "id", "time", "source", "depth", "cause"})


def parse(source: str, names: Names) -> Template:
    """Parse ``source``; raise TemplateError naming the first bad placeholder."""
    parts: list[_Part] = []
    used: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(source):
        if m.start() > pos:
            parts.append(source[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "{{":
            parts.append("{")
        elif token == "}}":
            parts.append("}")
        elif m.group(1) is None:
            raise TemplateError(
                f"unmatched '{token}' in {source!r} (write '{token}{token}' for a literal brace)"
            )
        else:
            parts.append(_resolver(m.group(1).strip(), names))
            used.append(m.group(1).strip())
    if pos < len(source):
        parts.append(source[pos:])
    # Merge adjacent literal text.
    merged: list[_Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return Template(source, merged, tuple(used))


def _resolver(expr: str, names: Names) -> Callable[[Scope], Any]:
    now = _NOW.fullmatch(expr)
    if now is not None:
        sign, amount, given = now.groups()
        fmt = "%Y-%m-%d %H:%M:%S" if given is None else given
        offset = 0.0
        if sign:
            try:
                offset = parse_duration(amount)
            except ValueError as exc:
                raise TemplateError(f"bad offset in {{{expr}}}: {exc}") from None
            offset = -offset if sign == "-" else offset
        try:
            time.strftime(fmt, time.localtime(time.time() + offset))
        except (ValueError, OverflowError, OSError) as exc:
            raise TemplateError(f"bad time format in {{{expr}}}: {exc}") from None
        if not offset:
            return lambda scope: time.strftime(fmt)
        return lambda scope: time.strftime(fmt, time.localtime(time.time() + offset))
    if expr == CLIPBOARD:
        return lambda scope: scope.clipboard or ""
    root, _, rest = expr.partition(".")
    if root not in ROOTS:
        raise TemplateError(
            f"unknown placeholder {{{expr}}}: placeholders start with "
            "event., input., var., rule., run., form., steps. or repeat., "
            "or are {now}, {now:FORMAT}, {now+1d:FORMAT} / {now-2h:FORMAT} or {clipboard}"
        )
    if root in ("steps", "repeat") and rest:
        pass  # (their own syntax: list indexes in a JSON path)
    elif not rest or not _NAME.fullmatch(rest):
        raise TemplateError(f"placeholder {{{expr}}} needs a name after '{root}.'")
    if root == "event":
        head = rest.split(".", 1)[0]
        allowed = names.event_fields
        if head not in EVENT_ATTRS and allowed is not None and head not in allowed:
            known = ", ".join(sorted(allowed)) or "no fields"
            what = names.event_hint or "this rule's events"
            raise TemplateError(f"unknown placeholder {{{expr}}}: {what} have {known}")
        return lambda scope: scope.event.get(rest) if scope.event is not None else None
    if root == "input":
        if rest not in names.inputs:
            declared = ", ".join(sorted(names.inputs)) or "none"
            raise TemplateError(
                f"unknown placeholder {{{expr}}}: the pack declares no input {rest!r} "
                f"(inputs: {declared})"
            )
        return lambda scope: scope.inputs.get(rest)
    if root == "var":
        return lambda scope: _lookup(scope.variables, rest)
    if root == "form":
        if rest not in names.forms:
            known = ", ".join(sorted(names.forms)) or "none yet"
            raise TemplateError(
                f"unknown placeholder {{{expr}}}: no form, ask or choose action before this "
                f"point defines {rest!r} (defined here: {known})"
            )
        return lambda scope: scope.form.get(rest)
    if root == "steps":
        return _step_resolver(expr, rest, names)
    if root == "repeat":
        return _repeat_resolver(expr, rest, names)
    if root == "rule":
        if rest not in ("id", "name", "pack"):
            raise TemplateError(
                f"unknown placeholder {{{expr}}}: use rule.id, rule.name or rule.pack"
            )
        return lambda scope: scope.rule.get(rest)
    if rest not in ("id", "started"):
        raise TemplateError(f"unknown placeholder {{{expr}}}: use run.id or run.started")
    return lambda scope: scope.run.get(rest)


def json_path(text: str) -> tuple[str, ...]:
    """The keys and list indexes of ``a.b.0.c`` or ``a.b[0].c`` (empty: the whole value).

    Raise TemplateError for an empty part or an unclosed ``[``."""
    if not text:
        return ()
    parts: list[str] = []
    for dotted in text.split("."):
        head, bracket, tail = dotted.partition("[")
        if head or not bracket:
            parts.append(head)
        while bracket:
            index, closed, after = tail.partition("]")
            if not closed or not re.fullmatch(r"-?[0-9]+", index, re.ASCII):
                raise TemplateError(f"bad list index in {text!r}: write [0], [1]... or .0, .1...")
            parts.append(index)
            head, bracket, tail = after.partition("[")
            if head:
                raise TemplateError(f"bad path {text!r}: a '.' goes between parts")
    if any(not p for p in parts):
        raise TemplateError(f"bad path {text!r}: an empty part (two dots, or a dot at an end)")
    return tuple(parts)


def follow(value: Any, path: Sequence[str]) -> Any:
    """The value at ``path`` in a JSON value (a list takes an index, -1 the last).

    None where there is nothing."""
    for part in path:
        if isinstance(value, Mapping):
            if part not in value:
                return None
            value = value[part]
        elif isinstance(value, (list, tuple)):
            try:
                index = int(part)
            except ValueError:
                return None
            if not -len(value) <= index < len(value):
                return None
            value = value[index]
        else:
            return None
    return value


def _step_resolver(expr: str, rest: str, names: Names) -> Callable[[Scope], Any]:
    m = _STEP.fullmatch(rest)
    if m is None:
        raise TemplateError(
            f"placeholder {{{expr}}}: write {{steps.ID.FIELD}}, with ID the 'id' of an "
            "earlier action"
        )
    step, output, tail = m.groups()
    if step not in names.steps:
        known = ", ".join(sorted(names.steps)) or "none yet"
        where = names.all_steps.get(step)
        later = f"; the one at {where} may not have run here" if where else ""
        raise TemplateError(
            f"unknown placeholder {{{expr}}}: no action with 'id: {step}' runs before this "
            f"point{later} (steps defined here: {known})"
        )
    fields = names.steps[step]
    kind = names.step_kinds.get(step, "this action")
    if not fields:
        raise TemplateError(
            f"unknown placeholder {{{expr}}}: step {step!r} ({kind}) gives no outputs; "
            "run and shell with 'wait: true' give stdout, stderr and exit_code, http gives "
            "status, body and json"
        )
    if output is None or output not in fields:
        what = f"has no output {output!r}" if output else "needs an output"
        raise TemplateError(
            f"unknown placeholder {{{expr}}}: step {step!r} ({kind}) {what}; "
            f"it gives {', '.join(sorted(fields))}"
        )
    path: tuple[str, ...] = ()
    if tail:
        if output != "json":
            raise TemplateError(
                f"unknown placeholder {{{expr}}}: only json has parts ({{steps.{step}.json.a.0}})"
            )
        if not tail.startswith((".", "[")):
            raise TemplateError(f"unknown placeholder {{{expr}}}: a '.' goes after 'json'")
        path = json_path(tail[1:] if tail.startswith(".") else tail)

    def resolve(scope: Scope) -> Any:
        outputs = scope.steps.get(step)
        if outputs is None:
            return None
        return follow(outputs.get(output), path)

    return resolve


def _repeat_resolver(expr: str, rest: str, names: Names) -> Callable[[Scope], Any]:
    if not names.in_repeat:
        raise TemplateError(f"unknown placeholder {{{expr}}}: only inside a repeat's 'do'")
    head, dot, tail = rest.partition(".")
    if head not in REPEAT_FIELDS or (dot and head != "item"):
        raise TemplateError(
            f"unknown placeholder {{{expr}}}: use repeat.index (0, 1, ...), repeat.number "
            "(1, 2, ...) or repeat.item (and repeat.item.KEY for a JSON item)"
        )
    path = json_path(tail) if dot else ()
    if dot and not path:
        raise TemplateError(f"placeholder {{{expr}}} needs a key after 'item.'")
    return lambda scope: follow(scope.repeat.get(head), path)


def _lookup(mapping: Mapping[str, Any], path: str) -> Any:
    value: Any = mapping
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


def has_placeholders(text: str) -> bool:
    """True when ``text`` holds at least one placeholder (not just escaped braces)."""
    return any(m.group(1) is not None for m in _PLACEHOLDER.finditer(text))
