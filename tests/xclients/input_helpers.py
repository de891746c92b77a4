"""Helpers for the input tests: a text field client to type into, and a
"user" who presses keys and clicks through XTEST on a connection of their own
(with a round trip after each burst, so the server has processed it)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from Xlib import XK, X, display
from Xlib.ext import xtest

from xclients.client import LineClient

CLIENT = Path(__file__).with_name("input_textfield.py")

_MODIFIER_KEYSYMS = {
    "ctrl": "Control_L",
    "ctrl_r": "Control_R",
    "alt": "Alt_L",
    "shift": "Shift_L",
    "super": "Super_L",
}


class TextField(LineClient):
    """The input_textfield.py client: its window, the keys it got, its text."""

    def __init__(
        self,
        *,
        title: str = "nerve test field",
        cls: str = "NerveTestField",
        x: int = 0,
        y: int = 0,
        focus: bool = True,
    ) -> None:
        argv = [sys.executable, str(CLIENT), "--title", title, "--class", cls]
        argv += ["--x", str(x), "--y", str(y)] + (["--focus"] if focus else [])
        super().__init__(argv)
        ready = self.wait(lambda m: "ready" in m, what="the test window to map")
        self.window: int = ready["ready"]

    def presses(self) -> list[dict[str, Any]]:
        with self._cond:
            return [m for m in self.lines if m.get("key") == "press"]

    def focus(self) -> None:
        self.command("focus", lambda m: "focused" in m)

    def clear(self) -> None:
        self.command("clear", lambda m: "cleared" in m)


class User:
    """A person at the keyboard and mouse, simulated with XTEST."""

    def __init__(self, name: str | None = None) -> None:
        self.conn = display.Display(name)

    def keycode(self, name: str) -> tuple[int, bool]:
        """(keycode, needs shift) for a keysym name or a character."""
        if len(name) == 1:
            keysym = ord(name) if ord(name) < 0x100 else 0x01000000 + ord(name)
        else:
            keysym = XK.string_to_keysym(_MODIFIER_KEYSYMS.get(name, name))
        assert keysym, f"no keysym {name!r}"
        for keycode, index in self.conn.keysym_to_keycodes(keysym):
            if index in (0, 1):
                return keycode, index == 1
        raise AssertionError(f"no key for {name!r}")

    def _fake(self, events: Iterable[tuple[int, int]]) -> None:
        for kind, detail in events:
            xtest.fake_input(self.conn, kind, detail)
        self.conn.sync()

    def press(self, combo: str) -> None:
        """Press and release ``ctrl+alt+t`` (modifier names as in Nerve, the key
        as an X keysym name or a character)."""
        *mods, key = combo.split("+")
        mod_codes = [self.keycode(m)[0] for m in mods]
        key_code, shift = self.keycode(key)
        if shift:
            mod_codes.append(self.keycode("shift")[0])
        events = [(X.KeyPress, k) for k in mod_codes]
        events += [(X.KeyPress, key_code), (X.KeyRelease, key_code)]
        events += [(X.KeyRelease, k) for k in reversed(mod_codes)]
        self._fake(events)

    def down(self, name: str) -> None:
        self._fake([(X.KeyPress, self.keycode(name)[0])])

    def up(self, name: str) -> None:
        self._fake([(X.KeyRelease, self.keycode(name)[0])])

    def type(self, text: str) -> None:
        shift = self.keycode("shift")[0]
        events: list[tuple[int, int]] = []
        for char in text:
            name = {"\n": "Return", "\t": "Tab", " ": "space", "\b": "BackSpace"}.get(char, char)
            keycode, shifted = self.keycode(name)
            if shifted:
                events.append((X.KeyPress, shift))
            events += [(X.KeyPress, keycode), (X.KeyRelease, keycode)]
            if shifted:
                events.append((X.KeyRelease, shift))
        self._fake(events)

    def move(self, x: int, y: int) -> None:
        xtest.fake_input(self.conn, X.MotionNotify, x=x, y=y)
        self.conn.sync()

    def click(
        self,
        button: int = 1,
        x: int | None = None,
        y: int | None = None,
        modifiers: Iterable[str] = (),
    ) -> None:
        if x is not None and y is not None:
            xtest.fake_input(self.conn, X.MotionNotify, x=x, y=y)
        mods = [self.keycode(m)[0] for m in modifiers]
        events = [(X.KeyPress, k) for k in mods]
        events += [(X.ButtonPress, button), (X.ButtonRelease, button)]
        events += [(X.KeyRelease, k) for k in reversed(mods)]
        self._fake(events)

    def modifiers_down(self) -> list[int]:
        """Modifier keycodes the server believes are down (XQueryKeymap)."""
        bitmap = self.conn.query_keymap()
        down = {i * 8 + b for i, byte in enumerate(bitmap) for b in range(8) if byte & (1 << b)}
        modifier_keys = {k for keys in self.conn.get_modifier_mapping() for k in keys if k}
        return sorted(down & modifier_keys)

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------
# Fixtures (import them into a test module to use them)


@pytest.fixture(scope="module", name="user")
def user_fixture(xserver: Any) -> Any:
    """A simulated user on the module's Xvfb; Nerve's injector is reset after."""
    from nerve import injection

    person = User(xserver.display)
    yield person
    person.close()
    injection.reset()


@pytest.fixture(name="field")
def field_fixture(xserver: Any) -> Any:
    """A focused text field window."""
    client = TextField()
    yield client
    client.close()


def listener_instance(live: Any, lid: str) -> Any:
    """The running instance of listener ``lid`` in a live harness."""
    live.listener(lid)
    return live.listeners._states[lid].instance


def kill_and_wait_for_restart(live: Any, lid: str, resource: int) -> dict[str, Any]:
    """Have the X server close the client owning ``resource`` (as xkill does),
    then wait until listener ``lid`` is reported restarted; its status."""
    from Xlib import display
    from Xlib.protocol import request

    killer = display.Display()
    request.KillClient(display=killer.display, resource=resource)
    killer.sync()
    killer.close()
    from conftest import wait_until

    status: dict[str, Any] = wait_until(
        lambda: next(
            (s for s in live.listeners.status() if s["id"] == lid and s["restarts"] >= 1),
            None,
        ),
        what=f"a restart of {lid}",
    )
    return status


def run_status(live: Any, rule_id: str) -> str | None:
    last = live.summary(rule_id)["last_run"]
    return None if last is None else str(last["status"])
