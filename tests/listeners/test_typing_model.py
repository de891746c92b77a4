"""The model of the focused text (listeners/typing.py) against a simulated
application: the user's keys land anywhere between Nerve's own, and every
expansion still ends exact, once, in order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nerve.injection import EXPAND_STEPS, ExpansionLost
from nerve.listeners.typing import Abbreviation, Typing, follow_case, typed_case

RULES = {";acc": "ACCEPTED", ";lp": "x;lp", "zz": "z z"}


def reference(script: str) -> str:
    """What the user means: each abbreviation replaced as it is completed."""
    out: list[str] = []
    typed = ""
    for char in script:
        out.append(char)
        typed += char
        for abbreviation, replacement in RULES.items():
            if typed.endswith(abbreviation):
                del out[-len(abbreviation) :]
                out.extend(replacement)
                typed = ""
                break
    return "".join(out)


class World:
    """An application's text and the model, fed the same keys in the same order."""

    def __init__(self) -> None:
        self.app: list[str] = []
        self.published: list[dict[str, object]] = []
        self.model = Typing(self.published.append)
        self.model.configure([Abbreviation(a, expands=True) for a in RULES])

    def key(self, char: str, own: bool) -> None:
        if char == "\b":
            if self.app:
                self.app.pop()
            self.model.backspace(own)
        else:
            self.app.append(char)
            self.model.char(char, own)

    def expand(self, expansion: int, replacement: str) -> Iterator[str]:
        """The injector's side of one expansion, a key at a time."""
        model = self.model
        assert model.claim(expansion)
        typed = None
        try:
            for _ in range(EXPAND_STEPS):
                token = model.next_mark()
                model.marked(token)  # everything before it has been applied
                step = model.step(expansion, replacement)
                if step is None:
                    typed = replacement
                    break
                erase, text = step
                yield from "\b" * erase
                yield from text
        finally:
            model.close(expansion, typed)


def run(script: str, choices: list[bool]) -> World:
    """Type ``script`` while Nerve expands what it finds; ``choices`` decides,
    at each turn, whether the user's next key or Nerve's comes first."""
    world = World()
    user = iter(script)
    pending = 0  # typed events already handled
    injector: Iterator[str] | None = None
    turn = iter(choices)
    user_done = False
    while True:
        if injector is None and pending < len(world.published):
            data = world.published[pending]
            pending += 1
            expansion = data.get("expansion")
            assert isinstance(expansion, int)
            abbreviation = str(data["text"])
            injector = world.expand(expansion, RULES[abbreviation])
        user_first = next(turn, True)
        if not user_done and (injector is None or user_first):
            char = next(user, None)
            if char is None:
                user_done = True
            else:
                world.key(char, own=False)
            continue
        if injector is not None:
            char = next(injector, None)
            if char is None:
                injector = None
            else:
                world.key(char, own=True)
            continue
        if user_done and pending == len(world.published):
            return world


@given(
    script=st.text(alphabet=";acclpz xé", max_size=40),
    choices=st.lists(st.booleans(), max_size=400),
)
@settings(max_examples=400, deadline=None)
def test_every_interleaving_ends_exact(script: str, choices: list[bool]) -> None:
    world = run(script, choices)
    assert "".join(world.app) == reference(script)


@pytest.mark.parametrize(
    ("script", "typed"),
    [
        (";acc;acc", [";acc", ";acc"]),
        (";lp;lp x", [";lp", ";lp"]),
        ("a;acc b;lp c", [";acc", ";lp"]),
    ],
)
def test_abbreviations_typed_during_an_expansion_fire_once_each(
    script: str, typed: list[str]
) -> None:
    # The user types everything before Nerve sends a single key.
    world = run(script, [True] * len(script) * 2)
    assert "".join(world.app) == reference(script)
    assert [d["text"] for d in world.published] == typed


def test_a_replacement_never_completes_an_abbreviation() -> None:
    world = run(";lp", [])
    assert "".join(world.app) == "x;lp"
    assert len(world.published) == 1


