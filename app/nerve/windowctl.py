"""Controlling windows: the platform-neutral part of the ``window.*`` actions.

:class:`WindowControl` is what a desktop backend implements (X11 through EWMH
in :mod:`nerve.listeners.x11_windows`); :func:`control` gives the process's
one instance, made on first use and remade when its connection broke or the
display changed, as the injector is. Everything here that needs no desktop
(where a tile goes, what a fraction of the work area is, which monitor is
next, which window a match picks) is plain arithmetic on :class:`Rect`, so
other backends share it.

Geometry is the window's *frame*, decorations included: what the user sees
is what a rule positions. The work area is the part of the window's monitor
that panels and docks leave free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from nerve.listeners.window import ActiveWindow


class WindowError(Exception):
    """A window action cannot be done; the message is for the user."""


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def intersect(self, other: Rect) -> Rect | None:
        x, y = max(self.x, other.x), max(self.y, other.y)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        if right <= x or bottom <= y:
            return None
        return Rect(x, y, right - x, bottom - y)

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


class WindowControl(Protocol):
    """What a desktop backend offers the window actions. Every method may
    block briefly (a round trip, waiting for the window manager) and is
    called from a worker thread; WindowError says why something failed."""

    #: The display (or session) this instance serves; a new one is made when it changes.
    name: str
    #: The connection dropped: the next :func:`control` makes a new instance.
    broken: bool

    def active(self) -> ActiveWindow | None:
        """The active window now (None: the desktop has focus)."""

    def windows(self) -> list[ActiveWindow]:
        """The managed windows, the topmost first."""

    def frame(self, window: int) -> Rect:
        """Where the window is, decorations included, as the window manager reports it."""

    def monitors(self) -> list[Rect]:
        """The monitors, in the desktop's order."""

    def work_area(self, window: int, monitor: Rect | None = None) -> Rect:
        """The free part (no panels) of ``monitor``, by default the one the window is on."""

    def maximized(self, window: int) -> bool: ...

    def move_resize(self, window: int, rect: Rect) -> Rect:
        """Put the frame at ``rect`` (unmaximising first); the frame then reported."""

    def set_maximized(self, window: int, on: bool) -> Rect:
        """Maximise or unmaximise; the frame then reported."""

    def focus(self, window: int) -> None:
        """Make it the active window (unminimising and raising it)."""

    def raise_(self, window: int) -> None: ...

    def minimize(self, window: int) -> None: ...

    def close(self, window: int) -> None:
        """Ask it to close, as its close button does (it may ask to save first)."""

    def shutdown(self) -> None:
        """Close the connection."""

    def batch(self) -> AbstractContextManager[None]:
        """Several calls as one (the connection held, state read once)."""


# ---------------------------------------------------------------------------
# The process's instance


class _Current:
    lock = threading.Lock()
    control: WindowControl | None = None


def _x11(name: str) -> WindowControl:
    from nerve.listeners import x11_windows

    return x11_windows.X11WindowControl(name)


#: Backends by name, tried in this order (only X11 for now).
BACKENDS: dict[str, Callable[[str], WindowControl]] = {"x11": _x11}


def _display() -> str:
    from nerve.listeners import x11
    from nerve.listeners.base import ListenerUnavailable

    try:
        return x11.display_name()
    except ListenerUnavailable as exc:
        raise WindowError(
            f"window actions need an X11 session with an EWMH window manager: {exc}"
        ) from None


def control() -> WindowControl:
    """The process's window control for the current display (reconnects when needed)."""
    name = _display()
    with _Current.lock:
        current = _Current.control
        if current is not None and (current.broken or current.name != name):
            current.shutdown()
            current = None
        if current is None:
            current = BACKENDS["x11"](name)
            _Current.control = current
        return current


def reset() -> None:
    """Close the process's window control (shutdown, tests switching X servers)."""
    with _Current.lock:
        if _Current.control is not None:
            _Current.control.shutdown()
            _Current.control = None


# ---------------------------------------------------------------------------
# Geometry without a desktop

#: Where ``window.tile`` puts a window, as (x, y, width, height) fractions of the work area.
TILES: dict[str, tuple[float, float, float, float]] = {
    "left": (0, 0, 0.5, 1),
    "right": (0.5, 0, 0.5, 1),
    "top": (0, 0, 1, 0.5),
    "bottom": (0, 0.5, 1, 0.5),
    "top-left": (0, 0, 0.5, 0.5),
    "top-right": (0.5, 0, 0.5, 0.5),
    "bottom-left": (0, 0.5, 0.5, 0.5),
    "bottom-right": (0.5, 0.5, 0.5, 0.5),
    "center": (0.25, 0.25, 0.5, 0.5),
}
#: The other ``window.tile`` targets: not a fixed place.
TILE_ACTIONS = ("maximize", "restore", "next-monitor", "previous-monitor")


