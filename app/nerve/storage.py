"""Persistent storage: the event log, rule run history and variables.

One SQLite file (``nerve.db`` in the data directory) in WAL mode, so CLI
readers (``nerve events --follow``, ``nerve runs``) can read while the running
instance writes. No Qt here: the core must run headless.

Privacy: event types in :data:`nerve.events.PRIVATE_TYPES` (what the user
types or copies) are never written unless the store was opened with
``store_private=True``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from nerve import masking
from nerve.bus import Bus, Subscription
from nerve.events import PRIVATE_TYPES, Event, thaw

log = logging.getLogger(__name__)

#: Written into the SQLite header (``PRAGMA application_id``): "NRVE".
APPLICATION_ID = 0x4E525645

#: Each entry upgrades the schema from version ``index`` to ``index + 1``
#: (``PRAGMA user_version``). Append; never edit a released step.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            id     INTEGER PRIMARY KEY,
            type   TEXT    NOT NULL,
            time   REAL    NOT NULL,
            source TEXT    NOT NULL DEFAULT '',
            data   TEXT    NOT NULL DEFAULT '{}',
            cause  TEXT,
            depth  INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX events_time ON events (time)",
        "CREATE INDEX events_type ON events (type)",
        """CREATE TABLE runs (
            id       TEXT PRIMARY KEY,
            rule_id  TEXT NOT NULL,
            pack_id  TEXT NOT NULL DEFAULT '',
            event_id INTEGER,
            started  REAL NOT NULL,
            ended    REAL,
            status   TEXT NOT NULL,
            error    TEXT,
            trace    TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX runs_rule_started ON runs (rule_id, started)",
        "CREATE INDEX runs_started ON runs (started)",
        """CREATE TABLE variables (
            name    TEXT PRIMARY KEY,
            value   TEXT NOT NULL,
            updated REAL NOT NULL
        )""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
    ),
)

#: The schema version this code reads and writes.
SCHEMA_VERSION = len(_MIGRATIONS)

_RUN_COLUMNS = ("id", "rule_id", "pack_id", "event_id", "started", "ended", "status", "error")
_EVENT_COLUMNS = "id, type, time, source, data, cause, depth"
#: Rows deleted per transaction while pruning, so the log writer is never
#: held up for long by a big clean-up.
_PRUNE_CHUNK = 5000
_DAY_S = 86_400.0


def event_slack(max_events: int) -> int:
    """How far over ``max_events`` the event log may go before the writer trims it:
    0.5% of the limit, between 10 and 1,000 rows (trimming in chunks, not a row
    per event)."""
    return min(1000, max(10, max_events // 200))


#: Free pages in the file beyond which space is handed back to the file system.
_VACUUM_FREE_PAGES = 256


class StorageError(Exception):
    """The database cannot be opened or used (not a Nerve database, too new, closed...)."""


#: How often writes that failed (a full disk) are tried again.
RETRY_S = 2.0
#: Writes held in memory while the database cannot take them (the oldest go first).
MAX_PENDING_RUNS = 1000
MAX_PENDING_EVENTS = 50_000

#: Storage problems by kind: what the user is told.
PROBLEMS = {
    "full": "the disk (or the database) is full",
    "readonly": "the database is read-only",
    "io": "disk I/O error",
    "locked": "the database is locked by another program",
    "other": "the database cannot be written",
}


def problem_kind(exc: BaseException) -> str:
    """Which kind of storage problem ``exc`` is (a key of :data:`PROBLEMS`)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return "readonly"
    text = str(exc).lower()
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code.startswith("SQLITE_FULL") or "disk is full" in text or "no space" in text:
        return "full"
    if code.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "readonly"
    if code.startswith("SQLITE_IOERR") or "i/o error" in text:
        return "io"
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return "locked"
    return "other"


class StorageHealth:
    """Storage problems as they happen, reported once per kind until writes work again.

    Each kind is logged once (an error line, no traceback), shown by ``nerve
    status`` and the desktop app's status bar (:attr:`on_change` tells it), and
    cleared, with one line in the log, once everything held was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._problems: dict[str, dict[str, Any]] = {}
        #: Called (on the writing thread; it must only hand over) when a problem
        #: appears or clears.
        self.on_change: Callable[[], None] | None = None
        #: Writes held in memory for later (set by the store).
        self.pending: Callable[[], dict[str, int]] = dict

    def failed(self, exc: BaseException, what: str) -> None:
        kind = problem_kind(exc)
        now = time.time()
        with self._lock:
            problem = self._problems.get(kind)
            new = problem is None
            if new:
                problem = self._problems[kind] = {"since": now, "failures": 0}
            assert problem is not None
            problem["failures"] += 1
            problem["last"] = now
            problem["error"] = str(exc)
        if new:
            log.error(
                "%s: cannot write %s: %s (%s); what could not be written is kept in memory"
                " and written when it works again (further failures of this kind are not logged)",
                self.path,
                what,
                PROBLEMS[kind],
                exc,
            )
            self._changed()

    def ok(self) -> None:
        if not self._problems:
            return
        with self._lock:
            problems, self._problems = self._problems, {}
        if problems:
            failures = sum(p["failures"] for p in problems.values())
            log.warning(
                "%s: writing works again (%s; %d write(s) had failed)",
                self.path,
                ", ".join(PROBLEMS[k] for k in problems),
                failures,
            )
            self._changed()

    def _changed(self) -> None:
        notify = self.on_change
        if notify is not None:
            try:
                notify()
            except Exception:
                log.exception("a storage watcher failed")

    @property
    def healthy(self) -> bool:
        return not self._problems

    def status(self) -> list[dict[str, Any]]:
        """The current problems: kind, message, since, failures, last error, pending writes."""
        with self._lock:
            problems = {k: dict(v) for k, v in self._problems.items()}
        pending = self.pending()
        return [
            {"kind": kind, "message": PROBLEMS[kind], **problem, "pending": pending}
            for kind, problem in problems.items()
        ]

    def summary(self) -> str | None:
        """One line for a status bar, or None when all is well."""
        problems = self.status()
        if not problems:
            return None
        waiting = sum(problems[0]["pending"].values())
        text = "Storage: " + "; ".join(p["message"] for p in problems)
        return text + (f" ({waiting} write(s) waiting)" if waiting else "")


def _json(value: Any) -> str:
    """Compact JSON for a (possibly frozen) value; anything exotic becomes its ``str``.

    Text SQLite cannot store (lone surrogates, from a JSON ``"\\ud800"`` escape
    on the socket, undecodable file names or hostile data) is written as JSON
    escapes, as JSON allows, not lost."""
    plain = thaw(value)
    text = json.dumps(plain, separators=(",", ":"), ensure_ascii=False, default=str)
    if _storable(text):
        return text
    return json.dumps(plain, separators=(",", ":"), ensure_ascii=True, default=str)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: Any) -> str:
    """``value`` as text SQLite can store (lone surrogates as backslash escapes)."""
    text = str(value)
    return text if _storable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


_MISSING = object()


def _run_row(run: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        str(run["id"]),
        str(run["rule_id"]),
        str(run.get("pack_id") or ""),
        run.get("event_id"),
        float(run["started"]),
        None if run.get("ended") is None else float(run["ended"]),
        str(run["status"]),
        None if run.get("error") is None else _text(run["error"]),
        _json(run.get("trace") or {}),
    )


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents, each user-only (0700)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by someone else
            d.mkdir(mode=0o700)
            if os.name == "posix":
                os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask


def _restrict_file(path: Path) -> None:
    """Create ``path`` user-only (0600), or tighten an existing file of ours.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.name == "posix":
            st = os.fstat(fd)
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _glob_to_sql(pattern: str) -> str:
    """An fnmatch-style pattern (as :class:`nerve.events.TypePattern` reads it) for SQL GLOB."""
    return pattern.replace("[!", "[^")


class Store:
    """One SQLite file (``nerve.db``): events, runs, variables.

    Thread-safe. One connection (``check_same_thread=False``) is shared by all
    threads under a lock: SQLite admits one writer at a time anyway, batches
    are short, and a single connection means our own threads never see
    ``SQLITE_BUSY`` from each other or pay for a connection each. Readers in
    other processes use :meth:`open_readonly`; WAL lets them read while this
    instance writes.
    """

    def __init__(
        self,
        path: Path,
        *,
        retention_days: float | None = 30,
        max_events: int | None = 200_000,
        max_runs: int | None = 20_000,
        store_private: bool = False,
        _readonly: bool = False,
    ) -> None:
        """Open (creating if needed) the database at ``path``.

        ``retention_days``, ``max_events`` and ``max_runs`` bound what
        :meth:`prune` keeps; ``None`` lifts a bound. Raises
        :class:`StorageError` when ``path`` is not a Nerve database or was
        written by a newer Nerve.
        """
        for name, bound in (
            ("retention_days", retention_days),
            ("max_events", max_events),
            ("max_runs", max_runs),
        ):
            if bound is not None and bound < 0:
                raise ValueError(f"{name} must not be negative (got {bound!r})")
        self.path = Path(path)
        self.retention_days = retention_days
        self.max_events = max_events
        self.max_runs = max_runs
        self.store_private = store_private
        self.readonly = _readonly
        self._lock = threading.Lock()
        self._warned_duplicates = False
        self._conn: sqlite3.Connection | None = None
        self.health = StorageHealth(self.path)
        self.health.pending = self._pending_counts
        # Writes that failed (a full disk), tried again every RETRY_S seconds.
        self._pending_vars: dict[str, Any] = {}
        self._pending_runs: deque[Mapping[str, Any]] = deque(maxlen=MAX_PENDING_RUNS)
        self._retriers: list[tuple[Callable[[], bool], Callable[[], dict[str, int]]]] = []
        self._retry_wake = threading.Event()
        self._retry_thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._event_count = 0
        if _readonly:
            conn = self._connect_readonly()
        else:
            _make_private_dirs(self.path.parent)
            try:
                _restrict_file(self.path)
            except OSError as e:
                raise StorageError(f"cannot create the database {self.path}: {e}") from e
            conn = self._connect(str(self.path), uri=False)
        try:
            self._setup(conn)
            if not _readonly:
                self._event_count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open an existing database for reading only (CLI readers, while an instance runs)."""
        return cls(Path(path), retention_days=None, max_events=None, max_runs=None, _readonly=True)

    # -- opening --------------------------------------------------------------

    def _connect(self, target: str, *, uri: bool) -> sqlite3.Connection:
        try:
            # isolation_level=None: no implicit transactions; _tx() opens them.
            return sqlite3.connect(
                target, timeout=10.0, isolation_level=None, check_same_thread=False, uri=uri
            )
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the database {self.path}: {e}") from e

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no Nerve database at {self.path} (Nerve has not run with this data directory yet)"
            )
        return self._connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)

    def _setup(self, conn: sqlite3.Connection) -> None:
        """Check what the file is, then (writable) set WAL and bring the schema up to date."""
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self.path} is not a Nerve database: {e}") from e
        empty = app_id == 0 and version == 0 and tables == 0
        if not empty and app_id != APPLICATION_ID:
            raise StorageError(
                f"{self.path} is not a Nerve database: "
                "it is an SQLite database of another application"
            )
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} was written by a newer Nerve (schema {version}, "
                f"this version reads up to {SCHEMA_VERSION})"
            )
        if self.readonly:
            if empty:
                raise StorageError(f"{self.path} is empty: not a Nerve database (yet)")
            if version < SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} has an older schema ({version}); start Nerve once to upgrade it"
                )
            return
        try:
            if empty:
                # Space freed by retention goes back to the file system (prune()).
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: WAL journal unavailable, using %s", self.path, mode)
            conn.execute("PRAGMA synchronous=NORMAL")
            if version < SCHEMA_VERSION:
                self._migrate(conn, version)
        except sqlite3.Error as e:
            raise StorageError(f"cannot prepare the database {self.path}: {e}") from e
        if not empty:
            self._enable_auto_vacuum(conn)

    def _enable_auto_vacuum(self, conn: sqlite3.Connection) -> None:
        """Once, for a database made before Nerve handed space back: rebuild it
        with incremental auto-vacuum (a VACUUM; it needs free space about the
        size of the file, and is tried again at the next start if it fails)."""
        try:
            if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 0:
                return
            start = time.monotonic()
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
            log.info(
                "%s: rebuilt to give space back after pruning (%.1fs)",
                self.path,
                time.monotonic() - start,
            )
        except sqlite3.Error as e:
            log.warning("%s: could not rebuild the database to reclaim space: %s", self.path, e)

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                if version:
                    log.info("%s: schema upgraded to version %d", self.path, step + 1)
            if not version:
                log.info("created %s", self.path)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # -- plumbing -------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock (no transaction: one SELECT is consistent)."""
        with self._lock:
            if self._conn is None:
                raise StorageError(f"the database {self.path} is closed")
            yield self._conn

    @contextlib.contextmanager
    def _tx(self, what: str = "") -> Iterator[sqlite3.Connection]:
        """A write transaction, under the lock; rolled back on error. A failure
        to write (``what``: what was being written) is reported to :attr:`health`
        once per kind; it clears once everything held was written (the retry:
        a nearly full disk may take a small write and refuse the next)."""
        if self.readonly:
            raise StorageError(f"the database {self.path} is open read-only")
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StorageError(f"the database {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as e:
                if what:
                    self.health.failed(e, what)
                raise

    def close(self) -> None:
        """Close the database (idempotent). Later calls raise :class:`StorageError`.

        Writes still held after a failure are tried a last time first."""
        self._closed.set()
        self._retry_wake.set()
        thread = self._retry_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        pending = self._conn is not None and not self.readonly and self._has_pending()
        if pending and self._retry_all():
            self.health.ok()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            if not self.readonly:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA optimize")
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', readonly' if self.readonly else ''})"

    # -- events ---------------------------------------------------------------

    def next_event_id(self) -> int:
        """The id the bus should give its first event, so ids continue across restarts.

        One past the highest id ever seen, including events that were not
        stored (private types) or were pruned since.
        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT max(coalesce((SELECT max(id) FROM events), 0),"
                " coalesce((SELECT value FROM meta WHERE key = 'last_event_id'), 0))"
            ).fetchone()
        return int(row[0]) + 1

    def append_events(self, events: Iterable[Event]) -> int:
        """Write a batch of events in one transaction; returns how many rows were written.

        Private types are skipped unless ``store_private``. An event whose id
        is already stored is ignored (the log never rewrites history); an
        event with id 0 (never published) gets the next free id.
        """
        rows: list[tuple[int | None, str, float, str, str, str | None, int]] = []
        last_id = 0
        secrets = masking.active()  # secret input values never reach the log
        for e in events:
            last_id = max(last_id, e.id)
            if e.type in PRIVATE_TYPES and not self.store_private:
                continue
            data = _json(masking.mask_value(e.data) if secrets else e.data)
            rows.append((e.id or None, e.type, e.time, e.source, data, e.cause, e.depth))
        if not rows and not last_id:
            return 0
        trimmed = 0
        with self._tx("events") as conn:
            written = 0
            if rows:
                written = conn.executemany(
                    "INSERT OR IGNORE INTO events (id, type, time, source, data, cause, depth)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                ).rowcount
            if last_id:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('last_event_id', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                    (last_id,),
                )
            limit = self.max_events
            count = self._event_count + written
            if limit is not None and count > limit + event_slack(limit):
                # Over the limit by more than the slack: back to the limit, in
                # the same transaction (the log never stays over for long).
                trimmed = conn.execute(
                    "DELETE FROM events WHERE id <= (SELECT id FROM events"
                    " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (limit,),
                ).rowcount
            self._event_count = count - trimmed
        if trimmed:
            self._reclaim()
        if written < len(rows) and not self._warned_duplicates:
            self._warned_duplicates = True
            log.warning(
                "%s: %d event(s) not logged because their ids are already stored"
                " (was the bus started without Store.next_event_id()?)",
                self.path,
                len(rows) - written,
            )
        return written

    def query_events(
        self,
        *,
        since: float | None = None,
        type_pattern: str | None = None,
        limit: int | None = 1000,
        after_id: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Stored events as :meth:`Event.as_dict` dictionaries, in id order.

        ``since``: time (epoch seconds) at or after; ``type_pattern``: an
        exact type or a glob (``file.*``, ``*``), as subscriptions read it;
        ``after_id``: ids greater than this (for ``--follow``); ``limit``:
        at most this many (``None``: all), the oldest ones unless
        ``newest_first`` (which also reverses the order).
        """
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if type_pattern is not None and type_pattern != "*":
            if any(c in type_pattern for c in "*?["):
                where.append("type GLOB ?")
                args.append(_glob_to_sql(type_pattern))
            else:
                where.append("type = ?")
                args.append(type_pattern)
        if after_id is not None:
            where.append("id > ?")
            args.append(after_id)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(limit, 0))
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [
            {
                "id": r[0],
                "type": r[1],
                "time": r[2],
                "source": r[3],
                "data": json.loads(r[4]),
                "cause": r[5],
                "depth": r[6],
            }
            for r in rows
        ]

    def raw_events(
        self, *, since: float | None = None, limit: int | None = None
    ) -> list[tuple[int, str, float, str, str, str | None, int]]:
        """Stored events oldest first as rows, their data as JSON text (a replay
        decodes them all at once, far quicker than row by row)."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE time >= ?"
            args.append(since)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(limit, 0))
        with self._read() as conn:
            return conn.execute(sql, args).fetchall()

    # -- runs -----------------------------------------------------------------

    def record_run(self, run: Mapping[str, Any]) -> None:
        """Insert or replace (by ``id``) one rule run.

        Keys: ``id``, ``rule_id``, ``started`` and ``status`` are required;
        ``pack_id``, ``event_id``, ``ended``, ``error`` and ``trace`` (a
        JSON-able mapping; odd values are stored as their ``str``) are
        optional.
        """
        missing = [k for k in ("id", "rule_id", "started", "status") if run.get(k) is None]
        if missing:
            raise ValueError(f"run record lacks {', '.join(missing)}")
        row = _run_row(run)
        try:
            with self._tx("run records") as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO runs"
                    " (id, rule_id, pack_id, event_id, started, ended, status, error, trace)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError):
            self._pending_runs.append(dict(run))  # written when it works again
            self._want_retry()

    @staticmethod
    def _run_dict(row: tuple[Any, ...]) -> dict[str, Any]:
        run = dict(zip(_RUN_COLUMNS, row, strict=False))
        run["trace"] = json.loads(row[len(_RUN_COLUMNS)])
        return run

    def query_runs(
        self,
        *,
        rule_id: str | None = None,
        since: float | None = None,
        limit: int | None = 50,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest (by start time) first, with their traces decoded."""
        where: list[str] = []
        args: list[Any] = []
        if rule_id is not None:
            where.append("rule_id = ?")
            args.append(rule_id)
        if since is not None:
            where.append("started >= ?")
            args.append(since)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = f"SELECT {', '.join(_RUN_COLUMNS)}, trace FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(limit, 0))
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._run_dict(r) for r in rows]

    def run_times(
        self, since: float | None = None
    ) -> list[tuple[str, str, int | None, float, float | None, str]]:
        """Every run started at or after ``since``, without its trace: (id, rule id,
        event id, started, ended, status), oldest first (what a replay needs)."""
        sql = "SELECT id, rule_id, event_id, started, ended, status FROM runs"
        args: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE started >= ?"
            args = (since,)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY started", args).fetchall()
        return [(str(r[0]), str(r[1]), r[2], float(r[3]), r[4], str(r[5])) for r in rows]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run by id or by a prefix of its id; ``None`` if there is none.

        Raises :class:`ValueError` when a prefix matches several runs.
        """
        if not run_id:
            return None
        sql = f"SELECT {', '.join(_RUN_COLUMNS)}, trace FROM runs"
        with self._read() as conn:
            row = conn.execute(sql + " WHERE id = ?", (run_id,)).fetchone()
            rows = (
                [row]
                if row is not None
                else conn.execute(
                    sql + " WHERE substr(id, 1, ?) = ? LIMIT 2", (len(run_id), run_id)
                ).fetchall()
            )
        if not rows:
            return None
        if len(rows) > 1:
            raise ValueError(f"run id prefix {run_id!r} is ambiguous")
        return self._run_dict(rows[0])

    # -- variables ------------------------------------------------------------

    def load_variables(self) -> dict[str, Any]:
        """Every stored variable, decoded from JSON."""
        with self._read() as conn:
            rows = conn.execute("SELECT name, value FROM variables").fetchall()
        return {name: json.loads(value) for name, value in rows}

    def set_variable(self, name: str, value: Any) -> None:
        """Store ``value`` (JSON-encoded) under ``name``; ``None`` deletes the variable.

        If the database cannot take it (a full disk), the value is held and
        written when it works again (see :attr:`health`); a later value of the
        same name replaces a held one."""
        self._pending_vars.pop(name, _MISSING)
        try:
            self._write_variables({name: value})
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError):
            self._pending_vars[name] = value
            self._want_retry()

    def _write_variables(self, values: Mapping[str, Any]) -> None:
        now = time.time()
        with self._tx("variables") as conn:
            for name, value in values.items():
                if value is None:
                    conn.execute("DELETE FROM variables WHERE name = ?", (name,))
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO variables (name, value, updated) VALUES (?, ?, ?)",
                        (name, _json(value), now),
                    )

    # -- writes held after a failure -----------------------------------------

    def _pending_counts(self) -> dict[str, int]:
        counts = {"variables": len(self._pending_vars), "runs": len(self._pending_runs)}
        for _, counter in self._retriers:
            counts.update(counter())
        return {k: v for k, v in counts.items() if v}

    def _has_pending(self) -> bool:
        return bool(self._pending_counts())

    def add_retrier(self, retry: Callable[[], bool], pending: Callable[[], dict[str, int]]) -> None:
        """Have ``retry()`` called every :data:`RETRY_S` seconds while it returns
        False (it has writes held; ``pending()`` counts them by kind); call
        :meth:`want_retry` when it holds some."""
        self._retriers.append((retry, pending))

    def want_retry(self) -> None:
        self._want_retry()

    def _want_retry(self) -> None:
        """Start the retry thread if it is not running."""
        if self._closed.is_set() or self.readonly:
            return
        with self._lock:
            thread = self._retry_thread
            if thread is not None and thread.is_alive():
                return
            thread = threading.Thread(target=self._retry_loop, name="store-retry", daemon=True)
            self._retry_thread = thread
        thread.start()

    def _retry_loop(self) -> None:
        while not self._closed.is_set():
            self._retry_wake.wait(RETRY_S)
            if self._closed.is_set():
                return
            if self._retry_all():
                self.health.ok()
                with self._lock:
                    self._retry_thread = None
                if not self._has_pending():
                    return
                self._want_retry()  # (something failed meanwhile)
                return

    def _retry_all(self) -> bool:
        """Try every held write once; True when nothing is held any more."""
        done = self._retry_own()
        for retry, _ in list(self._retriers):
            try:
                done = retry() and done
            except Exception:
                log.exception("retrying held writes failed")
                done = False
        return done

    def _retry_own(self) -> bool:
        if self._pending_vars:
            values = dict(self._pending_vars)
            try:
                self._write_variables(values)
            except (sqlite3.Error, OSError, StorageError):
                return False
            for name, value in values.items():
                if self._pending_vars.get(name, _MISSING) is value:
                    del self._pending_vars[name]
        while self._pending_runs:
            run = self._pending_runs[0]
            try:
                with self._tx("run records") as conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO runs"
                        " (id, rule_id, pack_id, event_id, started, ended, status, error, trace)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        _run_row(run),
                    )
            except (sqlite3.Error, OSError, StorageError):
                return False
            with contextlib.suppress(IndexError):
                self._pending_runs.popleft()
        return True

    # -- retention ------------------------------------------------------------

    def _delete_chunked(self, table: str, condition: str, args: tuple[Any, ...]) -> int:
        """Delete matching rows a chunk per transaction, so writers get the lock in between."""
        deleted = 0
        while True:
            with self._tx() as conn:
                n = conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN"
                    f" (SELECT rowid FROM {table} WHERE {condition} LIMIT {_PRUNE_CHUNK})",
                    args,
                ).rowcount
            deleted += n
            if n < _PRUNE_CHUNK:
                return deleted

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Apply retention: drop events and runs older than ``retention_days``, then
        the oldest beyond ``max_events`` / ``max_runs``. Returns the counts deleted."""
        now = time.time() if now is None else now
        events = runs = 0
        if self.retention_days is not None:
            cutoff = now - self.retention_days * _DAY_S
            events += self._delete_chunked("events", "time < ?", (cutoff,))
            runs += self._delete_chunked("runs", "started < ?", (cutoff,))
        if self.max_events is not None:
            with self._read() as conn:
                row = conn.execute(
                    "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?", (self.max_events,)
                ).fetchone()
            if row is not None:
                events += self._delete_chunked("events", "id <= ?", (row[0],))
        if self.max_runs is not None:
            with self._tx() as conn:
                runs += conn.execute(
                    "DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs"
                    " ORDER BY started DESC, rowid DESC LIMIT -1 OFFSET ?)",
                    (self.max_runs,),
                ).rowcount
        if events:
            with self._read() as conn:
                self._event_count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        if events or runs:
            log.debug("%s: pruned %d event(s), %d run(s)", self.path, events, runs)
        self._reclaim(checkpoint=True)
        return {"events": events, "runs": runs}

    def _reclaim(self, *, checkpoint: bool = False) -> None:
        """Hand the pages retention freed back to the file system (the file shrinks)."""
        try:
            with self._lock:
                conn = self._conn
                if conn is None or self.readonly:
                    return
                free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                if free >= _VACUUM_FREE_PAGES:
                    # (executescript: the pragma frees one page per step, and
                    # sqlite3_exec steps it to the end; execute() would not.)
                    conn.executescript("PRAGMA incremental_vacuum;")
                if checkpoint or free >= _VACUUM_FREE_PAGES:
                    # The freed tail is cut off the main file at a checkpoint.
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:
            log.debug("%s: could not reclaim space: %s", self.path, e)

    def stats(self) -> dict[str, Any]:
        """Counts and size, for ``nerve status`` and the GUI."""
        with self._read() as conn:
            events, runs, variables = conn.execute(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM runs),"
                " (SELECT count(*) FROM variables)"
            ).fetchone()
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.path.getsize(str(self.path) + suffix)
        return {
            "path": str(self.path),
            "events": events,
            "runs": runs,
            "variables": variables,
            "size_bytes": size,
            "store_private": self.store_private,
            "readonly": self.readonly,
            "problems": self.health.status(),
        }


