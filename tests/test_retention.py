"""The event log stays within its row limit all the time (the writer trims it,
with a small documented slack), and the space retention frees goes back to the
file system: new databases use incremental auto-vacuum, old ones are rebuilt
once."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import wait_until
from nerve.bus import Bus
from nerve.events import Event
from nerve.storage import _MIGRATIONS, APPLICATION_ID, SCHEMA_VERSION, EventLogWriter, Store


def ev(i: int, size: int = 200) -> Event:
    return Event("t.x", {"blob": "x" * size, "i": i}, "test", i, 1000.0 + i, i)


def size_of(path: Path) -> int:
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))


def slack(limit: int) -> int:
    from nerve.storage import event_slack

    return event_slack(limit)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(
    limit=st.integers(1, 3000),
    batches=st.lists(st.integers(1, 2500), min_size=1, max_size=12),
)
def test_the_log_never_goes_over_its_limit_by_more_than_the_slack(
    tmp_path_factory: pytest.TempPathFactory, limit: int, batches: list[int]
) -> None:
    path = tmp_path_factory.mktemp("ret") / "n.db"
    with Store(path, max_events=limit) as store:
        i = 0
        for n in batches:
            store.append_events([ev(i + k, 10) for k in range(1, n + 1)])
            i += n
            count = store.stats()["events"]
            assert count <= limit + slack(limit), (count, limit)
            assert count == min(i, count)
        ids = [e["id"] for e in store.query_events(limit=None)]
        assert ids == list(range(i - len(ids) + 1, i + 1))  # the newest are kept


def test_slack_is_small() -> None:
    assert slack(200_000) == 1000
    assert slack(1000) == 10
    assert slack(10) == 10
    assert all(slack(n) <= max(10, n // 200) for n in range(1, 10**6, 997))


def test_the_batched_writer_keeps_a_live_log_within_its_limit(tmp_path: Path) -> None:
    """The reported case: 234,534 events kept against a 200,000 limit because
    only the hourly prune trimmed; here, scaled down, through the real writer."""
    limit = 2000
    store = Store(tmp_path / "n.db", max_events=limit)
    bus = Bus(100_000)
    writer = EventLogWriter(bus, store)
    writer.start()
    try:
        peak = 0
        for burst in range(10):
            for k in range(1500):
                bus.publish("t.x", {"i": k, "b": burst}, source="test")
            wait_until(lambda b=burst: writer.received >= (b + 1) * 1500, 20, "written")
            peak = max(peak, store.stats()["events"])
        assert peak <= limit + slack(limit)
        assert store.stats()["events"] >= limit
    finally:
        writer.stop()
        store.close()


def test_a_new_database_gives_space_back(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with Store(path, max_events=None, retention_days=None) as store:
        assert store._conn is not None
        assert store._conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        store.append_events([ev(i, 2000) for i in range(1, 5001)])
        store.prune()
        big = size_of(path)
        store.max_events = 100
        assert store.prune()["events"] == 4900
        small = size_of(path)
    assert small < big / 5, (small, big)
    assert size_of(path) < big / 5


def old_database(path: Path, events: int) -> None:
    """A database as Nerve made it before auto-vacuum (auto_vacuum NONE)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in _MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.executemany(
        "INSERT INTO events (id, type, time, source, data) VALUES (?, 't.x', ?, 't', ?)",
        [(i, 1000.0 + i, "y" * 2000) for i in range(1, events + 1)],
    )
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_an_old_database_is_rebuilt_once_and_then_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    old_database(path, 5000)
    big = size_of(path)
    with Store(path, max_events=None, retention_days=None) as store:
        assert store._conn is not None
        assert store._conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert store.stats()["events"] == 5000  # nothing lost in the rebuild
        store.max_events = 50
        store.prune()
    assert size_of(path) < big / 5
    with Store(path, retention_days=None) as again:  # (once: already incremental, no rebuild)
        assert again.stats()["events"] == 50


def test_over_the_limit_at_start_is_trimmed_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with Store(path, max_events=None, retention_days=None) as store:
        store.append_events([ev(i, 10) for i in range(1, 3001)])
    with Store(path, max_events=1000, retention_days=None) as store:
        store.append_events([ev(3001, 10)])
        assert store.stats()["events"] == 1000
