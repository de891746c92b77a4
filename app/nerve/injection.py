"""Sending keys and clicks to the desktop through XTEST, and knowing what we sent.

Injection goes through XTEST, so every application receives it as if from a
keyboard (pynput's Controller sends characters with XSendEvent, which many
applications ignore), with a round trip (``sync``) after each burst so that
the events are processed before the call returns.

X11 marks injected events no differently from real ones, so Nerve knows its
own input by what produced it:

- Listeners reading the key stream (RECORD) also record XTEST's FakeInput
  requests with the client that sent each one; the event a request makes
  follows it in the stream, so an event made by one of Nerve's connections
  (:func:`is_own_client`) is Nerve's, whatever the user does meanwhile.
  (XInput2 could tell XTEST events by their source device, but every XTEST
  client shares that device: xdotool and test tools included.)
- The hotkey listener registers itself as a :class:`GrabHolder`: a burst that
  would press a combo Nerve grabs is sent with that grab lifted, so the
  focused application receives it and the rule does not fire itself.

Expanding an abbreviation (:meth:`Injector.expand`) goes by the keyboard
listener's model of the focused text (:mod:`nerve.listeners.typing`): erase
back to the first difference, type the rest, mark the stream and check,
until the text after the abbreviation is the replacement followed by
whatever the user typed meanwhile. A key the user still holds is never
pressed again by Nerve (the server would take it as a repeat or drop it):
its character goes out on a spare keycode instead.

A long text can go through the clipboard instead (:class:`Paste`): the
user's clipboard is kept, Nerve owns it with the text, presses the paste
keys, waits until the focused application has fetched the text (or a short
timeout), and puts the user's clipboard back (see
:class:`nerve.listeners.clipboard.PasteBoard`). In an expansion the key
stream's model learns the pasted text when it sees Nerve's paste key.

Modifiers the user still holds (the Ctrl+Alt of the hotkey that started the
run) would turn typed text into shortcuts: the injector waits briefly for
them to be released, then releases them itself. It always releases what it
pressed, even when a run is cancelled half way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from nerve.listeners import x11
from nerve.listeners.base import ListenerUnavailable
from nerve.listeners.x11 import BUTTON_PRESS, BUTTON_RELEASE, KEY_PRESS, KEY_RELEASE, Combo

log = logging.getLogger(__name__)

#: How long to wait for the user to let go of modifiers before typing.
MODIFIER_SETTLE_S = 0.5
#: Characters per burst: a cancelled run stops between bursts.
CHUNK = 32
#: A spare keycode just used is not remapped to another character sooner than
#: this: applications look the key up after the mapping change arrives.
SPARE_REUSE_S = 0.2
#: Rounds of erase-and-type an expansion may take before it gives up (each
#: further one follows a key of the user's that landed inside Nerve's burst).
EXPAND_STEPS = 12
#: How long to wait for a mark to come back through the key stream.
MARK_TIMEOUT_S = 1.0
#: How long a paste waits for the focused application to fetch the text
#: before the user's clipboard is put back.
PASTE_WAIT_S = 1.0

_MODIFIER_KEYSYMS = {
    "ctrl": (0xFFE3, 0xFFE4),
    "shift": (0xFFE1, 0xFFE2),
    "alt": (0xFFE9, 0xFFEA),
    "super": (0xFFEB, 0xFFEC),
    "altgr": (0xFE03, 0xFF7E),
}
_CAPS_LOCK = 0xFFE5
_LEFT = 0xFF51


class InjectionError(Exception):
    """Input could not be sent; the message says why."""


# ---------------------------------------------------------------------------
# Knowing our own input


_own_lock = threading.Lock()
#: RECORD's names (resource id bases) of the connections Nerve injects on.
_own_clients: set[int] = set()


def is_own_client(id_base: int) -> bool:
    """Whether input from this X client (RECORD's id_base) is Nerve's own."""
    return id_base in _own_clients


class ExpansionLost(Exception):
    """The text around an expansion changed in a way the model cannot follow."""


class TypingModel(Protocol):
    """The key stream's model of the focused text (see :mod:`nerve.listeners.typing`)."""

    own_chars: dict[int, str]

    def next_mark(self) -> int: ...

    def wait_mark(self, token: int, timeout: float) -> bool: ...

    def claim(self, expansion: int) -> bool: ...

    def step(self, expansion: int, replacement: str) -> tuple[int, str] | None: ...

    def close(self, expansion: int, typed: str | None) -> None: ...

    def tail(self, expansion: int) -> str: ...

    def expect_paste(self, keycode: int, text: str) -> None: ...


class Delivery(Protocol):
    """A clipboard Nerve owns for a paste (see ``clipboard.Ownership``)."""

    clients: list[int]

    def wait_served(self, timeout: float, client: int | None = None, after: int = 0) -> bool: ...


class Board(Protocol):
    """The clipboard a paste goes through (see ``clipboard.PasteBoard``)."""

    def hold(self, text: str) -> AbstractContextManager[Delivery]: ...

    def client_of(self, window: int) -> int: ...


@dataclass(frozen=True)
class Paste:
    """Paste texts longer than ``above`` characters (0: any text) through
    ``board``, pressing ``keys``."""

    board: Board
    keys: Combo
    above: int = 0

    def wanted(self, text: str) -> bool:
        return len(text) > self.above


_typing: list[TypingModel] = []


def attach_typing(model: TypingModel) -> None:
    """The keyboard listener's model, which expansions are checked against."""
    with _own_lock:
        _typing.append(model)


def detach_typing(model: TypingModel) -> None:
    with _own_lock:
        if model in _typing:
            _typing.remove(model)


def typing_model() -> TypingModel | None:
    with _own_lock:
        return _typing[-1] if _typing else None


class GrabHolder(Protocol):
    """A listener holding passive grabs that injected input must get past."""

    def collides(self, presses: Sequence[tuple[int, int]]) -> bool:
        """Would one of these (keycode, modifier state) presses hit a grab?"""

    def suspend(self, presses: Sequence[tuple[int, int]]) -> None:
        """Lift the grabs these presses hit; return once the server has done it."""

    def resume(self) -> None:
        """Put lifted grabs back (the burst was processed); return once done."""


_registry_lock = threading.Lock()
_holders: list[GrabHolder] = []


def add_grab_holder(holder: GrabHolder) -> None:
    with _registry_lock:
        _holders.append(holder)


def remove_grab_holder(holder: GrabHolder) -> None:
    with _registry_lock:
        if holder in _holders:
            _holders.remove(holder)


# ---------------------------------------------------------------------------
# Bursts


class _Plan:
    """Fake events of one burst, with the modifier state each key press sees."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int]] = []
        self.presses: list[tuple[int, int]] = []
        self.down: dict[int, int] = {}

    @property
    def state(self) -> int:
        out = 0
        for bit in self.down.values():
            out |= bit
        return out

    def clear(self) -> None:
        """Forget the events (they were sent); only between whole taps."""
        assert not self.down
        self.events.clear()
        self.presses.clear()

    def press(self, keycode: int, bit: int = 0) -> None:
        self.events.append((KEY_PRESS, keycode))
        self.presses.append((keycode, self.state))
        self.down[keycode] = bit

    def release(self, keycode: int) -> None:
        self.events.append((KEY_RELEASE, keycode))
        self.down.pop(keycode, None)

    def tap(self, keycode: int, modifiers: Sequence[tuple[int, int]] = ()) -> None:
        for mod_keycode, bit in modifiers:
            self.press(mod_keycode, bit)
        self.press(keycode)
        self.release(keycode)
        for mod_keycode, _ in reversed(modifiers):
            self.release(mod_keycode)


class Injector:
    """XTEST on a connection of its own; one burst at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.conn = x11.connect(name)
        if not self.conn.has_extension("XTEST"):
            self.conn.close()
            raise InjectionError(
                f"the X server at {name} has no XTEST extension, which sending keys and "
                "clicks needs"
            )
        self.keymap = x11.Keymap(self.conn)
        self.client = x11.client_id(self.conn)
        with _own_lock:
            _own_clients.add(self.client)
        self.broken = False
        self.lock = threading.Lock()
        self._pool = self.keymap.spare_keycodes()
        #: spare keycode -> keysym we mapped on it, least recently used first.
        self._assigned: OrderedDict[int, int] = OrderedDict()
        #: Spare keycodes this injector changed the mapping of.
        self._mine: set[int] = set()
        self._used_at: dict[int, float] = {}

    # ------------------------------------------------------------ plumbing

    def _fake(self, kind: int, detail: int = 0, x: int = 0, y: int = 0) -> None:
        from Xlib.ext import xtest

        if kind == x11.MOTION_NOTIFY:
            xtest.fake_input(self.conn, kind, detail, x=x, y=y)
        else:
            xtest.fake_input(self.conn, kind, detail)

    def _send(self, plan: _Plan) -> None:
        """Send a burst: tell trackers, lift colliding grabs, inject, round trip."""
        if not plan.events:
            return
        with _registry_lock:
            holders = [h for h in _holders if h.collides(plan.presses)]
        for holder in holders:
            holder.suspend(plan.presses)
        try:
            for kind, detail in plan.events:
                self._fake(kind, detail)
            self.conn.sync()
        finally:
            for holder in holders:
                holder.resume()
        now = time.monotonic()
        for _, detail in plan.events:
            if detail in self._assigned:
                self._used_at[detail] = now

    def _guard(self) -> Any:
        return _Guard(self)

    def _read_events(self) -> None:
        """Handle what the server told us since the last burst (mapping changes)."""
        changed = False
        while self.conn.pending_events():
            event = self.conn.next_event()
            if event.type == 34:  # MappingNotify
                changed = True
        if changed:
            self.keymap.refresh(self.conn)
            for keycode, keysym in list(self._assigned.items()):
                if keysym not in self.keymap.keysyms(keycode):
                    del self._assigned[keycode]  # someone reloaded the layout
            # A spare keycode Nerve mapped stays its own to map again (and to
            # give back on close), whatever the server reads back for it.
            self._pool = [
                k for k in self._pool if k in self._mine or not any(self.keymap.keysyms(k))
            ]

    # ------------------------------------------------------------- keys

    def modifier_keycode(self, name: str) -> tuple[int, int]:
        """(keycode, modifier bit) to press for ``ctrl``, ``ctrl_r``, ``shift``..."""
        generic = x11.SIDED.get(name, name)
        left, right = _MODIFIER_KEYSYMS[generic]
        keysyms = (right, left) if name.endswith("_r") else (left, right)
        bit = self.keymap.masks.bit(generic)
        for keysym in keysyms:
            for keycode, index in self.keymap.keycodes_for(keysym):
                if index == 0:
                    return keycode, bit
        raise InjectionError(f"the keyboard layout has no {name} key")

    def _held_modifiers(self, stop: threading.Event | None) -> list[int]:
        """Modifier keys still down; waits up to MODIFIER_SETTLE_S for the user to let go."""
        modifier_keys = set(self.keymap.modifier_keycodes())
        deadline = time.monotonic() + MODIFIER_SETTLE_S
        while True:
            held = x11.keys_down(self.conn) & modifier_keys
            if not held or time.monotonic() >= deadline or (stop and stop.is_set()):
                return sorted(held)
            time.sleep(0.01)  # the server has no event for "keys released"; poll briefly

    def _release_modifiers(self, stop: threading.Event | None) -> list[int]:
        """Release the modifiers the user still holds (after a short wait for them
        to let go): held, they would turn typed text into shortcuts."""
        held = self._held_modifiers(stop)
        plan = _Plan()
        for keycode in held:
            plan.release(keycode)
        self._send(plan)
        return held

    def _prepare(self, stop: threading.Event | None) -> tuple[list[int], bool]:
        """Release modifiers the user still holds and switch CapsLock off; returns
        what to restore (CapsLock only: re-pressing modifiers would leave them stuck)."""
        self._read_events()
        held = self._release_modifiers(stop)
        caps = bool(self.conn.screen().root.query_pointer().mask & x11.LOCK_MASK)
        caps_keys = [k for k, i in self.keymap.keycodes_for(_CAPS_LOCK) if i == 0]
        if caps and caps_keys:
            plan = _Plan()
            plan.tap(caps_keys[0])
            self._send(plan)
        return held, bool(caps and caps_keys)

    def _finish(self, caps: bool) -> None:
        if caps:
            caps_keys = [k for k, i in self.keymap.keycodes_for(_CAPS_LOCK) if i == 0]
            plan = _Plan()
            plan.tap(caps_keys[0])
            self._send(plan)

    def _char_key(
        self, char: str, plan: _Plan, avoid: frozenset[int] = frozenset()
    ) -> tuple[int, list[tuple[int, int]]]:
        """(keycode, modifiers to hold) typing ``char``; maps a spare keycode if
        needed (which may first send ``plan``, see :meth:`_spare_for`). Keys in
        ``avoid`` (held by the user) are not used."""
        best: tuple[int, int] | None = None
        for keysym in x11.char_keysyms(char):
            for keycode, index in self.keymap.keycodes_for(keysym):
                if keycode in avoid:
                    continue
                if index in (0, 1, 4, 5) and (best is None or index < best[1]):
                    best = (keycode, index)
            if best is not None:
                break
        if best is not None:
            keycode, index = best
            mods: list[tuple[int, int]] = []
            if index in (4, 5):
                if not self.keymap.masks.altgr:
                    best = None
                else:
                    mods.append(self.modifier_keycode("altgr"))
            if best is not None:
                if index in (1, 5):
                    mods.append(self.modifier_keycode("shift"))
                if keycode in self._assigned:
                    self._assigned.move_to_end(keycode)
                return keycode, mods
        return self._spare_for(x11.char_keysyms(char)[-1], plan, avoid), []

    def _spare_for(self, keysym: int, plan: _Plan, avoid: frozenset[int] = frozenset()) -> int:
        """A spare keycode mapped to ``keysym``.

        When every spare keycode is in use, the least recently used one is
        remapped; an application reads a key's meaning only when it handles
        the press, so the press must have gone out (``plan`` is sent first if
        it holds one) and SPARE_REUSE_S passed."""
        for keycode, mapped in self._assigned.items():
            if mapped == keysym and keycode not in avoid:
                self._assigned.move_to_end(keycode)
                return keycode
        free = [k for k in self._pool if k not in self._assigned and k not in avoid]
        reusable = [k for k in self._assigned if k not in avoid]
        if free:
            keycode = free[0]
        elif reusable:
            keycode = reusable[0]
            if any(detail == keycode for _, detail in plan.events):
                self._send(plan)
                plan.clear()
            del self._assigned[keycode]
            wait = self._used_at.get(keycode, 0.0) + SPARE_REUSE_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # no event says "the application has read it"
        else:
            raise InjectionError("no spare keycode to type a character the layout lacks")
        self._mine.add(keycode)
        self.conn.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self.conn.sync()
        row = self.keymap.rows[keycode - self.keymap.first]
        row[:] = [keysym, keysym] + [x11.NO_SYMBOL] * max(0, len(row) - 2)
        self.keymap.refresh_index()
        self._assigned[keycode] = keysym
        self._used_at[keycode] = time.monotonic()
        model = typing_model()
        if model is not None:
            # The key stream's keymap learns of the change a little later.
            char = "\b" if keysym == x11.KEYSYM_BACKSPACE else x11.keysym_char(keysym)
            if char is None:
                model.own_chars.pop(keycode, None)
            else:
                model.own_chars[keycode] = char
        return keycode

    def type_text(
        self,
        text: str,
        *,
        erase: int = 0,
        stop: threading.Event | None = None,
        back: int = 0,
        paste: Paste | None = None,
    ) -> dict[str, Any]:
        """Type ``text`` (any Unicode, newlines, tabs), after ``erase`` BackSpaces;
        then move the caret ``back`` characters to the left. With ``paste``
        (and a text it is wanted for) the text is pasted instead of typed."""
        pasted = paste is not None and paste.wanted(_printable(text))
        text = _pasteable(text) if pasted else _printable(text)
        with self.lock, self._guard():
            _, caps = self._prepare(stop)
            try:
                if paste is not None and pasted:
                    self._type("", erase, stop, self._held_keys())
                    self._paste(text, paste, stop, None)
                else:
                    self._type(text, erase, stop, self._held_keys())
                self._caret_back(back, stop)
            finally:
                self._finish(caps)
        result: dict[str, Any] = {"typed": len(text), "erased": erase}
        if pasted:
            result["method"] = "paste"
        return result

    def _paste(
        self, text: str, paste: Paste, stop: threading.Event | None, model: TypingModel | None
    ) -> bool:
        """Paste ``text`` into the focused window; whether it fetched the text
        in time (the user's clipboard is back either way)."""
        if stop is not None and stop.is_set():
            return False
        keycode, mods = self._combo_mods(paste.keys)
        with paste.board.hold(text) as delivery:
            focus = self.conn.get_input_focus().focus
            window = int(getattr(focus, "id", focus) or 0)
            # PointerRoot (1) or no focus: any client's request counts.
            client = paste.board.client_of(window) if window > 1 else None
            after = len(delivery.clients)
            if model is not None:
                model.expect_paste(keycode, text)
            plan = _Plan()
            plan.tap(keycode, mods)
            self._send(plan)
            served = delivery.wait_served(PASTE_WAIT_S, client, after)
            if not served:
                log.debug("a paste: the focused window did not fetch the text in time")
        return served

    def _caret_back(self, count: int, stop: threading.Event | None) -> None:
        left = self._keysym_key(_LEFT)
        for start in range(0, count, CHUNK):
            if stop is not None and stop.is_set():
                return
            plan = _Plan()
            for _ in range(min(CHUNK, count - start)):
                plan.tap(left)
            self._send(plan)

    def expand(
        self,
        model: TypingModel,
        expansion: int,
        text: str,
        *,
        erase: int = 0,
        stop: threading.Event | None = None,
        back: int = 0,
        paste: Paste | None = None,
    ) -> dict[str, Any]:
        """Replace the abbreviation of ``expansion`` (in the keyboard listener's
        ``model``) with ``text``, keeping what the user typed after it; then
        move the caret ``back`` characters left, unless the user typed on.
        With ``paste``, a text it is wanted for is pasted.

        Falls back to ``erase`` BackSpaces and ``text`` if the expansion is
        no longer open (its rule claimed it too late)."""
        text = _pasteable(text) if paste is not None and paste.wanted(text) else _printable(text)
        if not model.claim(expansion):
            return self.type_text(text, erase=erase, stop=stop, back=back, paste=paste)
        pasted = False
        steps = 0
        typed: str | None = None
        lost = ""
        try:
            with self.lock, self._guard():
                _, caps = self._prepare(stop)
                try:
                    while steps < EXPAND_STEPS and not (stop is not None and stop.is_set()):
                        token = model.next_mark()
                        x11.send_mark(self.conn, token)
                        # A round trip: the server flushes what RECORD holds
                        # only when it writes something to some client.
                        self.conn.sync()
                        if not model.wait_mark(token, MARK_TIMEOUT_S):
                            raise InjectionError("the key stream did not show Nerve's own input")
                        try:
                            step = model.step(expansion, text)
                        except ExpansionLost as exc:
                            lost = str(exc)
                            break
                        if step is None:
                            typed = text
                            if back and not model.tail(expansion):
                                self._caret_back(back, stop)
                            break
                        steps += 1
                        if steps > 1:
                            self._release_modifiers(stop)
                        if paste is not None and paste.wanted(step[1]):
                            self._type("", step[0], stop, self._held_keys())
                            self._paste(step[1], paste, stop, model)
                            pasted = True
                        else:
                            self._type(step[1], step[0], stop, self._held_keys())
                    else:
                        if steps >= EXPAND_STEPS:
                            log.warning("an expansion did not settle in %d steps", steps)
                finally:
                    self._finish(caps)
        finally:
            model.close(expansion, typed if typed is not None else (text if steps else None))
        if lost:
            # The caret moved, the focus changed or the abbreviation was edited:
            # the text is no longer where the replacement was to go.
            return {"typed": 0 if steps == 0 else len(text), "steps": steps, "stopped": lost}
        result: dict[str, Any] = {"typed": len(text), "steps": steps}
        if pasted:
            result["method"] = "paste"
        return result

    def _held_keys(self) -> frozenset[int]:
        """Keys down now (the user's): Nerve presses none of them."""
        return frozenset(x11.keys_down(self.conn))

    def _type(
        self, text: str, erase: int, stop: threading.Event | None, avoid: frozenset[int]
    ) -> None:
        """BackSpaces, then ``text``, in bursts of CHUNK keys. Keys the user
        presses meanwhile are read again before each burst and left alone."""
        units = ["\b"] * erase + [c for c in _normalise(text) if c in "\n\t" or c.isprintable()]
        for start in range(0, len(units), CHUNK):
            if stop is not None and stop.is_set():
                return
            if start:
                avoid = frozenset(x11.keys_down(self.conn))
            plan = _Plan()
            for unit in units[start : start + CHUNK]:
                if unit == "\b":
                    plan.tap(self._keysym_key(x11.KEYSYM_BACKSPACE, avoid))
                else:
                    keycode, mods = self._char_key(unit, plan, avoid)
                    plan.tap(keycode, mods)
            self._send(plan)

    def _keysym_key(self, keysym: int, avoid: frozenset[int] = frozenset()) -> int:
        for keycode, index in self.keymap.keycodes_for(keysym):
            if index == 0 and keycode not in avoid:
                return keycode
        if avoid:
            return self._spare_for(keysym, _Plan(), avoid)
        raise InjectionError(f"the keyboard layout has no key for {x11.keysym_name(keysym)}")

    def send_combos(
        self, combos: Sequence[Combo], *, erase: int = 0, stop: threading.Event | None = None
    ) -> dict[str, Any]:
        """Press each combo in turn (modifiers down, key, all up again)."""
        with self.lock, self._guard():
            _, caps = self._prepare(stop)
            try:
                if erase:
                    plan = _Plan()
                    backspace = self._keysym_key(x11.KEYSYM_BACKSPACE)
                    for _ in range(erase):
                        plan.tap(backspace)
                    self._send(plan)
                for combo in combos:
                    if stop is not None and stop.is_set():
                        break
                    plan = _Plan()
                    keycode, mods = self._combo_mods(combo)
                    plan.tap(keycode, mods)
                    self._send(plan)
            finally:
                self._finish(caps)
        return {"sent": [str(c) for c in combos]}

    def _combo_mods(self, combo: Combo) -> tuple[int, list[tuple[int, int]]]:
        """(keycode, modifiers to hold) pressing ``combo``."""
        keycode, extra = self._combo_key(combo)
        mods = [
            self.modifier_keycode(next((s for s in combo.sides if x11.SIDED[s] == m), m))
            for m in x11.MODIFIERS
            if m in combo.modifiers
        ]
        mods += [m for m in extra if m not in mods]
        return keycode, mods

    def _combo_key(self, combo: Combo) -> tuple[int, list[tuple[int, int]]]:
        keysym = combo.keysym
        options = sorted(self.keymap.keycodes_for(keysym), key=lambda p: p[1])
        for keycode, index in options:
            if index == 0:
                return keycode, []
            if index == 1:
                return keycode, [self.modifier_keycode("shift")]
        if len(combo.key) == 1 or combo.key.startswith("u"):
            return self._char_key(x11.keysym_char(keysym) or combo.key, _Plan())
        raise InjectionError(f"the keyboard layout has no key for {combo.key}")

    # ------------------------------------------------------------ mouse

    def click(self, button: int, x: int | None, y: int | None, count: int = 1) -> dict[str, Any]:
        with self.lock, self._guard():
            if x is not None and y is not None:
                self._fake(x11.MOTION_NOTIFY, 0, x, y)
            events = [(BUTTON_PRESS, button), (BUTTON_RELEASE, button)] * count
            for kind, detail in events:
                self._fake(kind, detail)
            self.conn.sync()
        return {"button": button, "x": x, "y": y, "count": count}

    def move(self, x: int, y: int, relative: bool = False) -> dict[str, Any]:
        with self.lock, self._guard():
            self._fake(x11.MOTION_NOTIFY, 1 if relative else 0, x, y)
            self.conn.sync()
            pointer = self.conn.screen().root.query_pointer()
        return {"x": pointer.root_x, "y": pointer.root_y}

    def close(self) -> None:
        """Give the spare keycodes back and close the connection."""
        with self.lock:
            try:
                for keycode in sorted(self._mine):
                    self.conn.change_keyboard_mapping(keycode, [(x11.NO_SYMBOL, x11.NO_SYMBOL)])
                self._assigned.clear()
                self._mine.clear()
                self.conn.sync()  # processed before the connection goes
                self.conn.close()
            except Exception:
                log.debug("closing the injector failed", exc_info=True)
            self.broken = True
            with _own_lock:
                _own_clients.discard(self.client)


def _normalise(text: str) -> str:
    """Line ends as the Return key types them."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pasteable(text: str) -> str:
    """What of ``text`` a paste puts in: line ends as Return types them, no
    control characters but newlines and tabs (joiners, no-break spaces and
    other format characters stay: they are part of the text)."""
    import unicodedata

    return "".join(
        c for c in _normalise(text) if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cs")
    )


def _printable(text: str) -> str:
    """What of ``text`` reaches the application: line ends as Return types
    them, and the characters that type something (newlines, tabs, printable)."""
    return "".join(c for c in _normalise(text) if c in "\n\t" or c.isprintable())


class _Guard:
    """Turns a dropped connection into InjectionError and marks the injector broken."""

    def __init__(self, injector: Injector) -> None:
        self.injector = injector

    def __enter__(self) -> None:
        if self.injector.broken:
            raise InjectionError("the X connection for sending input was closed")

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, InjectionError):
            return
        from Xlib import error as xerror

        if isinstance(exc, (xerror.ConnectionClosedError, OSError)):
            self.injector.broken = True
            raise InjectionError(f"the X connection for sending input dropped: {exc}") from exc


class _Current:
    """The process's injector (one X connection for all input actions)."""

    lock = threading.Lock()
    injector: Injector | None = None


def injector() -> Injector:
    """The process's injector for the current DISPLAY (reconnects when needed).

    Raises InjectionError with a plain reason if input cannot be sent."""
    try:
        name = x11.display_name()
    except ListenerUnavailable as exc:
        raise InjectionError(str(exc)) from None
    with _Current.lock:
        current = _Current.injector
        if current is not None and (current.broken or current.name != name):
            current.close()
            current = None
        if current is None:
            try:
                current = Injector(name)
            except (ConnectionError, ListenerUnavailable) as exc:
                raise InjectionError(str(exc)) from None
            _Current.injector = current
        return current


def reset() -> None:
    """Close the process's injector (tests switching X servers, shutdown)."""
    with _Current.lock:
        if _Current.injector is not None:
            _Current.injector.close()
            _Current.injector = None
