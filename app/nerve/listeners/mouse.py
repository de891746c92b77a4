"""The mouse on X11: clicks, scrolling and (on demand, throttled) movement.

Read through the RECORD extension, so nothing is taken from applications.
Pointer motion is recorded only while a rule asks for ``mouse.move``: every
motion wakes the listener, and most rules never care. Clicks Nerve sends
itself (the ``click`` action) are not published, so a click rule cannot
re-trigger itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

from nerve import injection
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import Event, fields_for
from nerve.listeners import x11
from nerve.listeners.base import Listener, Need, listeners
from nerve.listeners.x11 import BUTTON_PRESS, BUTTON_RELEASE, MOTION_NOTIFY
from nerve.ranges import BUTTON, COORDINATE, SIZE

log = logging.getLogger(__name__)

CLICK, SCROLL, MOVE = "click", "scroll", "move"
#: At most one mouse.move event per this many seconds (the last position is never lost).
MOVE_INTERVAL_S = 0.05

BUTTON_NAMES = {1: "left", 2: "middle", 3: "right", 8: "back", 9: "forward"}
#: Scroll buttons and their (dx, dy): down and right are positive.
SCROLL_BUTTONS = {4: (0, -1), 5: (0, 1), 6: (-1, 0), 7: (1, 0)}
_MAPPING_NOTIFY = 34


def button_name(button: int) -> str:
    return BUTTON_NAMES.get(button, f"button{button}")


@listeners.register
class MouseListener(Listener):
    """Clicks and scrolling (and movement when asked) through RECORD."""

    id = "mouse"
    description = "Mouse clicks, scrolling and (when a rule asks) movement"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: x11.RecordSession | None = None
        self._masks = x11.ModMasks()
        self._needs: frozenset[Need] = frozenset()
        self._name = ""
        self._last_move = 0.0
        self._pending: tuple[int, int] | None = None
        self._timer: threading.Timer | None = None
        self._move_lock = threading.Lock()

    def start(self, needs: Sequence[Need]) -> None:
        self._name = x11.display_name()
        wanted = frozenset(needs)
        last = MOTION_NOTIFY if MOVE in wanted else BUTTON_RELEASE
        self._session = x11.RecordSession(
            self._name,
            BUTTON_PRESS,
            last,
            self._on_event,
            self._lost,
            watch=self._on_x_event,
            setup=self._read_masks,
            label="mouse",
            own=injection.is_own_client,
        )
        self._session.start()
        self._needs = wanted  # shown by detail() once recorded

    def _read_masks(self, control: Any) -> None:
        self._masks = x11.Keymap(control).masks

    def _on_x_event(self, event: Any) -> None:
        if event.type == _MAPPING_NOTIFY and self._session is not None:
            self._read_masks(self._session.control)

    def reconfigure(self, needs: Sequence[Need]) -> None:
        if (MOVE in needs) != (MOVE in self._needs):
            super().reconfigure(needs)  # the recorded range changes
        else:
            self._needs = frozenset(needs)

    def stop(self) -> None:
        if self._session is not None:
            self._session.stop()
            self._session = None
        with self._move_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._pending = None

    def detail(self) -> str:
        kinds = [k for k in (CLICK, SCROLL, MOVE) if k in self._needs]
        return f"X11 {self._name} (RECORD): {', '.join(kinds) or 'idle'}"

    @property
    def context_id(self) -> int:
        return self._session.context if self._session is not None else 0

    def _lost(self, exc: BaseException) -> None:
        log.warning("mouse: X connection lost: %s", exc)
        self.failed(exc)

    # ------------------------------------------------------------- events

    def _on_event(
        self, kind: int, button: int, state: int, x: int, y: int, *, injected: bool
    ) -> None:
        if kind == MOTION_NOTIFY:
            self._moved(x, y)
            return
        if injected:
            return  # Nerve's own click
        modifiers = self._masks.names(state)
        if button in SCROLL_BUTTONS:
            if kind == BUTTON_PRESS and SCROLL in self._needs:
                dx, dy = SCROLL_BUTTONS[button]
                self.publish(
                    "mouse.scroll", {"dx": dx, "dy": dy, "x": x, "y": y, "modifiers": modifiers}
                )
        elif CLICK in self._needs:
            self.publish(
                "mouse.click",
                {
                    "button": button_name(button),
                    "x": x,
                    "y": y,
                    "pressed": kind == BUTTON_PRESS,
                    "modifiers": modifiers,
                },
            )

    def _moved(self, x: int, y: int) -> None:
        now = time.monotonic()
        with self._move_lock:
            if now - self._last_move >= MOVE_INTERVAL_S:
                self._last_move = now
                self._pending = None
                self.publish("mouse.move", {"x": x, "y": y})
                return
            self._pending = (x, y)
            if self._timer is None:
                # Publish where the pointer came to rest at the end of the interval.
                delay = MOVE_INTERVAL_S - (now - self._last_move)
                self._timer = threading.Timer(delay, self._flush_move)
                self._timer.daemon = True
                self._timer.start()

    def _flush_move(self) -> None:
        with self._move_lock:
            self._timer = None
            pending, self._pending = self._pending, None
            if pending is not None:
                self._last_move = time.monotonic()
                self.publish("mouse.move", {"x": pending[0], "y": pending[1]})


# ---------------------------------------------------------------------------
# Triggers

_MODIFIERS = {
    "type": "array",
    "items": {"enum": list(x11.MODIFIERS)},
    "uniqueItems": True,
    "description": "Modifiers held (exactly these; [] for none)",
}
_REGION = {
    "type": "object",
    "properties": {
        "x": COORDINATE,
        "y": COORDINATE,
        "width": SIZE,
        "height": SIZE,
    },
    "required": ["x", "y", "width", "height"],
    "additionalProperties": False,
    "description": "A screen rectangle in pixels",
}


class _Where:
    """Shared by the mouse triggers: modifiers held and a screen region."""

    def __init__(self, options: dict[str, Any]) -> None:
        mods = options.get("modifiers")
        self.modifiers = frozenset(mods) if mods is not None else None
        region = options.get("region")
        self.region: tuple[int, int, int, int] | None = (
            (region["x"], region["y"], region["width"], region["height"]) if region else None
        )

    def holds(self, event: Event) -> bool:
        if self.modifiers is not None and frozenset(event.get("modifiers") or ()) != (
            self.modifiers
        ):
            return False
        if self.region is not None:
            x, y = event.get("x"), event.get("y")
            if not isinstance(x, int) or not isinstance(y, int):
                return False
            rx, ry, width, height = self.region
            if not (rx <= x < rx + width and ry <= y < ry + height):
                return False
        return True

    def text(self) -> str:
        out = ""
        if self.modifiers:
            out += " with " + "+".join(m for m in x11.MODIFIERS if m in self.modifiers)
        if self.region:
            x, y, w, h = self.region
            out += f" in {w}x{h} at {x},{y}"
        return out


@triggers.register
class MouseClickTrigger(Trigger):
    """A mouse button press (or release), optionally with modifiers and in a region."""

    key = "mouse.click"
    description = (
        "A mouse button pressed (left, right, middle, back, forward), optionally with "
        "modifiers held and within a screen region; release: true for the release"
    )
    capabilities = frozenset({"reads-mouse"})
    schema = {
        "anyOf": [
            {"type": "null"},
            {"type": "string", "description": "A button: left, right, middle, back, forward"},
            {
                "type": "object",
                "properties": {
                    "button": {"anyOf": [{"type": "string"}, BUTTON]},
                    "modifiers": _MODIFIERS,
                    "region": _REGION,
                    "release": {"type": "boolean", "description": "On the release"},
                },
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, button: str, where: _Where, release: bool) -> None:
        self.button = button
        self.where = where
        self.release = release

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> MouseClickTrigger:
        if options is None or isinstance(options, str):
            options = {"button": options or "left"}
        button = options.get("button", "left")
        if isinstance(button, int):
            if button in SCROLL_BUTTONS or not 1 <= button <= 255:
                raise ConfigError("buttons 4-7 scroll: use mouse.scroll", ("button",))
            name = button_name(button)
        elif button in BUTTON_NAMES.values() or (
            button.startswith("button") and button[6:].isdigit()
        ):
            name = button
        else:
            raise ConfigError(
                f"unknown button {button!r} (left, right, middle, back, forward)", ("button",)
            )
        return cls(name, _Where(options), bool(options.get("release")))

    def _check(self, event: Event) -> bool:
        return bool(event.get("pressed")) != self.release and self.where.holds(event)

    def matchers(self) -> list[Matcher]:
        return [Matcher("mouse.click", ("button", self.button), self._check)]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "mouse", CLICK

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("mouse.click")

    def event_hint(self) -> str:
        return "mouse.click events"

    def describe(self) -> str:
        return f"{self.button} click{self.where.text()}"


@triggers.register
class MouseScrollTrigger(Trigger):
    """Scrolling up, down, left or right."""

    key = "mouse.scroll"
    description = "Scrolling (up, down, left, right), optionally with modifiers and in a region"
    capabilities = frozenset({"reads-mouse"})
    schema = {
        "anyOf": [
            {"type": "null"},
            {"enum": ["up", "down", "left", "right"]},
            {
                "type": "object",
                "properties": {
                    "direction": {"enum": ["up", "down", "left", "right"]},
                    "modifiers": _MODIFIERS,
                    "region": _REGION,
                },
                "additionalProperties": False,
            },
        ]
    }

    _DIRECTIONS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}

    def __init__(self, direction: str | None, where: _Where) -> None:
        self.direction = direction
        self.delta = self._DIRECTIONS.get(direction or "")
        self.where = where

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> MouseScrollTrigger:
        if options is None or isinstance(options, str):
            options = {"direction": options} if options else {}
        return cls(options.get("direction"), _Where(options))

    def _check(self, event: Event) -> bool:
        if self.delta is not None and (event.get("dx"), event.get("dy")) != self.delta:
            return False
        return self.where.holds(event)

    def matchers(self) -> list[Matcher]:
        return [Matcher("mouse.scroll", None, self._check)]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "mouse", SCROLL

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("mouse.scroll")

    def event_hint(self) -> str:
        return "mouse.scroll events"

    def describe(self) -> str:
        return f"scroll {self.direction or 'any way'}{self.where.text()}"


@triggers.register
class MouseMoveTrigger(Trigger):
    """The pointer moving (throttled), optionally only within a region."""

    key = "mouse.move"
    description = (
        f"The mouse pointer moving (at most every {int(MOVE_INTERVAL_S * 1000)} ms), "
        "optionally only within a screen region"
    )
    capabilities = frozenset({"reads-mouse"})
    schema = {
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "properties": {"region": _REGION},
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, where: _Where) -> None:
        self.where = where

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> MouseMoveTrigger:
        return cls(_Where(options or {}))

    def matchers(self) -> list[Matcher]:
        return [Matcher("mouse.move", None, self.where.holds if self.where.region else None)]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "mouse", MOVE

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("mouse.move")

    def event_hint(self) -> str:
        return "mouse.move events"

    def describe(self) -> str:
        return "mouse move" + self.where.text()
