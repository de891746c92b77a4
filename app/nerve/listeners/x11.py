"""X11 helpers shared by the keyboard, hotkey and mouse listeners and the input actions.

- Combos: parsing and normalising ``ctrl+alt+t``, ``super+e``, ``F9``,
  ``ctrl+shift+page_down``, ``ctrl_r+k`` (left and right modifiers are equal
  unless one is named). This part needs no X server, so packs validate anywhere.
- The keyboard as the X server sees it: keysyms per keycode, which modifier bit
  is Alt, Super, NumLock or ScrollLock (read from the modifier map, as sxhkd
  and xbindkeys do), spare keycodes, keysym <-> character.
- A RECORD session on a connection of its own (the key or pointer stream
  without grabbing anything), stopped from a second connection.

python-xlib is imported inside functions: importing this module works on any OS.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import select
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from nerve.listeners.base import ListenerUnavailable

log = logging.getLogger(__name__)

# X protocol constants (X.h), so that parsing needs no Xlib.
KEY_PRESS, KEY_RELEASE, BUTTON_PRESS, BUTTON_RELEASE, MOTION_NOTIFY = 2, 3, 4, 5, 6
FOCUS_IN, FOCUS_OUT = 9, 10
_NOTIFY_GRAB, _NOTIFY_UNGRAB = 1, 2
SHIFT_MASK, LOCK_MASK, CONTROL_MASK = 1, 2, 4
NO_SYMBOL = 0

# ---------------------------------------------------------------------------
# Combos

#: Modifier names in the order a normalised combo lists them.
MODIFIERS = ("ctrl", "alt", "shift", "super", "altgr")
#: Side-specific names and the modifier each one is a side of.
SIDED = {
    "ctrl_l": "ctrl",
    "ctrl_r": "ctrl",
    "alt_l": "alt",
    "alt_r": "alt",
    "shift_l": "shift",
    "shift_r": "shift",
    "super_l": "super",
    "super_r": "super",
}
_MODIFIER_ALIASES = {
    "control": "ctrl",
    "ctl": "ctrl",
    "option": "alt",
    "opt": "alt",
    "win": "super",
    "windows": "super",
    "cmd": "super",
    "command": "super",
    "logo": "super",
    "mod4": "super",
    "alt_gr": "altgr",
    "level3": "altgr",
}
for _mod, _sides in (("ctrl", "control"), ("alt", ""), ("shift", ""), ("super", "win")):
    for _side in ("l", "r"):
        _full = "left" if _side == "l" else "right"
        for _name in filter(None, (_mod, _sides)):
            _MODIFIER_ALIASES[f"{_side}{_name}"] = f"{_mod}_{_side}"
            _MODIFIER_ALIASES[f"{_full}_{_name}"] = f"{_mod}_{_side}"
            _MODIFIER_ALIASES[f"{_full}{_name}"] = f"{_mod}_{_side}"
            _MODIFIER_ALIASES[f"{_name}_{_side}"] = f"{_mod}_{_side}"

#: Friendly key names and the canonical (lower-case X keysym) name they mean.
KEY_ALIASES = {
    "enter": "return",
    "esc": "escape",
    "pgup": "page_up",
    "pageup": "page_up",
    "prior": "page_up",
    "pgdn": "page_down",
    "pagedown": "page_down",
    "next": "page_down",
    "del": "delete",
    "ins": "insert",
    "spacebar": "space",
    "printscreen": "print",
    "prtsc": "print",
    "capslock": "caps_lock",
    "numlock": "num_lock",
    "scrolllock": "scroll_lock",
    "break": "pause",
    "apps": "menu",
    "application": "menu",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "bksp": "backspace",
    "back_space": "backspace",
    "kp_enter": "kp_enter",
}
#: Canonical names for keysyms X knows under several names.
_PREFERRED = {0xFF55: "page_up", 0xFF56: "page_down", 0xFE03: "iso_level3_shift"}

# The X keysyms for control characters in text.
KEYSYM_BACKSPACE, KEYSYM_TAB, KEYSYM_RETURN, KEYSYM_ESCAPE = 0xFF08, 0xFF09, 0xFF0D, 0xFF1B


class ComboError(ValueError):
    """A combo or key name that makes no sense; the message is for the user."""


@dataclass(frozen=True)
class Combo:
    """A key with the modifiers held: ``ctrl+alt+t``.

    ``modifiers`` are the generic names (``ctrl``, never ``ctrl_r``); ``sides``
    the side-specific names the user wrote, which must then be the side held.
    """

    key: str
    modifiers: frozenset[str] = frozenset()
    sides: frozenset[str] = frozenset()

    def __str__(self) -> str:
        parts = []
        for mod in MODIFIERS:
            sided = [s for s in sorted(self.sides) if SIDED[s] == mod]
            if sided:
                parts.extend(sided)
            elif mod in self.modifiers:
                parts.append(mod)
        parts.append(self.key)
        return "+".join(parts)

    @property
    def keysym(self) -> int:
        return keysym_of(self.key)


def parse_combo(text: str) -> Combo:
    """``text`` as a Combo; ComboError (with a plain message) if it is not one."""
    raw = text.strip()
    if not raw:
        raise ComboError("empty key combination")
    if raw == "+":
        tokens = ["+"]
    elif raw.endswith("++"):
        tokens = [*raw[:-2].split("+"), "+"]
    else:
        tokens = raw.split("+")
    tokens = [t.strip() for t in tokens]
    if any(not t for t in tokens):
        raise ComboError(f"{text!r}: empty part (write modifiers and a key joined by '+')")
    *mods, key_token = tokens
    modifiers: set[str] = set()
    sides: set[str] = set()
    for token in mods:
        name = _modifier_name(token)
        if name is None:
            raise ComboError(
                f"{text!r}: {token!r} is not a modifier (use ctrl, alt, shift, super, altgr, "
                "or a side: ctrl_l, ctrl_r, ...); the key goes last"
            )
        generic = SIDED.get(name, name)
        if generic in modifiers:
            raise ComboError(f"{text!r}: {generic} named twice")
        modifiers.add(generic)
        if name in SIDED:
            sides.add(name)
    key = key_name(key_token)
    if key is None:
        if _modifier_name(key_token) is not None and mods:
            raise ComboError(f"{text!r}: the key goes last, after the modifiers")
        raise ComboError(f"{text!r}: unknown key {key_token!r}")
    return Combo(key, frozenset(modifiers), frozenset(sides))


def normalise_combo(text: str) -> str:
    """The canonical text of a combo (``Ctrl+Alt+T`` -> ``ctrl+alt+t``)."""
    return str(parse_combo(text))


def _modifier_name(token: str) -> str | None:
    name = token.lower().replace("-", "_").replace(" ", "_")
    name = _MODIFIER_ALIASES.get(name, name)
    return name if name in MODIFIERS or name in SIDED else None


def key_name(token: str) -> str | None:
    """The canonical name of a key (lower-case X keysym name), or None if unknown."""
    if len(token) == 1:
        return keysym_name(char_keysym(token.lower() if token.isalpha() else token))
    name = token.lower().replace("-", "_").replace(" ", "_")
    name = KEY_ALIASES.get(name, name)
    if re.fullmatch(r"f([1-9]|[12][0-9]|3[0-5])", name):
        return name
    match = re.fullmatch(r"u\+?([0-9a-f]{4,6})", name)
    if match:
        return keysym_name(char_keysym(chr(int(match.group(1), 16))))
    table = _name_table()
    if table is None:  # no python-xlib on this platform: trust the spelling
        return name if re.fullmatch(r"[a-z0-9_]+", name) else None
    keysym = table[0].get(name)
    if keysym is None and name.startswith("xf86") and not name.startswith("xf86_"):
        keysym = table[0].get("xf86_" + name[4:])  # X says XF86AudioPlay, python-xlib XF86_
    return keysym_name(keysym) if keysym is not None else None


def keysym_of(name: str) -> int:
    """The keysym of a canonical key name (see :func:`key_name`)."""
    if len(name) == 1:
        return char_keysym(name)
    match = re.fullmatch(r"u([0-9a-f]{4,6})", name)
    if match:
        return 0x01000000 + int(match.group(1), 16)
    if re.fullmatch(r"f\d+", name):
        return 0xFFBE + int(name[1:]) - 1
    table = _name_table()
    if table is None or name not in table[0]:
        raise ComboError(f"unknown key {name!r}")
    return table[0][name]


def keysym_name(keysym: int) -> str:
    """The canonical name of a keysym: ``page_down``, ``f9``, ``a``, ``semicolon``."""
    if keysym in _PREFERRED:
        return _PREFERRED[keysym]
    table = _name_table()
    if table is not None and keysym in table[1]:
        return table[1][keysym]
    if 0x20 < keysym < 0x7F and chr(keysym).isalnum():
        return chr(keysym).lower()
    if keysym >= 0x01000000:
        return f"u{keysym - 0x01000000:04x}"
    return f"u{keysym:04x}" if keysym < 0x100 else f"0x{keysym:x}"


@lru_cache(maxsize=1)
def _name_table() -> tuple[dict[str, int], dict[int, str]] | None:
    """(lower-case name -> keysym, keysym -> canonical name) from Xlib's keysym lists."""
    try:
        from Xlib import XK
    except ImportError:
        return None
    for group in ("latin2", "latin3", "latin4", "greek", "cyrillic", "xf86", "xkb", "special"):
        try:
            XK.load_keysym_group(group)
        except ImportError:  # pragma: no cover - a trimmed python-xlib
            continue
    by_name: dict[str, int] = {}
    by_keysym: dict[int, str] = {}
    # Lower-case X names first, so 'a' (0x61) wins over 'A' (0x41) for "a".
    names = sorted((n[3:] for n in vars(XK) if n.startswith("XK_")), key=lambda n: n != n.lower())
    for name in names:
        keysym = getattr(XK, "XK_" + name)
        lower = name.lower()
        by_name.setdefault(lower, keysym)
        if by_name[lower] == keysym:
            by_keysym.setdefault(keysym, lower)
    return by_name, by_keysym


