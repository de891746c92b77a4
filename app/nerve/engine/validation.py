"""JSON Schema validation with messages a person can act on.

jsonschema's own messages ("'dest' is a required property", "is not valid
under any of the given schemas") are turned into short ones ("missing 'dest'",
"expected text or a list, got 3") with the path of the offending value.

Most values are valid, and a yes-or-no answer for them needs none of
jsonschema (which, with its referencing library and bundled metaschemas,
would be about 6 MB of a running Nerve): :func:`is_valid` answers for the
keywords Nerve's schemas use, and jsonschema is imported only to explain a
value that is not valid, or for a schema with a keyword :func:`is_valid` does
not know.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from nerve.durations import (
    DURATION_SCHEMA,
    MAX_DURATION_S,
    MAX_DURATION_TEXT_FORM,
    DurationTooLong,
    format_duration,
    parse_duration,
)
from nerve.engine.registry import ConfigPath

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

_TYPE_NAMES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing (null)",
}


#: What a pattern stands for, for patterns whose schema has no description of its own
#: (a regular expression means nothing to most people writing a pack).
PATTERN_HINTS: dict[str, str] = {
    **{
        branch["pattern"]: "a duration such as 500ms, 2s, 10m or 1h"
        for branch in DURATION_SCHEMA["anyOf"]
        if "pattern" in branch
    },
    # The variable names of the 'set' action.
    r"^[A-Za-z_][A-Za-z0-9_\-]*$": (
        "a variable name (letters, digits, '_' and '-', not starting with a digit or '-')"
    ),
}


@lru_cache(maxsize=256)
def schema_regex(pattern: str) -> re.Pattern[str]:
    """A schema's ``pattern`` compiled with the meaning JSON Schema gives it.

    JSON Schema patterns are ECMA-262 regular expressions: there ``$`` (with no
    multiline flag) matches only at the very end of the text, and ``\\d``,
    ``\\w`` and ``\\s`` are ASCII. In Python ``$`` also matches before a
    final newline, so ``^[a-z.]+$`` would let ``"file.created\\n"`` through.
    Each ``$`` outside a character class becomes ``\\Z``, and the pattern is
    compiled with ``re.ASCII``."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            # A ']' right after '[' or '[^' is a literal member of the class.
            j = i + 1
            if pattern[j : j + 1] == "^":
                j += 1
            if pattern[j : j + 1] == "]":
                out.append(pattern[i : j + 1])
                i = j + 1
                continue
        elif char == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(char)
        i += 1
    return re.compile("".join(out), re.ASCII)


def pattern_holds(pattern: str, value: str) -> bool:
    """Whether ``value`` matches the schema ``pattern`` (anywhere, as JSON Schema searches)."""
    return schema_regex(pattern).search(value) is not None


def _duration_fits(limit: Any, value: Any) -> bool:
    """The ``maxDuration`` keyword: text that reads as a duration of at most ``limit``
    seconds (text of another form is left to ``pattern``)."""
    if not isinstance(value, str):
        return True
    try:
        parse_duration(value, maximum=limit)
    except DurationTooLong:
        return False
    except ValueError:
        return True  # not a duration at all: the pattern says so
    return True


def describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _types(schema: Any) -> list[str]:
    """The JSON types a schema accepts, looking into anyOf/oneOf."""
    if not isinstance(schema, dict):
        return []
    found: list[str] = []
    t = schema.get("type")
    if isinstance(t, str):
        found.append(t)
    elif isinstance(t, list):
        found.extend(t)
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, []):
            found.extend(x for x in _types(sub) if x not in found)
    if "enum" in schema and not found:
        found.append("enum")
    return found


def _expected(schema: Any) -> str:
    names = [_TYPE_NAMES.get(t, t) for t in _types(schema) if t != "enum"]
    if not names:
        return "something else"
    return " or ".join(dict.fromkeys(names))


