"""Window geometry without a desktop: tiles, lengths, monitors; and what a
pack gets told when its window actions are wrong."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.packs.loader import load_pack
from nerve.windowctl import (
    TILES,
    Length,
    Rect,
    carry,
    monitor_of,
    parse_length,
    place,
    tile_rect,
)

areas = st.builds(
    Rect,
    st.integers(-5000, 5000),
    st.integers(-5000, 5000),
    st.integers(1, 8000),
    st.integers(1, 8000),
)


work_areas = st.builds(
    Rect,
    st.integers(-5000, 5000),
    st.integers(-5000, 5000),
    st.integers(4, 8000),
    st.integers(4, 8000),
)


@settings(max_examples=300, deadline=None)
@given(work_areas)
def test_tiles_share_edges_and_stay_inside(area: Rect) -> None:
    t = {name: tile_rect(name, area) for name in TILES}
    for rect in t.values():
        assert rect.width >= 1
        assert rect.height >= 1
        assert area.intersect(rect) == rect
    # Halves meet without a gap or overlap, and cover the area.
    assert t["left"].right == t["right"].x
    assert t["left"].x == area.x
    assert t["right"].right == area.right
    assert t["top"].bottom == t["bottom"].y
    assert t["top"].y == area.y
    assert t["bottom"].bottom == area.bottom
    # Quarters are the halves cut again.
    assert t["top-left"].right == t["top-right"].x == t["bottom-right"].x
    assert t["top-left"].bottom == t["bottom-left"].y == t["bottom-right"].y
    assert t["top-left"].width == t["left"].width
    assert t["bottom-right"].height == t["bottom"].height


@settings(max_examples=300, deadline=None)
@given(st.integers(-32768, 32767))
def test_whole_numbers_are_pixels(n: int) -> None:
    assert parse_length(n) == Length(n, False)
    assert parse_length(str(n)) == Length(n, False)
    assert parse_length(f" {n} ") == Length(n, False)


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1))
def test_fractions_and_percentages(f: float) -> None:
    assert parse_length(f) == Length(f, True)
    assert parse_length(repr(f)) == Length(f, True)
    got = parse_length(f"{f * 100}%")
    assert got.fraction
    assert math.isclose(got.value, f, abs_tol=1e-12)


@pytest.mark.parametrize(
    "bad",
    [1.5, -0.1, "150%", "-5%", "abc", "", "0.5px", float("nan"), float("inf"), True, None, [1]],
)
def test_what_is_neither_is_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(ValueError, match=r"fraction|pixels"):
        parse_length(bad)


@settings(max_examples=300, deadline=None)
@given(areas, areas, st.floats(0, 1), st.floats(0, 1))
def test_place_takes_fractions_of_the_area(frame: Rect, area: Rect, fx: float, fw: float) -> None:
    got = place(frame, area, x=Length(fx, True), width=Length(fw, True))
    assert got.y == frame.y
    assert got.height == frame.height
    assert abs(got.x - (area.x + area.width * fx)) <= 0.5
    assert abs(got.width - max(1, area.width * fw)) <= 0.5 or got.width == 1


@settings(max_examples=300, deadline=None)
@given(areas, areas, areas)
def test_carry_keeps_the_window_inside_the_other_area(frame: Rect, src: Rect, dest: Rect) -> None:
    moved = carry(frame, src, dest)
    assert dest.intersect(moved) == moved
    if frame == src:
        assert moved == dest  # a window filling one area fills the other


def test_monitor_of_goes_by_overlap() -> None:
    left, right = Rect(0, 0, 1920, 1080), Rect(1920, 0, 1280, 1024)
    assert monitor_of(Rect(100, 100, 300, 300), [left, right]) == 0
    assert monitor_of(Rect(1800, 100, 600, 300), [left, right]) == 1
    assert monitor_of(Rect(5000, 5000, 10, 10), [left, right]) == 0  # off every monitor


def _errors(do: str) -> list[str]:
    text = f"nerve: 1\npack: {{id: t}}\nrules:\n  - id: r\n    when: {{event: x}}\n    do: [{do}]\n"
    return [str(e) for e in load_pack(text.encode(), filename="p.yaml").errors]


@pytest.mark.parametrize(
    ("do", "where", "says"),
    [
        ("{window.tile: sideways}", "rules[0].do[0].window.tile", "sideways"),
        ("{window.tile: {to: left, window: {colour: red}}}", "window.tile.window", "colour"),
        ("{window.move: {x: 1.5}}", "window.move.x", "1.5"),
        ('{window.move: {x: "150%"}}', "window.move.x", "150%"),
        ('{window.move: {y: "abc"}}', "window.move.y", "abc"),
        ("{window.move: {}}", "window.move", ""),
        ("{window.move: {window: {class: X}}}", "window.move", "at least one"),
        ("{window.resize: {x: 5}}", "window.resize", "x"),
        ('{window.focus: {title: {regex: "("}}}', "window.focus.title", "regular expression"),
        ("{window.close: {klass: X}}", "window.close", "klass"),
        ("{window.minimize: left}", "window.minimize", ""),
        ('{window.move: {x: "{event.nope"}}', "window.move.x", ""),
        ('{window.move: {x: "99999"}}', "window.move.x", "out of range"),
        ('{window.resize: {width: "-5"}}', "window.resize.width", "out of range"),
        ("{window.resize: {height: 0}}", "window.resize.height", ""),
    ],
)
def test_bad_options_name_file_line_and_field(do: str, where: str, says: str) -> None:
    errors = _errors(do)
    assert errors, do
    assert errors[0].startswith("p.yaml:6:"), errors
    assert where in errors[0], errors
    assert says in errors[0], errors
    assert "Traceback" not in errors[0]
    assert "internal" not in errors[0]


@pytest.mark.parametrize(
    "do",
    [
        "{window.tile: left}",
        "{window.tile: maximise}",
        "{window.tile: {to: next-monitor, window: {class: Firefox}}}",
        "{window.move: {x: 0, y: 0.5, width: '50%', height: 300}}",
        "{window.move: {x: '{event.x}'}}",
        "{window.resize: {width: 1.0}}",
        "{window.focus: {process: code}}",
        "{window.raise: null}",
        "{window.minimize: {title: '*Slack*'}}",
        "{window.close: {class: '!XTerm', title: {regex: 'x\\\\Z'}}}",
    ],
)
def test_good_options_load(do: str) -> None:
    assert _errors(do) == []