# ---------------------------------------------------------------------------
# Keysyms and characters


def char_keysym(char: str) -> int:
    """The keysym that types ``char`` (Latin-1 as itself, the rest as Unicode keysyms)."""
    code = ord(char)
    special = {"\n": KEYSYM_RETURN, "\t": KEYSYM_TAB, "\b": KEYSYM_BACKSPACE, "\x1b": KEYSYM_ESCAPE}
    if char in special:
        return special[char]
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 + code


def char_keysyms(char: str) -> list[int]:
    """Keysyms that type ``char``, best first: a legacy keysym a layout may
    have on a key (``Cyrillic_a``), then the Unicode keysym."""
    unicode = char_keysym(char)
    legacy = _legacy()[1].get(char)
    return [legacy, unicode] if legacy is not None and legacy != unicode else [unicode]


def keysym_char(keysym: int) -> str | None:
    """The character a keysym types, or None (function keys, modifiers)."""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return chr(keysym - 0x01000000)
    if keysym in (KEYSYM_RETURN, 0xFF8D):  # Return, KP_Enter
        return "\n"
    if keysym == KEYSYM_TAB:
        return "\t"
    if 0xFFAA <= keysym <= 0xFFB9:  # keypad * + , - . / 0-9
        return chr(keysym - 0xFF80)
    return _legacy()[0].get(keysym)


