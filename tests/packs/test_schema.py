"""`nerve schema`: a valid Draft 2020-12 schema that agrees with the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema.exceptions import best_match

from nerve.engine.registry import actions, conditions, load_builtin_types, triggers
from nerve.packs.loader import load_pack
from nerve.packs.schema import pack_schema
from nerve.packs.yamlsource import YamlError, format_path, load_yaml

HERE = Path(__file__).parent
GOOD = HERE / "good"
BROKEN = HERE / "broken"
STARTER = HERE.parents[1] / "rules" / "starter.yaml"


@cache
def printed_schema() -> dict[str, Any]:
    """What `nerve schema` prints, as a user's editor gets it."""
    proc = subprocess.run(
        [sys.executable, "-m", "nerve", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stderr == ""
    schema: dict[str, Any] = json.loads(proc.stdout)
    return schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(printed_schema())


def schema_errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]


def test_schema_is_valid_draft_2020_12() -> None:
    schema = printed_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["nerve", "pack", "rules"]
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


def test_printed_schema_is_the_packaged_one() -> None:
    assert printed_schema() == json.loads(json.dumps(pack_schema()))


def test_schema_knows_every_type() -> None:
    load_builtin_types()
    defs = printed_schema()["$defs"]

    def keys(node: dict[str, Any]) -> set[str]:
        return {branch["required"][0] for branch in node["anyOf"]}

    assert keys(defs["trigger"]) == set(triggers.keys())
    assert keys(defs["condition"]) == set(conditions.keys())
    assert keys(defs["action"]) == set(actions.keys())


def _good_files() -> list[Path]:
    return [STARTER, *sorted(GOOD.glob("*.yaml"))]


@pytest.mark.parametrize("path", _good_files(), ids=lambda p: p.name)
def test_good_packs_are_valid(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    assert load_pack(path).ok
    assert schema_errors(validator, load_yaml(path).data) == []


#: Broken packs the schema must reject too, as the loader does.
REJECTED = [
    "unknown_action.yaml",
    "unknown_trigger.yaml",
    "unknown_condition.yaml",
    "unknown_rule_key.yaml",
    "mode_not_in_enum.yaml",
    "max_with_single.yaml",
    "nerve_2.yaml",
    "missing_nerve.yaml",
    "missing_pack_id.yaml",
    "bad_pack_id.yaml",
    "missing_when_do.yaml",
    "rule_not_mapping.yaml",
    "when_string.yaml",
    "trigger_two_keys.yaml",
    "string_for_list.yaml",
    "number_for_text.yaml",
    "bad_duration.yaml",
    "sequence_one_step.yaml",
    "choices_not_list.yaml",
    "default_wrong_type.yaml",
    "pack_is_list.yaml",
    "pack_is_scalar.yaml",
    "header_and_rule.yaml",
    "three_bad_rules.yaml",
]


def _within(path: str, outer: str) -> bool:
    """``rules[0].do[1].file.mvoe`` is within ``rules[0].do[1]`` (and everything is within "")."""
    return not outer or path == outer or path.startswith((f"{outer}.", f"{outer}["))


@pytest.mark.parametrize("filename", REJECTED)
def test_broken_packs_are_rejected(
    validator: jsonschema.Draft202012Validator, filename: str
) -> None:
    data = load_yaml(BROKEN / filename).data
    errors = list(validator.iter_errors(data))
    assert errors
    # Where: the schema's best error is at, or above, a place the loader names.
    best = best_match(errors)
    assert best is not None
    place = format_path(tuple(best.absolute_path))
    loader_places = [e.path for e in load_pack(BROKEN / filename).errors]
    assert any(_within(p, place) for p in loader_places), (place, loader_places)


@pytest.mark.parametrize("filename", ["if_without_then.yaml", "nested_group_condition"])
def test_schema_catches_nested_problems(
    validator: jsonschema.Draft202012Validator, filename: str
) -> None:
    if filename == "nested_group_condition":
        text = (
            "nerve: 1\npack: {id: gap.nested}\nrules:\n"
            "  - {id: a, when: {event: x.y}, if: {any: [{tme: 5}]}, do: [{log: hi}]}\n"
        )
        assert load_pack(text.encode()).errors
        data = load_yaml(text).data
    else:
        data = load_yaml(BROKEN / filename).data
    assert schema_errors(validator, data)


# --------------------------------------------------------------------------- agreement


def _variants(text: str) -> Iterator[str]:
    """One-line changes of a good pack: the loader accepts some and rejects others."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        yield "".join(lines[:i] + lines[i + 1 :])
        if ": " in line:
            for value in ("5", "x", "[]", "null"):
                yield "".join([*lines[:i], line.replace(": ", f": {value} #", 1), *lines[i + 1 :]])


@pytest.mark.parametrize("path", _good_files(), ids=lambda p: p.name)
def test_whatever_the_loader_accepts_the_schema_accepts(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    accepted = 0
    for text in _variants(path.read_text()):
        try:
            data = load_yaml(text).data
        except YamlError:
            continue
        if load_pack(text.encode(), filename="variant.yaml").errors:
            continue
        accepted += 1
        assert schema_errors(validator, data) == [], text
    assert accepted > 5
