"""Pack versions compare as semantic versions (semver 2.0.0), checked against the spec."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.packs.semver import InvalidVersion, Version, parse, try_parse

# The precedence example of semver.org, section 11, lowest first.
SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.9.0",
    "1.10.0",
    "1.11.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


def test_the_spec_example_is_in_order() -> None:
    versions = [parse(v) for v in SPEC_ORDER]
    for i, low in enumerate(versions):
        for high in versions[i + 1 :]:
            assert low < high
            assert high > low
            assert low != high


@pytest.mark.parametrize(
    "text",
    [
        "1.0",
        "01.0.0",
        "1.01.0",
        "1.0.0-01",
        "1.0.0-",
        "1.0.0+",
        "1.0.0-a..b",
        "x",
        "",
        "1.0.0.0",
        "1.0.0-é",
        " 1.0.0 x",
        "1.-1.0",
    ],
)
def test_what_is_not_a_version_is_refused(text: str) -> None:
    if text == "1.0":  # the forgiving spelling: 1.0 is 1.0.0
        assert parse(text) == parse("1.0.0")
        return
    with pytest.raises(InvalidVersion, match="not a semantic version"):
        parse(text)
    assert try_parse(text) is None


def test_build_metadata_is_ignored_and_forgiving_spellings_are_read() -> None:
    assert parse("1.0.0+build.1") == parse("1.0.0+other")
    assert parse("v2.3.4") == parse("2.3.4")
    assert parse(1.2) == parse("1.2.0")
    assert parse("7") == parse("7.0.0")
    assert str(parse("1.2.3-rc.1+b.7")) == "1.2.3-rc.1+b.7"


def _reference_compare(a: str, b: str) -> int:
    """Semver 2.0.0 section 11, step by step, on the strings."""

    def split(v: str) -> tuple[list[int], list[str]]:
        core, _, _build = v.partition("+")
        core, _, pre = core.partition("-")
        return [int(x) for x in core.split(".")], (pre.split(".") if pre else [])

    (ca, pa), (cb, pb) = split(a), split(b)
    if ca != cb:
        return -1 if ca < cb else 1
    if not pa or not pb:
        return (not pa) - (not pb)  # a release is higher than a pre-release
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1  # numeric identifiers are lower
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


_num = st.integers(0, 30).map(str)
_alnum = st.from_regex(r"[0-9]*[A-Za-z-][0-9A-Za-z-]{0,3}", fullmatch=True)
_pre = st.lists(st.one_of(_num, _alnum), min_size=0, max_size=3)
_build = st.lists(st.from_regex(r"[0-9A-Za-z-]{1,4}", fullmatch=True), max_size=2)


@st.composite
def versions(draw: st.DrawFn) -> str:
    text = ".".join(draw(_num) for _ in range(3))
    pre = draw(_pre)
    if pre:
        text += "-" + ".".join(pre)
    build = draw(_build)
    if build:
        text += "+" + ".".join(build)
    return text


@settings(max_examples=800, deadline=None)
@given(versions(), versions())
def test_comparison_matches_the_spec(a: str, b: str) -> None:
    expected = _reference_compare(a, b)
    va, vb = parse(a), parse(b)
    assert (va < vb, va == vb, va > vb) == (expected < 0, expected == 0, expected > 0)
    assert (hash(va) == hash(vb)) or expected != 0
    assert parse(str(va)) == va


@settings(max_examples=150, deadline=None)
@given(st.lists(versions(), min_size=2, max_size=12))
def test_sorting_agrees_with_the_spec(texts: list[str]) -> None:
    ours = sorted(texts, key=parse)
    theirs = sorted(texts, key=functools.cmp_to_key(_reference_compare))
    assert [parse(v) for v in ours] == [parse(v) for v in theirs]
    assert isinstance(parse(ours[0]), Version)
