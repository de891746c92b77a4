"""Monitors on X11: ``display.changed`` events and the ``display.changed`` trigger.

The listener selects RandR's notifications (RRScreenChangeNotify, CRTC and
output changes) on the root window of its own X connection. Plugging a
monitor in makes several of them within milliseconds, so it reads the layout
once they have stopped for :data:`SETTLE_S`, and publishes ``display.changed``
when the layout differs from the one it knew: which monitors were ``added``,
``removed`` and ``rearranged`` (moved, resized, made primary), and the new
layout in ``monitors``.

The layout is RandR 1.5's monitors (what desktops and window managers go by:
a monitor may span several outputs), else Xinerama's screens, else the screen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nerve import matching
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import Event
from nerve.listeners.base import ListenerUnavailable, Need, listeners
from nerve.listeners.window import XListener, open_display

#: How long RandR must be quiet before the layout is read.
SETTLE_S = 0.1

CHANGES = ("added", "removed", "rearranged")


@dataclass(frozen=True)
class Monitor:
    name: str
    x: int
    y: int
    width: int
    height: int
    primary: bool = False
    width_mm: int = 0
    height_mm: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "x": self.x,
            "y": self.y,
            "width": self.width,
            "height": self.height,
            "primary": self.primary,
            "width_mm": self.width_mm,
            "height_mm": self.height_mm,
        }


def read_layout(display: Any) -> list[Monitor]:
    """The monitors as the X server reports them, left to right."""
    found: list[Monitor] = []
    root = display.screen().root
    if display.has_extension("RANDR"):
        try:
            for m in root.xrandr_get_monitors(is_active=True).monitors:
                found.append(
                    Monitor(
                        display.get_atom_name(m.name) if m.name else "",
                        m.x,
                        m.y,
                        m.width_in_pixels,
                        m.height_in_pixels,
                        bool(m.primary),
                        m.width_in_millimeters,
                        m.height_in_millimeters,
                    )
                )
        except Exception:  # RandR older than 1.5: no monitors
            found = []
    if not found and display.has_extension("XINERAMA"):
        try:
            for i, s in enumerate(display.xinerama_query_screens().screens):
                found.append(Monitor(f"xinerama-{i}", s.x, s.y, s.width, s.height, i == 0))
        except Exception:
            found = []
    if not found:
        g = root.get_geometry()
        found = [Monitor("screen", 0, 0, g.width, g.height, True)]
    return sorted(found, key=lambda m: (m.x, m.y, m.name))


def diff(before: Sequence[Monitor], after: Sequence[Monitor]) -> dict[str, list[str]]:
    """Names of the monitors ``added``, ``removed`` and ``rearranged`` (the
    same name with another place, size or primary flag)."""
    old = {m.name: m for m in before}
    new = {m.name: m for m in after}
    return {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "rearranged": [name for name in new if name in old and new[name] != old[name]],
    }


def event_data(before: Sequence[Monitor], after: Sequence[Monitor]) -> dict[str, object] | None:
    """The data of a ``display.changed`` event, or None when nothing changed."""
    changes = diff(before, after)
    if not any(changes.values()):
        return None
    kind = next(k for k in CHANGES if changes[k])
    primary = next((m.name for m in after if m.primary), None)
    return {
        "change": kind,
        **changes,
        "monitors": [m.as_dict() for m in after],
        "count": len(after),
        "primary": primary,
        "width": max((m.x + m.width for m in after), default=0),
        "height": max((m.y + m.height for m in after), default=0),
    }


@listeners.register
class DisplayListener(XListener):
    """RandR: monitors added, removed or rearranged."""

    id = "display"
    description = "Monitors added, removed or rearranged (RandR)"
    thread_name = "display"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layout: list[Monitor] = []
        self._due: float | None = None

    def start(self, needs: Sequence[Need]) -> None:
        from Xlib.ext import randr

        self.display = d = open_display("following monitors", wayland_ok=True)
        try:
            if not d.has_extension("RANDR"):
                raise ListenerUnavailable(
                    "following monitors needs the X extension RANDR, which this X server lacks"
                )
            d.screen().root.xrandr_select_input(
                randr.RRScreenChangeNotifyMask
                | randr.RRCrtcChangeNotifyMask
                | randr.RROutputChangeNotifyMask
            )
            d.sync()
            self.layout = read_layout(d)
        except BaseException:
            d.close()
            self.display = None
            raise
        self.run_thread()

    def detail(self) -> str:
        names = ", ".join(f"{m.name} {m.width}x{m.height}+{m.x}+{m.y}" for m in self.layout)
        return f"RandR; {len(self.layout)} monitor(s): {names}"

    def handle_event(self, event: Any) -> None:
        # Any RandR notification: read the layout once they stop coming.
        self._due = time.monotonic() + SETTLE_S

    def next_timeout(self) -> float | None:
        if self._due is None:
            return None
        return max(0.0, self._due - time.monotonic())

    def on_timer(self) -> None:
        self._due = None
        layout = read_layout(self.display)
        data = event_data(self.layout, layout)
        self.layout = layout
        if data is not None:
            self.publish("display.changed", data)


_CHANGE = {"enum": list(CHANGES)}


@triggers.register
class DisplayChangedTrigger(Trigger):
    """Monitors were added, removed or rearranged."""

    key = "display.changed"
    description = (
        "Monitors were added, removed or rearranged (RandR); change: added, removed, "
        "rearranged (one or a list); monitor: a name (text, glob, {regex: ...}) among "
        "those changed; count: how many monitors there are now. Event: change, added, "
        "removed, rearranged, monitors, count, primary, width, height"
    )
    listeners = frozenset({"display"})
    schema = {
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "properties": {
                    "change": {"anyOf": [_CHANGE, {"type": "array", "items": _CHANGE}]},
                    "monitor": {**matching.SPEC_SCHEMA, "description": "A monitor's name"},
                    "count": {"type": "integer", "minimum": 0, "maximum": 64},
                },
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, changes: frozenset[str], monitor: Any, count: int | None) -> None:
        self.changes = changes
        self.monitor = monitor
        self.monitor_spec = matching.compile_spec(monitor) if monitor is not None else None
        self.count = count

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> DisplayChangedTrigger:
        options = options or {}
        change = options.get("change", list(CHANGES))
        changes = frozenset([change] if isinstance(change, str) else change)
        monitor = options.get("monitor")
        if monitor is not None:
            try:
                matching.compile_spec(monitor)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), ("monitor",)) from None
        return cls(changes, monitor, options.get("count"))

    def matchers(self) -> list[Matcher]:
        return [Matcher("display.changed", predicate=self._matches)]

    def _matches(self, event: Event) -> bool:
        kinds = [k for k in CHANGES if k in self.changes]
        names = [n for k in kinds for n in event.get(k) or ()]
        if not names:
            return False
        if self.monitor_spec is not None and not any(self.monitor_spec(n) for n in names):
            return False
        return self.count is None or event.get("count") == self.count

    def event_fields(self) -> frozenset[str] | None:
        from nerve.events import fields_for

        return fields_for("display.changed")

    def event_hint(self) -> str:
        return "display.changed events"

    def describe(self) -> str:
        return f"display.changed {'/'.join(sorted(self.changes))}"
