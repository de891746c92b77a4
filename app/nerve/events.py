"""Events: the one thing that travels on the bus.

An event is immutable. Its ``data`` is a read-only mapping of JSON values, so a
subscriber cannot change what another one sees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

from nerve import saferegex

JSONValue = Any  # str | int | float | bool | None | list | dict, nested

_EMPTY: Mapping[str, JSONValue] = MappingProxyType({})

#: Types whose data describes what the user types or copies. They are shown
#: live but never written to disk unless the user asks for it.
PRIVATE_TYPES = frozenset({"key.down", "key.up", "clipboard.changed"})

#: What a rule learns by listening to these events: a pack whose rules listen
#: to them (with any trigger, ``event: "*"`` included) needs that capability.
READ_CAPABILITIES: dict[str, str] = {
    "key.down": "reads-keyboard",
    "key.up": "reads-keyboard",
    "hotkey": "reads-keyboard",
    "typed": "reads-keyboard",
    "clipboard.changed": "reads-clipboard",
    "mouse.click": "reads-mouse",
    "mouse.scroll": "reads-mouse",
    "mouse.move": "reads-mouse",
}


def read_capabilities(pattern: str) -> frozenset[str]:
    """What listening to events of ``pattern`` (a type or a glob) reveals."""
    matcher = TypePattern([pattern])
    return frozenset(cap for type_, cap in READ_CAPABILITIES.items() if matcher.matches(type_))


#: Where events come from, as a rule's ``from:`` names them (besides pack ids).
SOURCE_KINDS = ("self", "rules", "cli", "nerve", "mqtt", "nats", "webhook")
_BRIDGES = frozenset({"mqtt", "nats", "webhook"})
RULE_SOURCE_PREFIX = "rule:"


def source_pack(source: str) -> str | None:
    """The pack whose rule produced an event with this ``source`` (None: not a rule)."""
    if not source.startswith(RULE_SOURCE_PREFIX):
        return None
    pack, sep, _ = source[len(RULE_SOURCE_PREFIX) :].rpartition("/")
    return pack if sep else None


def source_kind(source: str) -> str:
    """``rules``, ``cli``, ``mqtt``/``nats``/``webhook``, or ``nerve`` (its listeners,
    schedules and engine: what happens on the desktop)."""
    if source_pack(source) is not None:
        return "rules"
    if source == "cli" or source in _BRIDGES:
        return source
    return "nerve"


#: An event type: ASCII lower-case words of letters, digits and ``_``, joined by
#: single dots or hyphens. Matched whole (``fullmatch``): no other character,
#: not even a final newline, can make a name that looks like another one.
_TYPE_RE = re.compile(r"[a-z0-9_]+(?:[.\-][a-z0-9_]+)*", re.ASCII)
MAX_TYPE_LENGTH = 200


def valid_type(name: object) -> bool:
    """True for dotted lower-case names such as ``file.created`` or ``my-app.done``."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_TYPE_LENGTH
        and _TYPE_RE.fullmatch(name) is not None
    )


class Event(NamedTuple):
    """Something that happened.

    Immutable and compact (a typed named tuple: built in a fraction of the time
    a frozen dataclass takes, which matters at hundreds of thousands of events
    a second). ``id`` is the bus sequence number (0 until published), ``time``
    epoch seconds, ``mono_ns`` a monotonic clock reading for ordering and
    windows, ``source`` the id of the producer. ``cause`` is the id of the run
    whose action produced this event and ``depth`` how many rule runs lie
    between it and an outside event (0 for events from the outside world).
    """

    type: str
    data: Mapping[str, JSONValue] = _EMPTY
    source: str = ""
    id: int = 0
    time: float = 0.0
    mono_ns: int = 0
    cause: str | None = None
    depth: int = 0

    def get(self, path: str, default: JSONValue = None) -> JSONValue:
        """A field by name. ``type``, ``id``, ``time``, ``source``, ``depth``
        name the event's own attributes; anything else is looked up in data,
        dots descending into nested mappings."""
        if path in _ATTRS:
            return getattr(self, path)
        value: Any = self.data
        for part in path.split("."):
            # The engine calls this for every indexed field of every event:
            # test the concrete read-only type first, the (slow) ABC second.
            if (type(value) is MappingProxyType or isinstance(value, Mapping)) and part in value:
                value = value[part]
            else:
                return default
        return value

    def as_dict(self) -> dict[str, JSONValue]:
        """A plain JSON-ready dictionary (for the log, IPC and bridges)."""
        return {
            "id": self.id,
            "type": self.type,
            "time": self.time,
            "source": self.source,
            "data": thaw(self.data),
            "cause": self.cause,
            "depth": self.depth,
        }