@lru_cache(maxsize=1)
def _legacy() -> tuple[dict[int, str], dict[str, int]]:
    """Legacy (pre-Unicode) keysyms and their characters, from pynput's table.

    The table is data only; it is loaded by path because importing the pynput
    package opens a display."""
    by_keysym: dict[int, str] = {}
    spec = importlib.util.find_spec("pynput")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "_util" / "xorg_keysyms.py"
        mod_spec = importlib.util.spec_from_file_location("_nerve_xorg_keysyms", path)
        if mod_spec is None or mod_spec.loader is None or not path.exists():
            continue
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception:  # pragma: no cover - a changed pynput
            log.debug("could not read pynput's keysym table", exc_info=True)
            continue
        for keysym, char in getattr(module, "SYMBOLS", {}).values():
            if char and keysym < 0x01000000 and keysym > 0xFF:
                by_keysym.setdefault(keysym, char)
        break
    return by_keysym, {char: keysym for keysym, char in by_keysym.items()}


# ---------------------------------------------------------------------------
# Sessions and connections


def display_name() -> str:
    """The X display to use, or ListenerUnavailable saying plainly why there is none."""
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    if os.environ.get("WAYLAND_DISPLAY") and session == "wayland":
        raise ListenerUnavailable(
            "this is a Wayland session (XDG_SESSION_TYPE=wayland): X11 hotkeys, key "
            "recording and input injection only reach X11 (XWayland) windows there. Log "
            "in to an X11 session to use keyboard and mouse rules"
        )
    name = os.environ.get("DISPLAY", "")
    if not name:
        raise ListenerUnavailable(
            "no X display: DISPLAY is not set (keyboard and mouse rules need an X11 session)"
        )
    return name


