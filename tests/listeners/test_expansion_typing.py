"""Abbreviations typed as people type (held keys, rollover, pace, bursts) into
a real Qt text field: every expansion arrives exactly, none is missed or
doubled, and the user's own typing is never taken for Nerve's."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import LiveHarness, wait_until
from xclients.qt_field import QtField
from xclients.typist import BRISK, HUMAN, INSTANT, PROFILES, ROLLOVER, STEADY, Profile, Typist

pytestmark = pytest.mark.usefixtures("xserver_wm")

RULES = """
  - id: acc
    when: {typed: ";acc"}
    do: [{type: "ACCEPTED"}]
  - id: lp
    when: {typed: ";lp"}
    do: [{type: "x;lp"}]
  - id: sym
    when: {typed: ";sym"}
    do: [{type: "a&&b || !c ~= {{x}} @#$%^*()_+"}]
  - id: intl
    when: {typed: ";in"}
    do: [{type: "Grüße, señor! café ßß ÉÉ 😀👍"}]
  - id: lines
    when: {typed: ";ln"}
    do: [{type: "one\\n\\ttwo\\n\\tthree"}]
  - id: self
    when: {typed: ";me"}
    do: [{type: "see ;me and ;acc"}]
  - id: btw
    when: {typed: {text: btw, word: true}}
    do: [{type: by the way}]
"""
REPLACEMENTS = {
    ";acc": "ACCEPTED",
    ";lp": "x;lp",
    ";sym": "a&&b || !c ~= {x} @#$%^*()_+",
    ";in": "Grüße, señor! café ßß ÉÉ 😀👍",
    ";ln": "one\n\ttwo\n\tthree",
    ";me": "see ;me and ;acc",
}


@pytest.fixture
def qt_field(xserver_wm: Any) -> Iterator[QtField]:
    f = QtField(xserver_wm.display)
    yield f
    f.close()


@pytest.fixture
def typist(xserver_wm: Any) -> Iterator[Typist]:
    from nerve import injection

    t = Typist(xserver_wm.display, seed=7)
    yield t
    injection.reset()
    t.close()


def expected(text: str) -> str:
    """What ``text`` becomes once every abbreviation in it is expanded."""
    out = text
    for i, abbreviation in enumerate(REPLACEMENTS):
        out = out.replace(abbreviation, f"\0{i}")
    for i, replacement in enumerate(REPLACEMENTS.values()):
        out = out.replace(f"\0{i}", replacement)
    words = out.split(" ")
    return " ".join("by the way" if w == "btw" else w for w in words)


def sentence(rnd: random.Random, count: int) -> str:
    """``count`` abbreviations among ordinary words, as a person writes them."""
    words = ["so", "Then", "we'll", "A", "ok,", "done.", "(see)", "x2", "letters"]
    parts = []
    for _ in range(count):
        parts.append(rnd.choice(words))
        parts.append(rnd.choice([*REPLACEMENTS, "btw"]))
    return " ".join(parts) + " end"


@pytest.mark.parametrize("profile", PROFILES, ids=str)
def test_the_reported_cases(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load(RULES)
    live.listener("keyboard")
    text = "".join(f"w{i} ;acc " if i % 2 else f"w{i} ;lp " for i in range(12))
    typist.type(text, profile)
    assert qt_field.settle() == expected(text)
    typed = live.recorder.of("typed")
    assert len(typed) == 12
    # Privacy: the abbreviation that fired and nothing typed around it.
    assert {e.get("text") for e in typed} == {";acc", ";lp"}
    assert all(set(e.data) == {"text", "expansion"} for e in typed)


# 200 expansions in all: about 34 per profile (fewer for the slowest one).
_COUNTS = {"instant": 40, "slow": 16, "steady": 34, "brisk": 40, "rollover": 40, "bursts": 30}


@pytest.mark.parametrize("profile", PROFILES, ids=str)
@pytest.mark.timeout(180)
def test_many_expansions_arrive_exactly(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load(RULES)
    live.listener("keyboard")
    rnd = random.Random(f"many-{profile}")
    count = _COUNTS[profile.name]
    done = 0
    while done < count:
        batch = min(8, count - done)
        qt_field.clear()
        text = sentence(rnd, batch)
        typist.type(text, profile)
        assert qt_field.settle() == expected(text), f"typed {text!r} at {profile}"
        done += batch
    wait_until(
        lambda: all(
            live.summary(r)["last_run"] is None or live.summary(r)["last_run"]["status"] == "ok"
            for r in ("acc", "lp")
        )
    )
    assert len(live.recorder.of("typed")) >= count


@pytest.mark.parametrize("profile", [INSTANT, BRISK, ROLLOVER], ids=str)
def test_abbreviations_back_to_back(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load(RULES)
    live.listener("keyboard")
    text = ";acc;acc;lp;acc;in;acc"
    typist.type(text, profile)
    assert qt_field.settle() == expected(text)
    assert [e.get("text") for e in live.recorder.of("typed")] == [
        ";acc",
        ";acc",
        ";lp",
        ";acc",
        ";in",
        ";acc",
    ]


@pytest.mark.parametrize("profile", HUMAN, ids=str)
def test_a_replacement_holding_abbreviations_fires_nothing(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load(RULES)
    live.listener("keyboard")
    typist.type(";me then ", profile)
    assert qt_field.settle() == "see ;me and ;acc then "
    assert [e.get("text") for e in live.recorder.of("typed")] == [";me"]


@pytest.mark.parametrize("profile", [INSTANT, BRISK, ROLLOVER], ids=str)
def test_the_replacement_follows_the_case_of_the_abbreviation(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load("""
  - id: sig
    when: {typed: {text: ";sig", case: follow}}
    do: [{type: "best regards"}]
""")
    live.listener("keyboard")
    typist.type(";sig ;Sig ;SIG ;sIG.", profile)
    assert qt_field.settle() == "best regards Best regards BEST REGARDS best regards."


@pytest.mark.parametrize("profile", [INSTANT, STEADY], ids=str)
def test_the_caret_is_left_at_the_marker(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load("""
  - id: fn
    when: {typed: ";fn"}
    do: [{type: "def $|$():\\n    pass"}]
""")
    live.listener("keyboard")
    typist.type(";fn", profile)
    qt_field.wait(
        lambda m: m.get("text") == "def ():\n    pass" and m.get("cursor") == len("def "),
        what="the replacement, with the caret at the marker",
    )
    typist.type("go", profile)
    assert qt_field.settle() == "def go():\n    pass"


def test_the_marker_is_the_rules_text_only(
    live: LiveHarness, typist: Typist, qt_field: QtField
) -> None:
    live.load("""
  - id: say
    when: {event: test.say}
    do: [{type: "<{event.what}>"}]
""")
    live.publish("test.say", what="a$|$b")
    qt_field.wait_text("<a$|$b>")
    assert qt_field.cursor == len("<a$|$b>")


@pytest.mark.parametrize("profile", [INSTANT, STEADY], ids=str)
def test_backspace_right_after_an_expansion_undoes_it(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load(RULES)
    live.listener("keyboard")
    typist.type("ok ;acc", profile)
    qt_field.wait_text("ok ACCEPTED")
    wait_until(lambda: live.summary("acc")["last_run"] is not None)
    typist.type("\b", profile)
    qt_field.wait_text("ok ;acc")
    typist.type(" then ;acc.\b", profile)  # typed again, it expands again; BackSpace on "."
    assert qt_field.settle() == "ok ;acc then ACCEPTED"
