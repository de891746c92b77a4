"""The quick validity check against jsonschema, on every schema Nerve has."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve import settings as nerve_settings
from nerve.engine import validation
from nerve.engine.registry import actions, conditions, load_builtin_types, triggers
from nerve.packs import loader

pytestmark = pytest.mark.timeout(300)

load_builtin_types()

# The real function: the session's cross-checking wrapper must not hide it.
QUICK = validation.__dict__["_valid"]


def quick(schema: dict[str, Any], value: Any) -> bool | None:
    try:
        return bool(QUICK(schema, value, schema))
    except validation._Unsupported:
        return None


def all_schemas() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {
        "pack": loader.envelope_schema(),
        "rule": loader.rule_schema(loose=True),
        "settings": nerve_settings.SCHEMA,
    }
    for kind, registry in (("trigger", triggers), ("action", actions), ("condition", conditions)):
        for key, cls in registry.items():
            schema = cls.schema
            if isinstance(schema, dict):
                found[f"{kind} {key}"] = schema
    return {
        name: schema if "$defs" in schema else {**schema, "$defs": validation.LOOSE_DEFS}
        for name, schema in found.items()
    }


SCHEMAS = all_schemas()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.integers(),
    st.floats(allow_nan=False),
    st.sampled_from([0.0, 1.0, 2.5, -1.0]),
    st.text(max_size=8),
    st.sampled_from(["", "500ms", "2s", "10m", "x", "ctrl+alt+t", "*", "a.b", "~/x"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def guided(schema: Any, root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by ``schema`` (valid or nearly), mixed with arbitrary ones."""
    if depth > 4 or not isinstance(schema, dict):
        return json_values
    options: list[st.SearchStrategy[Any]] = [json_values]
    if "$ref" in schema:
        options.append(guided(validation._resolve(schema["$ref"], root), root, depth + 1))
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    if "const" in schema:
        options.append(st.just(schema["const"]))
    for key in ("anyOf", "oneOf", "allOf"):
        options.extend(guided(sub, root, depth + 1) for sub in schema.get(key, []))
    if "pattern" in schema:
        options.append(st.from_regex(schema["pattern"]))
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "array" in types or "items" in schema:
        options.append(st.lists(guided(schema.get("items", {}), root, depth + 1), max_size=3))
    props = schema.get("properties", {})
    if props:
        required = [name for name in schema.get("required", []) if name in props]
        options.append(
            st.fixed_dictionaries(
                {name: guided(props[name], root, depth + 1) for name in required},
                optional={
                    name: guided(sub, root, depth + 1)
                    for name, sub in props.items()
                    if name not in required
                },
            )
        )
    if depth and len(options) > 1:
        options.pop(0)  # below the top, mostly values of the expected shape
    return st.one_of(options)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_quick_check_agrees_with_jsonschema(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    value = data.draw(guided(schema, schema))
    verdict = quick(schema, value)
    assert verdict is not None, f"{name}: the quick check does not know a keyword of it"
    # jsonschema as Nerve runs it: ECMA-262's '$' in patterns, and 'maxDuration'.
    full = validation._validator(json.dumps(schema, sort_keys=True))
    assert verdict == full.is_valid(value), value


@pytest.mark.parametrize(
    ("schema", "value", "valid"),
    [
        ({"type": "integer"}, 1.0, True),  # 2020-12: an integral number is an integer
        ({"type": "integer"}, True, False),
        ({"type": "number"}, False, False),
        ({"enum": [1]}, True, False),
        ({"enum": [1]}, 1.0, True),
        ({"const": [1, "a"]}, [1, "a"], True),
        ({"type": "array", "uniqueItems": True}, [1, True], True),
        ({"type": "array", "uniqueItems": True}, [1, 1.0], False),
        ({"pattern": "^a"}, 3, True),  # applies to text only
        ({"minLength": 1}, "", False),
        ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"a": 1}, False),
        ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"c": 1}, True),
        ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}, False),
        ({"propertyNames": {"pattern": "^x"}}, {"y": 1}, False),
    ],
)
def test_keywords(schema: dict[str, Any], value: Any, valid: bool) -> None:
    assert quick(schema, value) is valid
    assert jsonschema.Draft202012Validator(schema).is_valid(value) is valid


def test_an_unknown_keyword_goes_to_jsonschema() -> None:
    schema = {"type": "object", "dependentRequired": {"a": ["b"]}}
    assert validation.is_valid(schema, {"a": 1}) is None
    assert validation.check(schema, {"a": 1}) == [((), "'b' is a dependency of 'a'")]


def test_a_valid_pack_loads_without_jsonschema() -> None:
    code = (
        "import sys\n"
        "from nerve.packs.loader import load_pack\n"
        "from nerve.paths import shipped_packs_dir\n"
        "starter = shipped_packs_dir() / 'starter.yaml'\n"
        "pack = load_pack(starter.read_bytes(), filename=str(starter))\n"
        "assert not pack.errors, pack.errors\n"
        "assert pack.rules\n"
        "assert 'jsonschema' not in sys.modules, 'jsonschema was imported'\n"
        "pack = load_pack(b'nerve: 1\\npack: {id: x}\\nrules: [{id: r, when: 3}]\\n')\n"
        "assert pack.errors\n"
        "assert 'jsonschema' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
