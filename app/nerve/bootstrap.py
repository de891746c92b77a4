"""The one place where Nerve's parts are assembled.

The headless runner and the desktop app both build a :class:`Nerve` here;
tests build one with their own folders.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Callable, Collection, Hashable
from pathlib import Path
from typing import Any

from nerve import __version__, injection, ipc, windowctl
from nerve.bridges.base import Bridge, BridgeState, start_all, stop_all
from nerve.bus import Bus
from nerve.durations import MAX_DURATION_S, MAX_DURATION_TEXT_FORM
from nerve.engine.engine import Engine
from nerve.events import reserved_type, valid_type
from nerve.ipc import InstanceLock, IpcError, IpcServer, socket_path
from nerve.listeners import keyboard, x11
from nerve.listeners.manager import ListenerManager
from nerve.options import Options
from nerve.packs import trust
from nerve.packs.loader import Pack, UnknownInput, duplicate_pack_errors, load_paths
from nerve.packs.watch import PacksWatcher
from nerve.paths import Locations, ensure_private_dir, shipped_packs_dir
from nerve.settings import Settings
from nerve.storage import EventLogWriter, StorageError, Store

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
YOUNG_GC_THRESHOLD = 10_000
STARTER = "starter.yaml"
#: The bridges settings.yaml can turn on, in the order ``nerve status`` shows them.
BRIDGES = ("webhook", "mqtt")


def install_starter_pack(locations: Locations) -> Path | None:
    """On first start, copy the shipped starter pack into the user's packs folder."""
    packs = locations.packs
    if packs.exists():
        return None
    ensure_private_dir(packs)
    source = shipped_packs_dir() / STARTER
    if not source.exists():
        log.warning("the starter pack is missing from this installation (%s)", source)
        return None
    target = packs / STARTER
    shutil.copyfile(source, target)
    trust.approve_file(locations.config, target)  # shipped with Nerve: trusted
    log.info("installed the starter pack in %s", target)
    return target


def _bridge_blocks(settings: Settings) -> dict[str, Any]:
    """What each bridge is made from: a change restarts that bridge."""
    return {"webhook": settings.webhook, "mqtt": (settings.mqtt, settings.host)}


def settle_memory() -> None:
    """Move what is loaded now (modules, compiled rules) out of the garbage
    collector's way. Each event allocates a few objects; without this, every
    full collection walks all loaded rules too, and the cost of an event would
    grow with the number of rules. Young collections come every 10,000
    allocations instead of 700: events queued in a burst are mostly consumed
    before a collection would have walked (and promoted) them."""
    if not gc.isenabled() and threading.current_thread() is not threading.main_thread():
        # The desktop app collects on its Qt (main) thread only
        # (QtThreadCollector); a collection on another thread (a reload from the
        # packs watcher) could destroy Qt objects there.
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 10, 10)


