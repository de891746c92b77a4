"""Match specs: plain values, globs, negation and operators."""

from __future__ import annotations

from typing import Any

import pytest

from nerve import matching
from nerve.matching import (
    MISSING,
    SpecError,
    compile_fields,
    compile_spec,
    is_exact,
    number_key,
    text_key,
)


def matches(spec: Any, value: Any) -> bool:
    return compile_spec(spec)(value)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        # Plain text: equal as text.
        ("world", "world", True),
        ("world", "World", False),
        ("5", 5, True),
        ("true", True, True),
        ("world", MISSING, False),
        # Numbers compare as numbers, whatever the value's type.
        (5, 5, True),
        (5, 5.0, True),
        (5, "5", True),
        (5, "5.0", True),
        (5, 6, False),
        (5, "five", False),
        (1, True, False),  # a boolean is not a number
        (5, MISSING, False),
        # Booleans and null are strict.
        (True, True, True),
        (True, 1, False),
        (True, "true", False),
        (False, 0, False),
        (None, None, True),
        (None, MISSING, False),
        (None, "", False),
    ],
)
def test_plain_values(spec: Any, value: Any, expected: bool) -> None:
    assert matches(spec, value) is expected


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("*.png", "shot.png", True),
        ("*.png", "shot.PNG", False),
        ("*.png", "dir/shot.png", True),  # * crosses slashes (fnmatch)
        ("Screenshot*", "Screenshot 2024.png", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file10.txt", False),
        ("[ab]*", "apple", True),
        ("[ab]*", "cherry", False),
        ("*", "", True),
        ("*", None, False),
        ("*", MISSING, False),
        ("a*b", "a\nb", True),  # a value with a line break still matches
        ("*5*", 1500, True),  # numbers are matched as their text
    ],
)
def test_globs(spec: str, value: Any, expected: bool) -> None:
    assert matches(spec, value) is expected


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("!*terminal*", "gnome-terminal", False),
        ("!*terminal*", "firefox", True),
        ("!*terminal*", MISSING, True),  # absent is "not a terminal"
        ("!firefox", "firefox", False),
        ("!firefox", "chromium", True),
    ],
)
def test_negation(spec: str, value: Any, expected: bool) -> None:
    assert matches(spec, value) is expected


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"equals": "a"}, "a", True),
        ({"==": 3}, "3", True),
        ({"not": "a"}, "b", True),
        ({"not": "a"}, "a", False),
        ({"!=": "*.png"}, "*.png", False),  # 'not' with text is plain inequality, not a glob
        ({"!=": "*.png"}, "x.png", True),
        ({"not": {"glob": "*.png"}}, "x.png", False),
        ({"glob": "*.md"}, "README.md", True),
        ({"regex": r"^\d{3}$"}, "123", True),
        ({"regex": r"^\d{3}$"}, "1234", False),
        ({"regex": "err"}, "an error", True),  # search, not full match
        ({"regex": "x"}, None, False),
        ({"regex": "x"}, MISSING, False),
        ({"in": ["a", "b", 3]}, "b", True),
        ({"in": ["a", "b", 3]}, 3.0, True),
        ({"in": ["a", "b"]}, "c", False),
        ({"gt": 10}, 11, True),
        ({"gt": 10}, 10, False),
        ({">": 10}, "10.5", True),  # numeric text compares as a number
        ({"ge": 10}, 10, True),
        ({"lt": 0.5}, 0.25, True),
        ({"<=": "2"}, 2, True),
        ({"gt": 1}, "many", False),
        ({"gt": 1}, MISSING, False),
        ({"lt": 1}, None, False),
        ({"gt": 0}, True, False),
        ({"ge": 1, "lt": 5}, 3, True),  # several operators: all must hold
        ({"ge": 1, "lt": 5}, 5, False),
        ({"exists": True}, "x", True),
        ({"exists": True}, MISSING, False),
        ({"exists": True}, None, False),
        ({"exists": False}, MISSING, True),
        ({"exists": False}, 0, False),
    ],
)
def test_operators(spec: dict[str, Any], value: Any, expected: bool) -> None:
    assert matches(spec, value) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "empty"),
        ({"near": 3}, "unknown operator"),
        ({"regex": "("}, "bad regular expression"),
        ({"regex": 3}, "regex needs text"),
        ({"glob": 3}, "glob needs text"),
        ({"in": "abc"}, "needs a list"),
        ({"gt": "lots"}, "needs a number"),
        (["a", "b"], "use {in"),
    ],
)
def test_bad_specs(spec: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        compile_spec(spec)


def test_fields_all_must_hold() -> None:
    check = compile_fields({"name": "*.png", "size": {"gt": 100}})
    data = {"name": "a.png", "size": 200}
    assert check(lambda n: data.get(n, MISSING))
    data["size"] = 50
    assert not check(lambda n: data.get(n, MISSING))
    assert not check(lambda n: MISSING)


@pytest.mark.parametrize(
    ("spec", "exact"),
    [
        ("world", True),
        ("*.png", False),
        ("!world", False),
        ("a[b", False),
        # Finite numbers are indexed by number_key; booleans and null never
        # are (true must not find 1).
        (5, True),
        (2.5, True),
        (float("inf"), False),
        (True, False),
        (None, False),
        ({"equals": "x"}, False),
    ],
)
def test_is_exact(spec: Any, exact: bool) -> None:
    assert is_exact(spec) is exact


VALUES = ["5", 5, 5.0, " 5", 5.5, "5.50", True, False, "true", "", "ctrl+alt+t", None, (1, 2), "x"]


@pytest.mark.parametrize("value", VALUES)
def test_text_key_agrees_with_plain_text_equality(value: Any) -> None:
    """An exact text spec found by index lookup is one the predicate accepts, and back."""
    for spec in ("5", "5.5", "true", "false", "", "ctrl+alt+t", "None"):
        key = text_key(value)
        by_index = key is not None and key == text_key(spec)
        assert by_index is matches(spec, value), (spec, value)


@pytest.mark.parametrize("value", VALUES)
def test_number_key_agrees_with_numeric_equality(value: Any) -> None:
    """An exact number spec found by index lookup is one the predicate accepts, and back."""
    for spec in (5, 5.5, 0, 1):
        key = number_key(value)
        by_index = key is not None and key == number_key(spec)
        assert by_index is matches(spec, value), (spec, value)


def test_spec_schema_is_json_schema() -> None:
    from nerve.engine.validation import check

    assert check(matching.SPEC_SCHEMA, {"gt": 3}) == []
    assert check(matching.SPEC_SCHEMA, "x*") == []
    assert check(matching.SPEC_SCHEMA, {"near": 3})