def connect(name: str) -> Any:
    """A new connection to display ``name``; ConnectionError if it cannot be opened
    (a failure the manager retries: the server may not be up yet)."""
    try:
        from Xlib import display as xdisplay
        from Xlib import error as xerror
    except ImportError as exc:
        raise ListenerUnavailable(
            f"python-xlib is not installed ({exc}); install it with: pip install python-xlib"
        ) from None
    try:
        conn = xdisplay.Display(name)
    except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
        raise ConnectionError(f"cannot connect to X display {name}: {exc}") from None
    conn.set_error_handler(_log_x_error)
    return conn


def _log_x_error(error: Any, request: Any) -> None:
    log.debug("X error: %s", error)


def require_extension(conn: Any, name: str, purpose: str) -> None:
    if not conn.has_extension(name):
        raise ListenerUnavailable(
            f"the X server at {conn.get_display_name()} has no {name} extension, "
            f'which {purpose} needs (Xorg: add Load "{name.lower()}" to the Module '
            "section of xorg.conf)"
        )


# ---------------------------------------------------------------------------
# The keyboard as the server sees it


@dataclass
class ModMasks:
    """Which modifier bit means what, read from the server's modifier map."""

    alt: int = 0
    super: int = 0
    altgr: int = 0
    numlock: int = 0
    scrolllock: int = 0
    #: keycode -> (modifier name, side) for the keys that are modifiers.
    keys: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def locks(self) -> int:
        """Bits that grabs and matching ignore (CapsLock, NumLock, ScrollLock)."""
        return LOCK_MASK | self.numlock | self.scrolllock

    def lock_variants(self) -> list[int]:
        """Every combination of lock bits: a grab is repeated for each, so a hotkey
        works whatever CapsLock, NumLock and ScrollLock are set to."""
        bits = sorted({b for b in (LOCK_MASK, self.numlock, self.scrolllock) if b})
        out = [0]
        for bit in bits:
            out += [v | bit for v in out]
        return out

    def bit(self, modifier: str) -> int:
        return {
            "ctrl": CONTROL_MASK,
            "shift": SHIFT_MASK,
            "alt": self.alt,
            "super": self.super,
            "altgr": self.altgr,
        }[modifier]

    def mask(self, modifiers: Iterable[str]) -> int:
        out = 0
        for mod in modifiers:
            out |= self.bit(SIDED.get(mod, mod))
        return out

    def names(self, state: int) -> list[str]:
        """The modifiers held in ``state``, in combo order."""
        return [m for m in MODIFIERS if self.bit(m) and state & self.bit(m)]


