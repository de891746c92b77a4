"""Expansions that ask first: the abbreviation is erased, a dialog (the
headless helper process, for real) takes the focus, and once answered the
focus is back in the Qt text field and the replacement arrives exactly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import LiveHarness, wait_until
from nerve import prompts
from xclients.qt_field import QtField
from xclients.typist import BRISK, INSTANT, ROLLOVER, STEADY, Profile, Typist

pytestmark = pytest.mark.usefixtures("xserver_wm")

RULES = """
  - id: greet
    when: {typed: ";hi"}
    do:
      - type:
          text: "Hello {form.name}, tone {form.tone}!"
          form:
            title: Greet
            fields: {name: Name, tone: {choices: [warm, cool], default: warm}}
  - id: sig
    when: {typed: {text: sig, word: true}}
    do:
      - choose:
          title: Signature
          items: [Short, {label: Formal, value: "Kind regards,\\nAda"}, Casual]
      - type: "{form.choice}"
"""


@pytest.fixture
def qt_field(xserver_wm: Any) -> Iterator[QtField]:
    f = QtField(xserver_wm.display)
    yield f
    f.close()


@pytest.fixture
def typist(xserver_wm: Any) -> Iterator[Typist]:
    from nerve import injection

    t = Typist(xserver_wm.display, seed=11)
    yield t
    injection.reset()
    t.close()


def tap(typist: Typist, name: str) -> None:
    from Xlib import X

    keycode, _ = typist.key(name)
    typist.play([(0.0, X.KeyPress, keycode), (0.0, X.KeyRelease, keycode)])


def dialog_has_focus(title: str, field: QtField) -> None:
    """Wait until the dialog is the active window and has the keyboard focus."""
    import subprocess

    def focused() -> bool:
        def run(*args: str) -> str:
            out = subprocess.run(
                ["xdotool", *args], capture_output=True, text=True, timeout=5, check=False
            )
            return out.stdout.strip()

        active = run("getactivewindow")
        return (
            bool(active)
            and run("getwindowfocus", "-f") == active
            and (run("getwindowname", active) == title)
        )

    wait_until(focused, 30, f"the dialog {title!r} to take the focus")


def run_ended(live: LiveHarness, rule: str) -> dict[str, Any]:
    last: dict[str, Any] = wait_until(
        lambda: (r := live.summary(rule)["last_run"]) and r["status"] != "running" and r,
        20,
        f"the run of {rule} to end",
    )
    return last


@pytest.mark.parametrize("profile", [INSTANT, STEADY, ROLLOVER], ids=str)
def test_a_form_expansion_types_into_the_field_it_came_from(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    assert isinstance(live.engine.prompter, prompts.HelperPrompter)  # headless: the helper
    live.load(RULES)
    live.listener("keyboard")
    typist.type("Dear ;hi", profile)
    dialog_has_focus("Greet", qt_field)
    # The abbreviation is gone before the dialog shows.
    assert qt_field.settle(0.1) == "Dear "
    typist.type("Bob", profile)
    typist.type("\t", INSTANT)
    tap(typist, "Down")  # tone: cool
    typist.type("\n", INSTANT)
    qt_field.wait(lambda m: m.get("text") == "Dear Hello Bob, tone cool!", what="the replacement")
    assert prompts.active_window() == qt_field.window
    typist.type(" ok", profile)  # the user goes on typing in the same field
    assert qt_field.settle() == "Dear Hello Bob, tone cool! ok"
    assert run_ended(live, "greet")["status"] == "ok"


@pytest.mark.parametrize("profile", [INSTANT, BRISK], ids=str)
def test_a_choice_of_replacements_keeps_the_word_boundary(
    live: LiveHarness, typist: Typist, qt_field: QtField, profile: Profile
) -> None:
    live.load(RULES)
    live.listener("keyboard")
    typist.type("x sig ", profile)
    dialog_has_focus("Signature", qt_field)
    assert qt_field.settle(0.1) == "x "
    typist.type("form", profile)  # search
    typist.type("\n", INSTANT)
    qt_field.wait(lambda m: m.get("text") == "x Kind regards,\nAda ", what="the replacement")
    typist.type("then", profile)
    assert qt_field.settle() == "x Kind regards,\nAda then"


def test_escape_types_nothing_and_stops_the_run(
    live: LiveHarness, typist: Typist, qt_field: QtField
) -> None:
    live.load(RULES)
    live.listener("keyboard")
    typist.type("Dear ;hi", BRISK)
    dialog_has_focus("Greet", qt_field)
    typist.type("Bob", BRISK)
    tap(typist, "Escape")
    last = run_ended(live, "greet")
    assert last["status"] == "ok"
    assert last["error"] == "form: cancelled by the user"
    wait_until(lambda: prompts.active_window() == qt_field.window, 10, "the focus to come back")
    typist.type("x", INSTANT)
    assert qt_field.settle() == "Dear x"


@pytest.mark.timeout(150)
def test_form_expansions_with_varied_answers_arrive_exactly(
    live: LiveHarness, typist: Typist, qt_field: QtField
) -> None:
    """Answers of letters, digits and shifted symbols, typed at every pace,
    before and after text of the user's: each replacement exact."""
    import random

    from xclients.typist import PROFILES

    live.load(RULES)
    live.listener("keyboard")
    rnd = random.Random("forms")
    alphabet = "abcXYZ019 .,;:!?@#%&*()-_=+/'\""
    for round_ in range(8):
        profile = PROFILES[round_ % len(PROFILES)]
        qt_field.clear()
        before = rnd.choice(["", "Dear ", "x. ", "A\tb "])
        name = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 14))).strip() or "n"
        typist.type(before + ";hi", profile)
        dialog_has_focus("Greet", qt_field)
        typist.type(name, profile)
        typist.type("\n", INSTANT)
        want = f"{before}Hello {name}, tone warm!"
        qt_field.wait(lambda m, w=want: m.get("text") == w, what=f"{want!r} at {profile}")
        wait_until(lambda: prompts.active_window() == qt_field.window, 10, "the focus back")
        wait_until(
            lambda: live.summary("greet")["last_run"]["status"] != "running", 10, "the run to end"
        )
