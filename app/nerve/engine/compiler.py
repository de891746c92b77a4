"""Turning trigger, condition and action nodes of a rule into compiled objects.

Two stages, as in Home Assistant: the node's shape picks the type by its key,
the type's JSON Schema checks the options, then the type's ``compile`` checks
what a schema cannot (placeholders, cron syntax, regexes). Every problem is
collected in the context with its path; nothing raises past this module.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from nerve.engine import caps, validation
from nerve.engine.registry import (
    Action,
    AlreadyReported,
    CompileContext,
    Condition,
    ConfigError,
    ConfigPath,
    Registry,
    Trigger,
    actions,
    conditions,
    triggers,
)
from nerve.templates import CLIPBOARD

T = TypeVar("T")

#: Keys any action may carry beside its own.
COMMON_ACTION_KEYS: dict[str, dict[str, Any]] = {
    "continue_on_error": {
        "type": "boolean",
        "description": "Go on with the next action when this one fails",
    },
    "id": {
        "type": "string",
        "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$",
        "description": "A name for this step: later actions use its outputs as "
        "{steps.ID.stdout}, {steps.ID.json.key}...",
    },
}
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z", re.ASCII)


#: The key shown in "expected a trigger: a mapping such as {event: ...}".
_EXAMPLE_KEYS = {"trigger": "event", "condition": "time", "action": "log"}


def _as_written(options: Any, sub: ConfigPath) -> ConfigPath:
    """The part of ``sub`` (below a type's key) that exists in the file.

    Types turn shorthand forms into their long form before compiling
    (``run: [a, b]`` is ``{argv: [a, b]}``, ``log: text`` is ``{message: text}``),
    so the path of a ConfigError may name a key the author never wrote. Report
    where the problem is as written: ``run[1]``, not ``run.argv[1]``.
    """
    node = options
    out: list[str | int] = []
    for i, part in enumerate(sub):
        written = (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if written:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, str) and i + 1 < len(sub):
            continue  # the long form's key for a list written directly
        else:
            break
        out.append(part)
    return tuple(out)


def _single_key(
    node: Any, registry: Registry[Any], ctx: CompileContext, path: ConfigPath, extra: set[str]
) -> tuple[str, Any] | None:
    if not isinstance(node, Mapping):
        keys = registry.keys()
        example = _EXAMPLE_KEYS.get(registry.kind, keys[0] if keys else "...")
        article = "an" if registry.kind[:1] in "aeiou" else "a"
        ctx.error(
            path,
            f"expected {article} {registry.kind}: a mapping such as {{{example}: ...}} "
            f"(one of: {', '.join(keys)}), got {validation.describe_value(node)}",
        )
        return None
    found = [k for k in node if k in registry]
    if not found:
        unknown = [k for k in node if k not in extra]
        if unknown:
            ctx.error((*path, str(unknown[0])), registry.unknown(str(unknown[0])))
        else:
            ctx.error(path, f"no {registry.kind} here (one of: {', '.join(registry.keys())})")
        return None
    if len(found) > 1:
        ctx.error(
            path,
            f"one {registry.kind} per item, found {', '.join(repr(f) for f in found)}; "
            "make them separate list items",
        )
        return None
    return found[0], node[found[0]]


def _compile_one(
    cls: type[Any],
    options: Any,
    ctx: CompileContext,
    path: ConfigPath,
    *args: Any,
) -> Any:
    problems = validation.check(cls.schema, options)
    if problems:
        for sub, message in problems:
            ctx.error((*path, *sub), message)
        return None
    saved = ctx.current_path
    ctx.current_path = path
    try:
        return cls.compile(options, ctx, *args)
    except AlreadyReported:
        return None
    except ConfigError as exc:
        ctx.error((*path, *_as_written(options, exc.path)), exc.message)
        return None
    except (ValueError, ArithmeticError) as exc:  # a value out of range (an overflow)
        ctx.error(path, str(exc) or f"a value here is out of range ({type(exc).__name__})")
        return None
    finally:
        ctx.current_path = saved


#: A placeholder in a trigger's or condition's options. Only the pack's inputs
#: are known when a rule is loaded; anything else (``\d{2}`` in a regex) is text.
_MATCH_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{(input|event|var|rule|run|form|steps|repeat|now|clipboard)((?:[.+\-:][^{}]*)?)\}"
)


class _NotFillable(Exception):
    def __init__(self, path: ConfigPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _fill(text: str, ctx: CompileContext, path: ConfigPath) -> Any:
    """``text`` with each ``{input.NAME}`` replaced by the input's value (a
    value alone in the text keeps its type: ``times: "{input.n}"`` is a number)."""

    def value(match: re.Match[str]) -> Any:
        root, rest = match.group(1), match.group(2)
        if root == "clipboard":
            raise _NotFillable(
                path, "{clipboard} is read when an action runs: use it in actions only"
            )
        if root != "input":
            raise _NotFillable(
                path,
                f"{match.group(0)}: only {{input.*}} placeholders are filled in triggers "
                "and conditions (they are read once, when the rule is loaded); event data "
                "is matched with the trigger's own fields",
            )
        name = rest[1:] if rest.startswith(".") else ""
        if name not in ctx.names.inputs:
            declared = ", ".join(sorted(ctx.names.inputs)) or "none"
            raise _NotFillable(
                path, f"{match.group(0)}: the pack declares no input {name!r} (inputs: {declared})"
            )
        return ctx.inputs.get(name)

    whole = _MATCH_PLACEHOLDER.fullmatch(text)
    if whole is not None and whole.group(1) is not None:
        return value(whole)

    def piece(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)  # {{ and }} stay as written
        found = value(match)
        return "" if found is None else str(found)

    return _MATCH_PLACEHOLDER.sub(piece, text)


def _with_inputs(node: Any, ctx: CompileContext, path: ConfigPath = ()) -> Any:
    """A trigger's or condition's options with the pack's inputs filled in, so
    that ``glob: "{input.pattern}"`` matches what the user chose, not that text."""
    if isinstance(node, str):
        return _fill(node, ctx, path) if "{" in node else node
    if isinstance(node, Mapping):
        return {k: _with_inputs(v, ctx, (*path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_inputs(v, ctx, (*path, i)) for i, v in enumerate(node)]
    return node


def _filled(options: Any, ctx: CompileContext, path: ConfigPath) -> tuple[bool, Any]:
    try:
        return True, _with_inputs(options, ctx)
    except _NotFillable as exc:
        ctx.error((*path, *exc.path), exc.message)
        return False, None


def compile_trigger(node: Any, ctx: CompileContext, path: ConfigPath) -> Trigger | None:
    picked = _single_key(node, triggers, ctx, path, set())
    if picked is None:
        return None
    key, options = picked
    if len(node) > 1:
        extra = next(k for k in node if k != key)
        ctx.error((*path, extra), f"unknown key {extra!r} beside trigger {key!r}")
        return None
    cls = triggers.get(key)
    assert cls is not None
    ok, options = _filled(options, ctx, (*path, key))
    if not ok:
        return None
    result: Trigger | None = _compile_one(cls, options, ctx, (*path, key))
    return result


def compile_triggers(node: Any, ctx: CompileContext, path: ConfigPath) -> list[Trigger]:
    items = node if isinstance(node, list) else [node]
    paths = [(*path, i) for i in range(len(items))] if isinstance(node, list) else [path]
    if isinstance(node, list) and not node:
        ctx.error(path, "needs at least one trigger")
    out = [compile_trigger(item, ctx, p) for item, p in zip(items, paths, strict=True)]
    return [t for t in out if t is not None]


def compile_condition(node: Any, ctx: CompileContext, path: ConfigPath) -> Condition | None:
    picked = _single_key(node, conditions, ctx, path, set())
    if picked is None:
        return None
    key, options = picked
    if len(node) > 1:
        extra = next(k for k in node if k != key)
        ctx.error((*path, extra), f"unknown key {extra!r} beside condition {key!r}")
        return None
    cls = conditions.get(key)
    assert cls is not None
    ok, options = _filled(options, ctx, (*path, key))
    if not ok:
        return None
    result: Condition | None = _compile_one(cls, options, ctx, (*path, key))
    return result


def compile_conditions(node: Any, ctx: CompileContext, path: ConfigPath) -> list[Condition]:
    items = node if isinstance(node, list) else [node]
    paths = [(*path, i) for i in range(len(items))] if isinstance(node, list) else [path]
    out = [compile_condition(item, ctx, p) for item, p in zip(items, paths, strict=True)]
    return [c for c in out if c is not None]


def compile_action(node: Any, ctx: CompileContext, path: ConfigPath) -> Action | None:
    # Siblings of every action type, so that e.g. `then` next to `if` is not "unknown".
    sibling_keys = {s for _, cls in actions.items() for s in cls.siblings} | set(COMMON_ACTION_KEYS)
    picked = _single_key(node, actions, ctx, path, sibling_keys)
    if picked is None:
        return None
    key, options = picked
    cls = actions.get(key)
    assert cls is not None
    allowed = {**cls.siblings, **COMMON_ACTION_KEYS}
    siblings: dict[str, Any] = {}
    ok = True
    for k, v in node.items():
        if k == key:
            continue
        if k not in allowed:
            hint = f" ({key!r} takes {', '.join(repr(a) for a in allowed)})" if allowed else ""
            ctx.error((*path, k), f"unknown key {k!r} beside action {key!r}{hint}")
            ok = False
            continue
        for sub, message in validation.check(allowed[k], v):
            ctx.error((*path, k, *sub), message)
            ok = False
        siblings[k] = v
    if not ok:
        return None
    outer, ctx.placeholders = ctx.placeholders, set()
    try:
        action: Action | None = _compile_one(cls, options, ctx, (*path, key), siblings)
        used = ctx.placeholders
    finally:
        ctx.placeholders = outer
    if outer is not None:
        outer |= used  # an ``if`` uses what its branches use
    if "id" in siblings:
        action = _define_step(action, str(siblings["id"]), key, ctx, path)
    if action is not None:
        action.path = format_path(path)
        action.continue_on_error = bool(siblings.get("continue_on_error", False))
        if used:
            action.concrete = action.concrete | caps.from_placeholders(used)
            action.reads_clipboard = CLIPBOARD in used
    return action


def _define_step(
    action: Action | None, step: str, key: str, ctx: CompileContext, path: ConfigPath
) -> Action | None:
    """The actions after this one may use its outputs as ``{steps.<step>.*}``
    (its id is taken even when the action itself has an error)."""
    if not _STEP_ID.match(step):
        ctx.error((*path, "id"), "an id is letters, digits, '_' and '-', not starting with a digit")
        return None
    where = ctx.step_ids.get(step)
    if where is not None:
        ctx.error((*path, "id"), f"id {step!r} is already used at {where}; ids are unique")
        return None
    ctx.step_ids[step] = format_path(path)
    if action is None:
        return None
    action.step_id = step
    names = ctx.names
    ctx.names = dataclasses.replace(
        names,
        steps={**names.steps, step: action.outputs()},
        step_kinds={**names.step_kinds, step: key},
    )
    return action


def compile_actions(node: Any, ctx: CompileContext, path: ConfigPath) -> list[Action]:
    if not ctx.current_path and not ctx.names.all_steps:  # a rule's own 'do'
        found: dict[str, str] = {}
        _find_steps(node, path, found)
        if found:
            ctx.names = dataclasses.replace(ctx.names, all_steps=found)
    if not isinstance(node, list):
        node_list: list[Any] = [node]
        paths: list[ConfigPath] = [path]
    else:
        node_list = node
        paths = [(*path, i) for i in range(len(node))]
    out = [compile_action(item, ctx, p) for item, p in zip(node_list, paths, strict=True)]
    return [a for a in out if a is not None]


def _find_steps(node: Any, path: ConfigPath, found: dict[str, str]) -> None:
    """Every ``id`` of an action under ``node``, with its path (for messages)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _find_steps(item, (*path, i), found)
    elif isinstance(node, Mapping):
        step = node.get("id")
        if isinstance(step, str) and any(k in actions for k in node):
            found.setdefault(step, format_path(path))
        for key, value in node.items():
            if isinstance(value, (list, Mapping)):
                _find_steps(value, (*path, str(key)), found)


def format_path(path: ConfigPath) -> str:
    """``("rules", 0, "do", 1, "file.move")`` -> ``rules[0].do[1].file.move``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def trigger_schema(cls: type[Trigger]) -> dict[str, Any]:
    """The schema of one trigger item: ``{key: options}``."""
    return {
        "type": "object",
        "properties": {cls.key: cls.schema},
        "required": [cls.key],
        "additionalProperties": False,
        "description": cls.description,
    }


def any_trigger_schema() -> dict[str, Any]:
    return {"anyOf": [trigger_schema(cls) for _, cls in triggers.items()]}


def any_condition_schema() -> dict[str, Any]:
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {key: cls.schema},
                "required": [key],
                "additionalProperties": False,
                "description": cls.description,
            }
            for key, cls in conditions.items()
        ]
    }


def any_action_schema() -> dict[str, Any]:
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {key: cls.schema, **cls.siblings, **COMMON_ACTION_KEYS},
                "required": [key, *cls.required_siblings],
                "additionalProperties": False,
                "description": cls.description,
            }
            for key, cls in actions.items()
        ]
    }
