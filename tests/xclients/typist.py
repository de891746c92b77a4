"""A person typing, simulated through XTEST with human timing.

People do not tap keys: they hold each one for 30-150 ms, press the next one
before letting go of the previous (rollover), type in bursts and pauses, and
hold Shift across a capital. Text expansion that only ever saw instant taps
broke at ordinary typing speed, so every expansion test types through a
:class:`Profile`; the old instant taps are one profile among the others.

Timing is generated from a seeded random number generator, so a failure can
be replayed with the same seed.

Which device the keys come from (``device``):

- ``"xtest"``: the server's XTEST keyboard, the one Nerve injects on too.
  One device has one state per key: a press of a key the other holds is
  dropped, its release ends the other's hold.
- ``"keyboard"``: Xvfb's own keyboard, another slave of the same master
  keyboard, as a person's keyboard is beside XTEST on a desktop (XTEST can
  send events for any device, through the XInput extension).
- ``"master"``: a master keyboard of its own (XInput 2), focused on the
  same window: its keys share no state with Nerve's at all.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from Xlib import XK, X, display
from Xlib.ext import xinput, xtest
from Xlib.protocol import rq

_NAMED = {"\n": "Return", "\t": "Tab", " ": "space", "\b": "BackSpace"}


@dataclass(frozen=True)
class Profile:
    """How a person types: seconds between presses, seconds each key is held.

    ``burst``: after this many characters (a range), a pause of ``pause``
    seconds (a range); 0 means no bursts."""

    name: str
    interval: tuple[float, float]
    hold: tuple[float, float]
    burst: tuple[int, int] = (0, 0)
    pause: tuple[float, float] = (0.0, 0.0)

    @property
    def instant(self) -> bool:
        return self.interval == (0.0, 0.0) and self.hold == (0.0, 0.0)

    def __str__(self) -> str:
        return self.name


INSTANT = Profile("instant", (0.0, 0.0), (0.0, 0.0))
#: 5 characters a second, keys held long.
SLOW = Profile("slow", (0.17, 0.23), (0.08, 0.15))
#: 12 characters a second.
STEADY = Profile("steady", (0.07, 0.1), (0.05, 0.11))
#: 25 characters a second (`xdotool type --delay 40`): some rollover.
BRISK = Profile("brisk", (0.032, 0.048), (0.03, 0.09))
#: 30 characters a second with every key held past the next press.
ROLLOVER = Profile("rollover", (0.028, 0.038), (0.06, 0.15))
#: Quick bursts of a few characters, then a pause.
BURSTS = Profile("bursts", (0.022, 0.034), (0.03, 0.08), burst=(3, 8), pause=(0.15, 0.4))

PROFILES = (INSTANT, SLOW, STEADY, BRISK, ROLLOVER, BURSTS)
#: The human ones (not instant).
HUMAN = PROFILES[1:]


class _FakeDeviceInput(rq.Request):  # type: ignore[misc]
    """XTEST FakeInput with its last byte, the device id (XInput events)."""

    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(2),
        rq.RequestLength(),
        rq.Card8("event_type"),
        rq.Card8("detail"),
        rq.Pad(2),
        rq.Card32("time"),
        rq.Window("root", (X.NONE,)),
        rq.Pad(8),
        rq.Int16("x"),
        rq.Int16("y"),
        rq.Pad(7),
        rq.Card8("deviceid"),
    )


class _ChangeHierarchy(rq.Request):  # type: ignore[misc]
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(43),
        rq.RequestLength(),
        rq.Card8("num_changes"),
        rq.Pad(3),
        rq.String8("changes"),
    )


class _SetFocus(rq.Request):  # type: ignore[misc]
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(49),
        rq.RequestLength(),
        rq.Window("window"),
        rq.Card32("time"),
        rq.Card16("deviceid"),
        rq.Pad(2),
    )


DEVICES = ("xtest", "keyboard", "master")


class Typist:
    """Types on the X server at ``name`` through XTEST, on a connection of its own."""

    def __init__(self, name: str | None = None, seed: int = 0, device: str = "xtest") -> None:
        assert device in DEVICES, device
        self.conn = display.Display(name)
        self.random = random.Random(seed)
        self.shift = self._keycode_of(XK.string_to_keysym("Shift_L"))[0]
        self.device = device
        self._master = 0
        self._deviceid = 0
        self._xi = self.conn.query_extension("XInputExtension")
        self._xtest = self.conn.query_extension("XTEST").major_opcode
        if device == "keyboard":
            self._deviceid = self._find(
                lambda d: d.use == xinput.SlaveKeyboard and "XTEST" not in d.name
            )
        elif device == "master":
            self._add_master()

    def _devices(self) -> list:  # type: ignore[type-arg]
        return list(self.conn.xinput_query_device(xinput.AllDevices).devices)

    def _find(self, accept) -> int:  # type: ignore[no-untyped-def]
        for info in self._devices():
            if accept(info):
                return int(info.deviceid)
        raise AssertionError("no such input device on this server")

    def _add_master(self) -> None:
        name = f"typist{id(self) & 0xFFFF}".encode()
        padded = name + b"\0" * (-len(name) % 4)
        # XIAddMaster: type, length (4-byte units), name length, send_core, enable.
        change = struct.pack("=HHHBB", 1, 2 + len(padded) // 4, len(name), 1, 1) + padded
        _ChangeHierarchy(
            display=self.conn.display, opcode=self._xi.major_opcode, num_changes=1, changes=change
        )
        self.conn.sync()
        label = name.decode()
        self._master = self._find(lambda d: d.name == f"{label} keyboard")
        self._deviceid = self._find(lambda d: d.name == f"{label} XTEST keyboard")
        self.focus()

    def focus(self) -> None:
        """With a master of its own: focus it where the core keyboard's focus is."""
        if self._master:
            window = self.conn.get_input_focus().focus
            _SetFocus(
                display=self.conn.display,
                opcode=self._xi.major_opcode,
                window=window,
                time=X.CurrentTime,
                deviceid=self._master,
            )
            self.conn.sync()

    def _fake(self, kind: int, keycode: int) -> None:
        if not self._deviceid:
            xtest.fake_input(self.conn, kind, keycode)
            return
        # DeviceKeyPress and DeviceKeyRelease are XInput's events 1 and 2.
        offset = 1 if kind == X.KeyPress else 2
        _FakeDeviceInput(
            display=self.conn.display,
            opcode=self._xtest,
            event_type=self._xi.first_event + offset,
            detail=keycode,
            time=X.CurrentTime,
            root=X.NONE,
            x=0,
            y=0,
            deviceid=self._deviceid,
        )

    def _keycode_of(self, keysym: int) -> tuple[int, bool]:
        for keycode, index in self.conn.keysym_to_keycodes(keysym):
            if index in (0, 1):
                return keycode, index == 1
        raise AssertionError(f"no key for keysym {keysym:#x} on this layout")

    def key(self, char: str) -> tuple[int, bool]:
        """(keycode, needs shift) for a character or a keysym name."""
        name = _NAMED.get(char, char)
        if len(name) == 1:
            keysym = ord(name) if ord(name) < 0x100 else 0x01000000 + ord(name)
        else:
            keysym = XK.string_to_keysym(name)
        assert keysym, f"no keysym for {char!r}"
        return self._keycode_of(keysym)

    def timeline(self, text: str, profile: Profile) -> list[tuple[float, int, int]]:
        """(time, X event type, keycode) for typing ``text``, sorted by time."""
        rnd = self.random
        keys = [self.key(c) for c in text]
        presses: list[float] = []
        t = 0.0
        left_in_burst = rnd.randint(*profile.burst) if profile.burst[1] else 0
        for i in range(len(keys)):
            if i:
                t += rnd.uniform(*profile.interval)
                if profile.burst[1]:
                    left_in_burst -= 1
                    if left_in_burst <= 0:
                        t += rnd.uniform(*profile.pause)
                        left_in_burst = rnd.randint(*profile.burst)
            presses.append(t)
        events: list[tuple[float, int, int]] = []
        shift_down_since: float | None = None
        for i, ((keycode, shifted), at) in enumerate(zip(keys, presses, strict=True)):
            nxt = presses[i + 1] if i + 1 < len(keys) else None
            prev = presses[i - 1] if i else None
            release = at + rnd.uniform(*profile.hold)
            again = next((j for j in range(i + 1, len(keys)) if keys[j][0] == keycode), None)
            if again is not None:
                # The same key again: it has to come up before it can go down.
                release = min(release, at + (presses[again] - at) * 0.6)
            if shifted and shift_down_since is None:
                lead = rnd.uniform(0.012, 0.03)
                if prev is not None:
                    lead = min(lead, (at - prev) * 0.5)
                shift_down_since = at - lead
                events.append((shift_down_since, X.KeyPress, self.shift))
            if not shifted and shift_down_since is not None:
                raise AssertionError("unreachable: shift is released before an unshifted key")
            events.append((at, X.KeyPress, keycode))
            events.append((max(release, at), X.KeyRelease, keycode))
            if shifted and (nxt is None or not keys[i + 1][1]):
                up = at + rnd.uniform(0.01, 0.05)
                if nxt is not None:
                    up = min(up, at + (nxt - at) * 0.7)
                events.append((up, X.KeyRelease, self.shift))
                shift_down_since = None
        events.sort(key=lambda e: e[0])
        if profile.instant:
            return [(0.0, kind, code) for kind, code in _instant(keys, self.shift)]
        start = events[0][0] if events else 0.0
        return [(at - start, kind, code) for at, kind, code in events]

    def play(self, events: Iterable[tuple[float, int, int]]) -> list[float]:
        """Send a timeline as it says, then wait until the server processed it.
        Returns when each event was sent (time.monotonic())."""
        start = time.perf_counter()
        sent = []
        for at, kind, keycode in events:
            delay = start + at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # the person's timing itself: nothing to wait on
            self._fake(kind, keycode)
            self.conn.flush()
            sent.append(time.monotonic())
        self.conn.sync()
        return sent

    def type(self, text: str, profile: Profile = INSTANT) -> None:
        self.play(self.timeline(text, profile))

    def close(self) -> None:
        if self._master:
            # XIRemoveMaster, its slaves left floating.
            change = struct.pack("=HHHBBHH", 2, 3, self._master, 2, 0, 0, 0)
            _ChangeHierarchy(
                display=self.conn.display,
                opcode=self._xi.major_opcode,
                num_changes=1,
                changes=change,
            )
            self.conn.sync()
        self.conn.close()


def _instant(keys: list[tuple[int, bool]], shift: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for keycode, shifted in keys:
        if shifted:
            out.append((X.KeyPress, shift))
        out += [(X.KeyPress, keycode), (X.KeyRelease, keycode)]
        if shifted:
            out.append((X.KeyRelease, shift))
    return out
