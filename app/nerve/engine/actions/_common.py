"""Helpers shared by action types: templated option values."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nerve.engine.registry import ActionError, CompileContext, ConfigPath
from nerve.templates import Scope, Template


def templated(value: Any, ctx: CompileContext, path: ConfigPath = ()) -> Any:
    """``value`` with every string turned into a Template (checked now)."""
    if isinstance(value, str):
        return ctx.template(value, path)
    if isinstance(value, Mapping):
        return {k: templated(v, ctx, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [templated(v, ctx, (*path, i)) for i, v in enumerate(value)]
    return value


def rendered(value: Any, scope: Scope) -> Any:
    """The run-time value: a whole-placeholder string keeps its type (a number stays one)."""
    if isinstance(value, Template):
        return value.value(scope)
    if isinstance(value, Mapping):
        return {k: rendered(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [rendered(v, scope) for v in value]
    return value


def text(value: Any, scope: Scope) -> str:
    if isinstance(value, Template):
        return value.render(scope)
    return "" if value is None else str(value)


# ------------------------------------------------------------------ paths

#: Placeholders whose values are the user's own (approved inputs, the rule's
#: names, the clock); a path may start from them. ``event.*`` and ``var.*``
#: come from outside (any program can emit an event; a rule may ``set`` a
#: variable from one).
_OWN_ROOTS = ("input.", "rule.", "run.", "now")

ALLOW_OUTSIDE_SCHEMA: dict[str, Any] = {
    "type": "boolean",
    "description": (
        "Let values from events lead outside the folder the path names (default: no; "
        "'..', a symlink or an absolute value leading out fails the run)"
    ),
}


def _own(name: str) -> bool:
    return name.startswith(_OWN_ROOTS)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "..." + text[-limit // 2 :]


def _dotdot_from_outside(parts: list[str], outside: list[bool]) -> bool:
    """Whether a ``..`` component of the joined path has a character from outside."""
    text = "".join(parts)
    marks = [f for part, f in zip(parts, outside, strict=True) for _ in part]
    start = 0
    for i in range(len(text) + 1):
        if i == len(text) or text[i] in ("/", os.sep):
            if text[start:i] == ".." and any(marks[start:i]):
                return True
            start = i + 1
    return False


def render_path(
    template: Template,
    scope: Scope,
    what: str,
    *,
    allow_outside: bool = False,
    is_folder: bool = True,
) -> Path:
    """The path ``template`` names, with values taken literally.

    ``~`` and ``$VARS`` are expanded in the rule's own text (and its inputs'
    values) only, never in a value from an event or a variable. A path built
    from event data (``~/inbox/{event.name}``) stays within the folder its
    own text names (``~/inbox``), symlinks resolved, unless ``allow_outside``;
    a path that is all event data
    (``{event.path}``) must be absolute and free of ``..``. ``is_folder``: the
    path is used as a folder (followed if a symlink) rather than an entry.
    """
    values = iter(template.placeholder_texts(scope))
    names = iter(template.names)
    out: list[str] = []
    outside: list[bool] = []  # per part: a value from outside?
    base: str | None = None  # the text before the first value from outside
    first = True
    for piece in template.pieces:
        if piece is None:
            name, value = next(names), next(values)
            if "\x00" in value:
                raise ActionError(f"{what}: the value of {{{name}}} holds a NUL character")
            if _own(name):  # the user's own text (an input): expanded as the rule's is
                value = os.path.expandvars(value)
                if first and value.startswith("~"):
                    value = os.path.expanduser(value)
            elif base is None:
                base = "".join(out)
            out.append(value)
            outside.append(not _own(name))
        else:
            literal = os.path.expandvars(piece)
            if first and literal.startswith("~"):
                literal = os.path.expanduser(literal)
            out.append(literal)
            outside.append(False)
        first = False
    path = "".join(out)
    if "\x00" in path:
        raise ActionError(f"{what}: the path holds a NUL character")
    if not path:
        raise ActionError(f"{what}: the path is empty")
    if base is None or allow_outside:
        return Path(path)
    folder = base[: base.rfind("/") + 1] if "/" in base else ""
    if _dotdot_from_outside(out, outside):
        raise ActionError(
            f"{what}: {_short(path)!r} leads out of "
            + (f"{_short(folder)!r}" if folder else "its folder")
            + " with '..' (values from events stay inside; set allow_outside: true to allow)"
        )
    if not folder:
        if not os.path.isabs(path):
            raise ActionError(f"{what}: {_short(path)!r} is not an absolute path")
        return Path(path)
    real_folder = os.path.realpath(folder)
    if is_folder:
        real = os.path.realpath(path)
    else:
        head, _, name = path.rstrip("/").rpartition("/")
        real = os.path.join(os.path.realpath(head or "/"), name)
    try:
        inside = os.path.commonpath([real_folder, real]) == real_folder
    except ValueError:
        inside = False
    if inside and not is_folder and os.path.normpath(real) == real_folder:
        raise ActionError(
            f"{what}: {_short(path)!r} names the folder {_short(folder)!r} itself, "
            "not an entry in it"
        )
    if not inside:
        raise ActionError(
            f"{what}: {_short(path)!r} leads out of {_short(folder)!r} (through a symlink); "
            "values from events stay inside (set allow_outside: true to allow)"
        )
    return Path(path)


# ------------------------------------------------------------------- URLs


_HOST_PART = re.compile(r"[A-Za-z0-9.\-]*")

#: The longest URL an action builds (before encoding).
MAX_URL = 64 * 1024


def render_url(template: Template, scope: Scope, what: str = "url") -> str:
    """The URL ``template`` gives, each value percent-encoded for where it sits.

    The rule's own text is kept as written. A value in the path is one path
    segment (``/`` encoded too); in the query or the fragment it is one key or
    value (``&``, ``=``, ``#``, ``+`` encoded). A value before the path (the
    whole URL, ``{input.server}/api``) is kept as is, but may hold no spaces or
    control characters.
    """
    state = "scheme"
    out: list[str] = []
    texts = template.placeholder_texts(scope)
    size = sum(map(len, texts)) + sum(len(p) for p in template.pieces if p is not None)
    if size > MAX_URL:
        raise ActionError(f"{what}: the URL would be {size} characters long; at most {MAX_URL}")
    values = iter(texts)
    names = iter(template.names)

    tail = ""  # the last two characters, to see "://"

    def advance(text: str) -> None:
        nonlocal state, tail
        for c in text:
            if state == "scheme":
                if tail == ":/" and c == "/":
                    state = "authority"
                tail = (tail + c)[-2:]
                if c == "#":
                    state = "fragment"
                elif c == "?":
                    state = "query"
            elif state == "authority":
                state = {"/": "path", "?": "query", "#": "fragment"}.get(c, state)
            elif state == "path":
                state = {"?": "query", "#": "fragment"}.get(c, state)
            elif state == "query" and c == "#":
                state = "fragment"

    for piece in template.pieces:
        if piece is None:
            name, value = next(names), next(values)
            if state == "authority" and not _own(name) and not _HOST_PART.fullmatch(value):
                raise ActionError(
                    f"{what}: the value of {{{name}}} goes into the host part of the URL, "
                    f"where only letters, digits, '.' and '-' may come from an event; "
                    f"it is {value[:80]!r}"
                )
            if state in ("scheme", "authority"):
                bad = next((c for c in value if ord(c) < 33 or ord(c) == 127), None)
                if bad is not None:
                    raise ActionError(
                        f"{what}: the value of {{{name}}} holds {bad!r}, which a URL cannot"
                    )
                for c in value:
                    advance(c)
                    out.append(c)
            else:
                out.append(urllib.parse.quote(value, safe=""))
        else:
            for c in piece:
                advance(c)
                out.append(c)
    url = "".join(out)
    bad = next((c for c in url if ord(c) < 32 or ord(c) == 127 or c == " "), None)
    if bad is not None:
        raise ActionError(f"{what}: the URL holds {bad!r}; write it as %{ord(bad):02X}")
    return url
