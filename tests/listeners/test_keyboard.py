"""The key stream (RECORD) on a real Xvfb: key events, abbreviations typed into
a real text field, Nerve's own input, and supervision."""

from __future__ import annotations

import pytest

from conftest import LiveHarness, rules_from, wait_until
from nerve.listeners import keyboard
from nerve.listeners import manager as manager_module
from xclients.input_helpers import (  # noqa: F401  (fixtures)
    TextField,
    User,
    field_fixture,
    kill_and_wait_for_restart,
    listener_instance,
    run_status,
    user_fixture,
)

pytestmark = pytest.mark.usefixtures("xserver")


def fired(live: LiveHarness, rule_id: str) -> int:
    return int(live.summary(rule_id)["fired"])


def test_key_events_and_a_key_trigger(live: LiveHarness, user: User, field: TextField) -> None:
    live.load("""
  - id: f8
    when: {key: F8}
    do: [{log: f8}]
  - id: ctrl-j
    when: {key: ctrl+j}
    do: [{log: ctrl j}]
  - id: j-up
    when: {key: {key: j, modifiers: [], release: true}}
    do: [{log: j up}]
""")
    live.listener("keyboard")
    user.press("F8")
    user.press("ctrl+j")
    user.type("j")
    wait_until(lambda: fired(live, "f8") == 1 and fired(live, "ctrl-j") == 1)
    wait_until(lambda: fired(live, "j-up") == 1)
    downs = live.recorder.wait("key.down", 4)
    assert [(e.get("key"), list(e.get("modifiers")), e.get("injected")) for e in downs] == [
        ("f8", [], False),
        ("control_l", [], False),
        ("j", ["ctrl"], False),
        ("j", [], False),
    ]
    # Not taken from the application: RECORD only watches.
    field.wait_text("j")
    assert fired(live, "ctrl-j") == 1  # the plain j did not match "ctrl+j"


def test_an_abbreviation_is_replaced_by_its_expansion(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: sig
    when: {typed: ";sig"}
    do: [{type: "Best regards,\\nSomeone"}]
""")
    live.listener("keyboard")
    user.type("Hello ;sig")
    field.wait_text("Hello Best regards,\nSomeone")
    wait_until(lambda: run_status(live, "sig") == "ok")
    user.type("!")
    field.wait_text("Hello Best regards,\nSomeone!")
    assert fired(live, "sig") == 1
    event = live.recorder.wait("typed")[0]
    assert event.get("text") == ";sig"


def test_a_type_action_containing_the_abbreviation_does_not_fire_it(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: loop
    when: {typed: ";x"}
    do: [{type: "a;x b;x"}]
""")
    live.listener("keyboard")
    user.type(";x")
    field.wait_text("a;x b;x")
    wait_until(lambda: run_status(live, "loop") == "ok")
    user.type(".")  # after everything injected before it has been seen
    field.wait_text("a;x b;x.")
    keyboard_downs = live.recorder.wait("key.down", 0)
    assert keyboard_downs == []  # no rule asked for key events: none were published
    assert fired(live, "loop") == 1
    assert len(live.recorder.of("typed")) == 1


def test_whole_word_and_case_options(live: LiveHarness, user: User, field: TextField) -> None:
    live.load("""
  - id: btw
    when: {typed: {text: btw, word: true, case: insensitive}}
    do: [{type: by the way}]
""")
    live.listener("keyboard")
    user.type("xbtw ")  # inside a word: nothing
    user.type("BTW.")
    field.wait_text("xbtw by the way.")
    wait_until(lambda: run_status(live, "btw") == "ok")
    user.type(" btw\n")
    field.wait_text("xbtw by the way. by the way\n")
    wait_until(lambda: fired(live, "btw") == 2 and run_status(live, "btw") == "ok")
    texts = [e.get("text") for e in live.recorder.of("typed")]
    assert texts == ["BTW.", "btw\n"]


