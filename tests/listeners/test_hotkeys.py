"""Grabbed hotkeys on a real Xvfb: consumed, passed through, sided, own input,
the panic hotkey, and supervision when the X connection is killed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from Xlib import X, display

from conftest import LiveHarness, rules_from, wait_until
from nerve.listeners import keyboard
from nerve.listeners import manager as manager_module
from nerve.listeners.base import ListenerUnavailable
from nerve.packs.loader import load_pack
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


def got_key(field: TextField, keysym: int, state: int | None = None) -> Any:
    return field.wait(
        lambda m: (
            m.get("key") == "press"
            and m["keysym"] == keysym
            and (state is None or m["state"] & 0xFF == state)
        ),
        what=f"keysym {keysym:#x}",
    )


def test_hotkey_fires_and_the_focused_window_does_not_get_it(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: term
    when: {hotkey: Ctrl+Alt+T}
    do: [{log: terminal}]
""")
    live.listener("hotkeys")
    user.press("ctrl+alt+t")
    live.recorder.wait("hotkey", where=lambda e: e.get("combo") == "ctrl+alt+t")
    wait_until(lambda: fired(live, "term") == 1)
    # Keys arrive in order: once the field has the x typed after the combo,
    # it would already have had the t.
    user.type("x")
    got_key(field, ord("x"))
    assert [m["keysym"] for m in field.presses() if m["keysym"] < 0xFF00] == [ord("x")]
    assert field.text == "x"
    assert user.modifiers_down() == []  # nothing stuck after the grab


def test_hotkeys_work_with_numlock_and_capslock_on(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: f9
    when: {hotkey: F9}
    do: [{log: f9}]
  - id: super
    when: {hotkey: super+e}
    do: [{log: e}]
""")
    live.listener("hotkeys")
    try:
        user.press("Num_Lock")
        user.press("Caps_Lock")
        user.press("F9")
        user.press("super+e")
        wait_until(lambda: fired(live, "f9") == 1 and fired(live, "super") == 1)
    finally:
        user.press("Num_Lock")
        user.press("Caps_Lock")
    user.press("F9")
    wait_until(lambda: fired(live, "f9") == 2)
    user.type("z")
    got_key(field, ord("z"))
    keysyms = {m["keysym"] for m in field.presses()}
    assert 0xFFC6 not in keysyms  # F9
    assert not keysyms & {ord("e"), ord("E")}


def test_pass_through_lets_the_focused_window_have_it(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: seen
    when: {hotkey: {combo: ctrl+shift+y, pass_through: true}}
    do: [{log: seen}]
""")
    live.listener("hotkeys")
    user.press("ctrl+shift+y")
    wait_until(lambda: fired(live, "seen") == 1)
    got_key(field, ord("Y"), state=X.ControlMask | X.ShiftMask)


