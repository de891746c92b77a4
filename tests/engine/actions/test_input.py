"""The input actions on a real Xvfb: what a real window receives, and the
modifier state afterwards."""

from __future__ import annotations

import itertools

import pytest
from Xlib import X

from conftest import Harness, rules_from, wait_until
from nerve.engine.registry import ActionError
from xclients.input_helpers import (  # noqa: F401  (fixtures)
    TextField,
    User,
    field_fixture,
    run_status,
    user_fixture,
)

pytestmark = pytest.mark.usefixtures("xserver")


_RULES = itertools.count()


def run(harness: Harness, actions_yaml: str) -> dict[str, object]:
    """Load one rule with ``actions_yaml`` under ``do``, fire it, wait for its run."""
    rule = f"act{next(_RULES)}"
    harness.load(f"""
  - id: {rule}
    when: {{event: test.go}}
    do: {actions_yaml}
""")
    harness.publish("test.go")
    wait_until(lambda: run_status(harness, rule) not in (None, "running"), 20)
    last = harness.summary(rule)["last_run"]
    assert isinstance(last, dict)
    return last


def test_type_sends_unicode_newlines_and_tabs(
    harness: Harness, user: User, field: TextField
) -> None:
    text = "Grüße, naïve café — ✓ → ∑\n\tJoão & Zoë; 100% [ok]? ~`|\\"
    last = run(harness, f"[{{type: {{text: {text!r}}}}}]".replace("'", '"'))
    assert last["status"] == "ok", last
    field.wait_text(text)
    assert user.modifiers_down() == []


def test_type_with_many_characters_the_layout_lacks(
    harness: Harness, user: User, field: TextField
) -> None:
    text = "αβγδεζηθικλμνξοπρστυφχψω АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
    last = run(harness, f'[{{type: "{text}"}}]')
    assert last["status"] == "ok", last
    field.wait_text(text)


def test_keys_presses_a_sequence_and_leaves_no_modifier_down(
    harness: Harness, user: User, field: TextField
) -> None:
    last = run(harness, "[{keys: [ctrl+a, ctrl+shift+page_down, alt+F4, super+e, shift+Tab]}]")
    assert last["status"] == "ok", last
    field.wait(lambda m: m.get("key") == "release" and m["keysym"] == 0xFE20, what="shift+tab")
    presses = [(m["keysym"], m["state"] & 0xFF) for m in field.presses()]
    for wanted in [
        (ord("a"), X.ControlMask),
        (0xFF56, X.ControlMask | X.ShiftMask),
        (0xFFC1, X.Mod1Mask),
        (ord("e"), X.Mod4Mask),
        (0xFE20, X.ShiftMask),  # ISO_Left_Tab
    ]:
        assert wanted in presses
    assert user.modifiers_down() == []


def test_typing_waits_for_held_modifiers_and_never_types_shortcuts(
    harness: Harness, user: User, field: TextField
) -> None:
    user.down("ctrl")  # the Ctrl of the hotkey that started the run, still held
    try:
        last = run(harness, "[{type: abc}]")
    finally:
        user.up("ctrl")
    assert last["status"] == "ok", last
    field.wait_text("abc")
    letters = [m for m in field.presses() if m["keysym"] in (ord("a"), ord("b"), ord("c"))]
    assert [m["state"] & X.ControlMask for m in letters] == [0, 0, 0]
    assert user.modifiers_down() == []


def test_typing_with_capslock_on(harness: Harness, user: User, field: TextField) -> None:
    user.press("Caps_Lock")
    try:
        last = run(harness, "[{type: Hello World}]")
        assert last["status"] == "ok", last
        field.wait_text("Hello World")
        assert user.conn.screen().root.query_pointer().mask & X.LockMask  # still on
    finally:
        user.press("Caps_Lock")


def test_click_and_mouse_move(harness: Harness, user: User, field: TextField) -> None:
    last = run(harness, "[{click: {button: right, x: 40, y: 30}}]")
    assert last["status"] == "ok", last
    field.wait(lambda m: m.get("button") == 3 and (m["x"], m["y"]) == (40, 30), what="click")
    run(harness, "[{mouse.move: {x: 200, y: 150}}, {mouse.move: {x: -20, y: 5, relative: true}}]")
    pointer = user.conn.screen().root.query_pointer()
    assert (pointer.root_x, pointer.root_y) == (180, 155)


def test_a_cancelled_type_stops_and_releases_every_key(
    harness: Harness, user: User, field: TextField
) -> None:
    harness.load(
        """
  - id: long
    when: {event: test.go}
    do: [{type: {text: "%s", method: type}}]
"""
        % ("x" * 5000)
    )
    harness.publish("test.go")
    field.wait(lambda m: len(m.get("text", "")) >= 64, what="typing to start")
    harness.engine.call(harness.engine.pause, "test")
    wait_until(lambda: run_status(harness, "long") == "cancelled")
    count = len(field.text)
    # A burst in flight finishes (its keys are released), then nothing more comes.
    user.type("!")
    field.wait(lambda m: m.get("text", "").endswith("!"), what="the user's key")
    assert count <= len(field.text) - 1 < 5000
    assert user.modifiers_down() == []


def test_a_missing_display_is_a_clear_failure(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY")
    last = run(harness, "[{type: hi}]")
    assert last["status"] == "failed"
    assert "DISPLAY is not set" in str(last["error"])


def test_options_are_checked_when_loading() -> None:
    from nerve.packs.loader import load_pack

    pack = load_pack(
        b"""nerve: 1
pack: {id: t.bad}
rules:
  - {id: a, when: {event: x}, do: [{keys: [ctrl+a, ctrl+nope]}]}
  - {id: b, when: {event: x}, do: [{click: {x: 1}}]}
  - {id: c, when: {event: file.created}, do: [{type: "{event.nope}"}]}
""",
        filename="bad.yaml",
    )
    messages = [str(e) for e in pack.errors]
    assert "do[0].keys[1]: 'ctrl+nope': unknown key 'nope'" in messages[0]
    assert "give both x and y" in messages[1]
    assert "nope" in messages[2]
    (rule,) = rules_from("""
  - id: ok
    when: {event: test.go}
    do: [{click: {x: "{event.x}", y: "{event.y}"}}, {mouse.move: {x: 1, y: 2}}]
""")
    assert rule.capabilities == {"injects-input"}
    assert ActionError  # the failure type actions raise