_ATTRS = frozenset({"type", "id", "time", "source", "depth", "cause"})


#: Types of values that freeze() keeps as they are (immutable and atomic).
SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def freeze(data: Mapping[str, JSONValue] | None) -> Mapping[str, JSONValue]:
    """A read-only copy of ``data`` (nested mappings are frozen too; lists become tuples)."""
    if not data:
        return _EMPTY
    # Flat data of scalars (most events) needs one shallow copy; dict.copy()
    # is the quickest one, and keeps the copy out of the garbage collector's
    # sight when the values are atomic.
    copy = data.copy() if type(data) is dict else dict(data)
    for value in copy.values():
        if type(value) not in SCALAR_TYPES:
            copy = {str(k): _freeze_value(v) for k, v in data.items()}
            break
    return MappingProxyType(copy)


def _freeze_value(value: JSONValue) -> JSONValue:
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze_value(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_value(v) for v in value)
    return value


def thaw(value: JSONValue) -> JSONValue:
    """The JSON-ready (mutable) counterpart of a frozen value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class TypePattern:
    """A set of event type patterns: ``file.*``, ``*``, ``app.started``.

    ``*`` matches within and across dots (``file.*`` matches
    ``file.created``); the answer per type is cached.
    """

    __slots__ = ("_cache", "_exact", "_globs", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if not _is_glob(p))
        self._globs = tuple(
            (_compile_glob(p), reserved_only(p)) for p in self.patterns if _is_glob(p)
        )
        self._cache: dict[str, bool] = {}

    def matches(self, type_: str) -> bool:
        """Whether ``type_`` matches. Only a valid type matches anything (an event
        of another type never reaches the bus; this holds wherever a type comes
        from, a stored one being replayed included), and a pattern about Nerve's
        own events (:func:`reserved_only`) matches only reserved types."""
        hit = self._cache.get(type_)
        if hit is None:
            hit = valid_type(type_) and (
                type_ in self._exact
                or any(
                    glob(type_) and (not own or reserved_type(type_)) for glob, own in self._globs
                )
            )
            if len(self._cache) < 4096:
                self._cache[type_] = hit
        return hit

    def __repr__(self) -> str:
        return f"TypePattern({list(self.patterns)!r})"


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@lru_cache(maxsize=1024)
def _compile_glob(pattern: str) -> Any:
    return saferegex.glob_matcher(pattern)


_DEVICE_FIELDS = "subsystem devtype vendor_id product_id vendor product name devpath devname whole"

#: Data fields of the event types Nerve itself produces (DESIGN.md, "Events").
#: Placeholders such as ``{event.path}`` are checked against these at load time;
#: custom types may carry anything.
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(fields.split())
    for name, fields in {
        "key.down": "key modifiers injected",
        "key.up": "key modifiers injected",
        "hotkey": "combo",
        "typed": "text",
        "mouse.click": "button x y pressed modifiers",
        "mouse.scroll": "dx dy x y modifiers",
        "mouse.move": "x y",
        "file.created": "path name dir is_dir dest_path src_path src_dir",
        "file.modified": "path name dir is_dir dest_path src_path src_dir",
        "file.deleted": "path name dir is_dir dest_path src_path src_dir",
        "file.moved": "path name dir is_dir dest_path src_path src_dir",
        "process.started": "pid name exe cmdline user exit_code",
        "process.exited": "pid name exe cmdline user exit_code",
        "window.focused": "title class instance process pid window change",
        "display.changed": "change added removed rearranged monitors count primary width height",
        "session.locked": "session",
        "session.unlocked": "session",
        "session.login": "session user uid path",
        "session.logout": "session user uid path",
        "system.suspending": "",
        "system.resumed": "",
        "device.added": _DEVICE_FIELDS,
        "device.removed": _DEVICE_FIELDS,
        "schedule": "job scheduled_time",
        "clipboard.changed": "selection mime text truncated",
        "system.idle": "idle_seconds threshold",
        "system.active": "idle_seconds",
        "power.ac": "percent plugged secsleft",
        "power.battery": "percent plugged secsleft",
        "power.low": "percent plugged secsleft below",
        "network.up": "interface",
        "network.down": "interface",
        "app.started": "version pid",
        "app.stopping": "reason",
        "app.paused": "reason for",
        "app.resumed": "",
        "rule.failed": "rule pack run error",
        "nerve.panic": "combo",
        "rule.suspended": "rule pack reason",
        "variable.changed": "name value old after",
    }.items()
}


#: Families of types that Nerve itself publishes (its listeners, the engine,
#: its bridges): ``file.created`` and every other ``file.<anything>``, and the
#: single types ``hotkey``, ``typed`` and ``schedule``.
RESERVED_FAMILIES = frozenset(
    {
        "key",
        "mouse",
        "file",
        "process",
        "window",
        "display",
        "device",
        "clipboard",
        "system",
        "power",
        "network",
        "session",
        "app",
        "rule",
        "nerve",
        "hotkey",
        "typed",
        "schedule",
        "idle",
        "mqtt",
        "nats",
        "webhook",
        "variable",
    }
)


def canonical_type(text: str) -> str:
    """What ``text`` would read as, spelled the usual way: Unicode compatibility
    forms folded (fullwidth letters are their ASCII selves), case folded, every
    character that is not a letter, digit, ``.``, ``-`` or ``_`` dropped
    (blanks, newlines, NUL, control and format characters), dots and hyphens
    not doubled nor at either end. For telling whether a name is a spelling
    of a reserved type, never for publishing."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch for ch in folded if ch.isalnum() or ch in "._-")
    kept = re.sub(r"([.\-])[.\-]+", r"\1", kept)
    return kept.strip(".-")


