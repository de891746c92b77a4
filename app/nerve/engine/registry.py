"""Trigger, condition and action types, keyed by the YAML key that names them.

Each type declares the JSON Schema of its options (used for validation and
shipped as part of ``nerve schema``) and compiles those options once, when a
pack is loaded, into an object the engine uses at run time. Another module
adds a type by subclassing and decorating it with ``@triggers.register`` (or
``conditions``/``actions``); an unknown key is a load-time error.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from nerve.events import Event
from nerve.templates import CLIPBOARD, Names, Template, TemplateError, parse

if TYPE_CHECKING:
    from nerve.engine.runs import RunContext
    from nerve.engine.triggers import TriggerHost

PathPart = str | int
ConfigPath = tuple[PathPart, ...]


class ConfigError(ValueError):
    """A problem with a rule's options, at ``path`` below the thing being compiled."""

    def __init__(self, message: str, path: ConfigPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class AlreadyReported(ConfigError):
    """Compiling failed and the errors are already in the context."""

    def __init__(self) -> None:
        super().__init__("")


@dataclass
class CompileContext:
    """What compiling one rule needs: the names placeholders may use, and a
    place to collect errors so that every error of a rule is reported."""

    inputs: Mapping[str, Any] = field(default_factory=dict)
    names: Names = field(default_factory=lambda: Names(None, frozenset()))
    #: Inputs the pack marks secret: their values are never written into capabilities.
    secrets: frozenset[str] = frozenset()
    errors: list[tuple[ConfigPath, str]] = field(default_factory=list)
    rule_key: str = ""

    def template(self, text: str, path: ConfigPath = ()) -> Template:
        try:
            template = parse(text, self.names)
        except TemplateError as exc:
            raise ConfigError(str(exc), path) from None
        if CLIPBOARD in template.names:
            if self.placeholders is None:
                raise ConfigError(
                    "{clipboard} is read when an action runs: use it in actions only", path
                )
            self.placeholders.add(CLIPBOARD)
        return template

    #: Placeholders with a capability (``clipboard``) used by the action being
    #: compiled; None outside actions, where they are not allowed.
    placeholders: set[str] | None = None

    counters: dict[str, int] = field(default_factory=dict)
    #: Where the options being compiled sit (for types that compile nested nodes).
    current_path: ConfigPath = ()
    #: Step ids (``id:`` of an action) used so far in this rule, with where.
    step_ids: dict[str, str] = field(default_factory=dict)

    def error(self, path: ConfigPath, message: str) -> None:
        self.errors.append((path, message))

    def counter(self, name: str) -> int:
        """0, 1, 2... per name within this rule (stable ids for schedules)."""
        value = self.counters.get(name, 0)
        self.counters[name] = value + 1
        return value


# --------------------------------------------------------------------------
# Triggers


@dataclass(frozen=True)
class Matcher:
    """What a trigger listens for: an event type (exact or glob), optionally one
    exact ``(field, value)`` the engine can index on, and a predicate for the rest."""

    type: str
    index: tuple[str, Any] | None = None
    predicate: Callable[[Event], bool] | None = None
    tag: Any = None


class Trigger(ABC):
    """A compiled trigger of one rule."""

    key: ClassVar[str]
    schema: ClassVar[dict[str, Any]]
    description: ClassVar[str] = ""
    #: Listener ids that must run while a rule with this trigger is loaded.
    listeners: ClassVar[frozenset[str]] = frozenset()
    #: Capabilities this trigger gives a pack (e.g. "reads-keyboard").
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: Concrete capabilities of this trigger (``watches:~/Downloads``).
    concrete: frozenset[str] = frozenset()

    @classmethod
    @abstractmethod
    def compile(cls, options: Any, ctx: CompileContext) -> Trigger:
        """Build from validated options; raise ConfigError for semantic problems."""

    @abstractmethod
    def matchers(self) -> list[Matcher]:
        """Event patterns this trigger needs to see."""

    def on_match(self, event: Event, matcher: Matcher, host: TriggerHost) -> None:
        """A matching event arrived. Simple triggers fire straight away."""
        host.fire(event)

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        """``(listener id, need)`` pairs this trigger asks for while its rule is loaded
        (a folder to watch, a combo to grab). The default: each of ``listeners``."""
        for lid in self.listeners:
            yield lid, None
        for child in getattr(self, "children", ()):
            yield from child.needs()

    def event_fields(self) -> frozenset[str] | None:
        """Fields of the event that starts a run (None: any), for placeholder checks."""
        return None

    def trigger_capabilities(self) -> frozenset[str]:
        """What this trigger gives its pack (the class's ``capabilities``, plus
        what its options add: an ``event`` trigger on ``key.down`` reads the keyboard)."""
        return self.capabilities | self.concrete

    def scope(self, conditions: Sequence[Condition]) -> None:
        """Told the rule's top-level conditions (every one must hold for a run).
        A trigger that takes something away from other programs (a grabbed
        hotkey) can use the ones it understands to take it only where the rule
        could run. The default ignores them."""

    def sees_actions(self, actions: Sequence[Any]) -> None:
        """Told the rule's top-level actions (after :meth:`scope`). The default
        ignores them."""

    def event_hint(self) -> str:
        return ""

    def start(self, host: TriggerHost) -> None:
        """Called when the rule is loaded (schedules register here)."""

    def stop(self) -> None:
        """Called when the rule is unloaded or disabled: drop timers and state."""

    def describe(self) -> str:
        return self.key


# --------------------------------------------------------------------------
# Conditions


class Condition(ABC):
    """A compiled condition: does it hold for this run?"""

    key: ClassVar[str]
    schema: ClassVar[dict[str, Any]]
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def compile(cls, options: Any, ctx: CompileContext) -> Condition: ...

    @abstractmethod
    def check(self, run: RunContext) -> tuple[bool, str]:
        """The verdict and a short reason for the trace."""

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        """Listeners this condition relies on (the active window, say)."""
        for child in getattr(self, "children", ()):
            yield from child.needs()


# --------------------------------------------------------------------------
# Actions


class Action(ABC):
    """A compiled action."""

    key: ClassVar[str]
    schema: ClassVar[dict[str, Any]]
    description: ClassVar[str] = ""
    #: Other keys allowed beside the action's own key (``then``/``else`` of ``if``).
    siblings: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Siblings that must be present (``then`` of ``if``).
    required_siblings: ClassVar[tuple[str, ...]] = ()
    capabilities: ClassVar[frozenset[str]] = frozenset()

    #: Set by the compiler: where this action sits in the rule, for traces.
    path: str = ""
    continue_on_error: bool = False
    #: Concrete capabilities of this action (``run:/usr/bin/foo``, see ``nerve.engine.caps``).
    concrete: frozenset[str] = frozenset()
    #: Set by the compiler: the action's text uses ``{clipboard}`` (read before it runs).
    reads_clipboard: bool = False
    #: Its ``id:``, when later actions use its outputs (``{steps.ID.stdout}``).
    step_id: str | None = None

    @classmethod
    @abstractmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Mapping[str, Any]) -> Action: ...

    @abstractmethod
    async def execute(self, run: RunContext) -> Any:
        """Do it. Return a JSON-able result for the trace; raise ActionError on failure."""

    def children(self) -> Iterator[Action]:
        """Nested actions (``if``), for capability scans."""
        return iter(())

    def action_capabilities(self) -> frozenset[str]:
        return self.capabilities | self.concrete

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        """Listeners this action relies on (conditions of an ``if``)."""
        return iter(())

    def outputs(self) -> frozenset[str]:
        """What ``{steps.ID.*}`` this action gives when it carries an ``id``."""
        return frozenset()


