"""The active window on X11: ``window.focused`` events, the ``window.focused``
trigger and the ``window`` condition.

The listener follows the EWMH ``_NET_ACTIVE_WINDOW`` property of the root
window (PropertyNotify, no polling) and the title of the active window
(``_NET_WM_NAME``/``WM_NAME`` PropertyNotify on that window). It publishes
``window.focused`` when another window becomes active (``change: focus``)
and again when the active window's title changes (``change: title``, same
window): a browser switching tabs or a terminal running another program is,
for a rule, a different window. The ``window.focused`` trigger fires when the
active window *starts* to match, so a title change that keeps it matching
does not fire the trigger again.

The ``window`` condition reads the listener's cached state (no X round trip
on the engine loop). While the listener is not running (not started yet, or
unavailable: no X display, no EWMH window manager, a Wayland session) the
condition does not hold, and its reason in the run's trace says why.

Without a window manager there is no ``_NET_ACTIVE_WINDOW``: following X
input focus instead would mean watching every top-level window, and would
still be wrong under most window managers, so the listener says it is
unavailable and names what to run.

This module also holds :class:`XListener`, the base the X11 listeners of this
package share: one X connection per listener, served by one thread that
waits in ``select()`` on the connection and on a wake-up pipe, so that
``stop()`` interrupts it at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nerve import matching
from nerve.engine.registry import (
    CompileContext,
    Condition,
    ConfigError,
    Matcher,
    Trigger,
    conditions,
    triggers,
)
from nerve.engine.runs import RunContext
from nerve.events import Event
from nerve.listeners.base import Listener, ListenerUnavailable, Need, listeners

log = logging.getLogger(__name__)

#: How long stop() waits for a listener thread before giving up on it.
JOIN_TIMEOUT_S = 5.0


# ---------------------------------------------------------------------------
# A listener with its own X connection and thread


def open_display(what: str, *, wayland_ok: bool = False) -> Any:
    """A new python-xlib connection to ``$DISPLAY``; ListenerUnavailable with
    a plain reason when there is none."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        raise ListenerUnavailable(f"{what} uses X11, which this system ({sys.platform}) lacks")
    if not wayland_ok and os.environ.get("XDG_SESSION_TYPE") == "wayland":
        raise ListenerUnavailable(
            f"{what} needs an X11 session; this is a Wayland session "
            "(log in with an X11/Xorg session to use it)"
        )
    name = os.environ.get("DISPLAY")
    if not name:
        raise ListenerUnavailable(
            f"{what} needs an X display and DISPLAY is not set (start Nerve inside your X session)"
        )
    try:
        from Xlib import display as xdisplay
        from Xlib import error as xerror
    except ImportError:
        raise ListenerUnavailable(f"{what} needs python-xlib: pip install python-xlib") from None
    try:
        return xdisplay.Display(name)
    except (xerror.DisplayError, OSError) as exc:
        raise ListenerUnavailable(f"cannot connect to X display {name}: {exc}") from None


def require_extension(display: Any, name: str, what: str) -> None:
    """ListenerUnavailable unless the X server offers extension ``name``."""
    if not display.has_extension(name):
        raise ListenerUnavailable(f"{what} needs the X extension {name}, which this X server lacks")


