"""The keyboard on X11: grabbed hotkeys, the key stream, abbreviations, the panic hotkey.

Two listeners, so that a hotkey rule never installs a keyboard hook:

- ``hotkeys`` holds a passive grab (XGrabKey) of exactly each combo a rule
  owns, repeated for every CapsLock/NumLock/ScrollLock state, as sxhkd and
  xbindkeys do. The focused application does not receive a grabbed combo.
  With ``pass_through`` (or a side-specific modifier such as ``ctrl_r``) the
  grab is synchronous: the listener decides, then lets the server replay the
  press to the focused window (XAllowEvents ReplayKeyboard) or swallows it.
  A rule with ``window`` conditions takes its combo only while they hold
  (also a synchronous grab): in other windows the application gets it.
  The whole keyboard is never grabbed.
- ``keyboard`` reads the key stream through the RECORD extension (no grab,
  nothing taken from applications) while a rule needs ``key.down``/``key.up``
  or abbreviations (``typed``). What was typed is kept in memory only (see
  :mod:`nerve.listeners.typing`) and forgotten on a click, a focus change,
  a shortcut or a key that moves the caret.

Both know Nerve's own input (see :mod:`nerve.injection`): an injected combo
passes its grab to the focused window, and injected text never completes an
abbreviation.

The panic hotkey is a grab of the ``hotkeys`` listener that calls the
handlers given to :func:`on_panic` (the app pauses the engine there) and
publishes ``nerve.panic``; :func:`with_panic` adds it to the listener needs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import select
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from nerve import injection
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import Event, fields_for
from nerve.listeners import x11
from nerve.listeners.base import Listener, Need, listeners
from nerve.listeners.typing import Abbreviation, Typing, is_word_char, typed_case
from nerve.listeners.x11 import KEY_PRESS, KEY_RELEASE, Combo, ComboError

log = logging.getLogger(__name__)

PANIC_EVENT = "nerve.panic"
MAX_ABBREVIATION = 32
#: How long an injector waits for the hotkey thread to lift a grab.
SUSPEND_TIMEOUT_S = 2.0

_MAPPING_NOTIFY = 34
_VT_KEYS = {f"f{n}" for n in range(1, 13)}


class GrabScope:
    """Where a rule's hotkey may be taken: the rule's window conditions (each
    with ``holds_now()``), all of which must hold for the rule to run. Outside
    them the press goes to the focused window, as if nobody had grabbed it."""

    __slots__ = ("conditions",)

    def __init__(self, conditions: Sequence[Any]) -> None:
        self.conditions = tuple(conditions)

    def holds(self) -> bool:
        return all(c.holds_now() for c in self.conditions)


class GrabNeed(NamedTuple):
    """A combo a rule owns (``pass_through``: the focused window gets it too;
    ``scope``: only taken from the focused window while the scope holds)."""

    combo: str
    pass_through: bool = False
    scope: GrabScope | None = None


class PanicNeed(NamedTuple):
    """The panic hotkey: pauses everything."""

    combo: str


class TypedNeed(NamedTuple):
    """An abbreviation to watch for (``expands``: its rule types a replacement
    for it, so what the user types next waits for that)."""

    text: str
    word: bool = False
    case_sensitive: bool = True
    expands: bool = False


#: The ``keyboard`` need for key.down/key.up events.
KEY_EVENTS = "events"


# ---------------------------------------------------------------------------
# Panic


_panic_lock = threading.Lock()
_panic_handlers: list[Callable[[str], None]] = []


def on_panic(handler: Callable[[str], None]) -> Callable[[], None]:
    """Call ``handler(combo)`` (on the hotkey thread; it must not block) when the
    panic hotkey is pressed. Returns a function that detaches it."""
    with _panic_lock:
        _panic_handlers.append(handler)

    def detach() -> None:
        with _panic_lock:
            if handler in _panic_handlers:
                _panic_handlers.remove(handler)

    return detach


def with_panic(needs: Mapping[str, Sequence[Need]], combo: str | None) -> dict[str, list[Need]]:
    """``needs`` plus the panic hotkey's grab (none if ``combo`` is None or empty).

    Raises ComboError if ``combo`` is not a key combination."""
    out = {lid: list(n) for lid, n in needs.items()}
    if combo:
        out.setdefault("hotkeys", []).append(PanicNeed(x11.normalise_combo(combo)))
    return out


def _fire_panic(combo: str) -> None:
    with _panic_lock:
        handlers = list(_panic_handlers)
    for handler in handlers:
        try:
            handler(combo)
        except Exception:
            log.exception("a panic handler failed")


# ---------------------------------------------------------------------------
# hotkeys: passive grabs


@dataclass(frozen=True)
class _Binding:
    text: str
    combo: Combo
    pass_through: bool
    panic: bool
    #: Taken only while one of these holds (None: always taken).
    scopes: tuple[GrabScope, ...] | None = None

    def consumes(self) -> bool:
        """Whether a press of this combo is kept from the focused window now."""
        if self.pass_through:
            return False
        return self.scopes is None or any(scope.holds() for scope in self.scopes)


@dataclass
class _Slot:
    """One grab: a keycode with a modifier mask, and the combos it serves."""

    keycode: int
    mask: int
    bindings: list[_Binding]

    @property
    def sync(self) -> bool:
        return any(b.pass_through or b.combo.sides or b.scopes is not None for b in self.bindings)


@listeners.register
class HotkeyListener(Listener):
    """Passive grabs of the combos rules own; publishes ``hotkey`` events."""

    id = "hotkeys"
    description = "Key combinations, grabbed so the focused application does not get them"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn: Any = None
        self._keymap: x11.Keymap | None = None
        self._window: Any = None
        self._thread: threading.Thread | None = None
        self._commands: deque[tuple[Any, ...]] = deque()
        self._wake_r = self._wake_w = -1
        self._stopping = False
        self._wanted: list[_Binding] = []
        self._slots: dict[tuple[int, int], _Slot] = {}
        #: (keycode, mask) -> (synchronous?, the lock variants grabbed)
        self._grabbed: dict[tuple[int, int], tuple[bool, tuple[int, ...]]] = {}
        self._suspended: list[tuple[int, int]] = []
        self._problems: dict[str, str] = {}
        self._locks = 0
        self._name = ""

    # ------------------------------------------------------------------ life

    def start(self, needs: Sequence[Need]) -> None:
        self._name = x11.display_name()
        self._conn = x11.connect(self._name)
        self._keymap = x11.Keymap(self._conn)
        root = self._conn.screen().root
        # A resource of this connection: it names the client (xlsclients, xprop)
        # and lets supervision tests kill exactly this connection (XKillClient).
        self._window = root.create_window(0, 0, 1, 1, 0, 0, window_class=2)  # InputOnly
        self._window.set_wm_name("nerve hotkeys")
        self._wanted = _bindings(needs)
        self._apply()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="hotkeys", daemon=True)
        self._thread.start()
        injection.add_grab_holder(self)

    def reconfigure(self, needs: Sequence[Need]) -> None:
        done = threading.Event()
        self._post("needs", _bindings(needs), done)
        if not done.wait(5):
            raise TimeoutError("the hotkey thread did not take the new combos within 5 s")

    def stop(self) -> None:
        self._stopping = True
        injection.remove_grab_holder(self)
        if self._thread is not None:
            self._post("stop")
            if self._thread is not threading.current_thread():
                self._thread.join(5)
            self._thread = None
        if self._conn is not None:
            try:
                self._ungrab_all()
                if self._window is not None:
                    self._window.destroy()
                self._conn.close()
            except Exception:
                log.debug("hotkeys: releasing the X connection failed", exc_info=True)
            self._conn = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def detail(self) -> str:
        combos = sorted({b.text for s in self._slots.values() for b in s.bindings if not b.panic})
        panic = next((b.text for b in self._wanted if b.panic), None)
        shown = ", ".join(combos[:8]) + (f" and {len(combos) - 8} more" if len(combos) > 8 else "")
        parts = [f"X11 {self._name}: grabbing {shown or 'nothing'}"]
        if panic:
            parts.append(f"panic {panic}")
        if self._problems:
            parts.append("; ".join(f"{c}: {why}" for c, why in sorted(self._problems.items())))
        return "; ".join(parts)

    @property
    def window_id(self) -> int:
        """The id of this listener's marker window (tests kill the connection by it)."""
        return int(self._window.id) if self._window is not None else 0

    # ------------------------------------------------------------- thread

    def _post(self, *command: Any) -> None:
        self._commands.append(command)
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _loop(self) -> None:
        conn = self._conn
        fd = conn.fileno()
        try:
            while True:
                while conn.pending_events():
                    self._handle(conn.next_event())
                readable, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in readable:
                    os.read(self._wake_r, 512)
                    if self._run_commands():
                        return
        except Exception as exc:
            if not self._stopping:
                log.warning("hotkeys: X connection lost: %s", exc)
                self.failed(exc)

    def _run_commands(self) -> bool:
        while self._commands:
            command = self._commands.popleft()
            kind = command[0]
            if kind == "stop":
                return True
            if kind == "needs":
                self._wanted = command[1]
                self._apply()
                command[2].set()
            elif kind == "suspend":
                self._suspend(command[1])
                command[2].set()
            elif kind == "resume":
                self._resume()
                command[1].set()
        return False

    def _handle(self, event: Any) -> None:
        kind = event.type
        if kind == KEY_PRESS:
            self._on_press(event)
        elif kind == _MAPPING_NOTIFY:
            assert self._keymap is not None
            self._keymap.refresh(self._conn)
            self._apply()

    def _on_press(self, event: Any) -> None:
        key = (event.detail, event.state & ~self._locks)
        slot = self._slots.get(key)
        grab = self._grabbed.get(key)
        matching = [] if slot is None else [b for b in slot.bindings if self._sides_held(b)]
        if grab is None or grab[0]:
            # A synchronous grab froze the keyboard: swallow the press or let the
            # server replay it to the focused window. (For a grab dropped since
            # the press, this also unfreezes; it does nothing when not frozen.)
            from Xlib import X

            consume = any(b.consumes() for b in matching)
            self._conn.allow_events(X.AsyncKeyboard if consume else X.ReplayKeyboard, event.time)
            self._conn.flush()
        for binding in matching:
            if binding.panic:
                log.warning("panic hotkey %s pressed: pausing everything", binding.text)
                _fire_panic(binding.text)
                self.publish(PANIC_EVENT, {"combo": binding.text})
            else:
                self.publish("hotkey", {"combo": binding.text})

    def _sides_held(self, binding: _Binding) -> bool:
        if not binding.combo.sides:
            return True
        assert self._keymap is not None
        keys = self._keymap.modifier_keycodes()
        held = {f"{keys[k][0]}_{keys[k][1]}" for k in x11.keys_down(self._conn) if k in keys}
        return binding.combo.sides <= held

    # --------------------------------------------------------------- grabs

    def _grab(self, key: tuple[int, int], sync: bool, variants: Sequence[int], **kw: Any) -> None:
        from Xlib import X

        root = self._conn.screen().root
        mode = X.GrabModeSync if sync else X.GrabModeAsync
        for variant in variants:
            root.grab_key(key[0], variant, False, X.GrabModeAsync, mode, **kw)

    def _ungrab(self, key: tuple[int, int], variants: Sequence[int]) -> None:
        root = self._conn.screen().root
        for variant in variants:
            root.ungrab_key(key[0], variant)

    def _ungrab_all(self) -> None:
        for key, (_, variants) in self._grabbed.items():
            if key not in self._suspended:
                self._ungrab(key, variants)
        self._grabbed.clear()
        self._suspended = []

    def _apply(self) -> None:
        """Grab what is wanted now and release what is not (on the loop thread)."""
        assert self._keymap is not None
        from Xlib import error as xerror

        slots, problems = _slots(self._wanted, self._keymap)
        masks = self._keymap.masks
        self._locks = masks.locks
        variants = masks.lock_variants()
        for key, (sync, held) in list(self._grabbed.items()):
            slot = slots.get(key)
            if slot is None or slot.sync != sync or set(held) != {key[1] | v for v in variants}:
                if key not in self._suspended:
                    self._ungrab(key, held)
                del self._grabbed[key]
        catchers: dict[tuple[int, int], Any] = {}
        for key, slot in slots.items():
            if key in self._grabbed:
                continue
            catcher = xerror.CatchError(xerror.BadAccess)
            catchers[key] = catcher
            self._grab(key, slot.sync, [key[1] | v for v in variants], onerror=catcher)
        self._conn.sync()
        for key, catcher in catchers.items():
            slot = slots[key]
            wanted = tuple(key[1] | v for v in variants)
            if catcher.get_error() is not None:
                self._ungrab(key, wanted)  # the variants we did get
                for b in slot.bindings:
                    problems[b.text] = "taken by another program"
                    log.warning("hotkey %s is grabbed by another program", b.text)
                del slots[key]
            else:
                self._grabbed[key] = (slot.sync, wanted)
        self._conn.flush()
        self._slots = slots
        self._problems = problems

    # ------------------------------------------------- injection (GrabHolder)

    def collides(self, presses: Sequence[tuple[int, int]]) -> bool:
        slots, locks = self._slots, self._locks
        return any((keycode, state & ~locks) in slots for keycode, state in presses)

    def suspend(self, presses: Sequence[tuple[int, int]]) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        done = threading.Event()
        self._post("suspend", [(k, s & ~self._locks) for k, s in presses], done)
        if not done.wait(SUSPEND_TIMEOUT_S):
            log.warning("hotkeys: the grab thread did not lift a grab in time")

    def resume(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        done = threading.Event()
        self._post("resume", done)
        if not done.wait(SUSPEND_TIMEOUT_S):
            log.warning("hotkeys: the grab thread did not restore a grab in time")

    def _suspend(self, keys: list[tuple[int, int]]) -> None:
        for key in dict.fromkeys(keys):
            if key in self._grabbed and key not in self._suspended:
                self._ungrab(key, self._grabbed[key][1])
                self._suspended.append(key)
        self._conn.sync()

    def _resume(self) -> None:
        for key in self._suspended:
            grab = self._grabbed.get(key)
            if grab is not None:  # still wanted (the rules may have changed meanwhile)
                self._grab(key, *grab)
        self._suspended = []
        self._conn.sync()


def _bindings(needs: Sequence[Need]) -> list[_Binding]:
    # One binding per (combo, kind). Consuming wins over passing through, and
    # a rule that takes the combo everywhere over rules that take it in some windows.
    groups: dict[tuple[str, bool], tuple[Combo, list[GrabNeed | PanicNeed]]] = {}
    for need in needs:
        if isinstance(need, PanicNeed | GrabNeed):
            parsed = x11.parse_combo(need.combo)
            key = (str(parsed), isinstance(need, PanicNeed))
            groups.setdefault(key, (parsed, []))[1].append(need)
    out: list[_Binding] = []
    for (text, panic), (combo, group) in groups.items():
        taking = [n for n in group if not isinstance(n, GrabNeed) or not n.pass_through]
        if not taking:
            out.append(_Binding(text, combo, True, panic))
            continue
        scopes = [n.scope if isinstance(n, GrabNeed) else None for n in taking]
        if any(scope is None for scope in scopes):
            out.append(_Binding(text, combo, False, panic))
        else:
            out.append(_Binding(text, combo, False, panic, tuple(s for s in scopes if s)))
    return out


def _slots(
    bindings: list[_Binding], keymap: x11.Keymap
) -> tuple[dict[tuple[int, int], _Slot], dict[str, str]]:
    """The grabs that serve ``bindings`` on this keyboard, and combos it cannot serve."""
    slots: dict[tuple[int, int], _Slot] = {}
    problems: dict[str, str] = {}
    masks = keymap.masks
    for b in bindings:
        missing = [m for m in b.combo.modifiers if not masks.bit(m)]
        if missing:
            problems[b.text] = f"no {missing[0]} modifier on this keyboard"
            continue
        base = masks.mask(b.combo.modifiers)
        try:
            keysym = b.combo.keysym
        except ComboError as exc:
            problems[b.text] = str(exc)
            continue
        found = False
        for keycode, index in keymap.keycodes_for(keysym):
            if index == 0:
                mask = base
            elif index == 1:
                mask = base | x11.SHIFT_MASK
            else:
                continue
            found = True
            slot = slots.setdefault((keycode, mask), _Slot(keycode, mask, []))
            if b not in slot.bindings:
                slot.bindings.append(b)
        if not found:
            problems[b.text] = f"no {b.combo.key} key on this keyboard layout"
    return slots, problems


# ---------------------------------------------------------------------------
# keyboard: the key stream (RECORD)


def _is_modifier_keysym(keysym: int) -> bool:
    """Shift, Control, CapsLock... (0xffe1-0xffee), ISO level and group keys
    (0xfe01-0xfe13), NumLock and ScrollLock."""
    return 0xFFE1 <= keysym <= 0xFFEE or 0xFE01 <= keysym <= 0xFE13 or keysym in (0xFF7F, 0xFF14)


@listeners.register
class KeyboardListener(Listener):
    """Key presses through RECORD: ``key.down``/``key.up`` events and abbreviations."""

    id = "keyboard"
    description = "Key presses and typed abbreviations (RECORD; nothing is grabbed)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: x11.RecordSession | None = None
        self._keymap: x11.Keymap | None = None
        self._events = False
        self._typing = Typing(lambda data: self.publish("typed", data))
        self._undo_pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: Focus changes seen in the key stream (they reset what was typed).
        self.focus_changes = 0
        self._name = ""

    def start(self, needs: Sequence[Need]) -> None:
        self._name = x11.display_name()
        self._configure(needs)
        # With abbreviations, clicks also reset what was typed (RECORD ranges
        # are contiguous: KeyPress..ButtonPress).
        typing = self._typing
        last = x11.BUTTON_PRESS if typing.watching else KEY_RELEASE
        session = x11.RecordSession(
            self._name,
            KEY_PRESS,
            last,
            self._on_event,
            self._lost,
            watch=self._on_x_event,
            setup=self._setup_control,
            label="keyboard",
            own=injection.is_own_client,
            on_mark=typing.marked,
            tick=typing.tick,
            on_focus=self._focus_moved,
        )
        self._session = session
        typing.wake = session.poke
        self._undo_pool = concurrent.futures.ThreadPoolExecutor(1, "keyboard-undo")
        typing.on_undo = self._undo
        session.start()
        injection.attach_typing(typing)

    def _setup_control(self, control: Any) -> None:
        self._keymap = x11.Keymap(control)

    def _configure(self, needs: Sequence[Need]) -> None:
        self._events = KEY_EVENTS in needs
        self._typing.configure(
            [
                Abbreviation(n.text, n.word, n.case_sensitive, n.expands)
                for n in needs
                if isinstance(n, TypedNeed)
            ]
        )

    def reconfigure(self, needs: Sequence[Need]) -> None:
        if any(isinstance(n, TypedNeed) for n in needs) != self._typing.watching:
            super().reconfigure(needs)  # the recorded range changes: start over
        else:
            self._configure(needs)

    def stop(self) -> None:
        injection.detach_typing(self._typing)
        self._typing.on_undo = None
        if self._undo_pool is not None:
            self._undo_pool.shutdown(wait=False, cancel_futures=True)
            self._undo_pool = None
        if self._session is not None:
            self._session.stop()
            self._session = None
        self._typing.reset("the listener stopped")

    def detail(self) -> str:
        parts = []
        if self._events:
            parts.append("key events")
        count = len(self._typing.abbreviations)
        if count:
            parts.append(f"{count} abbreviation(s)")
        return f"X11 {self._name} (RECORD): " + (", ".join(parts) or "idle")

    @property
    def context_id(self) -> int:
        """The RECORD context, a resource of the recording connection (for tests)."""
        return self._session.context if self._session is not None else 0

    def _lost(self, exc: BaseException) -> None:
        log.warning("keyboard: X connection lost: %s", exc)
        self.failed(exc)

    # ------------------------------------------------------------- events

    def _on_x_event(self, event: Any) -> None:
        if event.type == _MAPPING_NOTIFY:
            assert self._session is not None
            self._keymap = x11.Keymap(self._session.control)

    def _undo(self, expansion: int, abbreviation: str) -> None:
        # BackSpace right after an expansion: the abbreviation comes back, as
        # typed (on a thread of its own: typing blocks).
        if self._undo_pool is not None:
            self._undo_pool.submit(self._put_back, expansion, abbreviation)

    def _put_back(self, expansion: int, abbreviation: str) -> None:
        try:
            injection.injector().expand(self._typing, expansion, abbreviation)
        except injection.InjectionError as exc:
            log.warning("keyboard: could not put an abbreviation back: %s", exc)
            self._typing.close(expansion, None)

    def _focus_moved(self) -> None:
        # Another window has the focus: what was typed is not there.
        self._typing.reset("the focus moved")
        self.focus_changes += 1

    def _on_event(
        self, kind: int, keycode: int, state: int, x: int, y: int, *, injected: bool
    ) -> None:
        if kind == x11.BUTTON_PRESS:
            self._typing.reset("a click")
            return
        keymap = self._keymap
        if keymap is None:
            return
        if self._events:
            row = keymap.keysyms(keycode)
            name = x11.keysym_name(row[0]) if row and row[0] else f"keycode{keycode}"
            self.publish(
                "key.down" if kind == KEY_PRESS else "key.up",
                {"key": name, "modifiers": keymap.masks.names(state), "injected": injected},
            )
        if kind == KEY_PRESS and self._typing.watching:
            self._feed(keymap, keycode, state, injected)

    def _feed(self, keymap: x11.Keymap, keycode: int, state: int, own: bool) -> None:
        typing = self._typing
        masks = keymap.masks
        if own and typing.pasted(keycode):
            return  # Nerve's paste key: the model took the pasted text in
        char = typing.own_chars.get(keycode) if own else None
        if char is None:
            row = keymap.keysyms(keycode)
            if keycode in masks.keys or (row and _is_modifier_keysym(row[0])):
                return  # Shift, CapsLock and friends alone type nothing
            if state & (x11.CONTROL_MASK | masks.alt | masks.super):
                typing.reset("a shortcut")
                return
            keysym = keymap.lookup(keycode, state)
            char = "\b" if keysym == x11.KEYSYM_BACKSPACE else x11.keysym_char(keysym)
        if char is None:
            typing.reset("a key that moves the caret")  # arrows, Escape, Home...
        elif char == "\b":
            typing.backspace(own)
        else:
            typing.char(char, own)


# ---------------------------------------------------------------------------
# Triggers


def check_combo(text: str, path: tuple[str, ...] = ()) -> Combo:
    """A key combination as hotkey rules read it; ConfigError (at ``path``) if
    it is not one or cannot work (Ctrl+Alt+F-keys). The settings window uses it."""
    try:
        combo = x11.parse_combo(text)
    except ComboError as exc:
        raise ConfigError(str(exc), path) from None
    if {"ctrl", "alt"} <= combo.modifiers and combo.key in _VT_KEYS:
        raise ConfigError(
            f"{combo}: Ctrl+Alt+F1..F12 switch virtual terminals; the X server never "
            "passes them on. Choose another combo",
            path,
        )
    return combo


@triggers.register
class HotkeyTrigger(Trigger):
    """A key combination, taken from the focused application unless ``pass_through``."""

    key = "hotkey"
    description = (
        "A key combination (ctrl+alt+t, super+e, F9, ctrl+shift+page_down; ctrl_r for one "
        "side). The focused application does not get it unless pass_through is true"
    )
    capabilities = frozenset({"reads-keyboard"})
    schema = {
        "anyOf": [
            {"type": "string", "description": "Modifiers and a key joined by +"},
            {
                "type": "object",
                "properties": {
                    "combo": {"type": "string", "description": "Modifiers and a key joined by +"},
                    "pass_through": {
                        "type": "boolean",
                        "description": "Let the focused application receive it too",
                    },
                },
                "required": ["combo"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, combo: Combo, pass_through: bool) -> None:
        self.combo = combo
        self.text = str(combo)
        self.pass_through = pass_through
        self.grab_scope: GrabScope | None = None

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> HotkeyTrigger:
        if isinstance(options, str):
            return cls(check_combo(options), False)
        return cls(check_combo(options["combo"], ("combo",)), bool(options.get("pass_through")))

    def matchers(self) -> list[Matcher]:
        return [Matcher("hotkey", ("combo", self.text))]

    def scope(self, conditions: Sequence[Any]) -> None:
        # The rule's window conditions: elsewhere it cannot run, so the
        # focused application keeps the combo there (as AutoHotkey's #HotIf).
        windowed = [c for c in conditions if callable(getattr(c, "holds_now", None))]
        self.grab_scope = GrabScope(windowed) if windowed else None

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "hotkeys", GrabNeed(self.text, self.pass_through, self.grab_scope)

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("hotkey")

    def event_hint(self) -> str:
        return "hotkey events"

    def describe(self) -> str:
        return f"hotkey {self.text}" + (" (passed through)" if self.pass_through else "")


_MODIFIER_LIST = {
    "type": "array",
    "items": {"enum": list(x11.MODIFIERS)},
    "uniqueItems": True,
    "description": "Modifiers that must be held (exactly these; [] for none)",
}


@triggers.register
class KeyTrigger(Trigger):
    """One key going down (or up), seen in the key stream without taking it."""

    key = "key"
    description = (
        "One key pressed (F9, a, ctrl+a), seen without taking it from the application; "
        "release: true for the release"
    )
    capabilities = frozenset({"reads-keyboard"})
    schema = {
        "anyOf": [
            {"type": "string", "description": "A key, optionally with modifiers (ctrl+a)"},
            {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "modifiers": _MODIFIER_LIST,
                    "release": {"type": "boolean", "description": "On the release (key.up)"},
                    "injected": {
                        "type": "boolean",
                        "description": "Also fire for keys Nerve itself sends (default no)",
                    },
                },
                "required": ["key"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(
        self, key: str, modifiers: frozenset[str] | None, up: bool, injected: bool
    ) -> None:
        self.key_name = key
        self.modifiers = modifiers
        self.type = "key.up" if up else "key.down"
        self.injected = injected

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> KeyTrigger:
        if isinstance(options, str):
            options = {"key": options}
        path = ("key",) if "key" in options else ()
        combo = check_combo(options["key"], path)
        if combo.sides:
            raise ConfigError("left/right modifiers are for hotkeys; use ctrl, alt...", path)
        modifiers: frozenset[str] | None = combo.modifiers or None
        if "modifiers" in options:
            if modifiers is not None:
                raise ConfigError("give modifiers in 'key' or in 'modifiers', not both")
            modifiers = frozenset(options["modifiers"])
        return cls(
            combo.key, modifiers, bool(options.get("release")), bool(options.get("injected"))
        )

    def _check(self, event: Event) -> bool:
        if event.get("injected") and not self.injected:
            return False
        if self.modifiers is None:
            return True
        return frozenset(event.get("modifiers") or ()) == self.modifiers

    def matchers(self) -> list[Matcher]:
        return [Matcher(self.type, ("key", self.key_name), self._check)]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "keyboard", KEY_EVENTS

    def event_fields(self) -> frozenset[str] | None:
        return fields_for(self.type)

    def event_hint(self) -> str:
        return f"{self.type} events"

    def describe(self) -> str:
        mods = "+".join(m for m in x11.MODIFIERS if m in (self.modifiers or ()))
        return f"key {mods + '+' if mods else ''}{self.key_name}" + (
            " up" if self.type == "key.up" else ""
        )


@triggers.register
class TypedTrigger(Trigger):
    """An abbreviation typed anywhere; the rule's first ``type`` or ``keys``
    action erases it before sending its own text."""

    key = "typed"
    description = (
        "An abbreviation typed in any application (;sig). The first type/keys action (or "
        "dialog) of the run erases it first; word: only as a whole word; case: sensitive, "
        "insensitive or follow (the replacement takes the case it was typed in)"
    )
    capabilities = frozenset({"reads-keyboard"})
    schema = {
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_ABBREVIATION},
            {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "minLength": 1, "maxLength": MAX_ABBREVIATION},
                    "word": {
                        "type": "boolean",
                        "description": "Only between word boundaries; fires on the space or "
                        "punctuation after it, which is kept",
                    },
                    "case": {
                        "enum": ["sensitive", "insensitive", "follow"],
                        "description": "follow: match any case, and type the replacement "
                        "as the abbreviation was typed (;sig, ;Sig, ;SIG: text, Text, TEXT)",
                    },
                    "erase": {
                        "type": "boolean",
                        "description": "Erase the abbreviation before typing (default yes)",
                    },
                },
                "required": ["text"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, text: str, word: bool, case_sensitive: bool, erase: bool) -> None:
        self.text = text
        self.word = word
        self.case_sensitive = case_sensitive
        self.erase = erase
        self.expands = False
        #: The replacement's case follows how the abbreviation was typed.
        self.follow_case = False

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> TypedTrigger:
        if isinstance(options, str):
            options = {"text": options}
        text = options["text"]
        path = ("text",) if isinstance(options, dict) and "text" in options else ()
        if any(not c.isprintable() or c.isspace() for c in text):
            raise ConfigError("an abbreviation is printable text without spaces", path)
        if options.get("word") and not any(is_word_char(c) for c in text):
            raise ConfigError("'word: true' needs letters or digits in the abbreviation", path)
        case = options.get("case", "sensitive")
        trigger = cls(
            text, bool(options.get("word")), case == "sensitive", bool(options.get("erase", True))
        )
        trigger.follow_case = case == "follow"
        return trigger

    def _check(self, event: Event) -> bool:
        typed = event.get("text")
        if not isinstance(typed, str):
            return False
        size = len(self.text)
        if self.word:
            if len(typed) != size + 1 or is_word_char(typed[-1]):
                return False
            typed = typed[:-1]
        elif len(typed) != size:
            return False
        if self.case_sensitive:
            return typed == self.text
        return typed.casefold() == self.text.casefold()

    def matchers(self) -> list[Matcher]:
        return [Matcher("typed", None, self._check)]

    def on_match(self, event: Event, matcher: Matcher, host: Any) -> None:
        typed = str(event.get("text"))
        extra: dict[str, Any] = {"abbreviation": self.text}
        if self.follow_case:
            extra["case"] = typed_case(typed[:-1] if self.word else typed)
        if self.erase:
            extra["erase"] = len(typed)
            if self.word:
                extra["suffix"] = typed[-1]
            expansion = event.get("expansion")
            if isinstance(expansion, int) and self.expands:
                extra["expansion"] = expansion
                # Typed again while the last replacement finishes: a second
                # request, not a repeat; the listener holds the text for it.
                extra["wait_if_busy"] = True
        host.fire(event, extra)

    def sees_actions(self, actions: Sequence[Any]) -> None:
        # The listener holds what the user types after the abbreviation for
        # the replacement only when the rule types one.
        self.expands = self.erase and any(
            getattr(a, "key", None) in ("type", "keys") for a in actions
        )

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "keyboard", TypedNeed(self.text, self.word, self.case_sensitive, self.expands)

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("typed")

    def event_hint(self) -> str:
        return "typed abbreviations"

    def describe(self) -> str:
        return f"typed {self.text!r}" + (" (word)" if self.word else "")
