"""A database that cannot be written (a full disk, a full database, a read-only
file system) is reported once per kind (the log, ``nerve status``, the store's
health for the status bar), what could not be written is held in memory and
written when it works again, and nothing logs a traceback.

For real: a small tmpfs that fills up (mounted for the test; root only),
SQLite's own page limit (``max_page_count``: the database, not the disk, is
full) and its read-only switch (``query_only``), which need no privileges.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Harness, wait_until
from nerve.storage import EventLogWriter, Store
from test_cli import StartNerve, cli_ok, start_nerve  # noqa: F401

SET_RULE = """
  - id: keep
    when: {event: t.set}
    mode: queued
    max: 100
    do: [{set: {kept: "{event.n}:{event.blob}"}}]
"""


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A real, small file system of its own (tmpfs), mounted for the test."""
    path = Path(tempfile.mkdtemp(prefix="nvfs", dir="/tmp"))
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        path.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def fill(folder: Path) -> Path:
    """Write a file until the file system is full; return it (delete it to free)."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    try:
        with open(filler, "wb") as fh:
            while True:
                fh.write(chunk)
                fh.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    return filler


class Fault:
    """One way of making the database unwritable, and of healing it."""

    kind = ""

    def __init__(self, store: Store, folder: Path) -> None:
        self.store = store
        self.folder = folder

    def break_(self) -> None:
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError


class DiskFull(Fault):
    kind = "full"

    def break_(self) -> None:
        self.filler = fill(self.folder)

    def heal(self) -> None:
        self.filler.unlink(missing_ok=True)


class DatabaseFull(Fault):
    kind = "full"

    def break_(self) -> None:
        conn = self.store._conn
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    def heal(self) -> None:
        conn = self.store._conn
        assert conn is not None
        conn.execute("PRAGMA max_page_count = 1073741823")


class ReadOnly(Fault):
    """SQLite refuses every write (SQLITE_READONLY), as for a read-only file
    (a read-only remount of the tmpfs is refused while the database is open)."""

    kind = "readonly"

    def break_(self) -> None:
        conn = self.store._conn
        assert conn is not None
        conn.execute("PRAGMA query_only = ON")

    def heal(self) -> None:
        conn = self.store._conn
        assert conn is not None
        conn.execute("PRAGMA query_only = OFF")


FAULTS = {"disk-full": DiskFull, "database-full": DatabaseFull, "read-only": ReadOnly}


@pytest.fixture
def folder(request: pytest.FixtureRequest) -> Iterator[Path]:
    if request.node.callspec.params["fault"] != "disk-full":
        path = Path(tempfile.mkdtemp(prefix="nvdb", dir="/tmp"))
        yield path
        shutil.rmtree(path, ignore_errors=True)
    else:
        with tmpfs("16m") as path:
            yield path


def payload() -> dict[str, Any]:
    return {"blob": os.urandom(600).hex()}


def kept(variables: Any) -> str:
    """Which event's value the variable holds (its n)."""
    return str(variables.get("kept", "")).split(":")[0]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_database_that_cannot_be_written_is_reported_once_and_caught_up(
    fault: str, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = Store(folder / "nerve.db")
    h = Harness(store=store)
    writer = EventLogWriter(h.bus, store)
    writer.start()
    changes: list[int] = []
    store.health.on_change = lambda: changes.append(1)
    try:
        h.load(SET_RULE)
        h.publish("t.set", n=0, blob="")
        wait_until(lambda: kept(store.load_variables()) == "0", 10, "the first value")
        breaker = FAULTS[fault](store, folder)
        breaker.break_()
        # Variables, runs and events, until the database refuses them (a full
        # disk may still take a write or two where SQLite's journal has room).
        n = 0

        def refused() -> bool:
            nonlocal n
            n += 1
            h.publish("t.set", n=n, **payload())
            return not store.health.healthy and bool(store._pending_counts())

        wait_until(refused, 30, "the database to refuse a write")
        # A variable that cannot be saved now is held (and used: it is in memory).
        big = "y" * 20_000
        h.engine.call(h.engine.set_variable, "fresh", big)
        wait_until(lambda: store._pending_vars.get("fresh") == big, 10, "the variable held")
        assert h.engine.variables["fresh"] == big
        for _ in range(20):  # many more failures: still one report
            n += 1
            h.publish("t.set", n=n, **payload())
        wait_until(lambda: kept(h.engine.variables) == str(n), 10, "the last value")
        last = str(n)
        [problem] = store.health.status()
        assert problem["kind"] == breaker.kind
        assert problem["failures"] >= 2
        assert store.health.summary() is not None
        assert store.stats()["problems"][0]["kind"] == breaker.kind
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "kept in memory" in errors[0].getMessage()
        assert len(changes) == 1
        # Space (or write access) returns: everything held is written.
        breaker.heal()
        wait_until(lambda: store.health.healthy and not store._pending_counts(), 20, "caught up")
        assert kept(store.load_variables()) == last
        assert store.load_variables()["fresh"] == big
        assert len(changes) == 2
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        h.close()
        writer.stop()
        store.close()
    # After a restart the value that once failed to save is there, and so are
    # the runs and events of the outage.
    with Store(folder / "nerve.db") as again:
        assert kept(again.load_variables()) == last
        assert again.load_variables()["fresh"] == big
        assert len(again.query_runs(limit=None)) == n + 1
        assert len(again.query_events(type_pattern="t.set", limit=None)) == n + 1
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("database or disk is full", "full"),
        ("attempt to write a readonly database", "readonly"),
        ("disk I/O error", "io"),
        ("database is locked", "locked"),
        ("something else", "other"),
    ],
)
def test_problem_kinds(message: str, kind: str) -> None:
    import sqlite3

    from nerve.storage import problem_kind

    assert problem_kind(sqlite3.OperationalError(message)) == kind
    assert problem_kind(OSError(errno.ENOSPC, "No space left on device")) == "full"
    assert problem_kind(OSError(errno.EROFS, "Read-only file system")) == "readonly"


