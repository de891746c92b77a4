"""Window control on X11 through EWMH: the X11 :class:`nerve.windowctl.WindowControl`.

One X connection for the process (see :func:`nerve.windowctl.control`), used
under a lock from the actions' worker threads. Requests go to the window
manager as EWMH client messages (``_NET_MOVERESIZE_WINDOW``,
``_NET_WM_STATE``, ``_NET_ACTIVE_WINDOW``, ``_NET_CLOSE_WINDOW``,
``_NET_RESTACK_WINDOW``, ICCCM ``WM_CHANGE_STATE``), as pagers and wmctrl send
them, and each call returns once the window manager reports the result
(ConfigureNotify on the window and its frame, PropertyNotify on its state or
the root's active window), so a rule's next action sees the window where it
was put. Geometry is the frame: the client window's position and size plus
``_NET_FRAME_EXTENTS``; the work area is ``_NET_WORKAREA`` of the current
desktop cut to the window's monitor (RandR 1.5 monitors, else Xinerama).

What the connection has read stays cached (root properties, the properties
and frame of the windows it acted on, the monitors) and is dropped by the
event that says it changed: PropertyNotify, ConfigureNotify, ReparentNotify,
DestroyNotify and RandR's notifications. Each call starts with one round trip
(a sync), after which every event the server sent before it is in the queue,
so a cached value is never older than the call: tiling the active window
costs a sync, the request and reading back the frame.

python-xlib is imported inside functions: importing this module works on any OS.
"""

from __future__ import annotations

import collections
import logging
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nerve.listeners import x11
from nerve.listeners.base import ListenerUnavailable
from nerve.listeners.window import ActiveWindow, read_window
from nerve.windowctl import Rect, WindowError

log = logging.getLogger(__name__)

#: How long the window manager gets to carry out a request.
WM_TIMEOUT_S = 2.0
#: After the window manager's last answer, how long a move waits for more
#: before taking the geometry it has (size hints may keep it off the target).
SETTLE_S = 0.05

_SOURCE_PAGER = 2  # EWMH source indication: a pager or taskbar, acting for the user
_NORTH_WEST = 1
_MOVERESIZE_FLAGS = _NORTH_WEST | (0xF << 8) | (_SOURCE_PAGER << 12)
_STATE_REMOVE, _STATE_ADD = 0, 1
_ICONIC = 3

_ATOMS = (
    "_NET_SUPPORTED",
    "_NET_ACTIVE_WINDOW",
    "_NET_CLIENT_LIST",
    "_NET_CLIENT_LIST_STACKING",
    "_NET_FRAME_EXTENTS",
    "_NET_WORKAREA",
    "_NET_CURRENT_DESKTOP",
    "_NET_WM_STATE",
    "_NET_WM_STATE_MAXIMIZED_VERT",
    "_NET_WM_STATE_MAXIMIZED_HORZ",
    "_NET_WM_STATE_FULLSCREEN",
    "_NET_WM_STATE_HIDDEN",
    "_NET_WM_STATE_ABOVE",
    "_NET_MOVERESIZE_WINDOW",
    "_NET_CLOSE_WINDOW",
    "_NET_RESTACK_WINDOW",
    "_NET_WM_WINDOW_TYPE",
    "_NET_WM_WINDOW_TYPE_DOCK",
    "_NET_WM_WINDOW_TYPE_DESKTOP",
    "WM_CHANGE_STATE",
    "WM_STATE",
    "WM_PROTOCOLS",
    "WM_DELETE_WINDOW",
)


