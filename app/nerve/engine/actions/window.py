"""Window actions: ``window.focus``, ``window.move``, ``window.resize``,
``window.tile``, ``window.minimize``, ``window.close`` and ``window.raise``.

Each acts on the active window, or on the window a match picks: the same
title/class/instance/process match as the ``window`` condition (the active
window when it matches, else the topmost window that does). They go through
the platform's window control (:mod:`nerve.windowctl`) on a worker thread
and return once the window manager reports the result, so the trace holds
the geometry the window really got. A dry run performs nothing (see
``nerve.engine.runs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from nerve import windowctl
from nerve.engine.registry import Action, ActionError, CompileContext, ConfigError, actions
from nerve.engine.runs import RunContext
from nerve.listeners.window import WindowMatch
from nerve.ranges import MAX_COORDINATE, MIN_COORDINATE
from nerve.templates import Template
from nerve.windowctl import Length, Rect, WindowControl, WindowError

_CAPS = frozenset({"controls-windows"})

_TARGET_SCHEMA: dict[str, Any] = {
    **WindowMatch.schema,
    "minProperties": 1,
    "description": "The window to act on, matched as the window condition does "
    "(the active window when it matches, else the topmost that does); "
    "without it, the active window",
}

_LENGTH_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": MIN_COORDINATE, "maximum": MAX_COORDINATE},
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "string"},
    ],
    "description": "Pixels (a whole number), or a fraction of the work area (0.5 or "
    '"50%"); a placeholder such as {event.x} is allowed',
}

_SIZE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_COORDINATE},
        {"type": "number", "minimum": 0, "maximum": 1},
        {"type": "string"},
    ],
    "description": _LENGTH_SCHEMA["description"],
}

#: Every place window.tile knows.
TILE_NAMES = [*windowctl.TILES, *windowctl.TILE_ACTIONS]

_ALIASES = {"maximise": "maximize", "left-half": "left", "right-half": "right"}


def _target(options: Any) -> WindowMatch | None:
    if not options:
        return None
    try:
        return WindowMatch.compile(options)
    except ConfigError as exc:
        raise ConfigError(exc.message, ("window", *exc.path)) from None


async def _on_window(
    run: RunContext,
    target: WindowMatch | None,
    work: Callable[[WindowControl, int], dict[str, Any] | None],
) -> dict[str, Any]:
    described = target.describe() if target is not None else "the active window"

    def call() -> dict[str, Any]:
        try:
            ctl = windowctl.control()
            with ctl.batch():
                window = windowctl.pick(ctl, target, described)
                result: dict[str, Any] = {
                    "window": window.window,
                    "title": window.title,
                    "class": window.klass,
                }
                result.update(work(ctl, window.window) or {})
                return result
        except WindowError as exc:
            raise ActionError(str(exc)) from None

    return await run.blocking(call)


class _WindowAction(Action):
    """An action on one window, with nothing but the window to choose."""

    capabilities = _CAPS
    verb: ClassVar[str] = ""
    schema: ClassVar[dict[str, Any]] = {"anyOf": [{"type": "null"}, _TARGET_SCHEMA]}

    def __init__(self, target: WindowMatch | None) -> None:
        self.target = target

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> _WindowAction:
        return cls(WindowMatch.compile(options) if options else None)

    def act(self, ctl: WindowControl, window: int) -> dict[str, Any] | None:
        raise NotImplementedError

    async def execute(self, run: RunContext) -> Any:
        return await _on_window(run, self.target, self.act)


@actions.register
class FocusAction(_WindowAction):
    key = "window.focus"
    description = (
        "Activate a window (unminimising and raising it): {class: Firefox}, {title: '*.txt*'}, "
        "{process: code} (as the window condition matches); null: the active window"
    )

    def act(self, ctl: WindowControl, window: int) -> None:
        ctl.focus(window)


@actions.register
class RaiseAction(_WindowAction):
    key = "window.raise"
    description = "Raise a window above the others without focusing it (match as window.focus)"

    def act(self, ctl: WindowControl, window: int) -> None:
        ctl.raise_(window)


@actions.register
class MinimizeAction(_WindowAction):
    key = "window.minimize"
    description = "Minimise a window (match as window.focus; null: the active window)"

    def act(self, ctl: WindowControl, window: int) -> None:
        ctl.minimize(window)


@actions.register
class CloseAction(_WindowAction):
    key = "window.close"
    description = (
        "Ask a window to close, as its close button does (the program may ask to save "
        "first); match as window.focus; null: the active window"
    )

    def act(self, ctl: WindowControl, window: int) -> dict[str, Any]:
        ctl.close(window)
        return {"asked": True}


# ---------------------------------------------------------------------------
# Geometry

LengthOption = Length | Template


def _in_range(length: Length, name: str, shown: Any) -> Length:
    """``length`` if its pixels are within range for ``name``; ValueError otherwise."""
    low = 1 if name in ("width", "height") else MIN_COORDINATE
    if not length.fraction and not low <= length.value <= MAX_COORDINATE:
        raise ValueError(f"{str(shown)[:40]} is out of range ({low} to {MAX_COORDINATE} pixels)")
    return length


def _length(value: Any, ctx: CompileContext, name: str) -> LengthOption | None:
    if value is None:
        return None
    if isinstance(value, str) and "{" in value:
        return ctx.template(value, (name,))
    try:
        return _in_range(windowctl.parse_length(value), name, value)
    except ValueError as exc:
        raise ConfigError(str(exc), (name,)) from None


def _resolve(value: LengthOption | None, run: RunContext, name: str) -> Length | None:
    if value is None or isinstance(value, Length):
        return value
    rendered = value.render(run.scope)
    try:
        return _in_range(windowctl.parse_length(rendered), name, rendered)
    except ValueError as exc:
        raise ActionError(f"{name}: {exc}") from None


def _geometry(rect: Rect) -> dict[str, Any]:
    return {"geometry": rect.as_dict()}


class _PlaceAction(Action):
    capabilities = _CAPS
    parts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lengths: dict[str, LengthOption], target: WindowMatch | None) -> None:
        self.lengths = lengths
        self.target = target

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> _PlaceAction:
        lengths = {}
        for name in cls.parts:
            length = _length(options.get(name), ctx, name)
            if length is not None:
                lengths[name] = length
        if not lengths:
            raise ConfigError(f"give at least one of {', '.join(cls.parts)}")
        return cls(lengths, _target(options.get("window")))

    async def execute(self, run: RunContext) -> Any:
        lengths = {name: _resolve(value, run, name) for name, value in self.lengths.items()}

        def work(ctl: WindowControl, window: int) -> dict[str, Any]:
            area = ctl.work_area(window)
            rect = windowctl.place(ctl.frame(window), area, **lengths)
            return _geometry(ctl.move_resize(window, rect))

        return await _on_window(run, self.target, work)


def _place_schema(parts: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            **{n: _SIZE_SCHEMA if n in ("width", "height") else _LENGTH_SCHEMA for n in parts},
            "window": _TARGET_SCHEMA,
        },
        "minProperties": 1,
        "additionalProperties": False,
    }


@actions.register
class MoveAction(_PlaceAction):
    key = "window.move"
    description = (
        "Move (and optionally resize) a window's frame: x, y, width, height in pixels "
        '(whole numbers) or fractions of the work area (0.5, "50%"); window: a match, '
        "else the active window. A maximised window is unmaximised first"
    )
    parts = ("x", "y", "width", "height")
    schema = _place_schema(parts)


@actions.register
class ResizeAction(_PlaceAction):
    key = "window.resize"
    description = (
        "Resize a window's frame, keeping its top-left corner: width, height in pixels or "
        "fractions of the work area; window: a match, else the active window"
    )
    parts = ("width", "height")
    schema = _place_schema(parts)


@actions.register
class TileAction(Action):
    key = "window.tile"
    description = (
        "Put a window in a part of its monitor's work area: left, right, top, bottom, "
        "top-left, top-right, bottom-left, bottom-right, center; or maximize, restore "
        "(unmaximise, or back to where it was before it was tiled), next-monitor, "
        "previous-monitor. window: a match, else the active window"
    )
    capabilities = _CAPS
    schema = {
        "anyOf": [
            {"enum": TILE_NAMES + list(_ALIASES)},
            {
                "type": "object",
                "properties": {
                    "to": {"enum": TILE_NAMES + list(_ALIASES)},
                    "window": _TARGET_SCHEMA,
                },
                "required": ["to"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, to: str, target: WindowMatch | None) -> None:
        self.to = to
        self.target = target

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Mapping[str, Any]) -> TileAction:
        if isinstance(options, str):
            options = {"to": options}
        to = _ALIASES.get(options["to"], options["to"])
        return cls(to, _target(options.get("window")))

    async def execute(self, run: RunContext) -> Any:
        return await _on_window(run, self.target, lambda ctl, w: tile(ctl, w, self.to))


def tile(ctl: WindowControl, window: int, to: str) -> dict[str, Any]:
    """Put ``window`` where ``to`` says; the frame the window manager reports."""
    key = (ctl.name, window)
    if to == "maximize":
        _remember(key, ctl, window)
        return {**_geometry(ctl.set_maximized(window, True)), "tile": to}
    if to == "restore":
        if ctl.maximized(window):
            return {**_geometry(ctl.set_maximized(window, False)), "tile": to}
        saved = _before_tiling.pop(key, None)
        frame = ctl.move_resize(window, saved) if saved is not None else ctl.frame(window)
        return {**_geometry(frame), "tile": to}
    if to in ("next-monitor", "previous-monitor"):
        monitors = ctl.monitors()
        if len(monitors) < 2:
            raise WindowError("there is only one monitor")
        frame = ctl.frame(window)
        here = windowctl.monitor_of(frame, monitors)
        there = (here + (1 if to == "next-monitor" else -1)) % len(monitors)
        was_maximized = ctl.maximized(window)
        if was_maximized:
            frame = ctl.set_maximized(window, False)
        source = ctl.work_area(window, monitors[here])
        dest = ctl.work_area(window, monitors[there])
        moved = ctl.move_resize(window, windowctl.carry(frame, source, dest))
        if was_maximized:
            moved = ctl.set_maximized(window, True)
        return {**_geometry(moved), "tile": to, "monitor": there}
    _remember(key, ctl, window)
    rect = windowctl.tile_rect(to, ctl.work_area(window))
    return {**_geometry(ctl.move_resize(window, rect)), "tile": to}


#: Where windows were before ``window.tile`` first moved them (for ``restore``).
_before_tiling: dict[tuple[str, int], Rect] = {}
_REMEMBERED = 256


def _remember(key: tuple[str, int], ctl: WindowControl, window: int) -> None:
    if key in _before_tiling or ctl.maximized(window):
        return
    if len(_before_tiling) >= _REMEMBERED:
        del _before_tiling[next(iter(_before_tiling))]
    _before_tiling[key] = ctl.frame(window)
