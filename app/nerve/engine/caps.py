"""Concrete capabilities: which programs, folders, hosts and event types.

A pack's capabilities are a set of strings. Besides the broad ones
(``runs-programs``, ``writes-files``...), the actions and triggers that reach
outside Nerve name exactly what they reach, as ``kind:what``:

- ``run:/usr/bin/foo``: the program a ``run`` starts (its argv[0] as written,
  input values filled in); ``run:*`` when argv[0] is a placeholder (any
  program: chosen when the rule runs).
- ``shell:<script>``: a ``shell`` command line, its whole text as written: any
  change to a script's text is a new capability.
- ``open:<target>`` (``open:*``): what ``open`` opens.
- ``writes:<folder>`` (``writes:*``): where ``file.copy``/``file.move`` put
  files; ``trash:<path>`` (``trash:*``): what ``file.trash`` trashes.
- ``watches:<folder>``: a folder a file trigger watches.
- ``http:<host>`` (``http:*``): the host an ``http`` action calls; a
  placeholder in the host part means any host.
- ``mqtt:<topic>`` (``mqtt:*``): the topic an ``mqtt.publish`` action publishes
  to, on the broker of the settings; a placeholder in it means any topic.
- ``emits:<type>``: an event type an ``emit`` action publishes, for other
  packs' rules to react to.

An approval lists the concrete capabilities it allowed; a pack that now
names a program, folder, host, script or event type its approval does not
list is held again, with the difference shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from nerve.engine.registry import CompileContext
    from nerve.templates import Template

ANY = "*"

#: The broad capability each kind of concrete one belongs to.
FAMILY = {
    "run": "runs-programs",
    "shell": "runs-shell",
    "open": "runs-programs",
    "writes": "writes-files",
    "trash": "writes-files",
    "watches": "watches-files",
    "http": "network",
    "mqtt": "network",
    "emits": "emits-events",
}


#: What a rule learns through a placeholder: a pack whose actions use
#: ``{clipboard}`` reads the clipboard.
PLACEHOLDER_CAPABILITIES = {"clipboard": "reads-clipboard"}


def from_placeholders(names: Iterable[str]) -> frozenset[str]:
    """The capabilities the placeholders ``names`` (as written) give a pack."""
    return frozenset(PLACEHOLDER_CAPABILITIES[n] for n in names if n in PLACEHOLDER_CAPABILITIES)


def cap(kind: str, what: str | None) -> str:
    """``kind:what``, or ``kind:*`` when ``what`` is not known before the rule runs."""
    assert kind in FAMILY
    return f"{kind}:{what if what else ANY}"


def split(capability: str) -> tuple[str, str] | None:
    """``(kind, what)`` of a concrete capability; None for a broad one."""
    kind, sep, what = capability.partition(":")
    return (kind, what) if sep and kind in FAMILY else None


def family(capability: str) -> str:
    """The broad capability of ``capability`` (itself when it is a broad one)."""
    parts = split(capability)
    return FAMILY[parts[0]] if parts else capability


def static(template: Template, ctx: CompileContext) -> str | None:
    """The text of ``template`` known at load time, or None (see ``Template.static``).

    A secret input stays written as its placeholder (``{input.token}``): the
    capability is shown and stored, the value must not be."""
    return template.static(ctx.inputs, ctx.secrets)


def host_of(template: Template, ctx: CompileContext) -> str | None:
    """The host (and port) an http URL calls, or None when a placeholder can change it.

    Input values are known when the pack loads (a secret one is not shown: any
    host); an event field, a variable or the time in the scheme, user info,
    host or port means any host."""
    # (A secret input stays a placeholder: where it is in the host, any host.)
    text = template.static(ctx.inputs, ctx.secrets)
    if text is None:
        # The part before the first placeholder must hold the whole authority.
        literal = template.source.split("{", 1)[0]
        _, sep, rest = literal.partition("://")
        if not sep or not any(stop in rest for stop in "/?#"):
            return None
        text = literal
    try:
        parsed = urlsplit(text.strip())
        host = (parsed.hostname or "").lower()
        port = parsed.port
    except ValueError:
        return None
    if not host or "{" in host or "}" in host:
        return None
    return f"{host}:{port}" if port is not None else host


def describe(capability: str) -> str | None:
    """A concrete capability in plain words; None for a broad one."""
    parts = split(capability)
    if parts is None:
        return None
    kind, what = parts
    anything = what == ANY
    if kind == "run":
        return (
            "start any program (its name comes from a placeholder)"
            if anything
            else (f"start the program {what}")
        )
    if kind == "shell":
        return f"run the shell command line: {_short(what)}"
    if kind == "open":
        return "open any file or address" if anything else f"open {what}"
    if kind == "writes":
        return "write files into any folder" if anything else f"write files into {what}"
    if kind == "trash":
        return "trash any file" if anything else f"trash {what}"
    if kind == "watches":
        return f"see files change in {what}"
    if kind == "http":
        return "send requests to any host" if anything else f"send requests to {what}"
    if kind == "mqtt":
        return (
            "publish MQTT messages on any topic"
            if anything
            else f"publish MQTT messages on the topic {what}"
        )
    return f"emit {what} events (other packs' rules may react to them)"


def _short(text: str, limit: int = 120) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def diff(approved: Iterable[str], now: Iterable[str]) -> tuple[list[str], list[str]]:
    """(added, removed): what ``now`` asks for beyond ``approved``, and what it dropped."""
    old, new = set(approved), set(now)
    return sorted(new - old), sorted(old - new)
