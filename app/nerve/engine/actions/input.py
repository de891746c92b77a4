"""Input actions: ``type``, ``keys``, ``click`` and ``mouse.move``.

They inject through XTEST (:mod:`nerve.injection`) on a worker thread; a
cancelled run (pause, restart) stops between bursts and never leaves a key
pressed. In a run started by an abbreviation (``typed``), the first ``type``
or ``keys`` action erases the abbreviation before sending its own input.

``type`` has a ``method``: ``type`` (keys), ``paste`` (through the clipboard,
the user's clipboard put back afterwards) or ``auto`` (the default: paste
texts longer than ``paste_above`` characters, type shorter ones). The paste
keys are ``ctrl+v`` unless ``paste_keys`` says otherwise: terminals take
``ctrl+shift+v`` (``shift+insert`` pastes the PRIMARY selection in xterm and
others, so it is not the default); choose per application with the rule's
window conditions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple

from nerve import injection
from nerve.engine.actions._common import text
from nerve.engine.actions.dialogs import FORM_SCHEMA, FormAction
from nerve.engine.registry import Action, ActionError, CompileContext, ConfigError, actions
from nerve.engine.runs import RunContext
from nerve.listeners import x11
from nerve.listeners.typing import follow_case
from nerve.ranges import BUTTON, COORDINATE, MAX_COORDINATE, MIN_COORDINATE
from nerve.templates import Template

log = logging.getLogger(__name__)

_CAPS = frozenset({"injects-input"})
#: ``method: auto`` pastes texts longer than this (characters), unless the
#: action's ``paste_above`` says otherwise.
PASTE_ABOVE = 200
PASTE_KEYS = "ctrl+v"
METHODS = ("auto", "type", "paste")
#: Runs whose abbreviation has already been erased.
_erased: weakref.WeakSet[RunContext] = weakref.WeakSet()

#: Where the caret is left after a ``type`` action (as espanso's ``$|$``).
CARET = "$|$"

BUTTONS = {"left": 1, "middle": 2, "right": 3, "back": 8, "forward": 9}


class _Owed(NamedTuple):
    """What a ``typed`` trigger's run owes its abbreviation: BackSpaces to send
    and the word boundary to type back, or (``expansion``) the keyboard
    listener's record of it, which also keeps what the user typed after it."""

    erase: int = 0
    suffix: str = ""
    expansion: int | None = None
    #: The case the abbreviation was typed in, for a replacement that follows it.
    case: str = "as-is"


#: What a run still owes after a dialog erased its abbreviation: the word
#: boundary to type after its next text, and the case to follow.
_owed_later: weakref.WeakKeyDictionary[RunContext, _Owed] = weakref.WeakKeyDictionary()


def _take_erase(run: RunContext) -> _Owed:
    if run in _erased:
        return _owed_later.pop(run, _Owed())
    _erased.add(run)
    erase = run.extra.get("erase")
    suffix = run.extra.get("suffix")
    expansion = run.extra.get("expansion")
    case = run.extra.get("case")
    return _Owed(
        erase if isinstance(erase, int) and erase > 0 else 0,
        suffix if isinstance(suffix, str) else "",
        expansion if isinstance(expansion, int) else None,
        case if isinstance(case, str) else "as-is",
    )


def _replace(
    inj: injection.Injector,
    owed: _Owed,
    text: str,
    stop: threading.Event,
    back: int = 0,
    *,
    paste: injection.Paste | None = None,
) -> dict[str, Any]:
    """Type ``text`` in place of the abbreviation owed (if any), then move the
    caret ``back`` characters (unless the user typed on meanwhile)."""
    text = follow_case(text, owed.case)
    model = injection.typing_model() if owed.expansion is not None else None
    if model is not None and owed.expansion is not None:
        return inj.expand(
            model, owed.expansion, text, erase=owed.erase, stop=stop, back=back, paste=paste
        )
    if back and owed.suffix:
        back += len(owed.suffix)  # the word rule's boundary is typed after it
    return inj.type_text(text + owed.suffix, erase=owed.erase, stop=stop, back=back, paste=paste)


