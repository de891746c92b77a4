"""Asking the user: the dialogs of the ``form``, ``ask``, ``choose`` and ``confirm`` actions.

The engine knows a dialog only as a :class:`Prompt` (what to ask) handed to
a :class:`Prompter` (who shows it); the answer comes back as a mapping of
values, or :class:`Cancelled` when the user pressed Escape. Cancelling the
awaiting task (a pause, a timeout, a restart) closes the dialog.

Who shows it depends on where Nerve runs: the desktop app puts a prompter
on the engine that opens Qt dialogs on its GUI thread; headless on a
desktop (DISPLAY set), :class:`HelperPrompter` starts a small Qt process
(``python -m nerve.gui.prompt``, the prompt as JSON on its stdin, the answer
as JSON on its stdout) and kills it when the run stops waiting; with no
display, the action fails with a clear message. Nothing here imports Qt.

Answers are kept in the run's memory only (``{form.*}`` placeholders); a
password answer is masked in traces and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: The kinds of form field.
FIELD_KINDS = ("text", "multiline", "choice", "password", "number")
#: The kinds of dialog.
KINDS = ("form", "choose", "confirm")


class Cancelled(Exception):
    """The user closed the dialog without answering (Escape, the window's close button)."""


class PromptUnavailable(Exception):
    """No dialog can be shown here; the message says why."""


@dataclass(frozen=True)
class Field:
    """One field of a form."""

    name: str
    kind: str = "text"
    label: str = ""
    #: None: no default (a timeout cannot answer for it).
    default: Any = None
    choices: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "label": self.label}
        if self.default is not None:
            out["default"] = self.default
        if self.choices:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class Prompt:
    """What to ask: a form (fields), a choice from a list, or a yes/no question."""

    kind: str
    title: str = "Nerve"
    message: str = ""
    fields: tuple[Field, ...] = ()
    #: ``choose``: the items to pick from.
    choices: tuple[str, ...] = ()
    #: ``choose``: the item selected at first; ``confirm``: True (yes) or False (no).
    default: Any = None
    #: Seconds the dialog stays (shown to the user); None: until answered.
    timeout: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "message": self.message,
            "fields": [f.as_json() for f in self.fields],
            "choices": list(self.choices),
            "default": self.default,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prompt:
        """The prompt a helper process was given (raises ValueError when malformed)."""
        if not isinstance(data, Mapping):
            raise ValueError("a prompt is a JSON object")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown prompt kind {kind!r}")
        fields = []
        for f in data.get("fields") or []:
            if not isinstance(f, Mapping) or not isinstance(f.get("name"), str):
                raise ValueError("each field is an object with a name")
            if f.get("kind", "text") not in FIELD_KINDS:
                raise ValueError(f"unknown field kind {f.get('kind')!r}")
            fields.append(
                Field(
                    f["name"],
                    str(f.get("kind", "text")),
                    str(f.get("label", "")),
                    f.get("default"),
                    tuple(str(c) for c in f.get("choices") or ()),
                )
            )
        timeout = data.get("timeout")
        return cls(
            kind,
            str(data.get("title") or "Nerve"),
            str(data.get("message") or ""),
            tuple(fields),
            tuple(str(c) for c in data.get("choices") or ()),
            data.get("default"),
            float(timeout) if isinstance(timeout, (int, float)) else None,
        )


def parse_answer(data: Any) -> dict[str, Any]:
    """The values of a dialog's answer (``{"values": {...}}``); Cancelled for
    ``{"cancelled": true}``; ValueError for anything else."""
    if isinstance(data, Mapping):
        if data.get("cancelled") is True:
            raise Cancelled()
        values = data.get("values")
        if isinstance(values, Mapping):
            return dict(values)
        if isinstance(data.get("error"), str):
            raise PromptUnavailable(data["error"])
    raise ValueError("the dialog gave no answer")


class Prompter(Protocol):
    """Shows a prompt and returns the answer; cancelling the call closes the dialog."""

    async def ask(self, prompt: Prompt) -> dict[str, Any]: ...


