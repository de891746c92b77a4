"""Abbreviations typed as people type (held keys, rollover, bursts) into a real
Qt text field: every expansion arrives exactly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import LiveHarness
from xclients.qt_field import QtField
from xclients.typist import PROFILES, Profile, Typist

pytestmark = pytest.mark.usefixtures("xserver_wm")


@pytest.fixture
def qt_field(xserver_wm) -> Iterator[QtField]:  # type: ignore[no-untyped-def]
    f = QtField(xserver_wm.display)
    yield f
    f.close()


@pytest.fixture
def typist(xserver_wm) -> Iterator[Typist]:  # type: ignore[no-untyped-def]
    from nerve import injection

    t = Typist(xserver_wm.display, seed=7)
    yield t
    t.close()
    injection.reset()


@pytest.mark.parametrize("profile", PROFILES, ids=str)
def test_reported_cases(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load("""
  - id: acc
    when: {typed: ";acc"}
    do: [{type: "ACCEPTED"}]
  - id: lp
    when: {typed: ";lp"}
    do: [{type: "x;lp"}]
""")
    live.listener("keyboard")
    text = "".join(f"w{i} ;acc " if i % 2 else f"w{i} ;lp " for i in range(12))
    typist.type(text, profile)
    expected = text.replace(";acc", "ACCEPTED").replace(";lp", "x;lp")
    got = qt_field.settle()
    assert got == expected