def _paste_for(method: str, above: int, keys: x11.Combo, text: str) -> injection.Paste | None:
    """How ``text`` is to be pasted (None: typed). Blocking (a worker thread):
    waits briefly for the clipboard listener."""
    if method == "type" or (method == "auto" and len(text) <= above):
        return None
    from nerve.listeners import clipboard

    try:
        # auto types when the clipboard cannot be had at once (a listener the
        # user disabled): no long wait before every long text.
        board = clipboard.paste_board() if method == "paste" else clipboard.paste_board(0.5)
    except ActionError as exc:
        if method == "paste":
            raise ActionError(f"cannot paste: {exc}") from None
        log.debug("typing instead of pasting: %s", exc)
        return None
    return injection.Paste(board, keys, above if method == "auto" else 0)


async def erase_for_dialog(run: RunContext) -> None:
    """Before a dialog takes the focus: erase the abbreviation that started the
    run (and what followed it, the word boundary), so that nothing is left
    half-expanded in the user's window. The next ``type`` of the run types the
    boundary after its text and follows the abbreviation's case."""
    owed = _take_erase(run)
    if not owed.erase and owed.expansion is None:
        if owed.suffix or owed.case != "as-is":
            _owed_later[run] = owed
        return

    def work(inj: injection.Injector, stop: threading.Event) -> str:
        model = injection.typing_model() if owed.expansion is not None else None
        if model is not None and owed.expansion is not None:
            tail = model.tail(owed.expansion)
            inj.expand(model, owed.expansion, "", erase=owed.erase, stop=stop)
            if tail:  # typed again after the replacement
                inj.type_text("", erase=len(tail), stop=stop)
            return tail
        inj.type_text("", erase=owed.erase, stop=stop)
        return owed.suffix

    suffix = await _inject(run, work)
    _owed_later[run] = _Owed(suffix=suffix, case=owed.case)


def _printable(text: str) -> str:
    """The characters of ``text`` that type something (see Injector.type_text)."""
    return "".join(
        c for c in text.replace("\r\n", "\n").replace("\r", "\n") if c in "\n\t" or c.isprintable()
    )


async def _inject(
    run: RunContext, work: Callable[[injection.Injector, threading.Event], Any]
) -> Any:
    stop = threading.Event()
    try:
        return await run.blocking(_call, work, stop)
    except asyncio.CancelledError:
        stop.set()  # the worker finishes its burst (keys released) and stops
        raise


def _call(work: Callable[[injection.Injector, threading.Event], Any], stop: threading.Event) -> Any:
    try:
        return work(injection.injector(), stop)
    except injection.InjectionError as exc:
        raise ActionError(str(exc)) from None