def test_a_named_side_fires_only_for_that_side(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: right
    when: {hotkey: ctrl_r+k}
    do: [{log: right ctrl}]
""")
    live.listener("hotkeys")
    user.press("ctrl+k")  # left Ctrl: not ours, so the window gets it
    got_key(field, ord("k"), state=X.ControlMask)
    assert fired(live, "right") == 0
    user.press("ctrl_r+k")
    wait_until(lambda: fired(live, "right") == 1)
    user.type("q")
    got_key(field, ord("q"))
    assert [m["keysym"] for m in field.presses() if m["keysym"] < 0xFF00] == [ord("k"), ord("q")]


def test_a_keys_action_sending_its_own_combo_does_not_fire_it_and_reaches_the_window(
    live: LiveHarness, user: User, field: TextField
) -> None:
    live.load("""
  - id: echo
    when: {hotkey: ctrl+shift+k}
    do: [{keys: ctrl+shift+k}]
""")
    live.listener("hotkeys")
    user.press("ctrl+shift+k")
    got_key(field, ord("K"), state=X.ControlMask | X.ShiftMask)
    wait_until(lambda: run_status(live, "echo") == "ok")
    assert fired(live, "echo") == 1
    # The grab is back: the user's next press fires the rule again.
    user.press("ctrl+shift+k")
    wait_until(lambda: fired(live, "echo") == 2)
    wait_until(lambda: len([m for m in field.presses() if m["keysym"] == ord("K")]) == 2)
    wait_until(lambda: run_status(live, "echo") == "ok")
    assert user.modifiers_down() == []


def test_reload_changes_the_grabs(live: LiveHarness, user: User, field: TextField) -> None:
    live.load("""
  - id: a
    when: {hotkey: ctrl+alt+a}
    do: [{log: a}]
""")
    live.listener("hotkeys")
    live.load("""
  - id: b
    when: {hotkey: ctrl+alt+b}
    do: [{log: b}]
""")
    wait_until(lambda: live.listener("hotkeys")["detail"].endswith("grabbing ctrl+alt+b"))
    user.press("ctrl+alt+b")
    wait_until(lambda: fired(live, "b") == 1)
    user.press("ctrl+alt+a")  # released: the window gets it
    got_key(field, ord("a"), state=X.ControlMask | X.Mod1Mask)
    listener = listener_instance(live, "hotkeys")
    live.engine.call(live.engine.set_rules, [])
    wait_until(lambda: listener._conn is None, what="the hotkeys listener to stop")
    user.press("ctrl+alt+b")
    got_key(field, ord("b"), state=X.ControlMask | X.Mod1Mask)


def test_a_combo_another_program_holds_is_reported(live: LiveHarness, user: User) -> None:
    other = display.Display()
    root = other.screen().root
    keycode = other.keysym_to_keycode(ord("g"))
    root.grab_key(keycode, X.ControlMask | X.Mod1Mask, False, X.GrabModeAsync, X.GrabModeAsync)
    other.sync()
    try:
        live.load("""
  - id: taken
    when: {hotkey: ctrl+alt+g}
    do: [{log: g}]
""")
        status = live.listener("hotkeys")
        assert "ctrl+alt+g: taken by another program" in status["detail"]
    finally:
        other.close()


def test_the_panic_hotkey_stops_a_rule_in_the_middle_of_a_delay(
    live: LiveHarness, user: User
) -> None:
    engine = live.engine
    live.engine.on_needs = lambda needs: live.listeners.update(
        keyboard.with_panic(needs, "ctrl+alt+shift+p")
    )
    assert engine.loop is not None
    loop = engine.loop
    detach = keyboard.on_panic(
        lambda combo: loop.call_soon_threadsafe(engine.pause, f"panic hotkey {combo}")
    )
    try:
        live.load("""
  - id: slow
    when: {hotkey: ctrl+alt+s}
    do: [{delay: 30s}, {log: never}]
""")
        wait_until(lambda: "panic ctrl+alt+shift+p" in live.listener("hotkeys")["detail"])
        user.press("ctrl+alt+s")
        wait_until(lambda: live.summary("slow")["running"] == 1)
        pressed = time.monotonic()
        user.press("ctrl+alt+shift+p")
        wait_until(lambda: run_status(live, "slow") == "cancelled")
        assert time.monotonic() - pressed < 1.0
        live.recorder.wait("nerve.panic", where=lambda e: e.get("combo") == "ctrl+alt+shift+p")
        status = engine.call(engine.status)
        assert status["paused"] is True
        assert "panic hotkey" in status["pause_reason"]
        error = live.summary("slow")["last_run"]["error"]
        assert error == "paused by panic hotkey ctrl+alt+shift+p"
        # While paused, hotkeys still arrive but start nothing.
        user.press("ctrl+alt+s")
        wait_until(lambda: live.summary("slow")["skipped"].get("paused") == 1)
    finally:
        detach()


def test_killing_the_x_connection_is_survived_and_reported(
    live: LiveHarness, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "BACKOFF_FIRST_S", 0.05)
    live.load("""
  - id: k
    when: {hotkey: super+k}
    do: [{log: k}]
""")
    first = listener_instance(live, "hotkeys")
    status = kill_and_wait_for_restart(live, "hotkeys", first.window_id)
    assert status["restarts"] == 1
    live.listener("hotkeys")
    second = listener_instance(live, "hotkeys")
    assert second is not first
    user.press("super+k")
    wait_until(lambda: fired(live, "k") == 1)


def test_a_sequence_of_hotkeys(live: LiveHarness, user: User) -> None:
    live.load("""
  - id: chord
    when:
      sequence:
        steps: [{hotkey: ctrl+alt+x}, {hotkey: ctrl+alt+c}]
        within: 5s
    do: [{log: chord}]
""")
    live.listener("hotkeys")
    user.press("ctrl+alt+c")
    user.press("ctrl+alt+x")
    user.press("ctrl+alt+c")
    live.recorder.wait("hotkey", 3)
    wait_until(lambda: fired(live, "chord") == 1)


def test_combo_errors_are_reported_when_loading() -> None:
    pack = load_pack(
        b"""nerve: 1
pack: {id: t.bad}
rules:
  - {id: vt, when: {hotkey: ctrl+alt+F2}, do: [{log: x}]}
  - {id: unknown, when: {hotkey: ctrl+banana}, do: [{log: x}]}
  - {id: order, when: {hotkey: t+ctrl}, do: [{log: x}]}
""",
        filename="bad.yaml",
    )
    messages = [str(e) for e in pack.errors]
    assert "virtual terminals" in messages[0]
    assert "unknown key 'banana'" in messages[1]
    assert "'t' is not a modifier" in messages[2]


def test_capabilities_and_needs() -> None:
    (rule,) = rules_from("""
  - id: t
    when: {hotkey: {combo: super+Return, pass_through: true}}
    do: [{keys: [ctrl+a, ctrl+c]}]
""")
    assert rule.capabilities == {"reads-keyboard", "injects-input"}
    assert list(rule.needs()) == [("hotkeys", keyboard.GrabNeed("super+return", True))]


def test_unavailable_without_a_display_or_on_wayland(monkeypatch: pytest.MonkeyPatch) -> None:
    from nerve.bus import Bus

    listener = keyboard.HotkeyListener(Bus(), lambda *_: None)
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ListenerUnavailable, match="DISPLAY is not set"):
        listener.start([keyboard.GrabNeed("f9")])
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    with pytest.raises(ListenerUnavailable, match="Wayland session"):
        listener.start([keyboard.GrabNeed("f9")])
    listener.stop()


# Last in the module: it starts openbox on the module's Xvfb (EWMH active window).
def test_a_window_scoped_hotkey_fires_only_in_that_window(
    xserver_wm: object, live: LiveHarness, user: User
) -> None:
    live.load("""
  - id: scoped
    when: {hotkey: ctrl+alt+w}
    if: [{window: {class: "Nerve*Editor", title: "!*secret*"}}]
    do: [{log: "in {event.combo}"}]
    mode: parallel
""")
    live.listener("hotkeys")
    live.listener("window")

    def focused(klass: str) -> None:
        live.recorder.wait("window.focused", where=lambda e: e.get("class") == klass, timeout=10)

    def last_status() -> object:
        wait_until(lambda: live.summary("scoped")["running"] == 0)
        return run_status(live, "scoped")

    ctrl_alt = X.ControlMask | X.Mod1Mask
    editor = TextField(title="notes", cls="NerveTextEditor")
    try:
        focused("NerveTextEditor")
        user.press("ctrl+alt+w")
        wait_until(lambda: fired(live, "scoped") == 1)
        assert last_status() == "ok"
        user.type("x")  # keys arrive in order: had the editor got the w, it would be there
        got_key(editor, ord("x"))
        assert ord("w") not in [m["keysym"] for m in editor.presses()]
        other = TextField(title="terminal", cls="NerveTerminal")
        try:
            focused("NerveTerminal")
            user.press("ctrl+alt+w")
            wait_until(lambda: fired(live, "scoped") == 2)
            assert last_status() == "condition"
            # Outside the rule's windows the combo is not taken: the terminal has it.
            got_key(other, ord("w"), state=ctrl_alt)
        finally:
            other.close()
        secret = TextField(title="my secret notes", cls="NerveTextEditor")
        try:
            live.recorder.wait("window.focused", where=lambda e: "secret" in e.get("title"))
            user.press("ctrl+alt+w")
            wait_until(lambda: fired(live, "scoped") == 3)
            assert last_status() == "condition"
            got_key(secret, ord("w"), state=ctrl_alt)
        finally:
            secret.close()
    finally:
        editor.close()


class _Window:
    """A window condition whose verdict the test sets."""

    def __init__(self, holds: bool) -> None:
        self.holds = holds

    def holds_now(self) -> bool:
        return self.holds


def test_scoped_grabs_merge_per_combo() -> None:
    editor, browser = _Window(False), _Window(False)
    in_editor = keyboard.GrabScope([editor])
    in_browser = keyboard.GrabScope([browser])
    (both,) = keyboard._bindings(
        [
            keyboard.GrabNeed("ctrl+e", scope=in_editor),
            keyboard.GrabNeed("ctrl+e", scope=in_browser),
        ]
    )
    assert not both.consumes()  # neither window is active: the application gets it
    browser.holds = True
    assert both.consumes()
    (everywhere,) = keyboard._bindings(
        [keyboard.GrabNeed("ctrl+e", scope=in_editor), keyboard.GrabNeed("ctrl+e")]
    )
    browser.holds = False
    assert everywhere.scopes is None
    assert everywhere.consumes()
    (passing,) = keyboard._bindings(
        [keyboard.GrabNeed("ctrl+e", pass_through=True, scope=in_editor)]
    )
    editor.holds = True
    assert not passing.consumes()
    # A scope of several window conditions holds only when all of them do.
    assert not keyboard.GrabScope([editor, browser]).holds()
