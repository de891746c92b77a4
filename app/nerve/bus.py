"""The local event bus.

Producers (listener threads, the engine, the IPC server, bridges) call
:meth:`Bus.publish`; it never blocks beyond a short lock and never waits for a
consumer. Each subscriber has a bounded queue of its own, so a slow consumer
(the log, the GUI, a bridge) cannot stall the engine or the others. A
subscriber is woken once per batch, not once per event.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from nerve.causes import Causes
from nerve.events import SCALAR_TYPES, Event, JSONValue, TypePattern, freeze, valid_type

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 10_000
_WARN_INTERVAL_S = 10.0

_new_event = tuple.__new__  # Event is a NamedTuple: skip its argument parsing
_now = time.time
_mono_ns = time.monotonic_ns
_EMPTY = freeze(None)

BatchCallback = Callable[[list[Event]], None]

#: Event types that may be merged when a queue is full, and the data field
#: that tells two of them apart (None: any two are alike).
COALESCE_KEYS: dict[str, str | None] = {"mouse.move": None, "file.modified": "path"}
_COALESCE_LOOKBACK = 16


class Subscription:
    """One consumer's view of the bus: a bounded queue and a way to be woken.

    Either the bus delivers batches to ``callback`` on a thread of the
    subscription's own (``wake`` not given), or ``wake()`` is called from the
    producer's thread whenever the queue turns non-empty and the consumer calls
    :meth:`drain` where it likes (an asyncio loop, the Qt thread). With
    ``linger``, a delivery thread waits that long after being woken before it
    drains (larger batches for consumers that need no hurry, such as the log).
    """

    def __init__(
        self,
        bus: Bus,
        patterns: Iterable[str],
        *,
        name: str,
        capacity: int,
        callback: BatchCallback | None,
        wake: Callable[[], None] | None,
        linger: float = 0.0,
    ) -> None:
        self.name = name
        self.pattern = TypePattern(patterns)
        self.capacity = capacity
        self.dropped: Counter[str] = Counter()
        self.coalesced = 0
        self.delivered = 0
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._scheduled = False
        self._closed = False
        self._callback = callback
        self._thread: threading.Thread | None = None
        self._signal = threading.Event()
        self._closing = threading.Event()
        self.linger = linger
        if wake is None:
            if callback is None:
                raise ValueError("a subscription needs a callback or a wake function")
            self._wake: Callable[[], None] = self._signal.set
            self._thread = threading.Thread(
                target=self._deliver_loop, name=f"bus-{name}", daemon=True
            )
            self._thread.start()
        else:
            self._wake = wake

    def _overflow(self, event: Event) -> None:
        """The queue is full: merge ``event`` into an equivalent one, or drop it."""
        if event.type in COALESCE_KEYS:
            key_field = COALESCE_KEYS[event.type]
            queue = self._queue
            key = event.data.get(key_field) if key_field else None
            # Look at the newest few only: bounded work even during a storm.
            for i in range(1, min(len(queue), _COALESCE_LOOKBACK) + 1):
                queued = queue[-i]
                if queued.type == event.type and (
                    not key_field or queued.data.get(key_field) == key
                ):
                    if i == 1:
                        queue[-1] = event  # keep the newest (a mouse drag)
                    self.coalesced += 1
                    return
        self.dropped[event.type] += 1
        self._bus._note_drop(self, event.type)

    def drain(self) -> list[Event]:
        """Take every queued event, oldest first.

        Lock-free against producers: appending to and popping from a deque are
        atomic, and the flag is cleared before popping so a producer that
        appends meanwhile either lands in this batch or wakes us again.
        """
        self._scheduled = False
        queue = self._queue
        # popleft() len(queue) times, looped in C (no Python frame per event).
        batch = list(itertools.starmap(queue.popleft, itertools.repeat((), len(queue))))
        self.delivered += len(batch)
        return batch

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _deliver_loop(self) -> None:
        assert self._callback is not None
        while True:
            self._signal.wait()
            if self.linger and not self._closed:
                # Gather a larger batch, and keep out of the way (and of the
                # GIL) of the engine while it handles the event that woke us.
                self._closing.wait(self.linger)
            self._signal.clear()
            batch = self.drain()
            if batch:
                try:
                    self._callback(batch)
                except Exception:
                    log.exception("subscriber %r failed on a batch of %d", self.name, len(batch))
            if self._closed:
                return

    def close(self) -> None:
        """Unsubscribe; a delivery thread finishes its batch and ends."""
        if self._closed:
            return
        self._closed = True
        self._bus._remove(self)
        self._closing.set()
        self._signal.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def stats(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "queued": len(self._queue),
            "delivered": self.delivered,
            "dropped": dict(self.dropped),
            "coalesced": self.coalesced,
        }


class Bus:
    """Bounded publish/subscribe with per-subscriber queues."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, first_id: int = 1) -> None:
        """``first_id`` lets ids continue across restarts (the log passes its next id)."""
        self.capacity = capacity
        #: What rule runs did outside (programs, files), so the events that come
        #: back from there carry their cause (see :mod:`nerve.causes`).
        self.causes = Causes()
        self._first_id = first_id
        self._lock = threading.Lock()
        self._ids = itertools.count(first_id)
        self._subs: list[Subscription] = []
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._last_warn = 0.0
        self._drops_since_warn = 0
        #: Called (on the dropping producer's thread; it must only hand over)
        #: when an event is dropped, then not again until :meth:`drop_seen`.
        self.on_drop: Callable[[], None] | None = None
        self._drop_pending = False

    def publish(
        self,
        type_: str,
        data: Mapping[str, JSONValue] | None = None,
        *,
        source: str = "",
        cause: str | None = None,
        depth: int = 0,
    ) -> Event:
        """Publish an event and return it (with its id). Never blocks on consumers.

        Raises ValueError for a type that is not a valid event type
        (:func:`nerve.events.valid_type`): no such event ever reaches a
        subscriber, whoever tries to publish it."""
        # This is the hottest path in Nerve: no lock (CPython's deque and
        # itertools.count are atomic), and both freeze()'s common case (flat
        # data of scalars: one shallow copy) and the subscriber's offer inlined.
        subs = self._routes.get(type_)
        if subs is None:
            subs = self._route(type_)  # (checks the type: routes hold valid types only)
        frozen: Mapping[str, JSONValue] = _EMPTY
        if data:
            copy = data.copy() if type(data) is dict else dict(data)
            for value in copy.values():
                if type(value) not in SCALAR_TYPES:
                    frozen = freeze(data)
                    break
            else:
                frozen = MappingProxyType(copy)
        event = _new_event(
            Event,
            (
                type_,
                frozen,
                source,
                next(self._ids),
                _now(),
                _mono_ns(),
                cause,
                depth,
            ),
        )
        for sub in subs:
            queue = sub._queue
            if len(queue) < sub.capacity:
                queue.append(event)
                if not sub._scheduled:
                    sub._scheduled = True
                    sub._wake()
            else:
                sub._overflow(event)
        return event

    def subscribe(
        self,
        patterns: str | Iterable[str],
        callback: BatchCallback | None = None,
        *,
        wake: Callable[[], None] | None = None,
        name: str = "",
        capacity: int | None = None,
        linger: float = 0.0,
        kind: type[Subscription] | None = None,
    ) -> Subscription:
        """Receive events whose type matches one of ``patterns`` (``*``, ``file.*``).

        With ``callback`` only, batches arrive on a thread the subscription
        owns. With ``wake``, it is called (on the producer's thread, so it must
        be quick) when events are waiting, and the consumer calls ``drain()``.
        ``kind``: a subclass of :class:`Subscription` to make (one that handles
        a full queue its own way, say).
        """
        if isinstance(patterns, str):
            patterns = [patterns]
        sub = (kind or Subscription)(
            self,
            patterns,
            name=name or getattr(callback, "__qualname__", "subscriber"),
            capacity=capacity or self.capacity,
            linger=linger,
            callback=callback,
            wake=wake,
        )
        with self._lock:
            self._subs.append(sub)
            self._routes = {}
        return sub

    def _route(self, type_: str) -> tuple[Subscription, ...]:
        if not valid_type(type_):
            raise ValueError(f"not an event type: {type_!r}")
        with self._lock:
            subs = tuple(s for s in self._subs if s.pattern.matches(type_))
            if len(self._routes) < 8192:
                self._routes[type_] = subs
        return subs

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            self._routes = {}

    def drop_seen(self) -> None:
        """The drop watcher looked: the next drop calls ``on_drop`` again."""
        self._drop_pending = False

    def _note_drop(self, sub: Subscription, type_: str) -> None:
        notify = self.on_drop
        if notify is not None and not self._drop_pending:
            self._drop_pending = True
            try:
                notify()
            except Exception:
                log.exception("a drop watcher failed")
        self._drops_since_warn += 1
        now = time.monotonic()
        if now - self._last_warn >= _WARN_INTERVAL_S:
            log.warning(
                "event queue of %r is full: dropped %d event(s) (latest %s) in the last %.0fs",
                sub.name,
                self._drops_since_warn,
                type_,
                now - self._last_warn if self._last_warn else 0,
            )
            self._last_warn = now
            self._drops_since_warn = 0

    @property
    def next_id(self) -> int:
        """The id the next published event will get."""
        return int(repr(self._ids)[6:-1])

    @property
    def published(self) -> int:
        """How many events were published so far."""
        # count() has no peek; its repr carries the next value.
        return int(repr(self._ids)[6:-1]) - self._first_id

    def stats(self) -> dict[str, JSONValue]:
        """Counters for ``nerve status`` and the GUI status bar."""
        with self._lock:
            subs = list(self._subs)
        dropped: Counter[str] = Counter()
        for s in subs:
            dropped.update(s.dropped)
        return {
            "published": self.published,
            "dropped": dict(dropped),
            "coalesced": sum(s.coalesced for s in subs),
            "subscribers": [s.stats() for s in subs],
        }
