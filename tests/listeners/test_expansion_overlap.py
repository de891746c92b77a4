"""A user typing on while a long typed expansion is still going out.

What is guaranteed: the replacement arrives whole and exact where the
abbreviation was, and every character the user typed after the abbreviation
follows it, in order, once. A key of the user's that lands inside Nerve's
typing ends the round after the burst (32 keys) it came in, so it costs
about that much typed again, however long the replacement.

The simulated user types on a keyboard of its own (:class:`Typist` devices):
on one device, a key has one state, so a press of a key the other party
holds is dropped by the server. On a desktop the person's keyboard is another
slave of the same master keyboard as XTEST, and the master keeps one state per
key too: a press of the very key Nerve's tap holds down at that instant (a
few microseconds per key while a burst goes out) is dropped before any client
or RECORD sees it. Nerve cannot see or repair that one; everything it can see
it repairs. The "keyboard" variant measures it, the "master" one (a master
keyboard of its own, no shared key state) must be exact.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from Xlib import X

from conftest import LiveHarness
from xclients.qt_field import QtField
from xclients.typist import BRISK, BURSTS, ROLLOVER, STEADY, Profile, Typist

pytestmark = pytest.mark.usefixtures("xserver_wm")

LONG = ("The quick brown fox jumps over the lazy dog; 42 crates, 7 keys! " * 10)[:600]
WORDS = ["and", "then", "we", "Type", "on:", "letters,", "zebra", "quixotic", "ok!", "x2"]
RULE = f"""
  - id: long
    when: {{typed: ";lg"}}
    do: [{{type: "{LONG}"}}]
"""


@pytest.fixture
def qt_field(xserver_wm: Any) -> Iterator[QtField]:
    f = QtField(xserver_wm.display)
    yield f
    f.close()


@pytest.fixture
def typist(xserver_wm: Any, request: pytest.FixtureRequest) -> Iterator[Typist]:
    from nerve import injection

    t = Typist(xserver_wm.display, seed=7, device=request.param)
    yield t
    injection.reset()
    t.close()


def rounds(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile, count: int
) -> list[tuple[str, str]]:
    """Type the abbreviation and words after it ``count`` times: (said, got after
    the replacement) for each round where the field is not exactly right; the
    replacement itself must always be whole."""
    live.load(RULE)
    live.listener("keyboard")
    rnd = random.Random(f"overlap-{profile}-{typist.device}")
    wrong = []
    for _ in range(count):
        qt_field.clear()
        typist.focus()
        said = " " + " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 8)))
        typist.type(";lg" + said, profile)
        got = qt_field.settle(quiet=0.5)
        assert got.startswith(LONG), f"the replacement is not whole: {got!r}"
        if got != LONG + said:
            wrong.append((said, got[len(LONG) :]))
    return wrong


@pytest.mark.parametrize("typist", ["master"], indirect=True)
@pytest.mark.parametrize("profile", [STEADY, BRISK, ROLLOVER, BURSTS], ids=str)
@pytest.mark.timeout(90)
def test_the_users_letters_follow_a_long_expansion(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    assert rounds(live, typist, qt_field, profile, 6) == []


def _one_edit(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with at most one character dropped or changed."""
    if a == b:
        return True
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    return len(b) == len(a) - 1 and any(a[:i] + a[i + 1 :] == b for i in range(len(a)))


@pytest.mark.parametrize("typist", ["keyboard"], indirect=True)
@pytest.mark.parametrize("profile", [STEADY, BURSTS], ids=str)
@pytest.mark.timeout(90)
def test_the_same_master_keyboard_loses_at_most_a_colliding_press(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    """As on a desktop: the user's keys on another slave of the core keyboard.
    Nothing doubled, reordered or lost but what the server itself dropped."""
    wrong = rounds(live, typist, qt_field, profile, 6)
    assert all(_one_edit(said, got) for said, got in wrong), wrong
    assert len(wrong) <= 1, wrong


@pytest.mark.parametrize("typist", ["keyboard"], indirect=True)
def test_a_shift_the_user_holds_stays_held_while_nerve_types_capitals(
    typist: Typist, qt_field: QtField
) -> None:
    """Nerve's Shift for a capital goes on a Shift key the user does not hold:
    releasing the one they hold would end their hold (one state per key)."""
    from nerve import injection
    from nerve.listeners import x11

    inj = injection.injector()
    shift = typist.shift
    typist.play([(0.0, X.KeyPress, shift)])
    x11_held = frozenset(x11.keys_down(inj.conn))
    assert shift in x11_held
    inj._type("A:Z", 0, None, x11_held)
    a = typist.key("q")[0]
    typist.play([(0.0, X.KeyPress, a), (0.0, X.KeyRelease, a), (0.0, X.KeyRelease, shift)])
    assert qt_field.settle() == "A:ZQ"