_MODIFIER_KEYSYMS = {
    0xFFE3: ("ctrl", "l"),
    0xFFE4: ("ctrl", "r"),
    0xFFE1: ("shift", "l"),
    0xFFE2: ("shift", "r"),
    0xFFE9: ("alt", "l"),
    0xFFEA: ("alt", "r"),
    0xFFE7: ("alt", "l"),  # Meta_L sits with Alt on common layouts
    0xFFE8: ("alt", "r"),
    0xFFEB: ("super", "l"),
    0xFFEC: ("super", "r"),
    0xFE03: ("altgr", "r"),  # ISO_Level3_Shift
    0xFF7E: ("altgr", "r"),  # Mode_switch
}
_KEYSYM_NUM_LOCK, _KEYSYM_SCROLL_LOCK = 0xFF7F, 0xFF14


class Keymap:
    """Keysyms per keycode and the modifier map of one server, read once and
    refreshed when the server announces a change (MappingNotify)."""

    def __init__(self, conn: Any) -> None:
        self.refresh(conn)

    def refresh(self, conn: Any) -> None:
        info = conn.display.info
        self.first: int = info.min_keycode
        last: int = info.max_keycode
        rows = conn.get_keyboard_mapping(self.first, last - self.first + 1)
        self.rows: list[list[int]] = [list(r) for r in rows]
        self.refresh_index()
        self.masks = self._read_modifier_map(conn)

    def refresh_index(self) -> None:
        """Rebuild the keysym -> keycodes index after ``rows`` changed."""
        self._by_keysym: dict[int, list[tuple[int, int]]] = {}
        for i, row in enumerate(self.rows):
            for index, keysym in enumerate(row):
                if keysym != NO_SYMBOL:
                    self._by_keysym.setdefault(keysym, []).append((self.first + i, index))

    def _read_modifier_map(self, conn: Any) -> ModMasks:
        masks = ModMasks()
        for bit_index, keycodes in enumerate(conn.get_modifier_mapping()):
            bit = 1 << bit_index
            for keycode in keycodes:
                if not keycode:
                    continue
                for keysym in self.keysyms(keycode)[:1] or [NO_SYMBOL]:
                    self._note_modifier(masks, bit, keycode, keysym)
        return masks

    def _note_modifier(self, masks: ModMasks, bit: int, keycode: int, keysym: int) -> None:
        if keysym == _KEYSYM_NUM_LOCK:
            masks.numlock = masks.numlock or bit
        elif keysym == _KEYSYM_SCROLL_LOCK:
            masks.scrolllock = masks.scrolllock or bit
        elif keysym in _MODIFIER_KEYSYMS:
            name, side = _MODIFIER_KEYSYMS[keysym]
            masks.keys[keycode] = (name, side)
            if name in ("alt", "super", "altgr") and not getattr(masks, name) and bit > 4:
                setattr(masks, name, bit)

    def keysyms(self, keycode: int) -> list[int]:
        i = keycode - self.first
        return self.rows[i] if 0 <= i < len(self.rows) else []

    def keycodes_for(self, keysym: int) -> list[tuple[int, int]]:
        """(keycode, index) pairs producing ``keysym``; index 1 needs Shift, 4/5 AltGr."""
        return list(self._by_keysym.get(keysym, ()))

    def spare_keycodes(self) -> list[int]:
        """Keycodes no key produces a symbol on (for typing characters the layout lacks)."""
        return [
            self.first + i
            for i, row in enumerate(self.rows)
            if all(k == NO_SYMBOL for k in row) and self.first + i > 8
        ]

    def lookup(self, keycode: int, state: int) -> int:
        """The keysym a key press produces with modifier ``state`` (core protocol rules)."""
        row = self.keysyms(keycode)
        if not row:
            return NO_SYMBOL
        masks = self.masks
        base = 4 if masks.altgr and state & masks.altgr and len(row) > 4 else 0
        lower = row[base] if len(row) > base else NO_SYMBOL
        upper = row[base + 1] if len(row) > base + 1 else NO_SYMBOL
        if upper == NO_SYMBOL:
            upper = _upper_keysym(lower)
        shift = bool(state & SHIFT_MASK)
        if masks.numlock and state & masks.numlock and 0xFF80 <= upper <= 0xFFBD:
            return lower if shift else upper  # keypad with NumLock
        if state & LOCK_MASK and _upper_keysym(lower) != lower:
            shift = not shift  # CapsLock inverts letters only
        return upper if shift else lower

    def modifier_keycodes(self) -> dict[int, tuple[str, str]]:
        return self.masks.keys


