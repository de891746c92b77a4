"""The contract every listener keeps, and the registry of listener types."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar

from nerve.bus import Bus

#: What a rule asks of a listener: e.g. a folder to watch. Must be hashable and
#: comparable so the manager can tell when the set of needs changed.
Need = Hashable


class ListenerUnavailable(Exception):
    """The platform cannot offer this listener; the message says why, plainly
    (no display, an X extension missing, a Wayland session, a permission)."""


class Listener(ABC):
    """One source of OS events.

    ``start`` and ``stop`` are called by the manager's supervisor thread, never
    concurrently. A listener whose thread dies or whose connection drops calls
    ``self.failed(exc)``; the manager restarts it with a backoff.
    """

    id: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, bus: Bus, on_failure: Callable[[Listener, BaseException], None]) -> None:
        self.bus = bus
        self._on_failure = on_failure

    @abstractmethod
    def start(self, needs: Sequence[Need]) -> None:
        """Start producing events for ``needs``. Raise ListenerUnavailable when
        the platform cannot offer it; any other exception counts as a failure."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every thread and release every OS resource. Idempotent."""

    def reconfigure(self, needs: Sequence[Need]) -> None:
        """The needs changed while running. The default restarts the listener."""
        self.stop()
        self.start(needs)

    def detail(self) -> str:
        """A short state for ``nerve status`` (backend in use, what is watched)."""
        return ""

    def failed(self, exc: BaseException) -> None:
        """Report that this listener stopped working (from any thread)."""
        self._on_failure(self, exc)

    def publish(self, type_: str, data: dict[str, object]) -> None:
        """Publish an event from this listener (never blocks)."""
        self.bus.publish(type_, data, source=self.id)


class ListenerRegistry:
    """Listener types by id."""

    def __init__(self) -> None:
        self._types: dict[str, type[Listener]] = {}

    def register(self, cls: type[Listener]) -> type[Listener]:
        if cls.id in self._types:
            raise ValueError(f"listener {cls.id!r} registered twice")
        self._types[cls.id] = cls
        return cls

    def get(self, id_: str) -> type[Listener] | None:
        return self._types.get(id_)

    def ids(self) -> list[str]:
        return sorted(self._types)


listeners = ListenerRegistry()
