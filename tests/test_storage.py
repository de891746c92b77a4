"""Tests for nerve.storage: the SQLite event log, run history and variables."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerve.bus import Bus
from nerve.events import Event, freeze
from nerve.storage import SCHEMA_VERSION, EventLogWriter, StorageError, Store

DAY = 86_400.0


def ev(id_: int, type_: str = "file.created", t: float = 1000.0, **data: Any) -> Event:
    return Event(type=type_, data=freeze(data), source="test", id=id_, time=t)


def run_record(
    run_id: str, rule_id: str = "r1", started: float = 1000.0, **kw: Any
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": run_id,
        "rule_id": rule_id,
        "pack_id": "pack",
        "event_id": 1,
        "started": started,
        "ended": started + 0.5,
        "status": "ok",
        "error": None,
        "trace": {"conditions": [{"kind": "window", "ok": True}], "actions": []},
    }
    rec.update(kw)
    return rec


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "nerve.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


# -- events -------------------------------------------------------------------


def test_event_round_trip(store: Store) -> None:
    events = [
        Event(
            type="file.moved",
            data=freeze({"path": "/a", "dest_path": "/b", "tags": ["x", "y"], "n": {"k": 1}}),
            source="files",
            id=7,
            time=1234.5,
            cause="run-1",
            depth=2,
        ),
        ev(8, "app.started"),
    ]
    assert store.append_events(events) == 2
    got = store.query_events()
    assert got == [e.as_dict() for e in events]
    assert got[0]["data"]["tags"] == ["x", "y"]


def test_event_without_id_gets_one(store: Store) -> None:
    store.append_events([ev(5)])
    assert store.append_events([Event("custom.thing", time=1.0)]) == 1
    assert [e["id"] for e in store.query_events()] == [5, 6]


def test_duplicate_ids_do_not_rewrite_history(store: Store) -> None:
    store.append_events([ev(1, x="first")])
    assert store.append_events([ev(1, x="second"), ev(2)]) == 1
    assert store.query_events()[0]["data"] == {"x": "first"}


def test_private_types_not_stored_by_default(store: Store) -> None:
    batch = [
        ev(1, "key.down", key="a"),
        ev(2, "key.up", key="a"),
        ev(3, "clipboard.changed", mime="text/plain", text="secret"),
        ev(4, "hotkey", combo="ctrl+alt+t"),
    ]
    assert store.append_events(batch) == 1
    assert [e["type"] for e in store.query_events()] == ["hotkey"]
    # Skipped ids still count: the bus must not hand them out again.
    assert store.next_event_id() == 5


def test_private_types_stored_when_enabled(db_path: Path) -> None:
    with Store(db_path, store_private=True) as s:
        s.append_events(
            [ev(1, "key.down", key="a"), ev(2, "clipboard.changed", mime="text/plain", text="t")]
        )
        got = s.query_events()
    assert [e["type"] for e in got] == ["key.down", "clipboard.changed"]
    assert got[1]["data"]["text"] == "t"


def test_query_filters(store: Store) -> None:
    store.append_events(
        [
            ev(1, "file.created", t=100.0),
            ev(2, "process.started", t=200.0),
            ev(3, "file.deleted", t=300.0),
            ev(4, "file.modified", t=400.0),
            ev(5, "filex", t=500.0),
        ]
    )

    def ids(**kw: Any) -> list[int]:
        return [e["id"] for e in store.query_events(**kw)]

    assert ids(type_pattern="file.*") == [1, 3, 4]
    assert ids(type_pattern="process.started") == [2]
    assert ids(type_pattern="*") == [1, 2, 3, 4, 5]
    assert ids(type_pattern="file.[!c]*") == [3, 4]
    assert ids(type_pattern="nothing") == []
    assert ids(since=300.0) == [3, 4, 5]
    assert ids(after_id=3) == [4, 5]
    assert ids(limit=2) == [1, 2]
    assert ids(limit=2, newest_first=True) == [5, 4]
    assert ids(limit=None) == [1, 2, 3, 4, 5]
    assert ids(type_pattern="file.*", since=150.0, after_id=3) == [4]


def test_next_event_id_across_reopen(db_path: Path) -> None:
    with Store(db_path) as s:
        assert s.next_event_id() == 1
        s.append_events([ev(41), ev(42)])
        assert s.next_event_id() == 43
    with Store(db_path) as s:
        assert s.next_event_id() == 43
        bus = Bus(first_id=s.next_event_id())
        assert bus.publish("x.y").id == 43


def test_next_event_id_survives_pruning_everything(db_path: Path) -> None:
    with Store(db_path, retention_days=1) as s:
        s.append_events([ev(10, t=0.0)])
        assert s.prune(now=10 * DAY)["events"] == 1
        assert s.next_event_id() == 11


# -- runs ---------------------------------------------------------------------


def test_runs_round_trip_and_prefix(store: Store) -> None:
    a, b = "abc11111-0000", "abc22222-0000"
    store.record_run(run_record(a, started=1000.0))
    store.record_run(run_record(b, rule_id="r2", started=2000.0, status="failed", error="boom"))

    got = store.get_run(a)
    assert got == run_record(a, started=1000.0)
    assert store.get_run("abc2")["error"] == "boom"  # type: ignore[index]
    assert store.get_run("zzz") is None
    assert store.get_run("") is None
    with pytest.raises(ValueError, match="ambiguous"):
        store.get_run("abc")

    # Insert or replace by id.
    store.record_run(run_record(a, started=1000.0, status="cancelled"))
    assert store.get_run(a)["status"] == "cancelled"  # type: ignore[index]

    assert [r["id"] for r in store.query_runs()] == [b, a]  # newest first
    assert [r["id"] for r in store.query_runs(rule_id="r1")] == [a]
    assert [r["id"] for r in store.query_runs(status="failed")] == [b]
    assert [r["id"] for r in store.query_runs(since=1500.0)] == [b]
    assert [r["id"] for r in store.query_runs(limit=1)] == [b]


def test_run_minimal_and_odd_values(store: Store) -> None:
    run_id = str(uuid.uuid4())
    store.record_run(
        {
            "id": run_id,
            "rule_id": "r",
            "started": 5.0,
            "status": "ok",
            "trace": {"path": Path("/tmp/x"), "frozen": freeze({"a": [1, 2]})},
        }
    )
    got = store.get_run(run_id[:8])
    assert got is not None
    assert got["pack_id"] == ""
    assert got["ended"] is None
    assert got["trace"] == {"path": "/tmp/x", "frozen": {"a": [1, 2]}}
    with pytest.raises(ValueError, match="rule_id"):
        store.record_run({"id": "x", "started": 1.0, "status": "ok"})


# -- variables ----------------------------------------------------------------


def test_variables_persist_across_reopen(db_path: Path) -> None:
    with Store(db_path) as s:
        s.set_variable("count", 3)
        s.set_variable("mode", "work")
        s.set_variable("cfg", {"a": [1, 2], "b": None})
        s.set_variable("gone", True)
        s.set_variable("gone", None)
        s.set_variable("count", 4)
    with Store(db_path) as s:
        assert s.load_variables() == {"count": 4, "mode": "work", "cfg": {"a": [1, 2], "b": None}}


# -- retention ----------------------------------------------------------------


def test_prune_by_age(db_path: Path) -> None:
    now = 100 * DAY
    with Store(db_path, retention_days=30) as s:
        s.append_events([ev(1, t=now - 40 * DAY), ev(2, t=now - 31 * DAY), ev(3, t=now - DAY)])
        s.record_run(run_record("old", started=now - 35 * DAY))
        s.record_run(run_record("new", started=now - 29 * DAY))
        assert s.prune(now=now) == {"events": 2, "runs": 1}
        assert [e["id"] for e in s.query_events()] == [3]
        assert [r["id"] for r in s.query_runs()] == ["new"]
        assert s.prune(now=now) == {"events": 0, "runs": 0}


def test_prune_by_count(db_path: Path) -> None:
    now = 1000.0
    with Store(db_path, max_events=None, max_runs=3) as s:
        s.append_events(ev(i, t=now) for i in range(1, 13_001))  # more than one prune chunk
        s.max_events = 10  # (lowered in the settings: the writer trims only what it adds)
        for i in range(6):
            s.record_run(run_record(f"run{i}", started=now + i))
        assert s.prune(now=now) == {"events": 12_990, "runs": 3}
        assert [e["id"] for e in s.query_events()] == list(range(12_991, 13_001))
        assert [r["id"] for r in s.query_runs()] == ["run5", "run4", "run3"]
        assert s.stats()["events"] == 10


def test_prune_bounds_can_be_lifted(db_path: Path) -> None:
    with Store(db_path, retention_days=None, max_events=None, max_runs=None) as s:
        s.append_events([ev(1, t=0.0)])
        assert s.prune(now=1e12) == {"events": 0, "runs": 0}
    with pytest.raises(ValueError, match="max_events"):
        Store(db_path, max_events=-1)


def test_stats(store: Store, db_path: Path) -> None:
    store.append_events([ev(1), ev(2)])
    store.record_run(run_record("a"))
    store.set_variable("v", 1)
    st = store.stats()
    assert st["path"] == str(db_path)
    assert (st["events"], st["runs"], st["variables"]) == (2, 1, 1)
    assert st["size_bytes"] > 0


# -- files, schema, read-only ---------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions_user_only(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "nerve.db"
    with Store(path) as s:
        s.append_events([ev(1)])
        for f in path.parent.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_wal_and_schema_version(store: Store, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_readonly_while_writer_open(store: Store, db_path: Path) -> None:
    store.append_events([ev(1)])
    store.record_run(run_record("r-1"))
    reader = Store.open_readonly(db_path)
    try:
        assert [e["id"] for e in reader.query_events()] == [1]
        # WAL: the reader sees the writer's later commits, and the writer is not blocked.
        store.append_events([ev(2)])
        assert [e["id"] for e in reader.query_events(after_id=1)] == [2]
        assert reader.get_run("r-")["rule_id"] == "r1"  # type: ignore[index]
        assert reader.next_event_id() == 3
        with pytest.raises(StorageError, match="read-only"):
            reader.set_variable("x", 1)
    finally:
        reader.close()


def test_readonly_without_writer(db_path: Path) -> None:
    with Store(db_path) as s:
        s.append_events([ev(1)])
    with Store.open_readonly(db_path) as r:
        assert r.stats()["events"] == 1


def test_readonly_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Nerve database"):
        Store.open_readonly(tmp_path / "missing.db")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "nerve.db"
    path.write_bytes(b"this is not sqlite at all\n" * 200)
    with pytest.raises(StorageError, match="not a Nerve database"):
        Store(path)
    with pytest.raises(StorageError, match="not a Nerve database"):
        Store.open_readonly(path)


def test_foreign_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="another application"):
        Store(path)


def test_newer_schema_refused(db_path: Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer Nerve"):
        Store(db_path)


def test_closed_store(db_path: Path) -> None:
    s = Store(db_path)
    s.close()
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.query_events()


# -- the writer -----------------------------------------------------------------


def test_event_log_writer_end_to_end(store: Store) -> None:
    bus = Bus(first_id=store.next_event_id())
    writer = EventLogWriter(bus, store)
    writer.start()
    try:
        n = 500
        for i in range(n):
            bus.publish("file.created", {"path": f"/tmp/{i}"}, source="files")
        bus.publish("key.down", {"key": "a"}, source="keyboard")
        assert writer.wait_received(n + 1, timeout=20)
        got = store.query_events(limit=None)
        assert len(got) == n
        assert [e["id"] for e in got] == list(range(1, n + 1))
        assert got[-1]["data"] == {"path": f"/tmp/{n - 1}"}
    finally:
        writer.stop()
    writer.stop()  # twice is fine
    assert writer.stats()["written"] == n
    # After stop nothing more is written.
    bus.publish("file.created", {"path": "/late"})
    assert store.stats()["events"] == n


def test_writer_stop_flushes(store: Store) -> None:
    bus = Bus()
    writer = EventLogWriter(bus, store)
    writer.start()
    for i in range(2000):
        bus.publish("custom.event", {"i": i})
    writer.stop()
    assert store.stats()["events"] == 2000


def test_writer_survives_store_errors(db_path: Path) -> None:
    s = Store(db_path)
    bus = Bus()
    writer = EventLogWriter(bus, s)
    writer.start()
    try:
        s.close()
        bus.publish("custom.event")
        assert writer.wait_received(1, timeout=20)
        assert writer.stats()["failed_batches"] == 1
    finally:
        writer.stop()


def test_concurrent_writer_runs_and_variables(store: Store) -> None:
    bus = Bus(first_id=store.next_event_id())
    writer = EventLogWriter(bus, store)
    writer.start()
    errors: list[BaseException] = []
    go = threading.Event()

    def engine() -> None:
        try:
            go.wait(10)
            for i in range(300):
                store.record_run(run_record(f"run-{i:04d}", started=1000.0 + i))
                store.set_variable("counter", i)
                if i % 50 == 0:
                    store.query_runs(limit=5)
                    store.prune(now=1000.0)
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        try:
            go.wait(10)
            with Store.open_readonly(store.path) as r:
                for _ in range(100):
                    r.query_events(newest_first=True, limit=10)
                    r.query_runs(limit=10)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=engine), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        go.set()
        for i in range(3000):
            bus.publish("file.modified", {"path": f"/f/{i}"})
        for t in threads:
            t.join(timeout=30)
        assert writer.wait_received(3000, timeout=30)
    finally:
        writer.stop()
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)
    assert store.stats()["events"] == 3000
    assert len(store.query_runs(limit=None)) == 300
    assert store.load_variables() == {"counter": 299}