def reserved_type(type_: str) -> bool:
    """Whether ``type_`` is, or is a spelling of, a type Nerve itself publishes
    (see :data:`RESERVED_FAMILIES`). Rules cannot ``emit`` these: a faked
    ``hotkey``, ``typed`` or ``file.created`` event would fire other packs'
    rules, whatever those packs were approved for. Nor can ``nerve emit``: any
    program of the user's can run it."""
    for name in (type_, canonical_type(type_)):
        family = re.split(r"[.\-]", name, maxsplit=1)[0]
        if name in KNOWN_FIELDS or family in RESERVED_FAMILIES:
            return True
    return False


def reserved_only(pattern: str) -> bool:
    """Whether the glob ``pattern`` is about Nerve's own events alone: the text
    before its first wildcard starts with a whole reserved family name
    (``file.*``, ``file*``, ``key.d?wn``, ``hotkey*``; not ``filesync.*``). Such a
    pattern matches no custom type, so no event a pack or a bridge makes up
    (``filex``, ``file-x.created``) can pass for one of Nerve's."""
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return re.split(r"[.\-]", literal, maxsplit=1)[0] in RESERVED_FAMILIES


def fields_for(type_pattern: str) -> frozenset[str] | None:
    """The data fields events matching ``type_pattern`` carry, or None if unknown/custom."""
    if not _is_glob(type_pattern):
        return KNOWN_FIELDS.get(type_pattern)
    match = _compile_glob(type_pattern)
    hits = [fields for name, fields in KNOWN_FIELDS.items() if match(name)]
    if not hits or match("custom.type.that.matches.anything"):
        return None
    return frozenset().union(*hits)