def test_text_utf8_cannot_hold_is_stored_escaped(tmp_path: Path) -> None:
    from nerve.events import Event

    odd = {"s": "\ud800x\udfff", "\ud801": 1}
    with Store(tmp_path / "n.db") as store:
        store.append_events([Event("t.x", odd, "test", 1, 1.0, 1)])
        store.set_variable("v", "\udc80")
        store.record_run(
            {"id": "r", "rule_id": "k", "started": 1.0, "status": "ok", "trace": {"e": odd}}
        )
        assert store.query_events()[0]["data"] == odd
        assert store.load_variables() == {"v": "\udc80"}
        assert store.get_run("r")["trace"] == {"e": odd}  # type: ignore[index]
        assert store.health.healthy


# ------------------------------------------------------------- the daemon


@pytest.mark.timeout(90)
def test_nerve_status_reports_a_full_disk_and_its_end(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    pack = short_tmp / "keep.yaml"
    pack.write_text("nerve: 1\npack: {id: test.keep}\nrules:" + SET_RULE)
    with tmpfs("16m") as data:
        instance = start_nerve("--rules", pack, "--data-dir", data)
        filler = fill(data)
        n = 0

        def reported() -> bool:
            nonlocal n
            n += 1
            cli_ok(nerve_env, "emit", "t.set", f"n={n}", "blob=" + os.urandom(1500).hex())
            return "storage: the disk (or the database) is full" in cli_ok(nerve_env, "status")

        wait_until(reported, 40, "nerve status to report the full disk")
        filler.unlink(missing_ok=True)
        wait_until(lambda: "storage:" not in cli_ok(nerve_env, "status"), 20, "the report cleared")
        assert instance.stop() == 0
        with Store.open_readonly(data / "nerve.db") as store:
            assert kept(store.load_variables()) == str(n)
        output = instance.output()
        assert output.count("cannot write") == 1, output
        assert "works again" in output
        assert "Traceback" not in output
