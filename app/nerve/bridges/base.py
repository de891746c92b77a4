"""The small interface every bridge implements.

A bridge lives on the engine's asyncio loop: :meth:`Bridge.start` and
:meth:`Bridge.stop` are coroutines awaited there, and everything it reads
(sockets, broker connections) is read on that loop. A bridge never ends Nerve:
a failure to start is kept as its ``last_error`` and shown by ``nerve status``.

``status()`` is called from other threads (the control socket's workers) and
returns a JSON-ready dictionary with at least::

    {"name": "webhook", "state": "listening", "address": "127.0.0.1:8765",
     "counts": {"accepted": 3, "refused": 1}, "last_error": null}

``state`` is one of :class:`BridgeState`'s values; a bridge may add keys of
its own (``queue``, ``detail``; the MQTT bridge's ``broker``, ``sent``...).

A bridge whose network runs on a thread of its own (MQTT: paho's loop blocks)
starts that thread in ``start`` and, in ``stop``, waits for it off the loop
(``asyncio.to_thread``), so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

#: How long starting or stopping one bridge may take before it is given up.
START_TIMEOUT_S = 10.0
_ERROR_LIMIT = 500


class BridgeState:
    """The states a bridge reports (plain strings, for JSON)."""

    STOPPED = "stopped"
    STARTING = "starting"
    LISTENING = "listening"  # an endpoint that accepts connections
    CONNECTING = "connecting"  # a client, before its first connection
    CONNECTED = "connected"  # a client of a broker or server
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth failed"  # the server refused the credentials (tried again slowly)
    FAILED = "failed"


class Bridge(ABC):
    """A bridge between the bus and the outside: started and stopped on the engine loop."""

    #: Short, unique, lower-case: ``webhook``, ``mqtt``.
    name: str = "bridge"

    def __init__(self) -> None:
        #: Called (on the bridge's thread; it must only hand over) when the
        #: state or the last error changes: the window's status bar listens.
        self.on_change: Callable[[], None] | None = None
        self._state = BridgeState.STOPPED
        self.address: str | None = None
        self.counts: Counter[str] = Counter()
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """One of :class:`BridgeState`'s values."""
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        changed = value != self._state
        self._state = value
        if changed:
            self._changed()

    def _changed(self) -> None:
        notify = self.on_change
        if notify is not None:
            try:
                notify()
            except Exception:
                log.exception("%s: a status watcher failed", self.name)

    @abstractmethod
    async def start(self) -> None:
        """Start (on the engine loop). Raise to report a failure to start."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop and release everything; safe to call when not started."""

    def count(self, what: str, n: int = 1) -> None:
        """Add to one of the counters ``status()`` shows."""
        with self._lock:
            self.counts[what] += n

    def error(self, message: str) -> None:
        """Remember ``message`` (no secrets in it) as the last error."""
        if len(message) > _ERROR_LIMIT:
            message = message[: _ERROR_LIMIT - 3] + "..."
        with self._lock:
            self.last_error = message
            self.last_error_time = time.time()
        self._changed()

    def status(self) -> dict[str, Any]:
        """State, address, counters and the last error (JSON-ready; any thread)."""
        with self._lock:
            return {
                "name": self.name,
                "state": self.state,
                "address": self.address,
                "counts": dict(self.counts),
                "last_error": self.last_error,
                "last_error_time": self.last_error_time,
            }


async def _start_one(bridge: Bridge) -> None:
    bridge.state = BridgeState.STARTING
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await bridge.start()
    except Exception as exc:
        bridge.state = BridgeState.FAILED
        bridge.error(f"could not start: {exc or type(exc).__name__}")
        log.error("%s: could not start: %s", bridge.name, exc or type(exc).__name__)


async def _stop_one(bridge: Bridge) -> None:
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await bridge.stop()
    except Exception as exc:
        log.warning("%s: did not stop cleanly: %s", bridge.name, exc or type(exc).__name__)
    bridge.state = BridgeState.STOPPED


def start_all(loop: asyncio.AbstractEventLoop, bridges: Iterable[Bridge]) -> None:
    """Start ``bridges`` on ``loop`` (from another thread); failures are kept, not raised."""
    for bridge in bridges:
        future = asyncio.run_coroutine_threadsafe(_start_one(bridge), loop)
        future.result(START_TIMEOUT_S + 1)


def stop_all(loop: asyncio.AbstractEventLoop, bridges: Iterable[Bridge]) -> None:
    """Stop ``bridges`` on ``loop`` (from another thread)."""
    for bridge in bridges:
        if loop.is_closed():
            return
        try:
            future = asyncio.run_coroutine_threadsafe(_stop_one(bridge), loop)
            future.result(START_TIMEOUT_S + 1)
        except (RuntimeError, TimeoutError) as exc:
            log.warning("%s: not stopped: %s", bridge.name, exc)
