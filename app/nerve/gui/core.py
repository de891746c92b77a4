"""What the window talks to: the running bus, engine, store and listeners.

The GUI never reaches into listeners or the engine's internals: it reads
summaries (``engine.rules()``, ``engine.status()``, the store's runs) and asks
for changes through :meth:`Engine.call`, exactly as the control socket does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from nerve.bootstrap import Nerve
    from nerve.bus import Bus
    from nerve.engine.engine import Engine
    from nerve.listeners.manager import ListenerManager
    from nerve.packs.loader import Pack
    from nerve.storage import Store

#: How long the Qt thread waits for the engine loop before giving up on a read.
ENGINE_TIMEOUT_S = 2.0


@dataclass
class Core:
    """The parts of a running Nerve the window needs."""

    bus: Bus
    engine: Engine
    store: Store | None = None
    listeners: ListenerManager | None = None
    pack_names: Callable[[], dict[str, str]] = field(default=dict)
    #: The loaded packs (each with its ``file``), as of the last (re)load.
    packs: Callable[[], list[Pack]] = field(default=list)
    #: Where the user's packs live (``None``: packs were given with ``--rules``).
    packs_dir: Path | None = None
    #: Where settings.yaml lives.
    config_dir: Path | None = None
    #: The event log and run history (nerve.db), and the log file's folder.
    data_dir: Path | None = None
    logs_dir: Path | None = None
    #: Ids of the user's packs held for approval, as of the last (re)load.
    held: Callable[[], list[str]] = field(default=list)
    #: Called (any thread) when the engine reports a change; see watch().
    _watchers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    #: Read every pack again and swap the rules in (blocking; a few ms).
    reload: Callable[[], None] = field(default=lambda: None)
    #: Each bridge's status (the webhook, MQTT...), as ``nerve status`` has it.
    bridges: Callable[[], list[dict[str, Any]]] = field(default=list)
    #: Have the given callback called when a bridge's state changes.
    watch_bridges: Callable[[Callable[[], None]], None] = field(default=lambda callback: None)

    @classmethod
    def of(cls, nerve: Nerve) -> Core:
        """The core of a started :class:`~nerve.bootstrap.Nerve`."""
        assert nerve.bus is not None
        assert nerve.engine is not None
        return cls(
            bus=nerve.bus,
            engine=nerve.engine,
            store=nerve.store,
            listeners=nerve.listeners,
            pack_names=lambda: {p.id: p.name for p in nerve.packs if p.id},
            packs=lambda: list(nerve.packs),
            packs_dir=None if nerve.options.rule_paths else nerve.locations.packs,
            config_dir=nerve.locations.config,
            data_dir=nerve.locations.data,
            logs_dir=nerve.locations.logs,
            reload=nerve.reload,
            held=lambda: [state.pack.id for state in nerve.held],
            bridges=lambda: [bridge.status() for bridge in nerve.bridges],
            watch_bridges=lambda callback: setattr(nerve, "on_bridges_change", callback),
        )

    def rules(self) -> list[dict[str, Any]]:
        engine = self.engine
        return engine.call(engine.rules, timeout=ENGINE_TIMEOUT_S)

    def why(self, key: str) -> dict[str, Any] | None:
        """Why the rule did not run lately (see ``Engine.why``)."""
        engine = self.engine
        return engine.call(engine.why, key, timeout=ENGINE_TIMEOUT_S)

    def set_enabled(self, key: str, enabled: bool) -> bool:
        engine = self.engine
        return engine.call(engine.set_enabled, key, enabled, timeout=ENGINE_TIMEOUT_S)

    def engine_status(self) -> dict[str, Any]:
        engine = self.engine
        return engine.call(engine.status, timeout=ENGINE_TIMEOUT_S)

    def pause(self, reason: str) -> int:
        engine = self.engine
        return engine.call(engine.pause, reason, timeout=ENGINE_TIMEOUT_S)

    def resume(self) -> None:
        engine = self.engine
        engine.call(engine.resume, timeout=ENGINE_TIMEOUT_S)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Have ``callback`` called (on whatever thread changed it; it must only
        hand over) when rules, runs, the pause, a listener's state or the bus's
        drops change; returns the unwatch. After a call, further changes of the
        engine or drops call again only once :meth:`change_seen` was called: a
        flood of runs costs a window one refresh at a time."""
        self._watchers.append(callback)
        self.engine.on_change = self._notify
        self.watch_bridges(self._notify)
        self.bus.on_drop = self._notify
        if self.store is not None:
            self.store.health.on_change = self._notify
        if self.listeners is not None:
            self.listeners.on_change = self._notify

        def unwatch() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return unwatch

    def _notify(self) -> None:
        for callback in list(self._watchers):
            callback()

    def change_seen(self) -> None:
        self.engine.change_seen()
        self.bus.drop_seen()

    def listener_status(self) -> list[dict[str, Any]]:
        return self.listeners.status() if self.listeners is not None else []

    def drops(self) -> int:
        stats = self.bus.stats()
        dropped = stats.get("dropped")
        return sum(int(v) for v in dropped.values()) if isinstance(dropped, dict) else 0

    def storage_problem(self) -> str | None:
        """One line about what the database cannot write now (a full disk), or None."""
        return self.store.health.summary() if self.store is not None else None

    def runs(self, limit: int = 500) -> list[dict[str, Any]]:
        return self.store.query_runs(limit=limit) if self.store is not None else []
