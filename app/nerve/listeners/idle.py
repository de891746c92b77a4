"""Time without user input on X11: the ``idle`` and ``active`` triggers.

The X server counts the time since the last keyboard or pointer input (the
MIT-SCREEN-SAVER extension, ``XScreenSaverQueryInfo``). Its own notify
events come only at the server's screensaver timeout, which is the user's
setting and not ours to change, so the listener keeps a timer instead: it
sleeps until the earliest idle threshold a rule asks for could be reached,
asks the server, and sleeps again for what is left (input in between
pushes the next check further out; there is no polling while the user is
active). When a threshold passes it publishes ``system.idle`` with
``threshold`` and ``idle_seconds``, which the ``idle`` trigger matches by
index.

Once a threshold has passed, the listener waits for input to return: raw
input events from XInput 2 (key, button, relative motion) wake it at once,
and a check every :data:`IDLE_CHECK_S` catches input that makes no raw event
(absolute motion injected through XTEST, as by VNC servers). Raw events are
selected only during that wait, so typing costs the listener nothing. Input
returning publishes ``system.active`` with ``idle_seconds`` (how long it was
idle) and re-arms every threshold.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

from nerve.durations import DURATION_SCHEMA, parse_duration
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import Event, fields_for
from nerve.listeners.base import Need, listeners
from nerve.listeners.window import XListener, open_display, require_extension

log = logging.getLogger(__name__)

#: While idle past a threshold, how often to look for input raw events missed.
IDLE_CHECK_S = 1.0
#: Input within this much of the last check counts as the same moment.
_SLACK_S = 0.05
#: Wake this long after a threshold is due, so one check finds it passed.
_LATE_S = 0.005
MIN_IDLE_S = 1.0


def _thresholds(needs: Sequence[Need]) -> tuple[float, ...]:
    return tuple(sorted({float(n) for n in needs if isinstance(n, (int, float))}))


@listeners.register
class IdleListener(XListener):
    """Idle thresholds and the return of input (MIT-SCREEN-SAVER, XInput 2)."""

    id = "idle"
    description = "Time without keyboard or mouse input (X screensaver extension)"
    thread_name = "idle"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._thresholds: tuple[float, ...] = ()
        self._fired: set[float] = set()
        self._commands: deque[tuple[float, ...]] = deque()
        self._idle_start: float | None = None  # monotonic time the idle period began
        self._next_check = 0.0
        self._xi_opcode: int | None = None
        self._raw_selected = False

    def start(self, needs: Sequence[Need]) -> None:
        self.display = open_display("noticing idle time")
        d = self.display
        require_extension(d, "MIT-SCREEN-SAVER", "noticing idle time")
        self._thresholds = _thresholds(needs)
        self._xi_opcode = self._xinput2(d)
        self._next_check = 0.0  # look at once
        self.run_thread()

    @staticmethod
    def _xinput2(d: Any) -> int | None:
        """The XInput opcode when raw events (XInput 2.2) are available."""
        if not d.has_extension("XInputExtension"):
            return None
        from Xlib.ext import xinput

        opcode: int = d.display.get_extension_major(xinput.extname)
        # python-xlib asks for 2.0; raw events reach clients of 2.1+ always.
        reply = xinput.XIQueryVersion(
            display=d.display, opcode=opcode, major_version=2, minor_version=2
        )
        if (reply.major_version, reply.minor_version) < (2, 1):
            return None
        return opcode

    def reconfigure(self, needs: Sequence[Need]) -> None:
        # No restart: the thresholds that already passed stay passed.
        self._commands.append(_thresholds(needs))
        self.wake()

    def detail(self) -> str:
        shown = ", ".join(f"{t:g}s" for t in self._thresholds)
        wake = (
            "XInput 2 raw events"
            if self._xi_opcode is not None
            else f"checks every {IDLE_CHECK_S:g}s"
        )
        return f"MIT-SCREEN-SAVER; thresholds {shown}; input returning: {wake}"

    # ------------------------------------------------------ listener thread

    def handle_wake(self) -> None:
        while self._commands:
            self._thresholds = self._commands.popleft()
        self._fired &= set(self._thresholds)
        self._next_check = 0.0

    def handle_event(self, event: Any) -> None:
        # Only raw input events are selected, and only while waiting for input.
        if self._fired and getattr(event, "extension", None) == self._xi_opcode:
            self._next_check = 0.0

    def next_timeout(self) -> float | None:
        if self._next_check == float("inf"):
            return None
        return self._next_check - time.monotonic()

    def on_timer(self) -> None:
        root = self.display.screen().root
        idle = root.screensaver_query_info().idle / 1000.0
        now = time.monotonic()
        began = now - idle
        if self._idle_start is not None and began > self._idle_start + _SLACK_S and self._fired:
            self._fired.clear()
            self.publish("system.active", {"idle_seconds": round(began - self._idle_start, 3)})
        self._idle_start = began
        for threshold in self._thresholds:
            if threshold not in self._fired and idle >= threshold:
                self._fired.add(threshold)
                self.publish(
                    "system.idle", {"idle_seconds": round(idle, 3), "threshold": threshold}
                )
        self._select_raw(bool(self._fired))
        waits = [t - idle + _LATE_S for t in self._thresholds if t not in self._fired]
        if self._fired:
            waits.append(IDLE_CHECK_S)
        self._next_check = now + min(waits) if waits else float("inf")

    def _select_raw(self, on: bool) -> None:
        if self._xi_opcode is None or on == self._raw_selected:
            return
        from Xlib.ext import xinput

        mask = (
            xinput.RawKeyPressMask | xinput.RawButtonPressMask | xinput.RawMotionMask if on else 0
        )
        self.display.screen().root.xinput_select_events([(xinput.AllMasterDevices, mask)])
        self._raw_selected = on


# ---------------------------------------------------------------------------


def _threshold(options: Any) -> float:
    try:
        seconds = parse_duration(options)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if seconds < MIN_IDLE_S:
        raise ConfigError(f"an idle time must be at least {MIN_IDLE_S:g}s")
    return round(seconds, 3)


@triggers.register
class IdleTrigger(Trigger):
    """No keyboard or mouse input for a while."""

    key = "idle"
    description = (
        "No keyboard or mouse input for this long (10m); fires once, and again "
        "after input returned and stopped again"
    )
    schema = DURATION_SCHEMA

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> IdleTrigger:
        return cls(_threshold(options))

    def matchers(self) -> list[Matcher]:
        return [Matcher("system.idle", ("threshold", self.threshold))]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "idle", self.threshold

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("system.idle")

    def event_hint(self) -> str:
        return "system.idle events"

    def describe(self) -> str:
        return f"idle {self.threshold:g}s"


@triggers.register
class ActiveTrigger(Trigger):
    """Input returns after a while without any."""

    key = "active"
    description = "Keyboard or mouse input returns after at least this long (10m) without any"
    schema = DURATION_SCHEMA

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        least = threshold - _SLACK_S

        def long_enough(event: Event) -> bool:
            idle = event.get("idle_seconds")
            return isinstance(idle, (int, float)) and idle >= least

        self.predicate = long_enough

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> ActiveTrigger:
        return cls(_threshold(options))

    def matchers(self) -> list[Matcher]:
        return [Matcher("system.active", None, self.predicate)]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        # The listener reports input returning only after a threshold passed.
        yield "idle", self.threshold

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("system.active")

    def event_hint(self) -> str:
        return "system.active events"

    def describe(self) -> str:
        return f"active after {self.threshold:g}s idle"