class XListener(Listener):
    """A listener that owns one X connection, served by one stoppable thread.

    Subclasses open the connection in ``start`` (``self.display =
    open_display(...)``), set it up, then call :meth:`run_thread`. The thread
    calls :meth:`handle_event` for each X event, :meth:`handle_wake` after a
    :meth:`wake` from another thread, and :meth:`on_timer` when the delay
    from :meth:`next_timeout` has passed. A lost connection reports
    ``failed()``; ``stop()`` wakes the thread, joins it and closes the
    connection.
    """

    thread_name: ClassVar[str] = "x11"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.display: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._pipe_lock = threading.Lock()

    # -- subclass hooks

    def handle_event(self, event: Any) -> None:
        """One X event (on the listener thread)."""

    def handle_wake(self) -> None:
        """Another thread called wake() (on the listener thread)."""

    def next_timeout(self) -> float | None:
        """Seconds until on_timer() is due; None: no timer."""
        return None

    def on_timer(self) -> None:
        """The delay from next_timeout() has passed (on the listener thread)."""

    # -- machinery

    def run_thread(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.display.set_error_handler(self._x_error)
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Make the listener thread call handle_wake() soon (thread-safe)."""
        with self._pipe_lock, contextlib.suppress(OSError):  # BlockingIOError: already woken
            if self._wake_w >= 0:
                os.write(self._wake_w, b"w")

    def _x_error(self, error: Any, request: Any) -> None:
        # Errors of requests sent without a handler: a window that vanished
        # between two requests, mostly. Nothing to do but note it.
        log.debug("%s: X error %s", self.id, error)

    def _loop(self) -> None:
        display = self.display
        fd = display.fileno()
        wake_fd = self._wake_r
        try:
            while not self._stopping.is_set():
                # flush() also reads what the server sent meanwhile into
                # python-xlib's queue, where select() cannot see it: look there
                # after every flush, and select() only when it is empty.
                display.flush()
                if display.pending_events():
                    while display.pending_events() and not self._stopping.is_set():
                        self._guarded(self.handle_event, display.next_event())
                    continue
                timeout = self.next_timeout()
                if timeout is not None and timeout <= 0:
                    self._guarded(self.on_timer)
                    continue
                readable, _, _ = select.select([fd, wake_fd], [], [], timeout)
                if wake_fd in readable:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_fd, 512):
                            pass
                    if not self._stopping.is_set():
                        self._guarded(self.handle_wake)
        except Exception as exc:
            if not self._stopping.is_set():
                self.on_thread_failed(exc)
                self.failed(exc)

    def on_thread_failed(self, exc: BaseException) -> None:
        """The thread is ending with ``exc`` (the connection is gone, mostly)."""

    def _guarded(self, fn: Any, *args: Any) -> None:
        from Xlib import error as xerror

        try:
            fn(*args)
        except xerror.XError as exc:
            # A request about a window that went away meanwhile: not a failure.
            log.debug("%s: %s", self.id, exc)
        except (xerror.ConnectionClosedError, OSError):
            raise
        except Exception:
            log.exception("%s: error while handling X input; going on", self.id)

    def stop(self) -> None:
        self._stopping.set()
        self.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning("%s: thread did not stop within %.0fs", self.id, JOIN_TIMEOUT_S)
        self._thread = None
        if self.display is not None:
            with contextlib.suppress(Exception):  # the connection may already be gone
                self.display.close()
            self.display = None
        # Under the lock: a wake() from another thread must not write to a
        # descriptor number the process has meanwhile reused.
        with self._pipe_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r, self._wake_w = -1, -1


# ---------------------------------------------------------------------------
# Window properties


def window_title(display: Any, window: Any) -> str:
    """``_NET_WM_NAME`` (UTF-8), else ``WM_NAME``; "" when there is none."""
    from Xlib import X

    prop = window.get_full_property(display.intern_atom("_NET_WM_NAME"), X.AnyPropertyType)
    if prop is None or not prop.value:
        prop = window.get_full_property(display.intern_atom("WM_NAME"), X.AnyPropertyType)
    if prop is None or prop.value is None:
        return ""
    return _decode_text(prop.value)


def _decode_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    data = bytes(value)
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")


def window_class(window: Any) -> tuple[str, str]:
    """(instance, class) from ``WM_CLASS``; ("", "") when there is none."""
    from Xlib import X, Xatom

    prop = window.get_full_property(Xatom.WM_CLASS, X.AnyPropertyType)
    if prop is None or not prop.value:
        return "", ""
    parts = _decode_text(prop.value).split("\0")
    instance = parts[0] if parts else ""
    klass = parts[1] if len(parts) > 1 else ""
    return instance, klass


def window_pid(display: Any, window: Any) -> int | None:
    from Xlib import X

    prop = window.get_full_property(display.intern_atom("_NET_WM_PID"), X.AnyPropertyType)
    if prop is None or not len(prop.value):
        return None
    return int(prop.value[0])


def process_name(pid: int | None) -> str | None:
    """The process name of ``pid`` (``/proc/<pid>/comm`` or psutil), None if unknown."""
    if pid is None or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().rstrip("\n")
    except OSError:
        pass
    try:
        import psutil

        name: str = psutil.Process(pid).name()
        return name
    except Exception:  # gone, another host's pid, or no permission
        return None


@dataclass(frozen=True)
class ActiveWindow:
    """What is known of the active window."""

    window: int
    title: str
    klass: str
    instance: str
    pid: int | None
    process: str | None

    def value(self, field: str) -> Any:
        """A field by its event name (None when unknown)."""
        return {
            "title": self.title,
            "class": self.klass,
            "instance": self.instance,
            "process": self.process,
            "pid": self.pid,
            "window": self.window,
        }.get(field)

    def get(self, field: str) -> Any:
        """A field for matching (MISSING when unknown)."""
        value = self.value(field)
        return matching.MISSING if value is None else value

    def data(self, change: str) -> dict[str, object]:
        return {
            "title": self.title,
            "class": self.klass,
            "instance": self.instance,
            "process": self.process,
            "pid": self.pid,
            "window": self.window,
            "change": change,
        }


def read_window(display: Any, window: Any) -> ActiveWindow:
    """What a window is (title, class, process); XError when it is gone."""
    title = window_title(display, window)
    instance, klass = window_class(window)
    pid = window_pid(display, window)
    return ActiveWindow(window.id, title, klass, instance, pid, process_name(pid))


# ---------------------------------------------------------------------------
# The listener


class _Shared:
    """Where the ``window`` condition finds the running listener's state."""

    listener: WindowListener | None = None
    unavailable: str | None = None


_shared = _Shared()


@listeners.register
class WindowListener(XListener):
    """The EWMH active window and its title."""

    id = "window"
    description = "The active window (title, class, process) from the window manager"
    thread_name = "window"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The active window now (read by the window condition from any thread).
        self.current: ActiveWindow | None = None
        self._watched: Any = None  # the window whose title we follow
        self._wm = ""

    def start(self, needs: Sequence[Need]) -> None:
        from Xlib import X

        try:
            self.display = open_display("following the active window")
            d = self.display
            root = d.screen().root
            self._atom_active = d.intern_atom("_NET_ACTIVE_WINDOW")
            self._title_atoms = {d.intern_atom("_NET_WM_NAME"), d.intern_atom("WM_NAME")}
            supported = root.get_full_property(d.intern_atom("_NET_SUPPORTED"), X.AnyPropertyType)
            if supported is None or self._atom_active not in supported.value:
                raise ListenerUnavailable(
                    "no EWMH window manager: the root window does not announce "
                    "_NET_ACTIVE_WINDOW, so the active window cannot be followed; "
                    "run a window manager that supports EWMH (openbox, xfwm4, kwin, "
                    "mutter, i3 and most others do)"
                )
            self._wm = self._wm_name(d, root)
            root.change_attributes(event_mask=X.PropertyChangeMask)
            self._follow_active(publish=False)
        except ListenerUnavailable as exc:
            _shared.unavailable = str(exc)
            raise
        _shared.unavailable = None
        _shared.listener = self
        self.run_thread()

    def stop(self) -> None:
        if _shared.listener is self:
            _shared.listener = None
        super().stop()
        self.current = None

    def on_thread_failed(self, exc: BaseException) -> None:
        if _shared.listener is self:
            _shared.listener = None

    def detail(self) -> str:
        window = self.current
        if window is None:
            active = "no active window"
        else:
            active = f"active: {window.klass or window.instance or 'a window without a class'}"
        return f"EWMH via {self._wm or 'the window manager'}; {active}"

    @staticmethod
    def _wm_name(d: Any, root: Any) -> str:
        from Xlib import X

        check = root.get_full_property(d.intern_atom("_NET_SUPPORTING_WM_CHECK"), X.AnyPropertyType)
        if check is None or not len(check.value):
            return ""
        try:
            return window_title(d, d.create_resource_object("window", int(check.value[0])))
        except Exception:  # a stale check window
            return ""

    def handle_event(self, event: Any) -> None:
        from Xlib import X

        type_ = event.type & 0x7F
        current = self.current
        if type_ == X.DestroyNotify:
            if current is not None and event.window.id == current.window:
                # Some window managers (openbox) leave _NET_ACTIVE_WINDOW
                # naming a window that is gone when no other takes focus.
                self.current = None
                self._watched = None
                self._follow_active(publish=True)
            return
        if type_ != X.PropertyNotify:
            return
        root = self.display.screen().root
        if event.window.id == root.id and event.atom == self._atom_active:
            self._follow_active(publish=True)
        elif (
            event.atom in self._title_atoms
            and current is not None
            and event.window.id == current.window
        ):
            self._title_changed()

    def _active_id(self) -> int:
        from Xlib import X

        root = self.display.screen().root
        prop = root.get_full_property(self._atom_active, X.AnyPropertyType)
        if prop is None or not len(prop.value):
            return 0
        return int(prop.value[0])

    def _follow_active(self, *, publish: bool) -> None:
        from Xlib import X
        from Xlib import error as xerror

        wid = self._active_id()
        if self.current is not None and wid == self.current.window:
            return  # the property was set again to the same window
        d = self.display
        if self._watched is not None:
            self._watched.change_attributes(event_mask=0, onerror=xerror.CatchError())
            self._watched = None
        if not wid:
            self.current = None
            return
        window = d.create_resource_object("window", wid)
        try:
            # Title changes first, so none is missed between reading and watching.
            window.change_attributes(
                event_mask=X.PropertyChangeMask | X.StructureNotifyMask,
                onerror=xerror.CatchError(),  # gone: the reads below say so
            )
            current = read_window(d, window)
        except xerror.XError:
            self.current = None  # it closed while we looked
            return
        self._watched = window
        self.current = current
        if publish:
            self.publish("window.focused", self.current.data("focus"))

    def _title_changed(self) -> None:
        from Xlib import error as xerror

        current = self.current
        if current is None or self._watched is None:
            return
        try:
            title = window_title(self.display, self._watched)
        except xerror.XError:
            return
        if title == current.title:
            return
        self.current = ActiveWindow(
            current.window, title, current.klass, current.instance, current.pid, current.process
        )
        self.publish("window.focused", self.current.data("title"))


# ---------------------------------------------------------------------------
# Trigger and condition

#: The fields a window match may name.
WINDOW_FIELDS = ("title", "class", "instance", "process")

_MATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {**matching.SPEC_SCHEMA, "description": "The window title"},
        "class": {
            **matching.SPEC_SCHEMA,
            "description": "The class part of WM_CLASS (Firefox, XTerm, Gnome-terminal)",
        },
        "instance": {
            **matching.SPEC_SCHEMA,
            "description": "The instance part of WM_CLASS (navigator, xterm)",
        },
        "process": {
            **matching.SPEC_SCHEMA,
            "description": "The name of the window's process (firefox-bin, xterm)",
        },
    },
    "additionalProperties": False,
}