class ActionError(Exception):
    """An action failed; the message goes into the trace and the notification."""


T = TypeVar("T")


class Registry(Generic[T]):
    """Types of one kind by YAML key."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._types: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        key: str = cls.key  # type: ignore[attr-defined]
        if key in self._types:
            raise ValueError(f"{self.kind} {key!r} registered twice")
        self._types[key] = cls
        return cls

    def get(self, key: str) -> type[T] | None:
        return self._types.get(key)

    def unknown(self, key: str) -> str:
        """An error message for an unknown key, with the closest known ones."""
        close = difflib.get_close_matches(key, self._types, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {key!r}{hint}"

    def keys(self) -> list[str]:
        return sorted(self._types)

    def items(self) -> list[tuple[str, type[T]]]:
        return sorted(self._types.items())

    def __contains__(self, key: object) -> bool:
        return key in self._types


triggers: Registry[Trigger] = Registry("trigger")
conditions: Registry[Condition] = Registry("condition")
actions: Registry[Action] = Registry("action")


def load_builtin_types() -> None:
    """Import the modules that register the built-in types (idempotent).

    Every module of ``nerve.listeners`` registers its listener and the
    triggers, conditions and actions that go with it; they import platform
    libraries lazily, so importing them works everywhere.
    """
    import importlib
    import pkgutil

    import nerve.listeners
    from nerve.engine import actions as _a  # noqa: F401
    from nerve.engine import conditions as _c  # noqa: F401
    from nerve.engine import triggers as _t  # noqa: F401

    for module in pkgutil.iter_modules(nerve.listeners.__path__):
        if not module.name.startswith("_") and module.name not in ("base", "manager"):
            importlib.import_module(f"nerve.listeners.{module.name}")