def json_type(value: Any) -> str | None:
    """The JSON Schema type name of ``value``; None for what JSON has no type
    for (a date YAML read, say): each caller decides what that counts as."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return None


def _type_fits(schema: Any, value: Any) -> bool:
    types = _types(schema)
    actual = json_type(value) or "null"
    if actual == "integer" and "number" in types:
        return True
    return actual in types


def _wrong_type(schema: Any, instance: Any) -> str:
    message = f"expected {_expected(schema)}, got {describe_value(instance)}"
    if isinstance(instance, bool) and "string" in _types(schema):
        # `log: no`, `level: off`: YAML 1.1 reads these words as booleans.
        message += " (YAML reads yes/no/on/off/true/false as true or false; quote the word)"
    return message


def explain(error: ValidationError) -> tuple[ConfigPath, str]:
    """Path and message for one jsonschema error, descending into anyOf/oneOf."""
    path: ConfigPath = tuple(error.absolute_path)
    v = error.validator
    schema: Any = error.schema
    instance: Any = error.instance
    expected_value: Any = error.validator_value
    if v in ("anyOf", "oneOf") and error.context:
        # Pick the branch meant for this kind of value and explain its error.
        fitting = [e for e in error.context if _type_fits(schema[v][e.schema_path[0]], instance)]
        if fitting:
            best = max(fitting, key=lambda e: len(e.absolute_path))
            sub_path, message = explain(best)
            return sub_path, message
        return path, _wrong_type(schema, instance)
    if v == "required":
        missing = [r for r in expected_value if r not in instance]
        return path, "missing " + ", ".join(repr(m) for m in missing)
    if v == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extras = [k for k in instance if k not in allowed]
        extra = extras[0] if extras else "?"
        close = difflib.get_close_matches(str(extra), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if not close and allowed:
            hint = f" (known: {', '.join(allowed)})"
        return (*path, extra), f"unknown key {extra!r}{hint}"
    if v == "type":
        return path, _wrong_type(schema, instance)
    if v == "enum":
        options = ", ".join(repr(o) for o in expected_value)
        return path, f"expected one of {options}, got {describe_value(instance)}"
    if v == "pattern":
        desc = schema.get("description")
        if desc:
            return (
                path,
                f"{describe_value(instance)} is not valid: {desc[0].lower()}{desc[1:]}",
            )
        meaning = PATTERN_HINTS.get(expected_value)
        if meaning:
            return path, f"expected {meaning}, got {describe_value(instance)}"
        return path, f"{describe_value(instance)} does not match {expected_value!r}"
    if v == "maxDuration":
        limit = _duration_limit(expected_value)
        return path, f"a duration is at most {limit}, got {describe_value(instance)}"
    if v == "maximum" and _is_duration_branch(schema):
        limit = _duration_limit(expected_value)
        seconds = f"{expected_value:,} seconds"
        return path, f"a duration is at most {limit} ({seconds}), got {describe_value(instance)}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return path, f"must be {word[v]} {expected_value}, got {describe_value(instance)}"
    if v == "minItems":
        if expected_value == 1:
            return path, "must not be empty"
        return path, f"needs at least {expected_value} items"
    if v == "maxLength":
        return path, f"is too long (at most {expected_value} characters)"
    if v == "maxItems":
        return path, f"takes at most {expected_value} item(s)"
    if v == "minProperties":
        return path, "must not be empty"
    if v == "minLength":
        return path, "must not be empty"
    if v == "const":
        return path, f"must be {expected_value!r}, got {describe_value(instance)}"
    return path, error.message


def _duration_limit(seconds: Any) -> str:
    return MAX_DURATION_TEXT_FORM if seconds == MAX_DURATION_S else format_duration(float(seconds))


def _is_duration_branch(schema: Any) -> bool:
    return isinstance(schema, dict) and any(schema == branch for branch in DURATION_SCHEMA["anyOf"])


def _js_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not pattern_holds(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _js_max_duration(validator: Any, limit: Any, instance: Any, schema: Any) -> Any:
    from jsonschema.exceptions import ValidationError

    if not _duration_fits(limit, instance):
        yield ValidationError(f"{instance!r} is longer than {limit} seconds")


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    import json

    import jsonschema

    schema = json.loads(schema_json)
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    # The same pattern semantics as the quick check (ECMA's '$'), and Nerve's keyword.
    extend: Any = jsonschema.validators.extend
    cls = extend(base, {"pattern": _js_pattern, "maxDuration": _js_max_duration})
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


#: Nested triggers, conditions and actions are checked by compiling them (with
#: their own schemas and better messages), so a type's own check sees them loosely.
LOOSE_DEFS: dict[str, Any] = {
    "trigger": {"type": "object"},
    "condition": {"type": "object"},
    "conditions": {"anyOf": [{"type": "object"}, {"type": "array"}]},
    "action": {"type": "object"},
    "actions": {"anyOf": [{"type": "object"}, {"type": "array"}]},
}


def check(schema: dict[str, Any], value: Any) -> list[tuple[ConfigPath, str]]:
    """Every problem of ``value`` against ``schema``, most specific first."""
    import json

    if "$defs" not in schema:
        schema = {**schema, "$defs": LOOSE_DEFS}
    if is_valid(schema, value):
        return []
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors: Iterable[ValidationError] = validator.iter_errors(value)
    out: list[tuple[ConfigPath, str]] = []
    seen: set[tuple[ConfigPath, str]] = set()
    for error in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        item = explain(error)
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


# ------------------------------------------------------------ the quick check

#: Keywords that do not constrain a value (annotations).
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "format",  # an annotation only, in draft 2020-12 as jsonschema runs it
        "deprecated",
        "readOnly",
        "writeOnly",
        "markdownDescription",
    }
)


class _Unsupported(Exception):
    """A keyword (or reference) the quick check does not know."""


def is_valid(schema: dict[str, Any], value: Any) -> bool | None:
    """Whether ``value`` is valid against ``schema`` (draft 2020-12, as
    jsonschema decides it); None when the schema uses a keyword this check
    does not know."""
    try:
        return _valid(schema, value, schema)
    except _Unsupported:
        return None


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema sees it: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return bool(a == b)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_type(value: Any, name: str) -> bool:
    if name not in _TYPE_NAMES:  # the JSON Schema type names
        raise _Unsupported(name)
    actual = json_type(value)
    if actual == name:
        return True
    if name == "number":
        return actual == "integer"
    if name == "integer" and actual == "number":  # 2020-12: 1.0 is an integer
        return bool(math.isfinite(value) and value.is_integer())
    return False


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/"):
        raise _Unsupported(ref)
    node: Any = root
    for escaped in ref[2:].split("/"):
        part = escaped.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise _Unsupported(ref)
        node = node[part]
    return node


def _valid(schema: Any, value: Any, root: dict[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise _Unsupported(repr(schema))
    for key, arg in schema.items():
        if key in _ANNOTATIONS:
            continue
        if not _keyword_holds(key, arg, schema, value, root):
            return False
    return True


def _keyword_holds(
    key: str, arg: Any, schema: dict[str, Any], value: Any, root: dict[str, Any]
) -> bool:
    if key == "type":
        names = [arg] if isinstance(arg, str) else arg
        return any(_has_type(value, name) for name in names)
    if key == "$ref":
        return _valid(_resolve(arg, root), value, root)
    if key == "anyOf":
        return any(_valid(sub, value, root) for sub in arg)
    if key == "allOf":
        return all(_valid(sub, value, root) for sub in arg)
    if key == "oneOf":
        return sum(1 for sub in arg if _valid(sub, value, root)) == 1
    if key == "not":
        return not _valid(arg, value, root)
    if key == "if":
        if _valid(arg, value, root):
            return "then" not in schema or _valid(schema["then"], value, root)
        return "else" not in schema or _valid(schema["else"], value, root)
    if key in ("then", "else"):
        return True  # checked with "if" (and ignored without one, as the draft says)
    if key == "enum":
        return any(_json_equal(value, option) for option in arg)
    if key == "const":
        return _json_equal(value, arg)
    if isinstance(value, str):
        if key == "pattern":
            return pattern_holds(arg, value)
        if key == "maxDuration":
            return _duration_fits(arg, value)
        if key == "minLength":
            return bool(len(value) >= arg)
        if key == "maxLength":
            return bool(len(value) <= arg)
    elif _is_number(value):
        if key == "minimum":
            return bool(value >= arg)
        if key == "maximum":
            return bool(value <= arg)
        if key == "exclusiveMinimum":
            return bool(value > arg)
        if key == "exclusiveMaximum":
            return bool(value < arg)
    elif isinstance(value, list):
        if key == "items":
            start = len(schema.get("prefixItems", ()))
            return all(_valid(arg, item, root) for item in value[start:])
        if key == "prefixItems":
            return all(_valid(sub, item, root) for sub, item in zip(arg, value, strict=False))
        if key == "minItems":
            return bool(len(value) >= arg)
        if key == "maxItems":
            return bool(len(value) <= arg)
        if key == "uniqueItems":
            return not arg or all(
                not _json_equal(value[i], value[j])
                for i in range(len(value))
                for j in range(i + 1, len(value))
            )
    elif isinstance(value, dict):
        if key == "properties":
            return all(_valid(sub, value[name], root) for name, sub in arg.items() if name in value)
        if key == "required":
            return all(name in value for name in arg)
        if key == "additionalProperties":
            if "patternProperties" in schema:
                raise _Unsupported(key)
            known = schema.get("properties", {})
            return all(_valid(arg, value[name], root) for name in value if name not in known)
        if key == "minProperties":
            return bool(len(value) >= arg)
        if key == "maxProperties":
            return bool(len(value) <= arg)
        if key == "propertyNames":
            return all(_valid(arg, name, root) for name in value)
    if key in _FOR_OTHER_TYPES:
        return True  # a keyword for another type of value: it does not apply
    raise _Unsupported(key)


_FOR_OTHER_TYPES = frozenset(
    {
        "pattern",
        "maxDuration",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "properties",
        "required",
        "additionalProperties",
        "minProperties",
        "maxProperties",
        "propertyNames",
    }
)