def _compile_match(options: Any) -> dict[str, Any]:
    specs = dict(options or {})
    for name, spec in specs.items():
        try:
            matching.compile_spec(spec)
        except matching.SpecError as exc:
            raise ConfigError(str(exc), (name,)) from None
    return specs


def _describe(specs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in specs.items()) or "any window"


class WindowMatch:
    """A compiled window match (title, class, instance, process): what the
    ``window`` condition checks the active window with, and how the window
    actions pick the window they act on."""

    schema: ClassVar[dict[str, Any]] = _MATCH_SCHEMA

    def __init__(self, specs: dict[str, Any]) -> None:
        self.specs = specs
        self.check = matching.compile_fields(specs)

    @classmethod
    def compile(cls, options: Any) -> WindowMatch:
        """From a rule's options; ConfigError (with the field) for a bad spec."""
        return cls(_compile_match(options))

    def __call__(self, window: ActiveWindow | None) -> bool:
        """Whether ``window`` matches; None (no window) matches only negations."""
        if window is None:
            return self.check(lambda _name: matching.MISSING)
        return self.check(window.get)

    def describe(self) -> str:
        return _describe(self.specs)


@triggers.register
class WindowFocusedTrigger(Trigger):
    """A window that matches becomes active."""

    key = "window.focused"
    description = (
        "A window becomes active (title, class, instance, process: text, glob, !negation "
        "or {regex: ...}); also when a title change makes the active window match"
    )
    schema = {"anyOf": [{"type": "null"}, _MATCH_SCHEMA]}
    listeners = frozenset({"window"})

    def __init__(self, specs: dict[str, Any]) -> None:
        self.specs = specs
        self.check = matching.compile_fields(specs)
        # (window, matched) of the last window.focused event seen.
        self._last: tuple[Any, bool] | None = None

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> WindowFocusedTrigger:
        return cls(_compile_match(options))

    def matchers(self) -> list[Matcher]:
        # Every window.focused event, matching or not: whether a title change
        # fires depends on whether the window matched before it.
        return [Matcher("window.focused")]

    def on_match(self, event: Event, matcher: Matcher, host: Any) -> None:
        ok = self.check(lambda name: event.get(name, matching.MISSING))
        window = event.get("window")
        before = self._last
        self._last = (window, ok)
        if not ok:
            return
        if event.get("change") == "title" and before == (window, True):
            return  # it matched already: the title changed but the match did not
        host.fire(event)

    def stop(self) -> None:
        self._last = None

    def mismatch(self, event: Event) -> str | None:
        """Which of its matches ``event`` fails (for ``nerve why``), or None."""
        for name, spec in self.specs.items():
            value = event.get(name, matching.MISSING)
            if not matching.compile_spec(spec)(value):
                shown = "missing" if value is matching.MISSING else f"was {value!r}"
                return f"{name} {shown}, wanted {spec!r}"
        return None

    def event_fields(self) -> frozenset[str] | None:
        from nerve.events import fields_for

        return fields_for("window.focused")

    def event_hint(self) -> str:
        return "window.focused events"

    def describe(self) -> str:
        return f"window.focused {_describe(self.specs)}"