def test_a_click_or_a_shortcut_resets_what_was_typed(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: sig
    when: {typed: ";sig"}
    do: [{type: SIG}]
""")
    live.listener("keyboard")
    user.type(";si")
    user.click(1, 10, 10)
    user.type("g")
    user.type(";s")
    user.press("ctrl+a")
    user.type("ig")
    user.type(";sig")
    field.wait_text(";sig;sigSIG")
    wait_until(lambda: run_status(live, "sig") == "ok")
    assert fired(live, "sig") == 1


def test_backspace_edits_the_buffer(live: LiveHarness, user: User, field: TextField) -> None:
    live.load("""
  - id: sig
    when: {typed: ";sig"}
    do: [{type: SIG}]
""")
    live.listener("keyboard")
    user.type(";sx\big")
    field.wait_text("SIG")


def test_injected_keys_are_marked(live: LiveHarness, user: User, field: TextField) -> None:
    live.load("""
  - id: watch
    when: {key: {key: q, injected: true}}
    do: [{log: "q {event.injected}"}]
    mode: parallel
  - id: send
    when: {event: test.send}
    do: [{type: q}]
""")
    live.listener("keyboard")
    live.publish("test.send")
    field.wait_text("q")
    user.type("q")
    field.wait_text("qq")
    downs = live.recorder.wait("key.down", 2, where=lambda e: e.get("key") == "q")
    assert [e.get("injected") for e in downs] == [True, False]
    wait_until(lambda: fired(live, "watch") == 2)


def test_only_a_hotkey_rule_installs_no_key_stream(live: LiveHarness, user: User) -> None:
    live.load("""
  - id: h
    when: {hotkey: ctrl+alt+h}
    do: [{log: h}]
""")
    live.listener("hotkeys")
    assert [s["id"] for s in live.listeners.status()] == ["hotkeys"]


def test_killing_the_record_connection_is_survived_and_reported(
    live: LiveHarness, user: User, field: TextField, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "BACKOFF_FIRST_S", 0.05)
    live.load("""
  - id: sig
    when: {typed: ";sig"}
    do: [{type: SIG}]
""")
    first = listener_instance(live, "keyboard")
    status = kill_and_wait_for_restart(live, "keyboard", first.context_id)
    assert status["restarts"] == 1
    live.listener("keyboard")
    assert listener_instance(live, "keyboard") is not first
    user.type(";sig")
    field.wait_text("SIG")


def test_typed_options_are_checked() -> None:
    (rule,) = rules_from("""
  - id: t
    when: {typed: {text: ";d", erase: false}}
    do: [{type: "{now:%Y}"}]
""")
    assert rule.capabilities == {"reads-keyboard", "injects-input"}
    # A placeholder may bring a text long enough to paste (method auto).
    assert list(rule.needs()) == [
        ("keyboard", keyboard.TypedNeed(";d", False, True)),
        ("clipboard", "serve"),
    ]


# Last in the module: it starts openbox on the module's Xvfb (EWMH active window).
def test_a_focus_change_resets_what_was_typed(
    xserver_wm: object, live: LiveHarness, user: User
) -> None:
    live.load("""
  - id: sig
    when: {typed: ";sig"}
    do: [{type: SIG}]
""")
    live.listener("keyboard")
    first = TextField(title="first")
    try:
        first.wait(lambda m: m.get("focus") is True, what="focus on the first window")
        user.type(";si")
        first.wait_text(";si")
        changes = listener_instance(live, "keyboard").focus_changes
        second = TextField(title="second")
        try:
            second.wait(lambda m: m.get("focus") is True, what="focus on the second window")
            # The focus change reaches the listener on its control connection,
            # the keys on the RECORD one: type once it has seen the change.
            wait_until(
                lambda: listener_instance(live, "keyboard").focus_changes > changes,
                what="the keyboard listener to see the focus change",
            )
            user.type("g;sig")
            second.wait_text("gSIG")
            wait_until(lambda: run_status(live, "sig") == "ok")
            assert fired(live, "sig") == 1
            assert first.text == ";si"
        finally:
            second.close()
    finally:
        first.close()
