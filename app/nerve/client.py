"""A small Python client for the running Nerve (the one ``nerve`` itself uses).

Follow the event log from any point, then live::

    from nerve import client

    for item in client.follow(["build.*", "webhook.*"], after=1200):
        if isinstance(item, client.Gap):
            print(f"missed {item.count} event(s), ids {item.first}..{item.last}")
        else:
            print(item["id"], item["type"], item["data"])

Each event is a dictionary (``id``, ``type``, ``time``, ``source``, ``data``,
``cause``, ``depth``), delivered once, in id order: first the stored events
after ``after`` (``None``: from now on), then new ones as they are published.
If the follower reads too slowly, it gets a :class:`Gap` naming the ids it
missed, never a silent hole. When Nerve stops or restarts, the follower
reconnects (with back-off) and goes on after the last id it gave out
(:attr:`Follower.last_id`), so nothing is lost and nothing repeats; key
presses and clipboard contents, which are live-only (see
:mod:`nerve.follow`), published while Nerve was away are not kept anywhere.

And talk to it::

    client.emit("build.done", {"project": "nerve"})   # -> the event's id
    client.status()                                     # -> what `nerve status` shows

Errors are :class:`nerve.ipc.IpcError` (:class:`nerve.ipc.NoInstance` when
Nerve is not running).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerve import ipc
from nerve.ipc import IpcError, NoInstance

#: Reconnection back-off: the first wait and the longest, in seconds.
BACKOFF = (0.05, 2.0)

Item = dict[str, Any]

#: Errors on opening a stream that mean "try again soon" rather than "no".
_TRANSIENT = (
    "Nerve is starting up",
    "Nerve closed",
    "connection to Nerve",
    "no reply",
    "timed out",
)


@dataclass(frozen=True)
class Gap:
    """Events the follower missed because it fell behind: ids ``first``..``last``,
    ``count`` of them matching its patterns. The stored ones can be read again
    with ``follow(after=first - 1)`` or ``nerve events --after FIRST-1``."""

    first: int
    last: int
    count: int
    reason: str


class Follower:
    """An iterator over events (dicts) and :class:`Gap` markers; see :func:`follow`."""

    def __init__(
        self,
        types: Iterable[str] = ("*",),
        after: int | None = None,
        *,
        reconnect: bool = True,
        queue: int | None = None,
        path: Path | None = None,
        backoff: tuple[float, float] = BACKOFF,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.types = [types] if isinstance(types, str) else list(types)
        #: The last id given out (or the point it started from); resume after it.
        self.last_id = after
        self.reconnect = reconnect
        self.queue = queue
        self.path = path
        self.backoff = backoff
        self.on_state = on_state
        self._closed = threading.Event()
        self._messages: ipc.StreamMessages | None = None
        self._first: ipc.StreamMessages | None = None

    def start(self) -> Follower:
        """Connect now (not at the first ``next()``), so that "from now on"
        means from this call; with ``reconnect``, a Nerve that is not running
        yet is waited for when iterating. Returns the follower."""
        if self._first is None:
            try:
                self._first = self._open()
            except NoInstance:
                if not self.reconnect:
                    raise
            except IpcError as exc:
                if not self.reconnect or not str(exc).startswith(_TRANSIENT):
                    raise
        return self

    def close(self) -> None:
        """Stop following (from any thread; a blocked iteration ends)."""
        self._closed.set()
        for messages in (self._messages, self._first):
            if messages is not None:
                messages.close()

    def _state(self, text: str) -> None:
        if self.on_state is not None:
            self.on_state(text)

    def _open(self) -> ipc.StreamMessages:
        args: dict[str, Any] = {"types": self.types, "after": self.last_id}
        if self.queue is not None:
            args["queue"] = self.queue
        result, messages = ipc.open_stream("follow", args, path=self.path)
        if self.last_id is None:
            self.last_id = int(result["after"])
        return messages

    def __iter__(self) -> Iterator[Item | Gap]:
        delay = self.backoff[0]
        connected_once = False
        while not self._closed.is_set():
            try:
                messages, self._first = self._first or self._open(), None
            except NoInstance:
                if not self.reconnect:
                    raise
                self._state("waiting for Nerve to start")
            except IpcError as exc:
                if not self.reconnect or not str(exc).startswith(_TRANSIENT):
                    raise
                self._state(f"reconnecting: {exc}")
            else:
                self._messages = messages
                if self._closed.is_set():
                    messages.close()
                    return
                delay = self.backoff[0]
                if connected_once:
                    self._state(f"reconnected; resuming after event {self.last_id}")
                connected_once = True
                try:
                    yield from self._items(messages)
                except IpcError as exc:
                    if not self.reconnect or self._closed.is_set():
                        raise
                    self._state(f"connection lost: {exc}")
                finally:
                    messages.close()
                if self._closed.is_set() or not self.reconnect:
                    return
                self._state("Nerve stopped; waiting for it to start again")
            if self._closed.wait(delay):
                return
            delay = min(delay * 2, self.backoff[1])

    def _items(self, messages: ipc.StreamMessages) -> Iterator[Item | Gap]:
        for message in messages:
            event = message.get("event")
            if isinstance(event, dict):
                event_id = event.get("id")
                if isinstance(event_id, int):
                    self.last_id = max(self.last_id or 0, event_id)
                yield event
                continue
            gap = message.get("gap")
            if isinstance(gap, dict):
                marker = Gap(
                    int(gap.get("first", 0)),
                    int(gap.get("last", 0)),
                    int(gap.get("count", 0)),
                    str(gap.get("reason", "")),
                )
                self.last_id = max(self.last_id or 0, marker.last)
                yield marker


def follow(
    types: str | Iterable[str] = ("*",),
    after: int | None = None,
    *,
    reconnect: bool = True,
    queue: int | None = None,
    path: Path | None = None,
    on_state: Callable[[str], None] | None = None,
) -> Follower:
    """Events whose type matches ``types`` (``build.*``), after the id ``after``
    (``None``: from now on), from the log and then live, as an iterator of
    dicts and :class:`Gap` markers.

    ``reconnect``: when Nerve is not running or stops, wait (with back-off)
    and resume after the last id given out (False: raise / end instead).
    ``queue``: how many live events may wait for this follower before it gets
    a gap (default 10,000). ``on_state`` is told, in words, when the follower
    waits or reconnects. It connects at once (so "from now on" is from this
    call); call :meth:`Follower.close` to stop, from any thread.
    """
    return Follower(
        [types] if isinstance(types, str) else types,
        after,
        reconnect=reconnect,
        queue=queue,
        path=path,
        on_state=on_state,
    ).start()


def emit(
    type_: str,
    data: Mapping[str, Any] | None = None,
    *,
    path: Path | None = None,
    timeout: float = 5.0,
) -> int:
    """Publish a custom event in the running Nerve; returns its id."""
    result = ipc.request(
        "emit", {"type": type_, "data": dict(data or {})}, path=path, timeout=timeout
    )
    return int(result["id"])


def status(*, path: Path | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """What ``nerve status`` shows, as a dictionary."""
    result: dict[str, Any] = ipc.request("status", path=path, timeout=timeout)
    return result


__all__ = ["Follower", "Gap", "IpcError", "NoInstance", "emit", "follow", "status"]