@conditions.register
class WindowCondition(Condition):
    """The active window matches (title, class, instance, process)."""

    key = "window"
    description = (
        "The active window matches: title, class, instance, process (text, glob, "
        "!negation, or {regex: ...})"
    )
    schema = {**_MATCH_SCHEMA, "minProperties": 1}

    def __init__(self, specs: dict[str, Any]) -> None:
        self.specs = specs
        self.match = WindowMatch(specs)
        self.check_fields = self.match.check

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> WindowCondition:
        return cls(WindowMatch.compile(options).specs)

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "window", None

    def holds_now(self) -> bool:
        """Whether the active window matches now (any thread; False when not known).
        A hotkey scoped by this condition is taken only while it holds."""
        listener = _shared.listener
        if listener is None:
            return False
        return self.match(listener.current)

    def check(self, run: RunContext) -> tuple[bool, str]:
        if run.at is not None:
            return False, "which window was active then is not known (replay)"
        listener = _shared.listener
        if listener is None:
            why = _shared.unavailable or "the window listener is not running (see nerve status)"
            return False, f"the active window is not known: {why}"
        window = listener.current
        if window is None:
            # The desktop has focus: only negations ("not a terminal") hold.
            return self.match(None), "no window is active"
        ok = self.match(window)
        shown = ", ".join(f"{name} {window.value(name)!r}" for name in self.specs)
        return ok, f"active window has {shown}"