def _upper_keysym(keysym: int) -> int:
    char = keysym_char(keysym)
    if char is None or len(char) != 1 or char.upper() == char or len(char.upper()) != 1:
        return keysym
    return char_keysym(char.upper())


def keys_down(conn: Any) -> set[int]:
    """Keycodes the server believes are down (XQueryKeymap)."""
    bitmap = conn.query_keymap()
    return {i * 8 + b for i, byte in enumerate(bitmap) for b in range(8) if byte & (1 << b)}


# ---------------------------------------------------------------------------
# RECORD


class EventHandler(Protocol):
    def __call__(
        self, kind: int, detail: int, state: int, x: int, y: int, /, *, injected: bool
    ) -> None: ...


#: A mark in the key stream: a NoOperation request (it may carry data, which
#: the server ignores) holding MARK_MAGIC and a token, recorded in order.
MARK_OPCODE = 127
MARK_MAGIC = 0x4E525645
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_EVENT_XY = struct.Struct("=hh")


@functools.cache
def _mark_request() -> Any:
    from Xlib.protocol import rq

    class Mark(rq.Request):  # type: ignore[misc]
        _request = rq.Struct(
            rq.Opcode(MARK_OPCODE),
            rq.Pad(1),
            rq.RequestLength(),
            rq.Card32("magic"),
            rq.Card32("token"),
        )

    return Mark


def send_mark(conn: Any, token: int) -> None:
    """Queue a mark with ``token`` on ``conn`` (flush or sync to send it)."""
    _mark_request()(display=conn.display, magic=MARK_MAGIC, token=token & 0xFFFFFFFF)


def client_id(conn: Any) -> int:
    """The resource id base of a connection: how RECORD names its client."""
    return int(conn.display.info.resource_id_base)