def test_erasing_the_abbreviation_before_it_is_replaced_cancels_it() -> None:
    world = World()
    for char in "a;acc":
        world.key(char, own=False)
    (data,) = world.published
    expansion = int(str(data["expansion"]))
    world.key("\b", own=False)
    assert not world.model.claim(expansion)
    with pytest.raises(ExpansionLost, match="edited"):
        world.model.step(expansion, "ACCEPTED")


def test_a_reset_loses_an_open_expansion_and_says_why() -> None:
    world = World()
    for char in ";acc":
        world.key(char, own=False)
    expansion = int(str(world.published[0]["expansion"]))
    assert world.model.claim(expansion)
    world.model.reset("the focus moved")
    with pytest.raises(ExpansionLost, match="focus"):
        world.model.step(expansion, "ACCEPTED")


def test_the_user_erasing_their_own_tail_is_followed() -> None:
    world = World()
    for char in ";acc xy\b":
        world.key(char, own=False)
    expansion = int(str(world.published[0]["expansion"]))
    assert world.model.claim(expansion)
    assert world.model.step(expansion, "ACCEPTED") == (6, "ACCEPTED x")


def test_word_rules_keep_their_boundary() -> None:
    published: list[dict[str, object]] = []
    model = Typing(published.append)
    model.configure([Abbreviation("btw", word=True, expands=True)])
    for char in "xbtw btw.":
        model.char(char, own=False)
    (data,) = published
    assert data["text"] == "btw."
    expansion = int(str(data["expansion"]))
    assert model.claim(expansion)
    # Erased back to the first difference only: "b" stays.
    assert model.step(expansion, "by the way") == (3, "y the way.")


def test_nothing_typed_is_kept_past_a_reset() -> None:
    world = World()
    for char in "secret;ac":
        world.key(char, own=False)
    world.model.reset("a click")
    assert world.model._text == []
    assert world.model._buffer == []


@pytest.mark.parametrize(
    ("typed", "case", "out"),
    [
        (";sig", "as-is", "best regards"),
        (";Sig", "capital", "Best regards"),
        (";SIG", "upper", "BEST REGARDS"),
        (";sIG", "as-is", "best regards"),
        ("É", "capital", "Best regards"),
        (";1", "as-is", "best regards"),
    ],
)
def test_case_following(typed: str, case: str, out: str) -> None:
    assert typed_case(typed) == case
    assert follow_case("best regards", case) == out


def test_case_following_leaves_what_is_not_a_letter() -> None:
    assert follow_case("42 ways", "capital") == "42 Ways"
    assert follow_case("straße", "upper") == "STRASSE"


def test_backspace_right_after_an_expansion_puts_the_abbreviation_back() -> None:
    world = World()
    undone: list[tuple[int, str]] = []
    world.model.on_undo = lambda expansion, text: undone.append((expansion, text))
    for char in "x ;acc":
        world.key(char, own=False)
    (data,) = world.published
    for char in world.expand(int(str(data["expansion"])), "ACCEPTED"):
        world.key(char, own=True)
    assert "".join(world.app) == "x ACCEPTED"
    world.key("\b", own=False)
    ((expansion, abbreviation),) = undone
    assert abbreviation == ";acc"
    for char in world.expand(expansion, abbreviation):
        world.key(char, own=True)
    assert "".join(world.app) == "x ;acc"
    # Typed back by Nerve: it does not fire again, and a second BackSpace is a BackSpace.
    world.key("\b", own=False)
    assert "".join(world.app) == "x ;ac"
    assert len(undone) == 1
    assert len(world.published) == 1


@pytest.mark.parametrize("between", ["!", " ", "é"])
def test_backspace_after_anything_else_is_only_a_backspace(between: str) -> None:
    world = World()
    undone: list[tuple[int, str]] = []
    world.model.on_undo = lambda expansion, text: undone.append((expansion, text))
    for char in ";acc":
        world.key(char, own=False)
    for char in world.expand(int(str(world.published[0]["expansion"])), "ACCEPTED"):
        world.key(char, own=True)
    world.key(between, own=False)
    world.key("\b", own=False)
    assert undone == []
