"""Starting listeners on demand, and keeping them alive.

The engine says what its loaded rules need (``{listener id: [needs]}``); the
manager's supervisor thread starts what is needed, reconfigures what changed,
stops what is no longer needed, and restarts a failed listener with an
exponential backoff. A listener that the platform cannot offer is reported
with its reason and the rest of Nerve keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nerve.bus import Bus
from nerve.listeners.base import Listener, ListenerRegistry, ListenerUnavailable, Need, listeners

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
#: A listener that ran this long before failing starts over with the first backoff.
STABLE_S = 30.0


@dataclass
class ListenerState:
    """What ``nerve status`` shows about one listener."""

    id: str
    state: str = "stopped"  # running | stopped | failed | unavailable | starting
    detail: str = ""
    error: str | None = None
    restarts: int = 0
    since: float = 0.0
    retry_at: float | None = None
    instance: Listener | None = None
    needs: tuple[Need, ...] = ()
    backoff: float = field(default_factory=lambda: BACKOFF_FIRST_S)

    def as_dict(self) -> dict[str, Any]:
        detail = self.detail
        if self.instance is not None and self.state == "running":
            try:
                detail = self.instance.detail() or detail
            except Exception:  # a status line must never fail
                detail = ""
        return {
            "id": self.id,
            "state": self.state,
            "detail": detail,
            "error": self.error,
            "restarts": self.restarts,
            "since": self.since,
            "retry_in": round(self.retry_at - time.monotonic(), 1) if self.retry_at else None,
        }


class ListenerManager:
    """Owns the listener instances; all changes happen on its supervisor thread."""

    def __init__(self, bus: Bus, registry: ListenerRegistry = listeners) -> None:
        self.bus = bus
        self.registry = registry
        self._states: dict[str, ListenerState] = {}
        self._wanted: dict[str, tuple[Need, ...]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: Called (on the supervisor's thread) after listeners may have started,
        #: stopped, failed or been reconfigured: what ``status()`` says may differ.
        self.on_change: Callable[[], None] | None = None

    # -------------------------------------------------------------- requests

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="listeners", daemon=True)
        self._thread.start()

    def update(self, needs: Mapping[str, Sequence[Need]]) -> None:
        """The listeners wanted now and what each must cover (thread-safe, returns at once)."""
        wanted = {lid: tuple(dict.fromkeys(n)) for lid, n in needs.items()}
        with self._lock:
            self._wanted = wanted
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every listener and the supervisor."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.as_dict() for s in self._states.values()]

    def running(self) -> list[str]:
        with self._lock:
            return [lid for lid, s in self._states.items() if s.state == "running"]

    # ------------------------------------------------------------ supervisor

    def _on_failure(self, listener: Listener, exc: BaseException) -> None:
        with self._lock:
            state = self._states.get(listener.id)
            if state is None or state.instance is not listener:
                return  # a stale report from an instance already replaced
            ran_for = time.time() - state.since
            state.state = "failed"
            state.error = str(exc) or type(exc).__name__
            state.since = time.time()
            if ran_for >= STABLE_S:
                state.backoff = BACKOFF_FIRST_S  # it had been working: retry soon
            self._schedule_retry(state)
        log.warning("listener %s failed: %s", listener.id, exc)
        self._changed()
        self._wake.set()

    def _changed(self) -> None:
        notify = self.on_change
        if notify is not None:
            try:
                notify()
            except Exception:
                log.exception("a listener status watcher failed")

    def _supervise(self) -> None:
        while True:
            timeout = self._next_retry()
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping:
                self._stop_all()
                return
            try:
                self._reconcile()
            except Exception:
                log.exception("listener supervisor failed; trying again")
            self._changed()

    def _next_retry(self) -> float | None:
        with self._lock:
            times = [s.retry_at for s in self._states.values() if s.retry_at is not None]
        if not times:
            return None
        return max(0.0, min(times) - time.monotonic())

    def _reconcile(self) -> None:
        with self._lock:
            wanted = dict(self._wanted)
        now = time.monotonic()
        for lid in list(self._states):
            if lid not in wanted:
                self._stop(lid)
        for lid, needs in wanted.items():
            with self._lock:  # status() reads the states from other threads
                state = self._states.get(lid)
                if state is None:
                    state = self._states[lid] = ListenerState(lid)
            if state.state == "running" and state.needs != needs:
                self._reconfigure(state, needs)
            elif state.state in ("stopped", "failed") and (
                state.retry_at is None or state.retry_at <= now
            ):
                if state.state == "failed":
                    state.restarts += 1
                self._start(state, needs)
            elif state.state == "unavailable" and state.needs != needs:
                self._start(state, needs)  # new needs: try once more

    def _start(self, state: ListenerState, needs: tuple[Need, ...]) -> None:
        cls = self.registry.get(state.id)
        state.needs = needs
        if cls is None:
            self._set(state, "unavailable", error=f"no listener {state.id!r} in this version")
            return
        if state.instance is not None:
            self._safe_stop(state.instance)
            state.instance = None
        instance = cls(self.bus, self._on_failure)
        state.instance = instance
        state.state = "starting"
        try:
            instance.start(needs)
        except ListenerUnavailable as exc:
            self._safe_stop(instance)
            state.instance = None
            self._set(state, "unavailable", error=str(exc))
            log.warning("listener %s is unavailable: %s", state.id, exc)
            return
        except Exception as exc:
            self._safe_stop(instance)
            state.instance = None
            self._failed_start(state, exc)
            return
        with self._lock:
            if state.state == "starting":  # not failed meanwhile
                state.state = "running"
                state.error = None
                state.retry_at = None
                state.since = time.time()
        if state.state == "running":
            log.info("listener %s started%s", state.id, _suffix(instance))

    def _failed_start(self, state: ListenerState, exc: BaseException) -> None:
        log.warning("listener %s could not start: %s", state.id, exc)
        self._set(state, "failed", error=str(exc) or type(exc).__name__)
        with self._lock:
            self._schedule_retry(state)

    def _schedule_retry(self, state: ListenerState) -> None:
        """Call with the lock held."""
        state.retry_at = time.monotonic() + state.backoff
        state.backoff = min(state.backoff * 2, BACKOFF_MAX_S)

    def _reconfigure(self, state: ListenerState, needs: tuple[Need, ...]) -> None:
        assert state.instance is not None
        state.needs = needs
        try:
            state.instance.reconfigure(needs)
        except ListenerUnavailable as exc:
            self._safe_stop(state.instance)
            state.instance = None
            self._set(state, "unavailable", error=str(exc))
        except Exception as exc:
            self._safe_stop(state.instance)
            state.instance = None
            self._failed_start(state, exc)

    def _stop(self, lid: str) -> None:
        with self._lock:
            state = self._states.pop(lid)
        if state.instance is not None:
            self._safe_stop(state.instance)
            log.info("listener %s stopped (no rule needs it)", lid)

    def _stop_all(self) -> None:
        for lid in list(self._states):
            self._stop(lid)

    def _safe_stop(self, instance: Listener) -> None:
        try:
            instance.stop()
        except Exception:
            log.exception("listener %s failed to stop", instance.id)

    def _set(self, state: ListenerState, name: str, *, error: str | None = None) -> None:
        with self._lock:
            state.state = name
            state.error = error
            state.since = time.time()
            if name != "failed":
                state.retry_at = None

    def __repr__(self) -> str:
        return f"ListenerManager({self.running()})"


def _suffix(instance: Listener) -> str:
    try:
        detail = instance.detail()
    except Exception:
        return ""
    return f" ({detail})" if detail else ""
