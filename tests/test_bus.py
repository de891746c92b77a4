"""The bus: ordering, patterns, bounded queues, isolation of subscribers."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import Recorder
from nerve.bus import Bus
from nerve.events import Event


def test_publish_assigns_ids_and_freezes_data() -> None:
    bus = Bus(first_id=41)
    sub = bus.subscribe("*", wake=lambda: None)
    data = {"path": "/tmp/x", "nested": {"a": [1, 2]}}
    event = bus.publish("file.created", data, source="test")
    data["path"] = "changed"
    assert event.id == 41
    assert event.data["path"] == "/tmp/x"
    with pytest.raises(TypeError):
        event.data["path"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        event.data["nested"]["a"] = 3  # type: ignore[index]
    assert event.as_dict()["data"] == {"path": "/tmp/x", "nested": {"a": [1, 2]}}
    assert sub.drain() == [event]
    assert bus.published == 1


def test_patterns_route_by_type() -> None:
    bus = Bus()
    files = bus.subscribe("file.*", wake=lambda: None)
    exact = bus.subscribe(["app.started", "x.y"], wake=lambda: None)
    everything = bus.subscribe("*", wake=lambda: None)
    for t in ("file.created", "file.moved", "app.started", "x.y", "filex"):
        bus.publish(t)
    assert [e.type for e in files.drain()] == ["file.created", "file.moved"]
    assert [e.type for e in exact.drain()] == ["app.started", "x.y"]
    assert len(everything.drain()) == 5


def test_wake_once_per_batch() -> None:
    bus = Bus()
    wakes = []
    sub = bus.subscribe("*", wake=lambda: wakes.append(1))
    for _ in range(100):
        bus.publish("a.b")
    assert len(wakes) == 1
    assert len(sub.drain()) == 100
    bus.publish("a.b")
    assert len(wakes) == 2


def test_full_queue_drops_and_counts_without_blocking() -> None:
    bus = Bus(capacity=10)
    sub = bus.subscribe("*", wake=lambda: None)
    for i in range(25):
        bus.publish("a.b", {"i": i})
    assert sub.queued == 10
    assert sub.dropped["a.b"] == 15
    assert bus.stats()["dropped"] == {"a.b": 15}
    # The oldest are kept: nothing that was accepted is lost.
    assert [e.data["i"] for e in sub.drain()] == list(range(10))


def test_full_queue_coalesces_mouse_moves_and_file_modified_per_path() -> None:
    bus = Bus(capacity=3)
    sub = bus.subscribe("*", wake=lambda: None)
    bus.publish("file.modified", {"path": "/a"})
    bus.publish("file.modified", {"path": "/b"})
    bus.publish("mouse.move", {"x": 1, "y": 1})
    bus.publish("mouse.move", {"x": 2, "y": 2})  # replaces the queued move (newest wins)
    bus.publish("file.modified", {"path": "/a"})  # one for /a is waiting already
    bus.publish("file.modified", {"path": "/c"})  # new path: dropped
    assert sub.coalesced == 2
    assert sub.dropped == {"file.modified": 1}
    events = sub.drain()
    assert [e.data.get("path") for e in events[:2]] == ["/a", "/b"]
    assert events[2].data == {"x": 2, "y": 2}


def test_slow_subscriber_does_not_stall_others_or_the_producer() -> None:
    bus = Bus(capacity=50)
    release = threading.Event()

    def slow(batch: list[Event]) -> None:
        release.wait(10)

    slow_sub = bus.subscribe("*", slow, name="slow")
    fast = Recorder(bus)
    start = time.monotonic()
    for i in range(1000):
        bus.publish("a.b", {"i": i})
    publish_time = time.monotonic() - start
    fast.wait("a.b", count=50)
    assert slow_sub.dropped["a.b"] > 0  # the slow one lost events, counted
    release.set()
    slow_sub.close()
    fast.close()
    # Publishing 1000 events never waited for the blocked subscriber.
    assert publish_time < 5


def test_failing_subscriber_is_isolated() -> None:
    bus = Bus()
    calls = []

    def broken(batch: list[Event]) -> None:
        calls.append(len(batch))
        raise RuntimeError("boom")

    sub = bus.subscribe("*", broken, name="broken")
    rec = Recorder(bus)
    bus.publish("a.b")
    rec.wait("a.b")
    bus.publish("a.c")
    rec.wait("a.c")
    sub.close()
    rec.close()
    assert sum(calls) >= 1


def test_unsubscribe_stops_delivery_and_thread() -> None:
    bus = Bus()
    rec = Recorder(bus, "a.*")
    bus.publish("a.one")
    rec.wait("a.one")
    rec.close()
    bus.publish("a.two")
    assert rec.of("a.two") == []
    assert not any(t.name == "bus-test-recorder" and t.is_alive() for t in threading.enumerate())


def test_concurrent_producers_lose_nothing_below_capacity() -> None:
    bus = Bus(capacity=100_000)
    rec = Recorder(bus)
    per_thread = 5000

    def produce(n: int) -> None:
        for i in range(per_thread):
            bus.publish("p.x", {"t": n, "i": i})

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = rec.wait("p.x", count=4 * per_thread)
    rec.close()
    assert len({e.id for e in events}) == 4 * per_thread
    for n in range(4):
        mine = [e.data["i"] for e in events if e.data["t"] == n]
        assert mine == list(range(per_thread))  # per-producer order is kept


def test_linger_gathers_a_batch() -> None:
    bus = Bus()
    batches: list[list[Event]] = []
    got = threading.Event()

    def on_batch(batch: list[Event]) -> None:
        batches.append(batch)
        got.set()

    sub = bus.subscribe("*", on_batch, name="lingering", linger=0.5)
    bus.publish("a.one")
    bus.publish("a.two")  # arrives while the subscriber lingers
    assert got.wait(5)
    sub.close()
    assert [e.type for e in batches[0]] == ["a.one", "a.two"]


def test_close_does_not_wait_out_the_linger() -> None:
    bus = Bus()
    sub = bus.subscribe("*", lambda batch: None, name="lingering", linger=30)
    bus.publish("a.one")
    start = time.monotonic()
    sub.close()
    assert time.monotonic() - start < 5


def test_a_drop_watcher_is_told_once_until_it_looked() -> None:
    bus = Bus()
    calls: list[int] = []
    bus.on_drop = lambda: calls.append(1)
    slow = bus.subscribe("*", wake=lambda: None, name="slow", capacity=1)
    bus.publish("x.a")
    assert calls == []
    bus.publish("x.b")  # dropped
    bus.publish("x.c")  # dropped too: the watcher has not looked yet
    assert calls == [1]
    bus.drop_seen()
    bus.publish("x.d")
    assert calls == [1, 1]
    assert slow.dropped == {"x.b": 1, "x.c": 1, "x.d": 1}
    slow.close()