class RecordSession:
    """Device events of one kind from the RECORD extension, on a thread of its own.

    ``handler(type, detail, state, root_x, root_y, injected)`` is called on the
    record thread for each event, in the server's order (it must not block).
    ``on_lost(exc)`` is called if the connection drops while recording.

    Nerve's own input is told apart by what produced it: the context also
    records XTEST's FakeInput requests, with the client that sent each one,
    and the server processes the event a FakeInput request makes before it
    reads the next request, so the event follows its request in the stream.
    The event right after a FakeInput request of the same kind and detail
    from a client ``own(id_base)`` accepts is ``injected``; a request with no
    event (the server drops a press of a key already down, from any keyboard)
    claims nothing that comes later. ``on_mark(token)``
    gets each :func:`send_mark` of such a client, in stream order too: what
    was recorded before it was processed before it. ``on_focus()`` is called
    when the keyboard focus moves (FocusIn/FocusOut delivered to any client),
    in order with the keys.

    Two connections, as the extension wants: ``data`` receives the stream (its
    thread blocks in RecordEnableContext); ``control`` creates nothing but can
    disable the context to end the stream. The context is a resource of the
    data connection, so killing that client (XKillClient on ``context``) is
    what a dropped connection looks like.

    With ``watch`` given, a second thread waits on the control connection for
    ordinary events (MappingNotify, a root window property) and hands them to
    ``watch``; ``setup(control)`` selects them.
    """

    def __init__(
        self,
        name: str,
        first: int,
        last: int,
        handler: EventHandler,
        on_lost: Callable[[BaseException], None],
        *,
        watch: Callable[[Any], None] | None = None,
        setup: Callable[[Any], None] | None = None,
        label: str = "record",
        own: Callable[[int], bool] | None = None,
        on_mark: Callable[[int], None] | None = None,
        tick: Callable[[], float | None] | None = None,
        on_focus: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.on_focus = on_focus
        self.own = own
        self.on_mark = on_mark
        self.tick = tick
        self.first = first
        self.last = last
        self.handler = handler
        self.on_lost = on_lost
        self.watch = watch
        self.setup = setup
        self.label = label
        self.control: Any = None
        self.data: Any = None
        self.context: int = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._wake_r, self._wake_w = -1, -1
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Connect and start recording; returns once the server records (or raises)."""
        self.control = connect(self.name)
        self.data = connect(self.name)
        require_extension(self.data, "RECORD", "watching keys and clicks without grabbing")
        from Xlib.ext import record

        xtest = self.data.query_extension("XTEST")
        if self.own is not None and xtest.present:
            # FakeInput requests (XTEST minor 2) and NoOperation marks.
            core_requests = (MARK_OPCODE, MARK_OPCODE)
            ext_requests = (xtest.major_opcode, xtest.major_opcode, 2, 2)
        else:
            core_requests, ext_requests = (0, 0), (0, 0, 0, 0)
        self.context = self.data.record_create_context(
            0,
            [record.AllClients],
            [
                {
                    "core_requests": core_requests,
                    "core_replies": (0, 0),
                    "ext_requests": ext_requests,
                    "ext_replies": (0, 0, 0, 0),
                    "delivered_events": (FOCUS_IN, FOCUS_OUT) if self.on_focus else (0, 0),
                    "device_events": (self.first, self.last),
                    "errors": (0, 0),
                    "client_started": False,
                    "client_died": False,
                }
            ],
        )
        self.data.sync()
        thread = threading.Thread(target=self._record, name=f"{self.label}-record", daemon=True)
        self._threads.append(thread)
        if self.watch is not None:
            if self.setup is not None:
                self.setup(self.control)
            self.control.sync()
            self._wake_r, self._wake_w = os.pipe()
            watcher = threading.Thread(target=self._watch, name=f"{self.label}-watch", daemon=True)
            self._threads.append(watcher)
        for t in self._threads:
            t.start()
        if not self._ready.wait(10):
            raise TimeoutError("the X server did not start recording within 10 s")
        if self._error is not None:
            raise self._error

    def _record(self) -> None:
        from Xlib.ext import record

        handler = self.handler
        own = self.own
        on_mark = self.on_mark
        on_focus = self.on_focus
        #: (kind, detail) of the own FakeInput request whose event has not come yet.
        pending: list[tuple[int, int]] = []

        def on_reply(category: int, swapped: bool, id_base: int, data: bytes) -> None:
            if category == record.StartOfData:
                self._ready.set()
                return
            if swapped:
                return
            if category == record.FromClient:
                if own is None or not own(id_base):
                    # Another client's request: any event of ours has come.
                    pending.clear()
                    return
                while len(data) >= 4:
                    size = _U16.unpack_from(data, 2)[0] * 4
                    if size < 4:
                        return
                    request, data = data[:size], data[size:]
                    if request[0] == MARK_OPCODE:
                        if size >= 12 and _U32.unpack_from(request, 4)[0] == MARK_MAGIC:
                            pending.clear()  # what did not come back was dropped by the server
                            if on_mark is not None:
                                on_mark(_U32.unpack_from(request, 8)[0])
                    elif size >= 8:
                        # The server makes a FakeInput's event before it reads
                        # the next request: one with no event yet was dropped
                        # (its key was down already) and is no longer waited for.
                        pending[:] = [(request[4], request[5])]
                return
            if category != record.FromServer:
                return
            while len(data) >= 32:
                raw, data = data[:32], data[32:]
                kind = raw[0] & 0x7F
                if kind in (FOCUS_IN, FOCUS_OUT):
                    # Delivered to some client: the keyboard focus moved (not
                    # the passing focus of a keyboard grab), in stream order.
                    if on_focus is not None and raw[8] not in (_NOTIFY_GRAB, _NOTIFY_UNGRAB):
                        on_focus()
                    continue
                if kind < KEY_PRESS or kind > MOTION_NOTIFY:
                    continue
                detail = raw[1]
                # Only the event right after our request is ours: a key of the
                # user's the server processes later is not, whatever its key.
                injected = bool(pending) and pending[0] == (kind, detail)
                pending.clear()
                root_x, root_y = _EVENT_XY.unpack_from(raw, 20)
                state = _U16.unpack_from(raw, 28)[0]
                try:
                    handler(kind, detail, state, root_x, root_y, injected=injected)
                except Exception:
                    log.exception("%s: handling a recorded event failed", self.label)

        try:
            _record_replies(self.data, self.context, on_reply)
        except Exception as exc:
            if not self._ready.is_set():
                self._error = exc  # start() raises it
                self._ready.set()
            elif not self._stopping:
                self.on_lost(exc)

    def _watch(self) -> None:
        conn = self.control
        fd = conn.fileno()
        try:
            while not self._stopping:
                while conn.pending_events():
                    event = conn.next_event()
                    assert self.watch is not None
                    try:
                        self.watch(event)
                    except Exception:
                        log.exception("%s: handling an X event failed", self.label)
                timeout = self.tick() if self.tick is not None else None
                readable, _, _ = select.select([fd, self._wake_r], [], [], timeout)
                if self._wake_r in readable and b"x" in os.read(self._wake_r, 64):
                    return
        except Exception as exc:
            if not self._stopping:
                self.on_lost(exc)

    def poke(self) -> None:
        """Have the watching thread ask ``tick`` again."""
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"t")

    def stop(self) -> None:
        """End both threads and close both connections (idempotent)."""
        self._stopping = True
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        current = threading.current_thread()
        watchers = [t for t in self._threads if t.name.endswith("-watch")]
        for t in watchers:
            if t is not current:
                t.join(5)
        if self.control is not None and self.context:
            try:
                self.control.record_disable_context(self.context)
                self.control.sync()
            except Exception:
                log.debug("%s: disabling the record context failed", self.label, exc_info=True)
        for t in self._threads:
            if t is not current:
                t.join(5)
        self._threads = []
        for conn in (self.data, self.control):
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    log.debug("%s: closing a connection failed", self.label, exc_info=True)
        self.data = self.control = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1


#: A RECORD EnableContext reply's header: type, category, sequence, length,
#: element header, client swapped, pad, id base (then times and padding).
_RECORD_REPLY = struct.Struct("=BBHIBBxxI")
_RECORD_ENABLE_CONTEXT = 5
_RECORD_END_OF_DATA = 5


def _record_replies(
    conn: Any, context: int, on_reply: Callable[[int, bool, int, bytes], None]
) -> None:
    """Enable ``context`` on ``conn`` (a connection used for nothing else) and
    hand each reply to ``on_reply(category, client_swapped, id_base, data)``
    until the context is disabled.

    The replies are read from the socket and framed here: python-xlib's
    generic reply parser costs about as much as everything else a recorded
    key press needs, and every key Nerve types comes back through here twice
    (its request and its event)."""
    major = conn.display.get_extension_major("RECORD")
    conn.flush()
    sock = conn.display.socket
    sock.sendall(struct.pack("=BBHI", major, _RECORD_ENABLE_CONTEXT, 2, context))
    buffer = bytearray()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the X server closed the recording connection")
        buffer += chunk
        pos, size = 0, len(buffer)
        while size - pos >= 32:
            kind = buffer[pos]
            if kind == 0:
                raise ConnectionError(f"the X server refused to record (error {buffer[pos + 1]})")
            if kind != 1:
                pos += 32  # an event: none is selected on this connection
                continue
            _, category, _, length, _, swapped, id_base = _RECORD_REPLY.unpack_from(buffer, pos)
            end = pos + 32 + 4 * length
            if end > size:
                break
            on_reply(category, bool(swapped), id_base, bytes(buffer[pos + 32 : end]))
            pos = end
            if category == _RECORD_END_OF_DATA:
                return
        del buffer[:pos]


def iter_lock_variants(base: int, masks: ModMasks) -> Iterator[int]:
    for variant in masks.lock_variants():
        yield base | variant