def tile_rect(tile: str, area: Rect) -> Rect:
    """The frame for ``tile`` in work area ``area``; neighbouring tiles share an
    edge (no gap, no overlap) whatever the area's size."""
    fx, fy, fw, fh = TILES[tile]
    left = area.x + round(area.width * fx)
    top = area.y + round(area.height * fy)
    right = area.x + round(area.width * (fx + fw))
    bottom = area.y + round(area.height * (fy + fh))
    return Rect(left, top, max(1, right - left), max(1, bottom - top))


@dataclass(frozen=True)
class Length:
    """A position or size: whole pixels, or a fraction of the work area."""

    value: float
    fraction: bool

    def along(self, origin: int, extent: int, *, position: bool) -> int:
        """In pixels, for an axis of the work area starting at ``origin``, ``extent`` long."""
        if not self.fraction:
            return int(self.value)
        return (origin if position else 0) + round(extent * self.value)


def parse_length(value: Any) -> Length:
    """``120`` (pixels), ``0.5`` or ``"50%"`` (of the work area), ``"120"``, ``"0.5"``.

    ValueError with a plain message otherwise. Whole numbers are pixels, so
    ``1`` is one pixel and ``1.0`` the whole width."""
    if isinstance(value, bool):
        raise ValueError("give pixels (a whole number) or a fraction (0.5 or 50%)")
    if isinstance(value, int):
        return Length(value, False)
    if isinstance(value, float):
        return _fraction(value, repr(value))
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return Length(int(text), False)
        percent = text.endswith("%")
        try:
            number = float(text[:-1] if percent else text)
        except ValueError:
            number = None
        if number is not None:
            return _fraction(number / 100 if percent else number, value)
    raise ValueError(
        f"{value!r} is neither pixels (120) nor a fraction of the work area (0.5, 50%)"
    )


def _fraction(number: float, shown: str) -> Length:
    if not 0 <= number <= 1:  # also false for NaN
        raise ValueError(
            f"{shown} is not a fraction between 0 and 1 (write pixels as whole numbers, "
            "fractions as 0.5 or 50%)"
        )
    return Length(number, True)


def place(
    frame: Rect,
    area: Rect,
    *,
    x: Length | None = None,
    y: Length | None = None,
    width: Length | None = None,
    height: Length | None = None,
) -> Rect:
    """``frame`` with the given parts replaced (fractions of ``area``)."""
    return Rect(
        x.along(area.x, area.width, position=True) if x is not None else frame.x,
        y.along(area.y, area.height, position=True) if y is not None else frame.y,
        max(1, width.along(area.x, area.width, position=False)) if width else frame.width,
        max(1, height.along(area.y, area.height, position=False)) if height else frame.height,
    )


def monitor_of(frame: Rect, monitors: Sequence[Rect]) -> int:
    """The index of the monitor the frame overlaps most (its centre's, on a tie)."""
    best, best_area = 0, -1
    cx, cy = frame.center()
    for i, monitor in enumerate(monitors):
        common = frame.intersect(monitor)
        area = common.width * common.height if common else 0
        inside = monitor.x <= cx < monitor.right and monitor.y <= cy < monitor.bottom
        if area > best_area or (area == best_area and inside):
            best, best_area = i, area
    return best


def carry(frame: Rect, source: Rect, dest: Rect) -> Rect:
    """``frame`` moved from work area ``source`` to ``dest``, keeping where it is
    in the area and how much of it it covers; it stays inside ``dest``."""

    def scale(pos: int, size: int, src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int]:
        (src_pos, src_size), (dst_pos, dst_size) = src, dst
        size2 = min(dst_size, max(1, round(size * dst_size / max(1, src_size))))
        pos2 = dst_pos + round((pos - src_pos) * dst_size / max(1, src_size))
        return min(max(pos2, dst_pos), dst_pos + dst_size - size2), size2

    x, width = scale(frame.x, frame.width, (source.x, source.width), (dest.x, dest.width))
    y, height = scale(frame.y, frame.height, (source.y, source.height), (dest.y, dest.height))
    return Rect(x, y, width, height)


def pick(
    ctl: WindowControl, match: Callable[[ActiveWindow | None], bool] | None, described: str
) -> ActiveWindow:
    """The window an action is aimed at: the active one (``match`` None), else
    the active window if it matches, else the topmost that does."""
    active = ctl.active()
    if match is None:
        if active is None:
            raise WindowError("no window is active")
        return active
    if active is not None and match(active):
        return active
    windows = ctl.windows()
    for window in windows:
        if match(window):
            return window
    raise WindowError(f"no window matches {described} ({len(windows)} windows open)")