class Nerve:
    """Bus, storage, engine and control socket, started and stopped together."""

    def __init__(self, locations: Locations, options: Options) -> None:
        self.locations = locations
        self.options = options
        self.settings = Settings.load(locations.config / "settings.yaml")
        self.lock = InstanceLock()
        self.listeners: ListenerManager | None = None
        self._detach_panic: Callable[[], None] | None = None
        self.store: Store | None = None
        self.bus: Bus | None = None
        self.engine: Engine | None = None
        self.writer: EventLogWriter | None = None
        self.ipc: IpcServer | None = None
        #: Bridges to the outside (the webhook, MQTT), started on the engine loop.
        self.bridges: list[Bridge] = []
        #: Called (any thread) when a bridge's state changes (the window listens).
        self.on_bridges_change: Callable[[], None] | None = None
        self.packs: list[Pack] = []
        #: User packs whose capabilities are not all approved: not loaded.
        self.held: list[trust.PackState] = []
        self.approvals = trust.Approvals(locations.config)
        self._reload_lock = threading.RLock()  # the watcher, the window, IPC, SIGHUP
        self.watcher: PacksWatcher | None = None
        self.stopped = threading.Event()
        self._prune_timer: threading.Timer | None = None

    # ----------------------------------------------------------------- packs

    def pack_paths(self) -> list[Path]:
        if self.options.rule_paths:
            return list(self.options.rule_paths)
        install_starter_pack(self.locations)
        return [self.locations.packs] if self.locations.packs.exists() else []

    def load_packs(self) -> list[Pack]:
        """Load every pack; report the broken and held ones. Returns all packs.

        Nothing is approved here: a pack without an approval is held, also at
        the first start and when ``approvals.yaml`` is missing or damaged.
        Loading never ends Nerve: should it fail as a whole (a bug: a bad pack
        is reported and skipped by the loader), the error is logged and the
        rules loaded before stay."""
        try:
            return self._load_packs()
        except UnknownInput:
            raise
        except Exception as exc:
            log.error("the packs were not (re)loaded: %s", exc)
            log.debug("loading the packs failed", exc_info=True)
            return self.packs

    def _load_packs(self) -> list[Pack]:
        user_packs = not self.options.rule_paths  # --rules: the user's explicit choice
        states: list[trust.PackState] = []
        if user_packs:
            paths = self.pack_paths()  # (installs the starter pack on first start)
            packs, states = (
                trust.load_folder(self.approvals, self.options.overrides) if paths else ([], [])
            )
        else:
            packs = load_paths(self.pack_paths(), self.options.overrides)
            duplicate_pack_errors(packs)
        # Before anything runs or is logged: the secret values the user gave.
        trust.register_secrets(packs)
        for pack in packs:
            for error in pack.errors:
                log.error("%s", error)
            if not pack.usable:
                log.error("pack %s is not loaded because of the errors above", pack.file)
            elif pack.errors:
                log.warning(
                    "pack %s: %d rule(s) skipped because of errors", pack.id, len(pack.errors)
                )
        self.held = [s for s in states if s.state == "held"]
        for state in self.held:
            log.warning("%s", state.held_note())
        self.packs = packs
        return packs

    def rules(self) -> list[Any]:
        # (A file whose edit is held and whose approved version runs meanwhile:
        # ``packs`` holds that version.)
        held = {s.pack.file for s in self.held if not s.runs_approved}
        return [
            rule
            for pack in self.packs
            if pack.usable and pack.file not in held
            for rule in pack.rules
        ]

    def held_rules(self) -> list[tuple[Any, str]]:
        """Rules of held packs (not running), with why: counted when they miss a run."""
        return [
            (rule, s.reason())
            for s in self.held
            if not s.runs_approved and s.pack.usable
            for rule in s.pack.rules
        ]

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Take the single-instance lock, then start everything. Raises AlreadyRunning."""
        self.lock.acquire()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        ensure_private_dir(self.locations.data)
        settings = self.settings
        self.store = Store(
            self.locations.database,
            retention_days=settings.retention_days,
            max_events=settings.max_events,
            store_private=settings.store_private,
        )
        self.bus = Bus(settings.bus_capacity, first_id=self.store.next_event_id())
        self.writer = EventLogWriter(self.bus, self.store)
        self.writer.start()
        self.listeners = ListenerManager(self.bus)
        self.listeners.start()
        self.engine = Engine(self.bus, store=self.store, max_depth=settings.max_depth)
        self.engine.max_iterations = settings.max_loop_rounds
        self.engine.on_needs = self._listener_needs
        self.engine.start()
        self._detach_panic = keyboard.on_panic(self._panic)
        self.load_packs()
        self.engine.call(self.engine.set_rules, self.rules(), self.held_rules())
        self._listener_needs(self.engine.needs)  # the panic grab, even with no rule
        settle_memory()
        self._start_bridges()
        self.ipc = IpcServer(socket_path(), self.handle, streams={"follow": self._open_follow})
        self.ipc.start()
        if not self.options.rule_paths:
            watcher = PacksWatcher(self.locations.packs, self._packs_changed)
            try:
                watcher.start()
            except OSError as exc:  # the packs "folder" is a file, a pipe...
                log.error(
                    "not watching %s for changes: %s (`nerve reload` reads it again)",
                    self.locations.packs,
                    exc.strerror or exc,
                )
            else:
                self.watcher = watcher
        self._schedule_prune()
        self.bus.publish("app.started", {"version": __version__, "pid": os.getpid()}, source="app")
        log.info(
            "Nerve %s running: %d rule(s) from %d pack(s); data in %s",
            __version__,
            len(self.rules()),
            sum(1 for p in self.packs if p.usable),
            self.locations.data,
        )

    # --------------------------------------------------------------- bridges

    def _make_bridges(self, names: Collection[str] = BRIDGES) -> list[Bridge]:
        """The bridges (of ``names``) the settings turn on; a block that cannot
        be used is reported and that bridge stays off."""
        from nerve.bridges.webhook import ConfigError, WebhookBridge, WebhookConfig

        assert self.bus is not None
        assert self.engine is not None
        settings = self.settings
        bridges: list[Bridge] = []
        webhook = settings.webhook
        if "webhook" in names and webhook is not None and webhook.get("enabled", True):
            try:
                config = WebhookConfig.from_settings(webhook)
            except ConfigError as exc:
                log.error("settings: %s (the webhook is off)", exc)
            else:
                bridges.append(WebhookBridge(self.bus, config))
        if "mqtt" in names and settings.mqtt:
            # (A block the settings found wrong is not read: it is None here.)
            from nerve.bridges import mqtt

            host = settings.host or mqtt.default_host()
            bridges.append(
                mqtt.MqttBridge(
                    mqtt.MqttConfig.from_settings(settings.mqtt), host, self.bus, self.engine
                )
            )
        return bridges

    def _start_bridges(self, names: Collection[str] = BRIDGES) -> None:
        """Make and start the bridges of ``names`` (a failure is kept in its status)."""
        assert self.engine is not None
        assert self.engine.loop is not None
        bridges = self._make_bridges(names)
        for bridge in bridges:
            bridge.on_change = self._bridges_changed
        self.bridges = sorted([*self.bridges, *bridges], key=lambda b: BRIDGES.index(b.name))
        start_all(self.engine.loop, bridges)
        self._bridges_changed()

    def _bridges_changed(self) -> None:
        notify = self.on_bridges_change
        if notify is not None:
            notify()

    def _stop_bridges(self, names: Collection[str] = BRIDGES) -> None:
        gone = [b for b in self.bridges if b.name in names]
        self.bridges = [b for b in self.bridges if b.name not in names]
        if gone and self.engine is not None and self.engine.loop is not None:
            stop_all(self.engine.loop, gone)
            self._bridges_changed()

    def _reload_bridges(self, old: Settings) -> None:
        """Restart the bridges whose block changed (MQTT: or ``host``), and one
        the server refused the credentials of (the password file may be new)."""
        before, after = _bridge_blocks(old), _bridge_blocks(self.settings)
        again = {name for name in BRIDGES if before[name] != after[name]}
        again |= {b.name for b in self.bridges if b.state == BridgeState.AUTH_FAILED}
        if again:
            self._stop_bridges(again)
            self._start_bridges(again)

    def reload(self) -> None:
        """Read the packs again and swap the rules in (runs of unchanged rules go on)."""
        assert self.engine is not None
        with self._reload_lock:
            old, self.settings = (
                self.settings,
                Settings.load(self.locations.config / "settings.yaml"),
            )
            self._apply_settings(old)
            self.load_packs()
            self.engine.call(self.engine.set_rules, self.rules(), self.held_rules())
            # The panic hotkey and switched-off listeners, even when no rule changed.
            self._listener_needs(self.engine.needs)
            settle_memory()
        log.info("reloaded: %d rule(s) from %d pack(s)", len(self.rules()), len(self.packs))

    def _apply_settings(self, old: Settings | None = None) -> None:
        """What a running Nerve can change without a restart (the bus size cannot)."""
        settings = self.settings
        if old is not None and self.engine is not None:
            self._reload_bridges(old)
        if self.store is not None:
            self.store.retention_days = settings.retention_days
            self.store.max_events = settings.max_events
            self.store.store_private = settings.store_private
        if self.engine is not None:
            self.engine.max_depth = settings.max_depth
            self.engine.max_iterations = settings.max_loop_rounds

    def _packs_changed(self, names: set[str]) -> None:
        """Pack files changed on disk (the watcher's thread)."""
        if self.stopped.is_set():
            return
        log.info("pack file(s) changed: %s; reloading", ", ".join(sorted(names)))
        try:
            self.reload()
        except UnknownInput as exc:
            log.error("not reloaded: %s", exc)

    def _listener_needs(self, needs: dict[str, list[Hashable]]) -> None:
        """What the rules need, less the listeners the user switched off."""
        assert self.listeners is not None
        combo = self.settings.panic_hotkey
        if combo and (sys.platform != "linux" or os.environ.get("DISPLAY")):
            try:
                needs = keyboard.with_panic(needs, combo)
            except x11.ComboError as exc:
                log.error("settings: panic_hotkey %r: %s (no panic hotkey)", combo, exc)
        disabled = set(self.settings.disabled_listeners)
        for lid in sorted(disabled & set(needs)):
            log.warning("listener %s is switched off in the settings; its rules stay idle", lid)
        self.listeners.update({k: v for k, v in needs.items() if k not in disabled})

    def _panic(self, combo: str) -> None:
        """The panic hotkey (called on the hotkey thread): pause everything now."""
        engine = self.engine
        if engine is not None and engine.loop is not None:
            engine.loop.call_soon_threadsafe(engine.pause, f"the panic hotkey ({combo})")

    def _schedule_prune(self) -> None:
        if self.store is None or self.stopped.is_set():
            return
        try:
            removed = self.store.prune()
            if any(removed.values()):
                log.info("retention: removed %s", removed)
        except (sqlite3.Error, StorageError, OSError) as exc:
            # (A full disk: one line an hour; the writes it holds up say the rest.)
            log.warning("retention: could not prune the event log: %s", exc)
        except Exception:
            log.exception("pruning the event log failed")
        self._prune_timer = threading.Timer(PRUNE_EVERY_S, self._schedule_prune)
        self._prune_timer.daemon = True
        self._prune_timer.start()

    def stop(self) -> None:
        """Stop everything that was started; safe to call more than once."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self._prune_timer is not None:
            self._prune_timer.cancel()
        if self.watcher is not None:
            self.watcher.stop()
        if self.bus is not None and self.engine is not None:
            self.bus.publish("app.stopping", {"reason": "stop"}, source="app")
        if self.ipc is not None:
            self.ipc.stop()
        self._stop_bridges()
        if self._detach_panic is not None:
            self._detach_panic()
        if self.listeners is not None:
            self.listeners.stop()
        injection.reset()
        windowctl.reset()
        if self.engine is not None:
            self.engine.stop()
        if self.writer is not None:
            self.writer.stop()
        if self.store is not None:
            self.store.close()
        self.lock.release()

    # -------------------------------------------------------------- control

    def handle(self, cmd: str, args: dict[str, Any]) -> Any:
        """Answer a request on the control socket (runs on an IPC worker thread)."""
        engine, bus = self.engine, self.bus
        if engine is None or bus is None:
            raise IpcError("Nerve is starting up; try again")
        if cmd == "ping":
            return {"version": __version__, "pid": os.getpid()}
        if cmd == "status":
            return self.status()
        if cmd == "pause":
            seconds = args.get("for")
            if seconds is not None and (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not 0 < seconds <= MAX_DURATION_S  # also false for NaN
            ):
                # 0 would pause for good (the engine treats it as "no end"); true would be 1s.
                raise IpcError(
                    f"'for' must be a positive number of seconds, at most {MAX_DURATION_S:,} "
                    f"({MAX_DURATION_TEXT_FORM})"
                )
            cancelled = engine.call(engine.pause, "nerve pause", seconds)
            return {"paused": True, "cancelled": cancelled}
        if cmd == "resume":
            engine.call(engine.resume)
            return {"paused": False}
        if cmd == "emit":
            type_ = args.get("type")
            data = args.get("data", {})
            if not isinstance(type_, str) or not valid_type(type_):
                raise IpcError(f"not an event type: {type_!r} (use lower-case dotted names)")
            if reserved_type(type_):
                # A faked file.created or hotkey would fire the rules of packs
                # approved for the real ones (try rules with the editor's Test).
                raise IpcError(
                    f"{type_!r} is one of Nerve's own event types; `nerve emit` "
                    "sends custom events only"
                )
            if not isinstance(data, dict):
                raise IpcError("event data must be an object")
            # `nerve emit` run by a rule's program (or its descendants) carries
            # that run as its cause, so the cascade guard sees the loop.
            who = ipc.peer()
            origin = bus.causes.of_process(who.pid) if who is not None else None
            if origin is None:
                event = bus.publish(type_, data, source="cli")
            else:
                event = bus.publish(
                    type_, data, source="cli", cause=origin.run, depth=origin.depth + 1
                )
            return {"id": event.id}
        if cmd == "rules":
            return engine.call(engine.rules)
        if cmd == "why":
            name = args.get("rule")
            if not isinstance(name, str) or not name:
                raise IpcError("'rule' must name a rule (PACK/RULE)")
            answer = engine.call(engine.why, name)
            if answer is None:
                raise IpcError(f"no rule {name!r} is loaded (see `nerve status`)")
            return answer
        if cmd == "reload":
            try:
                self.reload()
            except UnknownInput as exc:
                raise IpcError(f"not reloaded: {exc}") from None
            return {
                "rules": len(self.rules()),
                "errors": [str(e) for p in self.packs for e in p.errors],
            }
        raise IpcError(f"unknown command {cmd!r}")

    def _open_follow(self, args: dict[str, Any]) -> ipc.Stream:
        """``nerve events --follow`` (an IPC worker thread): a stream of the log, then live."""
        from nerve.follow import FollowStream

        if self.bus is None or self.store is None:
            raise IpcError("Nerve is starting up; try again")
        return FollowStream(self.bus, self.store, self.writer, args)

    def status(self) -> dict[str, Any]:
        assert self.engine is not None
        assert self.bus is not None
        assert self.store is not None
        return {
            "version": __version__,
            "pid": os.getpid(),
            "engine": self.engine.call(self.engine.status),
            "listeners": self.listeners.status() if self.listeners else [],
            "bus": self.bus.stats(),
            "bridges": [b.status() for b in self.bridges],
            "followers": self.ipc.streams if self.ipc is not None else 0,
            "packs": [
                {
                    "id": p.id,
                    "file": p.file,
                    "loaded": p.usable,
                    "rules": len(p.rules),
                    "errors": len(p.errors),
                    "capabilities": sorted(p.capabilities),
                }
                for p in self.packs
            ],
            "held": [
                {
                    "id": s.pack.id,
                    "file": s.pack.file,
                    "missing": sorted(s.missing),
                    "reason": s.reason(),
                    "hint": s.hint(),
                    # (A newcomer claiming another file's id has nothing to compare.)
                    "diff": s.diff_lines() if s.approvable else [],
                    "duplicate_of": s.duplicate_of,
                    "runs_approved": s.runs_approved,
                }
                for s in self.held
            ],
            "data": str(self.locations.data),
            "store": self.store.stats(),
        }