class X11WindowControl:
    """EWMH window control on one X connection."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.broken = False
        self._lock = threading.RLock()
        self._depth = 0  # sessions open on the thread holding the lock
        try:
            self.display = x11.connect(name)
        except (ConnectionError, ListenerUnavailable) as exc:
            raise WindowError(str(exc)) from None
        from Xlib import error as xerror

        try:
            self._setup()
        except (xerror.XError, xerror.ConnectionClosedError, OSError) as exc:
            self.display.close()
            raise WindowError(f"cannot set up window control on {name}: {exc}") from None

    def _setup(self) -> None:
        d = self.display
        self.root = d.screen().root
        self.atom = {n: d.intern_atom(n) for n in _ATOMS}
        #: Windows whose events this connection selected, and their frame windows.
        self._selected: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._owner: dict[int, int] = {}  # frame window -> client window
        #: Properties of the root and of selected windows, as last read.
        self._props: dict[tuple[int, int], list[int]] = {}
        self._infos: dict[int, ActiveWindow] = {}
        self._frames: dict[int, Rect] = {}
        self._monitor_cache: list[Rect] | None = None
        self._info_atoms = {
            d.intern_atom(n) for n in ("_NET_WM_NAME", "WM_NAME", "WM_CLASS", "_NET_WM_PID")
        }
        from Xlib import X

        # Follow the root's properties before reading any (they stay cached).
        self.root.change_attributes(event_mask=X.PropertyChangeMask)
        if self.atom["_NET_ACTIVE_WINDOW"] not in self.supported:
            d.close()
            raise WindowError(
                "no EWMH window manager: the root window does not announce "
                "_NET_ACTIVE_WINDOW, so windows cannot be moved or focused; run a "
                "window manager that supports EWMH (openbox, xfwm4, kwin, mutter, i3...)"
            )
        self._randr_events = False
        if d.has_extension("RANDR"):
            try:
                from Xlib.ext import randr

                self.root.xrandr_select_input(
                    randr.RRScreenChangeNotifyMask
                    | randr.RRCrtcChangeNotifyMask
                    | randr.RROutputChangeNotifyMask
                )
                self._randr_events = True
            except Exception:  # an X server whose RandR is too old for these
                log.debug("cannot follow RandR changes", exc_info=True)
        d.sync()

    @property
    def supported(self) -> set[int]:
        """What the window manager announces in _NET_SUPPORTED (cached till it changes)."""
        return set(self._cardinals(self.root, "_NET_SUPPORTED"))

    # -- plumbing

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Several calls as one: one sync at the start, the connection held throughout."""
        with self._session("acting on a window"):
            yield

    @contextmanager
    def _session(self, what: str) -> Iterator[None]:
        from Xlib import error as xerror

        with self._lock:
            outermost = self._depth == 0
            if self.broken:
                raise WindowError("the X connection for window actions dropped")
            self._depth += 1
            try:
                if outermost:
                    self.display.sync()  # every event sent before now is in the queue
                    self._drain()
                yield
            except xerror.BadWindow:
                raise WindowError(f"{what}: the window is gone") from None
            except xerror.XError as exc:
                raise WindowError(f"{what}: the X server refused: {exc}") from None
            except (xerror.ConnectionClosedError, OSError) as exc:
                self.broken = True
                raise WindowError(f"the X connection for window actions dropped: {exc}") from None
            finally:
                self._depth -= 1

    def _win(self, wid: int) -> Any:
        return self.display.create_resource_object("window", wid)

    def _cardinals(self, window: Any, name: str) -> list[int]:
        """A property as numbers, cached for the root and the windows we follow."""
        from Xlib import X

        atom = self.atom[name]
        wid = window.id
        key = (wid, atom)
        cached = self._props.get(key)
        if cached is not None:
            return cached
        prop = window.get_full_property(atom, X.AnyPropertyType)
        value = [] if prop is None or prop.value is None else [int(v) for v in prop.value]
        if wid == self.root.id or wid in self._selected:
            self._props[key] = value
        return value

    def _forget(self, wid: int) -> None:
        """Drop what is cached about ``wid``."""
        self._infos.pop(wid, None)
        self._frames.pop(wid, None)
        for key in [k for k in self._props if k[0] == wid]:
            del self._props[key]

    def _message(self, wid: int, type_: str, data: list[int]) -> None:
        from Xlib import X
        from Xlib.protocol import event

        message = event.ClientMessage(
            window=self._win(wid), client_type=self.atom[type_], data=(32, (data + [0] * 5)[:5])
        )
        self.root.send_event(
            message, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask
        )
        self.display.flush()

    def _frame_window(self, wid: int) -> Any:
        """The window manager's frame around ``wid`` (the root's child), or ``wid``."""
        window = self._win(wid)
        while True:
            tree = window.query_tree()
            if not tree.parent or tree.parent.id in (self.root.id, tree.root.id):
                return window
            window = tree.parent

    def _watch(self, wid: int) -> None:
        """Receive ConfigureNotify and PropertyNotify about ``wid`` and its frame."""
        from Xlib import X
        from Xlib import error as xerror

        if wid in self._selected:
            self._selected.move_to_end(wid)
            return
        mask = X.StructureNotifyMask | X.PropertyChangeMask
        self._win(wid).change_attributes(event_mask=mask, onerror=xerror.CatchError())
        frame = self._frame_window(wid)
        if frame.id != wid:
            frame.change_attributes(event_mask=X.StructureNotifyMask, onerror=xerror.CatchError())
            self._owner[frame.id] = wid
        self._forget(wid)  # read before its events were selected
        self._selected[wid] = frame.id
        while len(self._selected) > 64:
            self._unwatch(next(iter(self._selected)))

    def _unwatch(self, wid: int) -> None:
        frame = self._selected.pop(wid, None)
        if frame is not None:
            self._owner.pop(frame, None)
        self._forget(wid)

    def _drain(self) -> bool:
        """Read what the server sent, dropping what it makes stale; whether a
        window we follow was configured (moved, resized, restacked)."""
        d = self.display
        configured = False
        while d.pending_events():
            if self._handle(d.next_event()):
                configured = True
        return configured

    def _handle(self, event: Any) -> bool:
        from Xlib import X

        kind = event.type & 0x7F
        if kind == X.PropertyNotify:
            wid = event.window.id
            self._props.pop((wid, event.atom), None)
            if event.atom in self._info_atoms:
                self._infos.pop(wid, None)
            if event.atom == self.atom["_NET_FRAME_EXTENTS"]:
                self._frames.pop(wid, None)
            return False
        if kind == X.ConfigureNotify:
            wid = self._owner.get(event.window.id, event.window.id)
            self._frames.pop(wid, None)
            return True
        if kind == X.ReparentNotify:
            wid = self._owner.get(event.window.id, event.window.id)
            if wid in self._selected:
                self._unwatch(wid)  # a new frame: follow that one next time
            return True
        if kind == X.DestroyNotify:
            wid = self._owner.get(event.window.id, event.window.id)
            self._unwatch(wid)
            return False
        if kind in (X.MapNotify, X.UnmapNotify, X.GravityNotify, X.CirculateNotify):
            return False
        # RandR (screen, CRTC and output changes): the monitors may differ.
        self._monitor_cache = None
        return False

    def _await(self, done: Callable[[], bool], what: str, *, timeout: float = WM_TIMEOUT_S) -> None:
        """Wait until ``done()`` holds, checking after each event; WindowError on timeout."""
        d = self.display
        deadline = time.monotonic() + timeout
        fd = d.fileno()
        while True:
            self._drain()
            if done():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise WindowError(f"the window manager did not {what} within {timeout:g} s")
            d.flush()
            if not d.pending_events():
                select.select([fd], [], [], left)

    # -- reading

    def _info(self, wid: int) -> ActiveWindow:
        cached = self._infos.get(wid)
        if cached is not None:
            return cached
        info = read_window(self.display, self._win(wid))
        if wid in self._selected:
            self._infos[wid] = info
        return info

    def active(self) -> ActiveWindow | None:
        with self._session("reading the active window"):
            wids = self._cardinals(self.root, "_NET_ACTIVE_WINDOW")
            if not wids or not wids[0]:
                return None
            from Xlib import error as xerror

            try:
                self._watch(wids[0])
                return self._info(wids[0])
            except xerror.BadWindow:
                self._unwatch(wids[0])
                return None  # it closed while we looked

    def windows(self) -> list[ActiveWindow]:
        from Xlib import error as xerror

        with self._session("listing windows"):
            wids = self._cardinals(self.root, "_NET_CLIENT_LIST_STACKING")
            if not wids:
                wids = self._cardinals(self.root, "_NET_CLIENT_LIST")
            skip = {self.atom["_NET_WM_WINDOW_TYPE_DOCK"], self.atom["_NET_WM_WINDOW_TYPE_DESKTOP"]}
            found = []
            for wid in reversed(wids):  # the list goes bottom to top
                try:
                    if skip & set(self._cardinals(self._win(wid), "_NET_WM_WINDOW_TYPE")):
                        continue
                    found.append(self._info(wid))
                except xerror.BadWindow:
                    continue  # closed meanwhile
            return found

    def _frame(self, wid: int) -> Rect:
        cached = self._frames.get(wid)
        if cached is not None:
            return cached
        frame = self._read_frame(wid)
        if wid in self._selected:
            self._frames[wid] = frame
        return frame

    def _read_frame(self, wid: int) -> Rect:
        window = self._win(wid)
        geometry = window.get_geometry()
        origin = window.translate_coords(self.root, 0, 0)
        extents = [*self._cardinals(window, "_NET_FRAME_EXTENTS"), 0, 0, 0, 0]
        left, right, top, bottom = extents[:4]
        return Rect(
            -origin.x - left,
            -origin.y - top,
            geometry.width + left + right,
            geometry.height + top + bottom,
        )

    def frame(self, window: int) -> Rect:
        with self._session("reading where the window is"):
            return self._frame(window)

    def _monitors(self) -> list[Rect]:
        if self._monitor_cache is None:
            monitors = self._read_monitors()
            if not self._randr_events:
                return monitors
            self._monitor_cache = monitors
        return self._monitor_cache

    def _read_monitors(self) -> list[Rect]:
        from nerve.listeners.display import read_layout

        found = {Rect(m.x, m.y, m.width, m.height) for m in read_layout(self.display)}
        return sorted(found, key=lambda r: (r.x, r.y, r.width, r.height))

    def monitors(self) -> list[Rect]:
        with self._session("listing monitors"):
            return self._monitors()

    def _work_area(self, wid: int, monitor: Rect | None) -> Rect:
        from nerve.windowctl import monitor_of

        if monitor is None:
            monitors = self._monitors()
            monitor = monitors[monitor_of(self._frame(wid), monitors)]
        areas = self._cardinals(self.root, "_NET_WORKAREA")
        current = (self._cardinals(self.root, "_NET_CURRENT_DESKTOP") or [0])[0]
        if len(areas) >= 4 * (current + 1):
            x, y, width, height = areas[4 * current : 4 * current + 4]
            common = Rect(x, y, width, height).intersect(monitor)
            if common is not None:
                return common
        return monitor

    def work_area(self, window: int, monitor: Rect | None = None) -> Rect:
        with self._session("reading the work area"):
            return self._work_area(window, monitor)

    def _states(self, wid: int) -> set[int]:
        return set(self._cardinals(self._win(wid), "_NET_WM_STATE"))

    def _is_maximized(self, wid: int) -> bool:
        a = self.atom
        return bool(
            self._states(wid)
            & {
                a["_NET_WM_STATE_MAXIMIZED_VERT"],
                a["_NET_WM_STATE_MAXIMIZED_HORZ"],
                a["_NET_WM_STATE_FULLSCREEN"],
            }
        )

    def maximized(self, window: int) -> bool:
        with self._session("reading the window's state"):
            return self._is_maximized(window)

    # -- changing

    def _set_maximized(self, wid: int, on: bool) -> Rect:
        a = self.atom
        self._watch(wid)
        vert, horz = a["_NET_WM_STATE_MAXIMIZED_VERT"], a["_NET_WM_STATE_MAXIMIZED_HORZ"]
        full = a["_NET_WM_STATE_FULLSCREEN"]
        states = self._states(wid)
        if on and {vert, horz} <= states:
            return self._frame(wid)
        if not on and not states & {vert, horz, full}:
            return self._frame(wid)
        action = _STATE_ADD if on else _STATE_REMOVE
        self._message(wid, "_NET_WM_STATE", [action, vert, horz, _SOURCE_PAGER])
        if not on and full in states:
            self._message(wid, "_NET_WM_STATE", [action, full, 0, _SOURCE_PAGER])

        def done() -> bool:
            now = self._states(wid)
            return {vert, horz} <= now if on else not now & {vert, horz, full}

        self._await(done, "maximise the window" if on else "unmaximise the window")
        return self._settle(wid, None)

    def set_maximized(self, window: int, on: bool) -> Rect:
        with self._session("maximising" if on else "unmaximising"):
            return self._set_maximized(window, on)

    def _settle(self, wid: int, target: Rect | None, *, before: Rect | None = None) -> Rect:
        """Wait for the window manager's geometry: ``target`` reached, or no
        more ConfigureNotify for SETTLE_S after a first one (or, without
        ``before``, after the request)."""
        d = self.display
        fd = d.fileno()
        deadline = time.monotonic() + WM_TIMEOUT_S
        heard = before is None
        quiet_since = time.monotonic()
        while True:
            if self._drain():
                heard = True
                quiet_since = time.monotonic()
            frame = self._frame(wid)
            if frame == target:
                return frame
            now = time.monotonic()
            if heard and now - quiet_since >= SETTLE_S:
                return frame
            if now >= deadline:
                if frame != before:
                    return frame
                raise WindowError(
                    f"the window manager did not move the window within {WM_TIMEOUT_S:g} s"
                )
            wait = deadline - now if not heard else quiet_since + SETTLE_S - now
            d.flush()
            if not d.pending_events():
                select.select([fd], [], [], max(0.0, wait))

    def _move_resize(self, wid: int, rect: Rect) -> Rect:
        self._watch(wid)
        if self._is_maximized(wid):
            self._set_maximized(wid, False)
        before = self._frame(wid)
        if before == rect:
            return before
        extents = [*self._cardinals(self._win(wid), "_NET_FRAME_EXTENTS"), 0, 0, 0, 0]
        left, right, top, bottom = extents[:4]
        width = max(1, rect.width - left - right)
        height = max(1, rect.height - top - bottom)
        if self.atom["_NET_MOVERESIZE_WINDOW"] in self.supported:
            self._message(
                wid, "_NET_MOVERESIZE_WINDOW", [_MOVERESIZE_FLAGS, rect.x, rect.y, width, height]
            )
        else:
            self._win(wid).configure(x=rect.x, y=rect.y, width=width, height=height)
            self.display.flush()
        return self._settle(wid, rect, before=before)

    def move_resize(self, window: int, rect: Rect) -> Rect:
        with self._session("moving the window"):
            return self._move_resize(window, rect)

    def focus(self, window: int) -> None:
        with self._session("focusing the window"):
            self._watch(window)
            self._message(window, "_NET_ACTIVE_WINDOW", [_SOURCE_PAGER, 0, 0])

            def active() -> bool:
                # (Active but still minimised: the window manager is not done.)
                state = self._cardinals(self._win(window), "WM_STATE")[:1]
                return self._cardinals(self.root, "_NET_ACTIVE_WINDOW")[:1] == [
                    window
                ] and state != [_ICONIC]

            self._await(active, "activate the window")

    def raise_(self, window: int) -> None:
        from Xlib import X

        with self._session("raising the window"):
            self._watch(window)
            if self.atom["_NET_RESTACK_WINDOW"] in self.supported:
                self._message(window, "_NET_RESTACK_WINDOW", [_SOURCE_PAGER, 0, X.Above])
            else:
                self._frame_window(window).configure(stack_mode=X.Above)
                self.display.flush()

            def on_top() -> bool:
                stacking = self._cardinals(self.root, "_NET_CLIENT_LIST_STACKING")
                if window not in stacking:
                    return True  # a window manager that keeps no stacking list
                above = stacking[stacking.index(window) + 1 :]
                return all(self._kept_above(other) for other in above)

            self._await(on_top, "raise the window")

    def _kept_above(self, wid: int) -> bool:
        """A dock, or a window kept above the others: nothing is raised over it."""
        from Xlib import error as xerror

        try:
            types = set(self._cardinals(self._win(wid), "_NET_WM_WINDOW_TYPE"))
            states = self._states(wid)
        except xerror.BadWindow:
            return True
        return bool(
            types & {self.atom["_NET_WM_WINDOW_TYPE_DOCK"]}
            or states & {self.atom["_NET_WM_STATE_ABOVE"], self.atom["_NET_WM_STATE_FULLSCREEN"]}
        )

    def minimize(self, window: int) -> None:
        with self._session("minimising the window"):
            self._watch(window)
            self._message(window, "WM_CHANGE_STATE", [_ICONIC])

            def iconic() -> bool:
                state = self._cardinals(self._win(window), "WM_STATE")
                return bool(state) and state[0] == _ICONIC

            self._await(iconic, "minimise the window")

    def close(self, window: int) -> None:
        from Xlib import X

        with self._session("closing the window"):
            if self.atom["_NET_CLOSE_WINDOW"] in self.supported:
                self._message(window, "_NET_CLOSE_WINDOW", [X.CurrentTime, _SOURCE_PAGER])
            else:
                self._delete_window(window)
            self.display.sync()  # the window manager has the request

    def _delete_window(self, wid: int) -> None:
        """ICCCM WM_DELETE_WINDOW straight to the client (no EWMH close)."""
        from Xlib import X
        from Xlib.protocol import event

        protocols = self._cardinals(self._win(wid), "WM_PROTOCOLS")
        if self.atom["WM_DELETE_WINDOW"] not in protocols:
            raise WindowError(
                "the window cannot be asked to close (it takes no WM_DELETE_WINDOW and "
                "the window manager has no _NET_CLOSE_WINDOW)"
            )
        message = event.ClientMessage(
            window=self._win(wid),
            client_type=self.atom["WM_PROTOCOLS"],
            data=(32, [self.atom["WM_DELETE_WINDOW"], X.CurrentTime, 0, 0, 0]),
        )
        self._win(wid).send_event(message, event_mask=0)

    def shutdown(self) -> None:
        with self._lock:
            try:
                self.display.close()
            except Exception:  # already gone
                log.debug("closing the window-control connection failed", exc_info=True)
            self.broken = True