@actions.register
class TypeAction(Action):
    """Type text into the focused window, as if from the keyboard."""

    key = "type"
    description = (
        "Type text into the focused window (any Unicode, newlines and tabs); placeholders "
        f"allowed; {CARET} in the text is where the caret is left; with form: a dialog "
        "asks for its {form.*} values first"
    )
    capabilities = _CAPS
    schema = {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "form": FORM_SCHEMA,
                    "method": {
                        "enum": list(METHODS),
                        "description": "type (keys), paste (through the clipboard, which is "
                        "put back afterwards) or auto (the default: paste texts longer than "
                        f"paste_above, {PASTE_ABOVE} characters unless set)",
                    },
                    "paste_above": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 1_000_000,
                        "description": "method auto pastes texts longer than this many "
                        f"characters (default {PASTE_ABOVE})",
                    },
                    "paste_keys": {
                        "type": "string",
                        "description": f"The keys that paste (default {PASTE_KEYS}; "
                        "ctrl+shift+v for terminals)",
                    },
                },
                "required": ["text"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(
        self,
        template: Template,
        after: Template | None = None,
        method: str = "auto",
        above: int = PASTE_ABOVE,
        keys: x11.Combo | None = None,
        *,
        form: FormAction | None = None,
    ) -> None:
        self.template = template
        #: The text after the caret marker (the caret goes back over it).
        self.after = after
        self.method = method
        self.above = above
        self.keys = keys if keys is not None else x11.parse_combo(PASTE_KEYS)
        #: Whether a run may paste (the clipboard listener must run).
        self.may_paste = method != "type"
        #: A dialog that asks for the text's {form.*} values first.
        self.form = form

    def action_capabilities(self) -> frozenset[str]:
        extra = self.form.action_capabilities() if self.form is not None else frozenset()
        return self.capabilities | self.concrete | extra

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> TypeAction:
        form = None
        if isinstance(options, dict) and "form" in options:
            try:
                form = FormAction.compile(options["form"], ctx, {})
            except ConfigError as exc:
                raise ConfigError(exc.message, ("form", *exc.path)) from None
        source, path = (options["text"], ("text",)) if isinstance(options, dict) else (options, ())
        # The marker is the rule's own text: a value a placeholder brings in
        # never moves the caret.
        before, marker, after = str(source).partition(CARET)
        if marker and CARET in after:
            raise ConfigError(f"one {CARET} (where the caret is left) at most", path)
        settings = options if isinstance(options, dict) else {}
        try:
            keys = x11.parse_combo(settings.get("paste_keys", PASTE_KEYS))
        except x11.ComboError as exc:
            raise ConfigError(str(exc), ("paste_keys",)) from None
        action = cls(
            ctx.template(before, path),
            ctx.template(after, path) if marker else None,
            settings.get("method", "auto"),
            int(settings.get("paste_above", PASTE_ABOVE)),
            keys,
            form=form,
        )
        # A text known now (no placeholder but the pack's inputs) that auto
        # would type never needs the clipboard.
        parts = [t for t in (action.template, action.after) if t is not None]
        known = [t.static(ctx.inputs) for t in parts]
        short = all(k is not None for k in known) and (
            len(_printable("".join(k or "" for k in known))) <= action.above
        )
        action.may_paste = action.method == "paste" or (action.method == "auto" and not short)
        return action

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        if self.may_paste:
            yield "clipboard", "serve"  # pasting goes through the clipboard listener

    async def execute(self, run: RunContext) -> Any:
        asked = await self.form.execute(run) if self.form is not None else None
        value = text(self.template, run.scope)
        back = 0
        if self.after is not None:
            after = text(self.after, run.scope)
            value += after
            back = len(_printable(after))
        owed = _take_erase(run)

        def work(inj: injection.Injector, stop: threading.Event) -> Any:
            paste = _paste_for(self.method, self.above, self.keys, _printable(value))
            return _replace(inj, owed, value, stop, back, paste=paste)

        done = await _inject(run, work)
        return done if asked is None else {"form": asked, **done}


@actions.register
class KeysAction(Action):
    """Press a combo, or several in turn."""

    key = "keys"
    description = "Press a key combination (ctrl+s) or several in turn ([ctrl+a, ctrl+c])"
    capabilities = _CAPS
    schema = {
        "anyOf": [
            {"type": "string", "description": "A combo: modifiers and a key joined by +"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ]
    }

    def __init__(self, combos: list[x11.Combo]) -> None:
        self.combos = combos

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> KeysAction:
        items = [options] if isinstance(options, str) else list(options)
        combos = []
        for i, item in enumerate(items):
            try:
                combos.append(x11.parse_combo(item))
            except x11.ComboError as exc:
                raise ConfigError(str(exc), () if isinstance(options, str) else (i,)) from None
        return cls(combos)

    async def execute(self, run: RunContext) -> Any:
        owed = _take_erase(run)

        def work(inj: injection.Injector, stop: threading.Event) -> Any:
            if owed.expansion is not None:
                _replace(inj, owed, "", stop)  # erase it, keep what followed
                return inj.send_combos(self.combos, stop=stop)
            return inj.send_combos(self.combos, erase=owed.erase, stop=stop)

        return await _inject(run, work)


_COORD = {
    "anyOf": [
        COORDINATE,
        {
            "type": "string",
            "pattern": r"\{",
            "description": "A whole number of pixels, or a placeholder such as {event.x}",
        },
    ],
    "description": "Screen pixels; a placeholder such as {event.x} is allowed",
}


def _coordinate(value: Any, ctx: CompileContext, path: tuple[str, ...]) -> int | Template | None:
    if value is None or isinstance(value, int):
        return value
    return ctx.template(str(value), path)


def _resolve(value: int | Template | None, run: RunContext, name: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    rendered = value.render(run.scope)
    shown = rendered if len(rendered) <= 40 else f"{rendered[:37]}..."
    try:
        number = float(rendered)
    except ValueError:
        raise ActionError(f"{name} is not a number: {shown!r}") from None
    if not MIN_COORDINATE <= number <= MAX_COORDINATE:  # also false for NaN
        raise ActionError(
            f"{name} is out of range: {shown} (screen positions go from "
            f"{MIN_COORDINATE} to {MAX_COORDINATE})"
        )
    return int(number)


@actions.register
class ClickAction(Action):
    """Click a mouse button, where the pointer is or at x/y."""

    key = "click"
    description = "Click a mouse button (left, right, middle, back, forward), optionally at x/y"
    capabilities = _CAPS
    schema = {
        "anyOf": [
            {"type": "null"},
            {"enum": list(BUTTONS)},
            {
                "type": "object",
                "properties": {
                    "button": {"anyOf": [{"enum": list(BUTTONS)}, BUTTON]},
                    "x": _COORD,
                    "y": _COORD,
                    "count": {"type": "integer", "minimum": 1, "maximum": 3},
                },
                "additionalProperties": False,
            },
        ]
    }

    def __init__(
        self, button: int, x: int | Template | None, y: int | Template | None, count: int
    ) -> None:
        self.button = button
        self.x = x
        self.y = y
        self.count = count

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> ClickAction:
        if options is None or isinstance(options, str):
            options = {"button": options or "left"}
        button = options.get("button", "left")
        number = BUTTONS[button] if isinstance(button, str) else button
        if not 1 <= number <= 255:
            raise ConfigError("button numbers go from 1 to 255", ("button",))
        if ("x" in options) != ("y" in options):
            raise ConfigError("give both x and y, or neither")
        return cls(
            number,
            _coordinate(options.get("x"), ctx, ("x",)),
            _coordinate(options.get("y"), ctx, ("y",)),
            int(options.get("count", 1)),
        )

    async def execute(self, run: RunContext) -> Any:
        x, y = _resolve(self.x, run, "x"), _resolve(self.y, run, "y")
        return await _inject(run, lambda inj, stop: inj.click(self.button, x, y, self.count))


@actions.register
class MouseMoveAction(Action):
    """Move the pointer to x/y, or by x/y with ``relative``."""

    key = "mouse.move"
    description = "Move the mouse pointer to x, y (or by x, y with relative: true)"
    capabilities = _CAPS
    schema = {
        "type": "object",
        "properties": {"x": _COORD, "y": _COORD, "relative": {"type": "boolean"}},
        "required": ["x", "y"],
        "additionalProperties": False,
    }

    def __init__(self, x: int | Template | None, y: int | Template | None, relative: bool) -> None:
        self.x = x
        self.y = y
        self.relative = relative

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> MouseMoveAction:
        return cls(
            _coordinate(options["x"], ctx, ("x",)),
            _coordinate(options["y"], ctx, ("y",)),
            bool(options.get("relative")),
        )

    async def execute(self, run: RunContext) -> Any:
        x, y = _resolve(self.x, run, "x") or 0, _resolve(self.y, run, "y") or 0
        return await _inject(run, lambda inj, stop: inj.move(x, y, self.relative))
