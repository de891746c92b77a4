"""The JSON Schema of rule packs, assembled from the registered types.

``nerve schema`` prints it so editors can validate and complete pack files;
the loader validates each part against the same definitions.
"""

from __future__ import annotations

from typing import Any

from nerve.durations import DURATION_SCHEMA
from nerve.engine.compiler import any_action_schema, any_condition_schema, any_trigger_schema
from nerve.engine.model import MODES
from nerve.engine.registry import load_builtin_types
from nerve.ranges import MAX_RUNS, MAX_SAFE_INTEGER

SCHEMA_ID = "https://nerve.invalid/schema/pack-1.json"
PACK_ID_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,99}$"
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
INPUT_TYPES = ("text", "path", "number", "boolean")

_INPUT_DEFAULT: dict[str, dict[str, Any]] = {
    "number": {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
    "boolean": {"type": "boolean"},
}

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "type": {"enum": list(INPUT_TYPES)},
        "default": {"type": ["string", "number", "boolean"]},
        "choices": {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 1},
        "secret": {
            "type": "boolean",
            "description": (
                "A token or password: the value you give is never logged, traced, "
                "shown or stored in the event log"
            ),
        },
    },
    "additionalProperties": False,
    # A default is of the input's type (text and path take any value as text).
    "allOf": [
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"properties": {"default": _INPUT_DEFAULT[kind]}},
        }
        for kind in ("number", "boolean")
    ],
}

PACK_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {
            "type": "string",
            "pattern": PACK_ID_PATTERN,
            "description": "Lower-case letters, digits, '.', '-', '_' (example.screenshots)",
        },
        "name": {"type": "string"},
        "version": {"type": ["string", "number"]},
        "author": {"type": "string"},
        "description": {"type": "string"},
        "homepage": {"type": "string"},
        "source_url": {
            "type": "string",
            "pattern": "^https://",
            "description": "Where newer versions of this pack are published (an https:// address)",
        },
        "inputs": {
            "type": "object",
            "propertyNames": {
                "pattern": INPUT_NAME_PATTERN,
                "description": (
                    "Input names: up to 64 letters, digits and '_', not starting with a digit"
                ),
            },
            "additionalProperties": INPUT_SCHEMA,
        },
    },
    "required": ["id"],
    "additionalProperties": False,
}

RATE_KEYS = ("debounce", "throttle", "cooldown")


def rule_schema(loose: bool) -> dict[str, Any]:
    """The schema of one rule. ``loose``: ``when``, ``if`` and ``do`` are left to
    the compiler, which checks their shape too, with better messages (checking
    them here as well reported each such problem twice)."""
    if loose:
        when: dict[str, Any] = {}
        conditions: dict[str, Any] = {}
        actions: dict[str, Any] = {}
    else:
        trigger = {"$ref": "#/$defs/trigger"}
        when = {"anyOf": [trigger, {"type": "array", "items": trigger, "minItems": 1}]}
        conditions = {"$ref": "#/$defs/conditions"}
        actions = {"$ref": "#/$defs/actions"}
    return {
        "type": "object",
        "properties": {
            "id": {
                "type": "string",
                "pattern": RULE_ID_PATTERN,
                "description": "Letters, digits, '.', '-', '_'; unique within the pack",
            },
            "name": {"type": "string"},
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            "when": {**when, "description": "One trigger or a list: any of them starts the rule"},
            "if": conditions,
            "do": actions,
            "mode": {"enum": list(MODES), "description": "What a trigger does while a run is on"},
            "max": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_RUNS,
                "description": "queued/parallel: the limit",
            },
            **dict.fromkeys(RATE_KEYS, DURATION_SCHEMA),
        },
        "required": ["id", "when", "do"],
        "additionalProperties": False,
        # The loader says this with a better message (the loose schema leaves it out).
        **(
            {}
            if loose
            else {
                "if": {"required": ["max"]},
                "then": {
                    "properties": {"mode": {"enum": ["queued", "parallel"]}},
                    "required": ["mode"],
                },
            }
        ),
    }


def envelope_schema() -> dict[str, Any]:
    """The top of a pack file, with rules checked loosely."""
    return {
        "type": "object",
        "properties": {
            "nerve": {"const": 1, "description": "Pack format version"},
            "pack": PACK_INFO_SCHEMA,
            # Each rule is checked on its own: a broken rule is not a broken header.
            "rules": {"type": "array"},
        },
        "required": ["nerve", "pack", "rules"],
        "additionalProperties": False,
    }


def pack_schema() -> dict[str, Any]:
    """The complete schema, every trigger, condition and action included."""
    load_builtin_types()
    condition = {"$ref": "#/$defs/condition"}
    action = {"$ref": "#/$defs/action"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Nerve rule pack",
        "type": "object",
        "properties": {
            **envelope_schema()["properties"],
            "rules": {"type": "array", "items": rule_schema(loose=False)},
        },
        "required": ["nerve", "pack", "rules"],
        "additionalProperties": False,
        "$defs": {
            "trigger": any_trigger_schema(),
            "condition": any_condition_schema(),
            "conditions": {"anyOf": [condition, {"type": "array", "items": condition}]},
            "action": any_action_schema(),
            "actions": {"anyOf": [action, {"type": "array", "items": action}]},
        },
    }
