"""Durations as people write them in rules."""

from __future__ import annotations

import math

import pytest

from nerve.durations import DURATION_SCHEMA, format_duration, parse_duration
from nerve.engine.validation import check


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1m 30s", 90.0),
        ("1.5s", 1.5),
        ("  2S ", 2.0),  # case and surrounding blanks do not matter
        ("0s", 0.0),
        ("3", 3.0),  # a bare number is seconds
        ("0.25", 0.25),
        (3, 3.0),
        (0.5, 0.5),
    ],
)
def test_parses(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "soon",
        "5 minutes",
        "1x",
        "ms",
        "-1s",
        "-3",
        -1,
        True,
        None,
        [1],
        # Not finite: a delay of "inf" (say, from a placeholder) would never end.
        "inf",
        "nan",
        "1e999",
        math.inf,
        math.nan,
    ],
)
def test_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (1.5, "1.5s"), (90, "90s"), (600, "10m"), (7200, "2h"), (86400, "1d")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)  # round trip


@pytest.mark.parametrize("good", ["500ms", "1h30m", 2, 0.5])
def test_schema_accepts_what_the_parser_reads(good: object) -> None:
    assert check(DURATION_SCHEMA, good) == []


@pytest.mark.parametrize("bad", ["soon", -1, "1x"])
def test_schema_rejects_what_the_parser_rejects(bad: object) -> None:
    assert check(DURATION_SCHEMA, bad)
