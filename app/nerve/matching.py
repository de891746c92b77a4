"""Matching one value against what a rule asks for.

Used by event triggers, ``wait_for``, the ``event`` and ``var`` conditions and
(later) window conditions. A spec is one of:

- a plain value: equal to it; text with ``*``, ``?`` or ``[`` is a glob, and a
  leading ``!`` negates (``"!*terminal*"``);
- a mapping of operators, all of which must hold: ``equals``, ``not``,
  ``glob``, ``regex``, ``in``, ``gt``, ``ge``, ``lt``, ``le``, ``exists``
  (``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=`` are accepted as aliases).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from nerve import saferegex

Predicate = Callable[[Any], bool]

_MISSING = object()
ALIASES = {">": "gt", ">=": "ge", "<": "lt", "<=": "le", "==": "equals", "!=": "not"}
OPERATORS = ("equals", "not", "glob", "regex", "in", "gt", "ge", "lt", "le", "exists")
_GLOB_CHARS = frozenset("*?[")
_TEXT_TYPES = frozenset({str, int, float, bool})


class SpecError(ValueError):
    """A match spec that makes no sense; the message is for the user."""


SPEC_SCHEMA: dict[str, Any] = {
    "description": (
        "A value to match: equal to it; text with * ? [ is a glob; a leading ! negates; "
        "or an object of operators (equals, not, glob, regex, in, gt, ge, lt, le, exists)"
    ),
    "anyOf": [
        {"type": ["string", "number", "boolean", "null"]},
        {
            "type": "object",
            "properties": {
                **{op: {} for op in ("equals", "not", "==", "!=")},
                "glob": {"type": "string"},
                "regex": {"type": "string"},
                "in": {"type": "array"},
                **{op: {"type": ["number", "string"]} for op in ("gt", "ge", "lt", "le")},
                **{op: {"type": ["number", "string"]} for op in (">", ">=", "<", "<=")},
                "exists": {"type": "boolean"},
            },
            "additionalProperties": False,
            "minProperties": 1,
        },
    ],
}


def is_exact(spec: Any) -> bool:
    """True when ``spec`` is plain equality that an index can serve: text (looked
    up by :func:`text_key`) or a finite number (looked up by :func:`number_key`).
    Booleans and null are not: ``true`` must not find ``1``."""
    if isinstance(spec, str):
        return not spec.startswith("!") and not (_GLOB_CHARS & set(spec))
    return isinstance(spec, (int, float)) and not isinstance(spec, bool) and math.isfinite(spec)


def text_key(value: Any) -> str | None:
    """The key of ``value`` in an index of exact text specs: its text, as plain
    equality with text compares it (``5`` finds ``"5"``, ``True`` finds ``"true"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return _text(value)
    return None


def number_key(value: Any) -> float | None:
    """The key of ``value`` in an index of exact number specs, as numeric equality
    compares it (``"5"``, ``5`` and ``5.0`` find ``5``; ``True`` finds nothing)."""
    number = _number(value)
    return None if math.isnan(number) else number


def compile_spec(spec: Any) -> Predicate:
    """A predicate for ``spec``; it receives the value or ``MISSING`` when absent."""
    if isinstance(spec, Mapping):
        checks = [_compile_op(ALIASES.get(str(op), str(op)), arg) for op, arg in spec.items()]
        if not checks:
            raise SpecError("an empty match; give a value or at least one operator")
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)
    if isinstance(spec, str):
        if spec.startswith("!"):
            inner = compile_spec(spec[1:])
            return lambda v: v is _MISSING or not inner(v)
        if _GLOB_CHARS & set(spec):
            return _glob(spec)
    if isinstance(spec, (list, tuple)):
        raise SpecError("a list is not a match; use {in: [...]} for one of several values")
    return _equals(spec)


MISSING = _MISSING


def _equals(expected: Any) -> Predicate:
    if isinstance(expected, bool) or expected is None:
        return lambda v: v is expected or (v == expected and type(v) is type(expected))
    if isinstance(expected, (int, float)):
        return lambda v: _number(v) == expected
    text = str(expected)
    # Only scalars have a text to compare: null is not "None", a list not "[1]".
    return lambda v: type(v) in _TEXT_TYPES and _text(v) == text


def _glob(pattern: str) -> Predicate:
    try:
        match = saferegex.glob_matcher(pattern)
    except saferegex.RegexError as exc:
        raise SpecError(str(exc)) from None
    return lambda v: v is not _MISSING and v is not None and match(_text(v))


def _compile_op(op: str, arg: Any) -> Predicate:
    if op == "equals":
        return _equals(arg)
    if op == "not":
        inner = (
            compile_spec(arg) if not isinstance(arg, str) or arg.startswith("!") else _equals(arg)
        )
        return lambda v: not inner(v)
    if op == "glob":
        if not isinstance(arg, str):
            raise SpecError(f"glob needs text, got {arg!r}")
        return _glob(arg)
    if op == "regex":
        if not isinstance(arg, str):
            raise SpecError(f"regex needs text, got {arg!r}")
        try:
            search = saferegex.searcher(arg)
        except saferegex.RegexError as exc:
            shown = arg if len(arg) <= 80 else arg[:77] + "..."
            raise SpecError(f"bad regular expression {shown!r}: {exc}") from None
        return lambda v: v is not _MISSING and v is not None and search(_text(v))
    if op == "in":
        if not isinstance(arg, (list, tuple)):
            raise SpecError(f"'in' needs a list, got {arg!r}")
        options = [_equals(a) for a in arg]
        return lambda v: any(o(v) for o in options)
    if op in ("gt", "ge", "lt", "le"):
        bound = _number(arg)
        if math.isnan(bound):
            raise SpecError(f"{op} needs a number, got {arg!r}")
        cmp: Callable[[float], bool] = {
            "gt": lambda x: x > bound,
            "ge": lambda x: x >= bound,
            "lt": lambda x: x < bound,
            "le": lambda x: x <= bound,
        }[op]
        return lambda v: cmp(_number(v))  # NaN compares false
    if op == "exists":
        want = bool(arg)
        return lambda v: (v is not _MISSING and v is not None) == want
    raise SpecError(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is _MISSING or value is None:
        return math.nan
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an int past float's range (event data may hold one)
            return math.inf if value > 0 else -math.inf
    try:
        return float(str(value))
    except ValueError:
        return math.nan


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compile_fields(specs: Mapping[str, Any]) -> Callable[[Callable[[str], Any]], bool]:
    """A predicate over several named fields; ``get(name)`` returns MISSING when absent."""
    compiled = [(name, compile_spec(spec)) for name, spec in specs.items()]

    def check(get: Callable[[str], Any]) -> bool:
        return all(pred(get(name)) for name, pred in compiled)

    return check
