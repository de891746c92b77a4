"""The event log, joinable: the server side of ``nerve events --after ID --follow``.

A follower asks the running instance (over the control socket, command
``follow``) for the events after an id that match its type patterns. It gets
first the stored ones from the log, then the new ones as they are published,
pushed by the bus (no polling), each exactly once and in id order::

    -> {"v": 1, "id": 1, "cmd": "follow",
        "args": {"after": 41, "types": ["build.*"], "queue": 10000}}
    <- {"v": 1, "id": 1, "ok": true, "result": {"after": 41, "next": 57}}
    <- {"v": 1, "id": 1, "event": {"id": 42, "type": "build.done", ...}}
    <- {"v": 1, "id": 1, "gap": {"first": 60, "last": 99, "count": 12,
                                 "reason": "the follower fell behind"}}

``after`` omitted or null: from now on (``result.after`` says which id that
is, so the follower can resume exactly). Live events wait in a bounded queue
of the follower's own (``queue``, default :data:`DEFAULT_QUEUE`); the engine
never waits for a follower. When the queue is full, what the follower misses
is reported, once it reads again, as one ``gap`` line: the first and last id
missed and how many matching events that was. The events of a gap that the log
keeps can be read again with ``nerve events --after FIRST-1``. Nothing is ever
left out silently.

Privacy: key presses and clipboard contents (:data:`PRIVATE_TYPES`) are not
in the log unless ``store_private`` is on. A follower gets them only live and
only when it names them (``key.*``, ``key.down``, ``clipboard.changed``; ``*``
alone does not include them), and never from the log, so following ``*`` into
a file writes no key press to disk, and a resumed follow shows exactly what an
uninterrupted one would have, except for the private events published while
it was away (they are not kept anywhere). With ``store_private`` on they are
events like any other.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import suppress
from typing import Any

from nerve import masking
from nerve.bus import Bus, Subscription
from nerve.events import PRIVATE_TYPES, Event, TypePattern, valid_type
from nerve.ipc import IpcError
from nerve.storage import EventLogWriter, Store

DEFAULT_QUEUE = 10_000
MAX_QUEUE = 1_000_000
MAX_PATTERNS = 64
#: Events read from the log per query while catching up.
PAGE = 500
#: How long a follower waits for the log writer to catch up with the bus.
WRITER_WAIT_S = 2.0

FELL_BEHIND = "the follower fell behind"
LIVE_ONLY_MISSED = "live-only events (not stored) missed while catching up"
TOO_LARGE = "the event is too large to send (limit 1 MiB)"


def names_private(patterns: Iterable[str], type_: str) -> bool:
    """Whether one of ``patterns`` names the private ``type_`` (its family literally)."""
    family = type_.split(".", 1)[0]
    return any(p.split(".", 1)[0] == family and TypePattern([p]).matches(type_) for p in patterns)


class Filter:
    """Which event types a follower gets (see the module's docstring on privacy)."""

    def __init__(self, patterns: list[str], store_private: bool) -> None:
        self.pattern = TypePattern(patterns)
        self.private = {t for t in PRIVATE_TYPES if store_private or names_private(patterns, t)}

    def __call__(self, type_: str) -> bool:
        if type_ in PRIVATE_TYPES and type_ not in self.private:
            return False
        return self.pattern.matches(type_)


class _Gap:
    __slots__ = ("count", "first", "last")

    def __init__(self, event_id: int) -> None:
        self.first = self.last = event_id
        self.count = 1

    def add(self, event_id: int) -> None:
        self.first = min(self.first, event_id)
        self.last = max(self.last, event_id)
        self.count += 1

    def merge(self, other: _Gap | None) -> _Gap:
        if other is not None:
            self.first = min(self.first, other.first)
            self.last = max(self.last, other.last)
            self.count += other.count
        return self

    def message(self, reason: str) -> dict[str, Any]:
        return {
            "gap": {"first": self.first, "last": self.last, "count": self.count, "reason": reason}
        }


class GapSubscription(Subscription):
    """A subscription that, when its queue is full, remembers what it dropped.

    Dropped events are summed up in two gaps: ``stored`` (events the log keeps,
    which a follower still catching up reads from there) and ``live`` (private
    events that only ever existed live). The consumer takes them with
    :meth:`take_gaps` after each :meth:`drain`: everything dropped is newer than
    what was queued, so a gap goes after the batch it followed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accept: Callable[[str], bool] = lambda t: t not in PRIVATE_TYPES
        self.stored_private = False
        #: Events at or below this id were delivered already (from the log).
        self.floor = 0
        self._gap_lock = threading.Lock()
        self._stored: _Gap | None = None
        self._live: _Gap | None = None
        self.gaps = 0

    def _overflow(self, event: Event) -> None:
        live = event.type in PRIVATE_TYPES and not self.stored_private
        if (event.id <= self.floor and not live) or not self.accept(event.type):
            return  # (at or below the floor: the log gave it)
        with self._gap_lock:
            gap = self._live if live else self._stored
            if gap is None:
                if live:
                    self._live = _Gap(event.id)
                else:
                    self._stored = _Gap(event.id)
            else:
                gap.add(event.id)
            self.gaps += 1

    def take_gaps(self) -> tuple[_Gap | None, _Gap | None]:
        """(stored, live) gaps since the last call."""
        with self._gap_lock:
            taken = self._stored, self._live
            self._stored = self._live = None
        return taken

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        stats["gaps"] = self.gaps
        return stats


def _event_message(data: dict[str, Any]) -> dict[str, Any]:
    return {"event": data}


def _live(event: Event) -> dict[str, Any]:
    data = event.as_dict()
    if masking.active():  # secret input values: as the log has them
        data["data"] = masking.mask_value(data["data"])
    return data


class FollowStream:
    """One follower's stream (an :class:`nerve.ipc.Stream`)."""

    def __init__(
        self,
        bus: Bus,
        store: Store,
        writer: EventLogWriter | None,
        args: dict[str, Any],
    ) -> None:
        self.bus = bus
        self.store = store
        self.writer = writer
        self.patterns, self.after, self.queue = parse_args(args)
        self.filter = Filter(self.patterns, store.store_private)
        self._sub: GapSubscription | None = None
        self._ready: asyncio.Event | None = None
        self._boundary = 0

    async def open(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        ready = self._ready = asyncio.Event()

        def wake() -> None:
            with suppress(RuntimeError):  # the loop is closed: the stream is over
                loop.call_soon_threadsafe(ready.set)

        sub = self.bus.subscribe(
            list(self.patterns),
            wake=wake,
            name="follow",
            capacity=self.queue,
            kind=GapSubscription,
        )
        assert isinstance(sub, GapSubscription)
        sub.accept = self.filter
        sub.stored_private = self.store.store_private
        self._sub = sub
        # Events from here on are queued for us; the log has (or will have) those before.
        self._boundary = self.bus.next_id
        if self.after is None or self.after >= self._boundary:
            self.after = self._boundary - 1
        sub.floor = self.after
        return {"after": self.after, "next": self._boundary, "queue": self.queue}

    async def messages(self) -> AsyncIterator[list[dict[str, Any]]]:
        sub, ready = self._sub, self._ready
        assert sub is not None
        assert ready is not None
        assert self.after is not None
        loop = asyncio.get_running_loop()
        last = self.after
        # 1. From the log, until it holds everything the queue may have dropped.
        if last < self._boundary - 1:
            wait_for = self._boundary - 1
            while True:
                await self._writer_through(loop, wait_for)
                while True:
                    rows = await loop.run_in_executor(None, self._page, last)
                    batch = [_event_message(r) for r in rows if self.filter(r["type"])]
                    if rows:
                        last = max(last, rows[-1]["id"])
                        sub.floor = last
                    if batch:
                        yield batch
                    if len(rows) < PAGE:
                        break
                stored, live = sub.take_gaps()
                if live is not None:
                    yield [live.message(LIVE_ONLY_MISSED)]
                if stored is None or stored.last <= last:
                    break
                wait_for = stored.last  # dropped meanwhile: read them from the log too
        # 2. Live, as they are published. (Queued events the log already gave
        # are skipped; live-only ones never came from the log.)
        from_log = last
        live_only = self._live_only
        while True:
            ready.clear()
            batch_events = sub.drain()
            stored, live = sub.take_gaps()
            out: list[dict[str, Any]] = []
            if batch_events:
                batch_events.sort(key=lambda e: e.id)
                out.extend(
                    _event_message(_live(e))
                    for e in batch_events
                    if (e.id > from_log or live_only(e.type)) and self.filter(e.type)
                )
            gap = stored.merge(live) if stored is not None else live
            if gap is not None:
                out.append(gap.message(FELL_BEHIND))
            if out:
                yield out
            elif not batch_events:
                await ready.wait()

    def _live_only(self, type_: str) -> bool:
        return type_ in PRIVATE_TYPES and not self.store.store_private

    def _page(self, after: int) -> list[dict[str, Any]]:
        single = self.patterns[0] if len(self.patterns) == 1 else None
        return self.store.query_events(after_id=after, type_pattern=single, limit=PAGE)

    async def _writer_through(self, loop: asyncio.AbstractEventLoop, event_id: int) -> None:
        writer = self.writer
        if writer is not None:
            await loop.run_in_executor(None, writer.wait_through, event_id, WRITER_WAIT_S)

    def too_large(self, message: dict[str, Any]) -> dict[str, Any]:
        event = message.get("event")
        event_id = event.get("id", 0) if isinstance(event, dict) else 0
        return {"gap": {"first": event_id, "last": event_id, "count": 1, "reason": TOO_LARGE}}

    def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()


def parse_args(args: dict[str, Any]) -> tuple[list[str], int | None, int]:
    """Check a follow request's arguments: (patterns, after, queue size)."""
    types = args.get("types", ["*"])
    if isinstance(types, str):
        types = [types]
    if (
        not isinstance(types, list)
        or not types
        or len(types) > MAX_PATTERNS
        or not all(isinstance(t, str) and t for t in types)
    ):
        raise IpcError(f"'types' must be a list of 1 to {MAX_PATTERNS} event type patterns")
    for pattern in types:
        probe = pattern.replace("*", "x").replace("?", "x")
        if len(pattern) > 200 or not (valid_type(probe) or "[" in pattern):
            raise IpcError(f"not an event type pattern: {pattern!r}")
    after = args.get("after")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
        raise IpcError("'after' must be an event id (a whole number) or null")
    if after is not None and not 0 <= after < 2**63:
        raise IpcError("'after' is out of range")
    queue = args.get("queue", DEFAULT_QUEUE)
    if isinstance(queue, bool) or not isinstance(queue, int) or not 1 <= queue <= MAX_QUEUE:
        raise IpcError(f"'queue' must be a whole number from 1 to {MAX_QUEUE:,}")
    return list(types), after, queue