#: How long the event log waits after an event for more to write in one go.
WRITE_LINGER_S = 0.05


class EventLogWriter:
    """Writes every event on the bus to the Store, from a delivery thread of its own.

    Events the database cannot take (a full disk) are held, up to
    :data:`MAX_PENDING_EVENTS` (the oldest are dropped beyond that, and
    counted), and written with the next batch or by the store's retry."""

    def __init__(self, bus: Bus, store: Store) -> None:
        self.bus = bus
        self.store = store
        self.received = 0
        self.written = 0
        #: The highest event id handled so far (see :meth:`wait_through`).
        self.last_id = 0
        self.failed_batches = 0
        #: Events dropped because too many were held while the database failed.
        self.lost = 0
        self._sub: Subscription | None = None
        self._cond = threading.Condition()
        self._stop_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._held: list[Event] = []
        store.add_retrier(self._retry, self._pending_count)

    def _pending_count(self) -> dict[str, int]:
        return {"events": len(self._held)}

    def _retry(self) -> bool:
        """(The store's retry thread.) True when nothing is held any more."""
        with self._write_lock:
            if self._held:
                self._write([])
            return not self._held

    def start(self) -> None:
        """Subscribe to every event type. Idempotent while running."""
        if self._sub is None:
            # A short linger batches writes and keeps the writer off the GIL
            # while the engine handles the event that woke it.
            self._sub = self.bus.subscribe(
                "*", self._write_batch, name="event-log", linger=WRITE_LINGER_S
            )

    def stop(self) -> None:
        """Unsubscribe and write what is still queued. Safe to call twice."""
        with self._stop_lock:
            sub, self._sub = self._sub, None
            if sub is None:
                return
            sub.close()  # joins the delivery thread
            leftover = sub.drain()  # events queued while its last batch was written
            if leftover:
                self._write_batch(leftover)

    def _write_batch(self, batch: list[Event]) -> None:
        with self._write_lock:
            written = self._write(batch)
        with self._cond:
            if batch:
                self.last_id = max(self.last_id, *(e.id for e in batch))
            self.received += len(batch)
            self.written += written
            self._cond.notify_all()

    def _write(self, batch: list[Event]) -> int:
        """Write what is held and ``batch``; hold them all if that fails. The
        store reports the failure (once per kind); nothing is logged here."""
        events = self._held + batch if self._held else batch
        try:
            written = self.store.append_events(events)
        except (sqlite3.Error, StorageError, OSError):
            self.failed_batches += 1
            over = len(events) - MAX_PENDING_EVENTS
            if over > 0:
                self.lost += over
                events = events[over:]
            self._held = list(events)
            self.store.want_retry()
            return 0
        self._held = []
        return written

    def wait_through(self, event_id: int, timeout: float | None = None) -> bool:
        """Block until the event ``event_id`` (and so, as far as the bus goes, all
        before it) was handled: written, held for a retry, or skipped as private."""
        with self._cond:
            return self._cond.wait_for(lambda: self.last_id >= event_id, timeout)

    def wait_received(self, count: int, timeout: float | None = None) -> bool:
        """Block until at least ``count`` events were handled (written or skipped)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.received >= count, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters for ``nerve status``."""
        return {
            "received": self.received,
            "written": self.written,
            "failed_batches": self.failed_batches,
            "held": len(self._held),
            "lost": self.lost,
            "queued": self._sub.queued if self._sub is not None else 0,
        }