class NoDisplayPrompter:
    """Where there is no desktop to show a dialog on."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def ask(self, prompt: Prompt) -> dict[str, Any]:
        raise PromptUnavailable(self.why)


#: Qt platforms that show nothing on the screen.
_UNSEEN_PLATFORMS = frozenset({"", "offscreen", "minimal", "minimalegl"})


class HelperPrompter:
    """Each prompt in a small Qt process of its own (headless Nerve on a desktop)."""

    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "nerve.gui.prompt"]

    async def ask(self, prompt: Prompt) -> dict[str, Any]:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise PromptUnavailable(_NO_DISPLAY)
        env = {**os.environ}
        if env.get("QT_QPA_PLATFORM", "xcb").split(":")[0] in _UNSEEN_PLATFORMS:
            del env["QT_QPA_PLATFORM"]  # a dialog there could never be answered
        env.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "wayland")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise PromptUnavailable(f"the dialog helper could not start: {exc}") from None
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            proc.stdin.write(json.dumps(prompt.as_json()).encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            proc.stdin.close()
            line = await proc.stdout.readline()
            if not line:
                err = (await proc.stderr.read()).decode(errors="replace").strip()
                await proc.wait()
                lines = [line.strip() for line in err.splitlines() if line.strip()]
                # Qt says what went wrong first (then lists its platform plugins);
                # a Python error says it last.
                why = lines[-1] if lines and "Error" in lines[-1] else (lines or [""])[0]
                raise PromptUnavailable(
                    "the dialog helper ended without an answer: "
                    + (why or f"exit status {proc.returncode}")
                )
            try:
                data = json.loads(line)
            except ValueError:
                raise PromptUnavailable("the dialog helper gave no answer") from None
            await proc.wait()
            return parse_answer(data)
        finally:
            if proc.returncode is None:  # cancelled (pause, timeout): close the dialog
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.shield(proc.wait())


_NO_DISPLAY = (
    "there is no desktop to show a dialog on (DISPLAY is not set); "
    "ask, choose, confirm and form need a graphical session"
)


def default_prompter() -> Prompter:
    """The prompter for headless Nerve: the helper process (it checks the display
    when asked, so a DISPLAY set later still works)."""
    return HelperPrompter()


# ------------------------------------------------------- focus comes back


def active_window() -> int | None:
    """The window the window manager says is active (None without X or a WM)."""
    try:
        conn = _x_connection()
    except Exception:
        return None
    try:
        root = conn.screen().root
        prop = root.get_full_property(conn.intern_atom("_NET_ACTIVE_WINDOW"), 0)
        value = int(prop.value[0]) if prop is not None and len(prop.value) else 0
        return value or None
    except Exception:
        return None
    finally:
        conn.close()


def restore_focus(window: int | None, timeout: float = 1.5) -> bool:
    """Give the focus back to ``window`` (the one the user was typing in) once
    a dialog closed: wait for the window manager to do it, else ask it to.
    True when ``window`` is active again."""
    if window is None:
        return False
    try:
        conn = _x_connection()
    except Exception:
        return False
    try:
        from Xlib import X
        from Xlib.protocol import event as xevent

        root = conn.screen().root
        atom = conn.intern_atom("_NET_ACTIVE_WINDOW")

        def current() -> int:
            prop = root.get_full_property(atom, 0)
            return int(prop.value[0]) if prop is not None and len(prop.value) else 0

        deadline = time.monotonic() + timeout
        asked = False
        while time.monotonic() < deadline:
            if current() == window:
                return True
            if not asked and time.monotonic() > deadline - timeout * 0.8:
                asked = True
                # Source 2: a pager (the user's choice), which window managers honour.
                message = xevent.ClientMessage(
                    window=conn.create_resource_object("window", window),
                    client_type=atom,
                    data=(32, [2, X.CurrentTime, 0, 0, 0]),
                )
                mask = X.SubstructureRedirectMask | X.SubstructureNotifyMask
                root.send_event(message, event_mask=mask)
                conn.flush()
            time.sleep(0.02)
        return current() == window
    except Exception:
        log.debug("could not give the focus back", exc_info=True)
        return False
    finally:
        conn.close()


def _x_connection() -> Any:
    from nerve.listeners import x11

    return x11.connect(x11.display_name())
