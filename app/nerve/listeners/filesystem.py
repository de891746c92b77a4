"""Files: the ``filesystem`` listener and the ``file.*`` triggers.

The listener watches only what loaded rules ask for (their ``path`` and
``recursive`` options, handed over as :class:`WatchNeed`) with watchdog:
inotify on Linux, the platform's native API elsewhere, and watchdog's polling
observer as a fallback that is logged with its reason (no native API, the
inotify instance or watch limit reached, or ``NERVE_FILE_BACKEND=polling``).

How events flow, and why it is bounded:

- watchdog's emitter threads hand each change straight to
  :meth:`FilesystemListener._on_change` (the emitter's ``queue_event`` is
  overridden), which filters it and publishes it onto the bus: O(1), never
  blocking. watchdog's own emitter -> observer queue, which has no bound, is
  never used. What can still pile up is watchdog's small move-pairing queue
  between its inotify reader and the emitter; a 20,000-file storm peaks at a
  few thousand entries there, and past the kernel's inotify queue limit
  (``fs.inotify.max_queued_events``) the kernel drops events and says so:
  those overflows are counted (``nerve status``) and logged.
- Only changes a rule covers are published: children of a watched folder,
  the tree below a recursive one, a watched file. Editor temp files,
  partial downloads and ``.git`` internals (:data:`DEFAULT_IGNORE`) are not
  published unless a rule turned ``ignore_defaults`` off for that folder.
- ``file.modified`` is one event per write, not per ``write()``: it is
  published when the writer closes the file, or once a second while a
  writer keeps it open (a log, a download). The kernel is asked for writes
  only in folders where a rule wants them, which keeps a storm to one
  inotify event per file for ``file.created`` rules.
- A folder that does not exist yet is waited for by watching its nearest
  existing parent (for structure changes only); a watched folder's parent is
  watched the same way, so one that is deleted, moved away or recreated is
  followed. When a folder appears, the files already in it are reported as
  created (they were put there before it could be watched). (A watch follows
  its folder when it is moved away, until the parent's watch has reported the
  move: what happens in it in those milliseconds is reported under the old
  path.)

The triggers see a folder (``path``) through their own filters (``glob``,
``ignore``, ``is_dir``, ``recursive``), and classify a move by what it does
to that view: from outside (or from an ignored name, as in an editor's
atomic save or a finished download) into it is ``file.created``, out of it
is ``file.deleted``, within it is ``file.moved``. ``settle`` waits until a
file has not changed for that long, on the engine loop (one timer per
trigger, checking the file's modification time), not with a thread per file.

Event data: ``path``, ``name``, ``dir``, ``is_dir``; a move also carries
``src_path`` and ``src_dir`` (where it was) and ``dest_path`` (= ``path``,
where it is now). Triggers on a folder are indexed on ``dir`` (and
``src_dir``), on a file on ``path`` (and ``src_path``), so an event costs a
dictionary lookup whatever the number of such rules; a recursive trigger is
a prefix test per file event.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from nerve import saferegex
from nerve.bus import Bus
from nerve.durations import DURATION_SCHEMA, format_duration, parse_duration
from nerve.engine import caps
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import KNOWN_FIELDS, Event
from nerve.listeners.base import Listener, ListenerUnavailable, Need, listeners

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver, ObservedWatch

    from nerve.engine.triggers import Cancellable, TriggerHost

log = logging.getLogger(__name__)

LISTENER_ID = "filesystem"

#: Names that are never interesting by themselves: editor swap/backup/lock
#: files, partial downloads, temp files of atomic saves, and what is inside
#: ``.git``. Like ``.gitignore``: a name pattern matches any part of the path
#: below the watched folder; a pattern ending in ``/`` matches folders only.
DEFAULT_IGNORE: tuple[str, ...] = (
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "4913",
    ".git/",
    "*.part",
    "*.crdownload",
    "*.tmp",
    ".goutputstream-*",
    ".~lock.*#",
    "~$*",
)

#: A file kept open by its writer reports ``file.modified`` at most this often.
MODIFY_WINDOW_S = 1.0
#: Writes being tracked at once; past this, file.modified goes out per write.
MAX_TRACKED_WRITES = 50_000
#: How often the worker checks that every watch is alive and every path is
#: where it was (inotify reports all of this; this only catches surprises).
HEALTH_CHECK_S = 10.0
#: Entries of a folder that just appeared that are reported as created.
SCAN_LIMIT = 10_000
#: After a scan, for how long created events are checked against what the
#: scan reported (a file may be seen by both).
SCAN_DEDUP_S = 2.0
#: Files waiting to settle, per trigger; past this they fire without waiting.
MAX_SETTLING = 100_000
#: ``NERVE_FILE_BACKEND=polling`` forces the polling observer.
BACKEND_ENV = "NERVE_FILE_BACKEND"
POLL_INTERVAL_S = 1.0


# ---------------------------------------------------------------------------
# Paths and patterns


def expand_path(text: str) -> str:
    """``~`` and ``$VARS`` expanded, made absolute and normalised; ValueError if
    a variable is unset or the result is relative."""
    expanded = os.path.expandvars(os.path.expanduser(text.strip()))
    leftover = re.search(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", expanded)
    if leftover:
        raise ValueError(f"environment variable {leftover.group(0)} is not set")
    if not os.path.isabs(expanded):
        raise ValueError(f"{text!r} is not an absolute path: start it with / or ~")
    return os.path.normpath(expanded)


def _glob_regex(pattern: str) -> str:
    """A glob as an RE2 regex over ``/``-separated relative paths: ``*`` and
    ``?`` stay within one name, ``**`` crosses folders (``**/`` may match none).
    RE2 matches in linear time, whatever the pattern (``*a*a*a*a*b``)."""
    out: list[str] = []
    for i, chunk in enumerate(pattern.split("**")):
        rest = chunk
        if i:
            if chunk.startswith("/"):
                out.append("(?:[^/]*/)*")
                rest = chunk[1:]
            else:
                out.append(".*")
        out.append(saferegex.glob_to_regex(rest, star="[^/]*", one="[^/]"))
    return "".join(out)


def _matcher(globs: list[str]) -> Callable[[str], bool] | None:
    """One matcher for several name globs (no ``/`` in them or in the name).
    Every file event goes through the ignore list, so globs whose only
    wildcard is ``*`` (the whole default list) are string operations: a set of
    names, one ``endswith`` for ``*.swp`` and the like, one ``startswith`` for
    ``.#*`` and the like; other globs are one RE2 alternation."""
    if not globs:
        return None
    exact: set[str] = set()
    suffixes: list[str] = []
    prefixes: list[str] = []
    stars: list[Callable[[str], bool]] = []
    rest: list[str] = []
    for glob in globs:
        star = saferegex.star_matcher(glob)
        if star is None:
            rest.append(glob)
        elif "*" not in glob:
            exact.add(glob)
        elif glob.count("*") == 1 and glob.startswith("*"):
            suffixes.append(glob[1:])
        elif glob.count("*") == 1 and glob.endswith("*"):
            prefixes.append(glob[:-1])
        else:
            stars.append(star)
    ends, starts = tuple(suffixes), tuple(prefixes)
    complex_ = (
        saferegex.regex_matcher("(?s)(?:" + "|".join(map(_glob_regex, rest)) + ")", limit=False)
        if rest
        else None
    )

    def match(name: str) -> bool:
        return (
            name in exact
            or (bool(ends) and name.endswith(ends))
            or (bool(starts) and name.startswith(starts))
            or any(m(name) for m in stars)
            or (complex_ is not None and complex_(name))
        )

    return match


def _paths_matcher(regexes: list[str]) -> Callable[[str], bool] | None:
    if not regexes:
        return None
    return saferegex.regex_matcher("(?s)(?:" + "|".join(regexes) + ")", limit=False)


class Patterns:
    """Glob patterns against a path relative to a watched folder.

    A pattern without ``/`` is a name pattern; one with ``/`` inside matches
    the whole relative path (``**`` for any depth, a leading ``/`` anchors
    nothing more than the watched folder); one ending in ``/`` matches folder
    names only. ``anywhere`` (ignore lists) lets name and folder patterns
    match any part of the path, as in ``.gitignore``; otherwise (globs) name
    patterns match the file's own name.
    """

    __slots__ = ("_dirs", "_names", "_paths", "anywhere", "patterns")

    def __init__(self, patterns: Iterable[str], *, anywhere: bool) -> None:
        self.patterns = tuple(patterns)
        self.anywhere = anywhere
        names, dirs, paths = [], [], []
        for raw in self.patterns:
            p = raw.strip()
            if not p:
                raise ValueError("an empty pattern")
            if p.endswith("/") and "/" not in p[:-1]:
                dirs.append(p[:-1])
            elif "/" in p.rstrip("/"):
                paths.append(_glob_regex(p.strip("/")) + ("(?:/.*)?" if p.endswith("/") else ""))
            else:
                names.append(p)
        self._names = _matcher(names)
        self._dirs = _matcher(dirs)
        self._paths = _paths_matcher(paths)

    def match(self, rel: str, is_dir: bool) -> bool:
        """Does ``rel`` (``/``-separated, relative to the watched folder) match?"""
        if os.sep != "/":
            rel = rel.replace(os.sep, "/")
        names, dirs = self._names, self._dirs
        if names is not None or dirs is not None:
            parts = rel.split("/")
            last = len(parts) - 1
            for i, part in enumerate(parts):
                if i < last and not self.anywhere:
                    continue
                if names is not None and names(part):
                    return True
                if dirs is not None and (i < last or is_dir) and dirs(part):
                    return True
        return self._paths is not None and self._paths(rel)

    def __bool__(self) -> bool:
        return bool(self.patterns)


DEFAULTS = Patterns(DEFAULT_IGNORE, anywhere=True)


# ---------------------------------------------------------------------------
# What rules need of the listener


class WatchNeed(NamedTuple):
    """One watched path a rule asks for. ``raw``: the rule turned
    ``ignore_defaults`` off, so temp files there are published too.
    ``content``: the rule wants writes (``file.modified``); without it the
    kernel is not even asked for them, which matters in a storm (a ``tar x``
    makes three or four inotify events per file, only one of them a creation)."""

    path: str
    recursive: bool = False
    raw: bool = False
    content: bool = True


class _Scope:
    """Which changes the current needs cover (an immutable snapshot the
    emitter threads read without locking)."""

    def __init__(self, needs: Iterable[WatchNeed]) -> None:
        self.exact: dict[str, bool] = {}
        self.folders: dict[str, bool] = {}
        self.trees: dict[str, bool] = {}
        interesting: set[str] = set()
        for need in needs:
            path = need.path
            self.exact[path] = self.exact.get(path, False) or need.raw
            table = self.trees if need.recursive else self.folders
            table[path] = table.get(path, False) or need.raw
            while True:  # the path and its ancestors: their creation or removal matters
                interesting.add(path)
                parent = os.path.dirname(path)
                if parent == path:
                    break
                path = parent
        self.interesting = frozenset(interesting)

    def accepts(self, path: str, is_dir: bool) -> bool | None:
        """True: publish a change of ``path``. False: covered but ignored by
        default (a temp file). None: no rule covers it."""
        verdict: bool | None = None
        name = os.path.basename(path)
        raw = self.exact.get(path)
        if raw is not None:
            if is_dir or raw or not DEFAULTS.match(name, False):
                return True  # the named file, or the named folder itself appearing or going
            verdict = False
        folder = os.path.dirname(path)
        raw = self.folders.get(folder)
        if raw is not None:
            if raw or not DEFAULTS.match(name, is_dir):
                return True
            verdict = False
        if self.trees:
            above = folder
            while True:
                raw = self.trees.get(above)
                if raw is not None:
                    if raw or not DEFAULTS.match(path[len(above) :].lstrip(os.sep), is_dir):
                        return True
                    verdict = False
                parent = os.path.dirname(above)
                if parent == above:
                    break
                above = parent
        return verdict


@dataclass(frozen=True)
class _Spec:
    """One folder to watch: recursively or not, with writes or only entries
    appearing and going."""

    recursive: bool
    content: bool
    follow: bool


@dataclass
class _Watching:
    spec: _Spec
    watch: ObservedWatch
    inode: tuple[int, int]


class _Fallback(Exception):
    """Native watching cannot go on; use polling (the message says why)."""


# ---------------------------------------------------------------------------
# The listener


@listeners.register
class FilesystemListener(Listener):
    """Watches the folders and files that loaded rules name."""

    id = LISTENER_ID
    description = "File changes in watched folders (inotify on Linux, via watchdog)"

    def __init__(self, bus: Bus, on_failure: Callable[[Listener, BaseException], None]) -> None:
        super().__init__(bus, on_failure)
        self._needs: tuple[WatchNeed, ...] = ()
        self._scope = _Scope(())
        self._observer: BaseObserver | None = None
        self.backend = ""
        self.fallback_reason: str | None = None
        self._watching: dict[str, _Watching] = {}
        self._present: dict[WatchNeed, tuple[int, int] | None] = {}
        self._problems: dict[str, str] = {}
        self._handler_obj: object = object()
        # The worker: trailing file.modified events, reconciling watches, health.
        self._cond = threading.Condition()
        self._reconcile_lock = threading.RLock()
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._reconcile_wanted = False
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._writes: dict[str, list[Any]] = {}  # path -> [dirty, deadline]
        self._recent_created: set[str] | None = None
        self._recent_until = 0.0
        self.overflows = 0

    # ------------------------------------------------------------------ life

    def start(self, needs: Sequence[Need]) -> None:
        try:
            import watchdog.observers  # noqa: F401
        except ImportError as exc:
            raise ListenerUnavailable(
                f"watching files needs the 'watchdog' package ({exc}); pip install watchdog"
            ) from None
        self._stopping = False
        self._set_needs(needs)
        _OverflowCounter.attach(self)
        self._open_observer()
        try:
            self._reconcile(scan=False)
        except _Fallback as exc:
            self._switch_to_polling(str(exc))
        self._worker = threading.Thread(target=self._work, name="files", daemon=True)
        self._worker.start()

    def reconfigure(self, needs: Sequence[Need]) -> None:
        self._set_needs(needs)
        try:
            self._reconcile(scan=False)
        except _Fallback as exc:
            self._switch_to_polling(str(exc))

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(5)
        self._close_observer()
        _OverflowCounter.detach(self)
        with self._cond:
            self._writes.clear()
            self._heap.clear()

    def detail(self) -> str:
        watched = len(self._watching)
        waiting = sum(1 for inode in self._present.values() if inode is None)
        parts = [f"{self.backend or 'not started'}: {watched} folder(s) watched"]
        if waiting:
            parts.append(f"{waiting} path(s) waiting to appear")
        if self.overflows:
            parts.append(f"{self.overflows} kernel queue overflow(s): changes were lost")
        if self.fallback_reason:
            parts.append(f"polling because {self.fallback_reason}")
        problems = dict(self._problems)  # the worker may change it meanwhile
        if problems:
            path, why = next(iter(problems.items()))
            parts.append(f"cannot watch {path}: {why}")
        return "; ".join(parts)

    def _set_needs(self, needs: Sequence[Need]) -> None:
        clean: list[WatchNeed] = []
        for need in needs:
            if isinstance(need, WatchNeed):
                clean.append(need)
            elif isinstance(need, tuple) and need and isinstance(need[0], str):
                clean.append(WatchNeed(*need))
        self._needs = tuple(dict.fromkeys(clean))
        self._scope = _Scope(self._needs)

    # --------------------------------------------------------------- backend

    def _open_observer(self) -> None:
        forced = os.environ.get(BACKEND_ENV, "").strip().lower()
        if forced == "polling":
            self._use_polling(f"{BACKEND_ENV}=polling asks for it")
            return
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if Observer is PollingObserver:
            self._use_polling("watchdog has no native file-change API for this platform")
            return
        try:
            observer = Observer()
        except OSError as exc:
            self._use_polling(f"the native file-change API failed ({_os_error(exc)})")
            return
        self._install(observer, _backend_name(observer))

    def _use_polling(self, reason: str) -> None:
        from watchdog.observers.polling import PollingObserver

        self.fallback_reason = reason
        log.warning("watching files by polling every %gs: %s", POLL_INTERVAL_S, reason)
        self._install(PollingObserver(timeout=POLL_INTERVAL_S), "polling")

    def _install(self, observer: BaseObserver, name: str) -> None:
        observer._emitter_class = _direct_emitter(observer._emitter_class, self._on_change)
        observer.name = f"files-{name}"
        observer.start()
        self._observer = observer
        self.backend = name

    def _close_observer(self) -> None:
        observer, self._observer = self._observer, None
        with self._reconcile_lock:
            self._watching.clear()
        if observer is not None:
            try:
                observer.stop()
                observer.join(5)
            except Exception:
                log.exception("the file observer did not stop cleanly")

    def _switch_to_polling(self, reason: str) -> None:
        with self._reconcile_lock:
            self._close_observer()
            self._use_polling(reason)
            self._reconcile(scan=False)

    # ------------------------------------------------------------- reconcile

    def _plan(self) -> tuple[dict[str, _Spec], dict[WatchNeed, tuple[int, int] | None]]:
        """The folders to watch now, and where each need's path stands."""
        wanted: dict[str, tuple[bool, bool, bool]] = {}
        present: dict[WatchNeed, tuple[int, int] | None] = {}

        def add(path: str, recursive: bool, content: bool) -> None:
            old = wanted.get(path, (False, False, False))
            wanted[path] = (old[0] or recursive, old[1] or content, os.path.islink(path))

        for need in self._needs:
            path = need.path
            try:
                st = os.stat(path)
            except OSError:
                st = None
            present[need] = (st.st_dev, st.st_ino) if st is not None else None
            parent = os.path.dirname(path)
            if st is not None and stat.S_ISDIR(st.st_mode):
                add(path, need.recursive, need.content)
                if parent != path:
                    add(parent, False, False)  # to see it deleted, moved or recreated
            elif st is not None:
                add(parent, False, need.content)  # a file: its folder's events about it
            else:
                above = parent
                while not os.path.isdir(above) and os.path.dirname(above) != above:
                    above = os.path.dirname(above)
                add(above, False, need.content and above == parent)
        # A recursive watch covers everything below it (and takes on its wish
        # for writes): two watches would report the same changes twice.
        trees = sorted((p for p, (rec, _, _) in wanted.items() if rec), key=len)
        owners: dict[str, str] = {}
        content = {p: c for p, (_, c, _) in wanted.items()}
        for path in wanted:
            owner = next((t for t in trees if t != path and _below(path, t)), None)
            if owner is not None:
                owners[path] = owner
                content[owner] = content[owner] or content[path]
        plan = {
            path: _Spec(rec, content[path], follow)
            for path, (rec, _, follow) in wanted.items()
            if path not in owners
        }
        return plan, present

    def _reconcile(self, *, scan: bool) -> None:
        """Make the watches match the needs and the file system (thread-safe)."""
        with self._reconcile_lock:
            observer = self._observer
            if observer is None:
                return
            plan, present = self._plan()
            for _ in range(5):
                self._apply(observer, plan)
                # A folder that appeared after it was looked for and before its
                # parent was watched made no event: look once more.
                again, present = self._plan()
                if again == plan:
                    break
                plan = again
            before = self._present
            self._present = present
            if scan:
                for need, inode in present.items():
                    if inode is not None and before.get(need, inode) != inode:
                        self._scan(need)

    def _apply(self, observer: BaseObserver, plan: dict[str, _Spec]) -> None:
        alive = {e.watch: e.is_alive() for e in list(observer.emitters)}
        for path, w in list(self._watching.items()):
            spec = plan.get(path)
            if (
                spec is None
                or not _covers(w.spec, spec)
                or not alive.get(w.watch, False)
                or _inode(path) != w.inode
            ):
                del self._watching[path]
                with contextlib.suppress(KeyError, OSError):  # gone with its folder
                    observer.unschedule(w.watch)
        for path, spec in plan.items():
            if path not in self._watching:
                self._watch(observer, path, spec)

    def _watch(self, observer: BaseObserver, path: str, spec: _Spec) -> None:
        from watchdog.events import DirCreatedEvent

        inode = _inode(path)
        if inode is None:
            return  # gone meanwhile; its parent's watch will tell
        try:
            watch = observer.schedule(
                self._handler_obj,  # type: ignore[arg-type]  # events never reach it
                path,
                recursive=spec.recursive,
                event_filter=None if spec.content else [DirCreatedEvent],
                follow_symlink=spec.follow,
            )
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE) and self.backend != "polling":
                raise _Fallback(
                    f"the inotify limit is reached ({_os_error(exc)}); raise it with "
                    "sysctl fs.inotify.max_user_watches=524288 (and max_user_instances)"
                ) from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                self._want_reconcile()
                return
            if self._problems.get(path) != _os_error(exc):
                log.warning("cannot watch %s: %s", path, _os_error(exc))
            self._problems[path] = _os_error(exc)
            return
        self._problems.pop(path, None)
        self._watching[path] = _Watching(spec, watch, inode)

    def _scan(self, need: WatchNeed) -> None:
        """Report what is already in a folder that just appeared as created."""
        scope = self._scope
        self._open_dedup()
        count = 0
        for path, is_dir in _entries(need.path, need.recursive):
            if count >= SCAN_LIMIT:
                log.warning(
                    "%s appeared with more than %d entries; reported those", need.path, count
                )
                break
            if scope.accepts(path, is_dir) and self._first_sight(path):
                count += 1
                self._publish("file.created", path, is_dir)

    # ----------------------------------------------------------- the worker

    def _open_dedup(self) -> None:
        """For a while, remember the paths reported as created, so that a
        scan and inotify do not both report one file."""
        with self._cond:
            if self._recent_created is None:
                self._recent_created = set()
            self._recent_until = time.monotonic() + SCAN_DEDUP_S
            self._push(self._recent_until, "dedup", "")

    def _want_reconcile(self) -> None:
        with self._cond:
            self._reconcile_wanted = True
            self._cond.notify()

    def _push(self, deadline: float, kind: str, key: str) -> None:
        """Call with ``_cond`` held."""
        first = not self._heap or deadline < self._heap[0][0]
        heapq.heappush(self._heap, (deadline, next(self._seq), kind, key))
        if first:
            self._cond.notify()

    def _work(self) -> None:
        try:
            next_health = time.monotonic() + HEALTH_CHECK_S
            while True:
                due: list[tuple[str, bool]] = []
                with self._cond:
                    while not self._stopping and not self._reconcile_wanted:
                        now = time.monotonic()
                        wake = min(next_health, self._heap[0][0] if self._heap else next_health)
                        if wake <= now:
                            break
                        self._cond.wait(wake - now)
                    if self._stopping:
                        return
                    wanted, self._reconcile_wanted = self._reconcile_wanted, False
                    now = time.monotonic()
                    while self._heap and self._heap[0][0] <= now:
                        deadline, _, kind, key = heapq.heappop(self._heap)
                        if kind == "dedup":
                            if now >= self._recent_until:
                                self._recent_created = None
                            continue
                        write = self._writes.get(key)
                        if write is None or write[1] != deadline:
                            continue  # closed or deleted since
                        if write[0]:
                            due.append((key, False))
                            write[0] = False
                            write[1] = now + MODIFY_WINDOW_S
                            self._push(write[1], "write", key)
                        else:
                            del self._writes[key]
                for path, is_dir in due:
                    self._publish("file.modified", path, is_dir)
                if wanted or now >= next_health:
                    if now >= next_health:
                        next_health = now + HEALTH_CHECK_S
                        if self._observer is not None and not self._observer.is_alive():
                            raise RuntimeError("the file observer thread ended")
                    try:
                        self._reconcile(scan=True)
                    except _Fallback as exc:
                        self._switch_to_polling(str(exc))
        except Exception as exc:
            log.exception("the file watcher failed")
            self.failed(exc)

    # ------------------------------------------------------ emitter threads

    def _on_change(self, event: FileSystemEvent, watch: ObservedWatch) -> None:
        """Called on a watchdog emitter thread for every change: never blocks."""
        try:
            kind = event.event_type
            if event.is_directory and kind == "modified":
                return  # "a folder's entries changed": its children say what
            src = os.fsdecode(event.src_path)
            if kind == "modified":
                self._modified(src)
            elif kind == "closed":
                self._closed(src)
            elif kind in ("created", "deleted", "moved"):
                self._structure(event, kind, src, watch)
        except Exception:
            log.exception("could not handle file change %r", event)

    def _structure(self, event: FileSystemEvent, kind: str, src: str, watch: ObservedWatch) -> None:
        scope = self._scope
        is_dir = event.is_directory
        dest = os.fsdecode(event.dest_path) if kind == "moved" else ""
        if src in scope.interesting or (dest and dest in scope.interesting):
            if kind != "deleted":
                self._open_dedup()  # a scan is coming: it must not repeat this one
            self._want_reconcile()
        if kind == "deleted":
            if src == watch.path:
                self._want_reconcile()
                return  # the watched folder itself: its parent's watch reports it
            self._forget(src)
            if scope.accepts(src, is_dir):
                self._publish("file.deleted", src, is_dir)
        elif kind == "created":
            if is_dir and watch.is_recursive:
                # watchdog reports what is already in a new sub-folder, and
                # inotify may report the same files again: report them once.
                self._open_dedup()
            if scope.accepts(src, is_dir) and self._first_sight(src):
                self._publish("file.created", src, is_dir)
        elif dest:
            self._forget(src)
            self._first_sight(dest)  # a scan must not report it as created again
            if scope.accepts(src, is_dir) or scope.accepts(dest, is_dir):
                self.publish(
                    "file.moved",
                    {
                        "path": dest,
                        "name": os.path.basename(dest),
                        "dir": os.path.dirname(dest),
                        "is_dir": is_dir,
                        "dest_path": dest,
                        "src_path": src,
                        "src_dir": os.path.dirname(src),
                    },
                )

    def _first_sight(self, path: str) -> bool:
        """False if a scan already reported ``path`` as created."""
        if self._recent_created is None:  # the common case: no scan lately
            return True
        with self._cond:
            # Read again under the lock (getattr: mypy would keep the narrowed type).
            seen: set[str] | None = getattr(self, "_recent_created", None)
            if seen is None:
                return True
            if path in seen:
                return False
            seen.add(path)
            return True

    def _modified(self, path: str) -> None:
        if not self._scope.accepts(path, False):
            return
        with self._cond:
            write = self._writes.get(path)
            if write is not None:
                write[0] = True
                return
            if len(self._writes) < MAX_TRACKED_WRITES:
                deadline = time.monotonic() + MODIFY_WINDOW_S
                self._writes[path] = [True, deadline]
                self._push(deadline, "write", path)
                return
        self._publish("file.modified", path, False)

    def _closed(self, path: str) -> None:
        with self._cond:
            write = self._writes.pop(path, None)
        if write is not None and write[0]:
            self._publish("file.modified", path, False)

    def _forget(self, path: str) -> None:
        """``path`` is gone: no trailing write for it, and it may be created anew."""
        if path in self._writes or self._recent_created is not None:
            with self._cond:
                self._writes.pop(path, None)
                if self._recent_created is not None:
                    self._recent_created.discard(path)

    def _publish(self, type_: str, path: str, is_dir: bool) -> None:
        data = {
            "path": path,
            "name": os.path.basename(path),
            "dir": os.path.dirname(path),
            "is_dir": is_dir,
        }
        # A change a rule's file action made carries that run as its cause, so
        # the cascade guard sees a rule that feeds the folder it watches.
        origin = self.bus.causes.of_path(path)
        if origin is None:
            self.publish(type_, data)
        else:
            self.bus.publish(type_, data, source=self.id, cause=origin.run, depth=origin.depth + 1)

    def _note_overflow(self) -> None:
        self.overflows += 1


class _OverflowCounter(logging.Filter):
    """Counts watchdog's "inotify queue overflowed" warnings for the running
    listeners (watchdog offers no other hook for them)."""

    _instance: _OverflowCounter | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        self.listeners: set[FilesystemListener] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in str(record.msg).lower():
            for listener in list(self.listeners):
                listener._note_overflow()
        return True

    @classmethod
    def attach(cls, listener: FilesystemListener) -> None:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
                logging.getLogger("watchdog.observers.inotify_c").addFilter(cls._instance)
            cls._instance.listeners.add(listener)

    @classmethod
    def detach(cls, listener: FilesystemListener) -> None:
        with cls._lock:
            if cls._instance is not None:
                cls._instance.listeners.discard(listener)


def _direct_emitter(base: Any, handler: Callable[[Any, Any], None]) -> Any:
    """A subclass of watchdog's emitter class that hands each event to
    ``handler`` on the emitter's thread instead of queueing it for the
    observer's dispatch thread (whose queue has no bound), and that asks
    inotify only for what the listener uses."""

    class DirectEmitter(base):  # type: ignore[misc]
        def queue_event(self, event: Any) -> None:
            handler(event, self.watch)

        def get_event_mask_from_filter(self) -> int:
            from watchdog.observers.inotify_c import InotifyConstants as C

            mask = C.IN_CREATE | C.IN_DELETE | C.IN_MOVED_FROM | C.IN_MOVED_TO | C.IN_DELETE_SELF
            if self._event_filter is None:  # rules want writes here, not only entries
                mask |= C.IN_MODIFY | C.IN_CLOSE_WRITE
            return int(mask)

    DirectEmitter.__name__ = DirectEmitter.__qualname__ = f"Nerve{base.__name__}"
    return DirectEmitter


def _below(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _covers(have: _Spec, want: _Spec) -> bool:
    """A watch already in place serves: watching everything serves "structure
    only" too, so a watch is never redone (with a gap) just to ask for less."""
    return (
        have.recursive == want.recursive
        and have.follow == want.follow
        and (have.content or not want.content)
    )


def _backend_name(observer: object) -> str:
    name = type(observer).__name__.removesuffix("Observer").lower()
    return {"windowsapi": "ReadDirectoryChangesW"}.get(name, name)


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _entries(root: str, recursive: bool) -> Iterator[tuple[str, bool]]:
    """What is in ``root`` (or ``root`` itself when it is a file)."""
    if not os.path.isdir(root):
        if os.path.exists(root):
            yield root, False
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    yield entry.path, is_dir
                    if is_dir and recursive:
                        stack.append(entry.path)
        except OSError:
            continue


# ---------------------------------------------------------------------------
# Triggers

_LIST_OF_PATTERNS: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ]
}

_OPTIONS: dict[str, Any] = {
    "path": {
        "type": "string",
        "description": "A folder (changes inside it) or a file; ~ and $VARS are expanded",
    },
    "glob": {
        **_LIST_OF_PATTERNS,
        "description": "Only names matching one of these (*.pdf); with / a path below the "
        "folder (**/*.py)",
    },
    "ignore": {
        **_LIST_OF_PATTERNS,
        "description": "Names or paths to leave out (build/, *.log), besides the defaults",
    },
    "ignore_defaults": {
        "type": "boolean",
        "description": "Leave out editor temp files, partial downloads and .git (default: yes)",
    },
    "recursive": {"type": "boolean", "description": "Include sub-folders (default: no)"},
    "is_dir": {"type": "boolean", "description": "Only folders (true) or only files (false)"},
    "settle": {
        **DURATION_SCHEMA,
        "description": "Wait until the file has not changed for this long (a download or copy "
        "still being written): 500ms, 2s",
    },
}

_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "The folder or file to watch"},
        {
            "type": "object",
            "properties": _OPTIONS,
            "required": ["path"],
            "additionalProperties": False,
        },
    ]
}

_EXTRA_FIELDS = frozenset({"src_path", "src_dir"})
_KINDS = ("created", "modified", "deleted", "moved")


@dataclass
class _Settling:
    event: Event
    deadline: float
    signature: tuple[int, int] | None = None
    since: float = 0.0


class FileTrigger(Trigger):
    """Changes of files in a folder (or of one file), seen through the
    trigger's filters. Subclasses say which kinds of change fire."""

    kinds: frozenset[str] = frozenset()
    listeners = frozenset({LISTENER_ID})
    schema = _SCHEMA

    def __init__(
        self,
        root: str,
        *,
        written: str,
        recursive: bool = False,
        globs: Patterns | None = None,
        ignore: Patterns | None = None,
        ignore_defaults: bool = True,
        is_dir: bool | None = None,
        settle: float | None = None,
    ) -> None:
        self.root = root
        self.written = written
        self.recursive = recursive
        self.prefix = root if root.endswith(os.sep) else root + os.sep
        self.globs = globs
        self.ignore = ignore
        self.ignore_defaults = ignore_defaults
        self.is_dir = is_dir
        self.settle = settle
        self._last_id = -1
        self._settling: dict[str, _Settling] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._timer: Cancellable | None = None
        self._timer_at = 0.0
        self._host: TriggerHost | None = None
        self._warned_full = False

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> FileTrigger:
        if isinstance(options, str):
            options = {"path": options}
        # {input.*} placeholders were filled in by the compiler.
        written = options["path"]
        try:
            root = expand_path(written)
        except ValueError as exc:
            raise ConfigError(str(exc), ("path",)) from None
        patterns: dict[str, Patterns | None] = {}
        for key in ("glob", "ignore"):
            value = options.get(key)
            if value is None:
                patterns[key] = None
                continue
            items = [value] if isinstance(value, str) else list(value)
            try:
                patterns[key] = Patterns(items, anywhere=key == "ignore")
            except (ValueError, re.error) as exc:
                raise ConfigError(f"bad pattern: {exc}", (key,)) from None
        settle = None
        if "settle" in options:
            if not cls.kinds & {"created", "modified", "moved"}:
                raise ConfigError(
                    "'settle' waits for a file to stop changing; a deleted file has none",
                    ("settle",),
                )
            settle = parse_duration(options["settle"])
            if not 0 < settle <= 3600:
                raise ConfigError("'settle' must be more than 0 and at most 1h", ("settle",))
        trigger = cls(
            root,
            written=written,
            recursive=bool(options.get("recursive", False)),
            globs=patterns["glob"],
            ignore=patterns["ignore"],
            ignore_defaults=bool(options.get("ignore_defaults", True)),
            is_dir=options.get("is_dir"),
            settle=settle,
        )
        # Which folder it reveals changes of (names of the files in it).
        shown = root
        if any(f"input.{name}" in written for name in ctx.secrets):
            shown = written  # (a secret input's value is never shown)
        seen = os.path.join(shown, "**") if trigger.recursive else shown
        trigger.concrete = frozenset({"watches-files", caps.cap("watches", seen)})
        return trigger

    # ------------------------------------------------------------- matching

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield (
            LISTENER_ID,
            WatchNeed(
                self.root, self.recursive, not self.ignore_defaults, "modified" in self.kinds
            ),
        )

    def matchers(self) -> list[Matcher]:
        sources = {f"file.{k}" for k in self.kinds if k != "moved"}
        if self.kinds & {"created", "deleted", "moved"}:
            sources.add("file.moved")  # moves in and out are creations and deletions here
        out: list[Matcher] = []
        for type_ in sorted(sources):
            moved = type_ == "file.moved"
            # The file itself (a path naming a file); moved from or to it.
            out.append(Matcher(type_, ("path", self.root)))
            if moved:
                out.append(Matcher(type_, ("src_path", self.root)))
            if self.recursive:  # not indexed: a prefix test per event
                out.append(Matcher(type_, None, _under(self.prefix, moved)))
            else:
                out.append(Matcher(type_, ("dir", self.root)))
                if moved:
                    out.append(Matcher(type_, ("src_dir", self.root)))
        return out

    def _relative(self, path: str, is_dir: bool) -> str | None:
        if path == self.root:
            return None if is_dir else os.path.basename(path)
        if self.recursive:
            return path[len(self.prefix) :] if path.startswith(self.prefix) else None
        return os.path.basename(path) if os.path.dirname(path) == self.root else None

    def visible(self, path: str, is_dir: bool) -> bool:
        """Is ``path`` in this trigger's view (its folder, filters and ignores)?"""
        rel = self._relative(path, is_dir)
        if rel is None:
            return False
        if self.is_dir is not None and is_dir != self.is_dir:
            return False
        if self.ignore_defaults and DEFAULTS.match(rel, is_dir):
            return False
        if self.ignore is not None and self.ignore.match(rel, is_dir):
            return False
        return self.globs is None or self.globs.match(rel, is_dir)

    def classify(self, event: Event) -> tuple[str, Event] | None:
        """The kind of change ``event`` is for this trigger, and the event to
        fire with (a move into or out of the view becomes a creation or a
        deletion, with ``path`` the file's path inside the view)."""
        data = event.data
        is_dir = bool(data.get("is_dir"))
        path = str(data.get("path", ""))
        if event.type != "file.moved":
            if not self.visible(path, is_dir):
                return None
            return event.type[5:], event
        src = str(data.get("src_path", ""))
        seen_before, seen_after = self.visible(src, is_dir), self.visible(path, is_dir)
        if seen_before and seen_after:
            return "moved", event
        if seen_after:
            return "created", event._replace(type="file.created")
        if seen_before:
            gone = dict(data)
            gone.update(
                path=src, name=os.path.basename(src), dir=os.path.dirname(src), dest_path=path
            )
            return "deleted", event._replace(type="file.deleted", data=MappingProxyType(gone))
        return None

    def on_match(self, event: Event, matcher: Matcher, host: TriggerHost) -> None:
        if event.id == self._last_id:
            return  # two of this trigger's matchers took the same event
        self._last_id = event.id
        seen = self.classify(event)
        if seen is None:
            return
        kind, fired = seen
        if kind not in self.kinds:
            return
        if self.settle is None:
            host.fire(fired)
        elif kind == "deleted":
            self._settling.pop(str(fired.data.get("path")), None)
            host.fire(fired)
        else:
            self._wait_to_settle(fired, host)

    # ---------------------------------------------------------------- settle

    def _wait_to_settle(self, event: Event, host: TriggerHost) -> None:
        assert self.settle is not None
        path = str(event.data.get("path"))
        pending = self._settling.get(path)
        if pending is not None:
            return  # already waiting: fires once, with the first event (created, say)
        if len(self._settling) >= MAX_SETTLING:
            if not self._warned_full:
                log.warning(
                    "%s: %d files waiting to settle; firing the rest at once", self, MAX_SETTLING
                )
                self._warned_full = True
            host.fire(event)
            return
        now = time.monotonic()
        self._host = host
        self._settling[path] = _Settling(event, now + self.settle, since=now)
        heapq.heappush(self._heap, (now + self.settle, next(self._seq), path))
        self._arm()

    def _arm(self) -> None:
        if not self._heap or self._host is None:
            return
        at = self._heap[0][0]
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._host.call_later(max(0.0, at - time.monotonic()), self._due)

    def _due(self) -> None:
        self._timer = None
        now = time.monotonic()
        checked = 0
        while self._heap and self._heap[0][0] <= now and checked < 1000:
            deadline, _, path = heapq.heappop(self._heap)
            pending = self._settling.get(path)
            if pending is None or pending.deadline != deadline:
                continue
            checked += 1
            self._check(path, pending, now)
        self._arm()

    def _check(self, path: str, pending: _Settling, now: float) -> None:
        """Fire if the file has been quiet for ``settle``; else look again later."""
        assert self.settle is not None
        assert self._host is not None
        try:
            st = os.stat(path)
        except OSError:
            del self._settling[path]  # gone (deleted or moved on) before it settled
            return
        signature = (st.st_mtime_ns, st.st_size)
        quiet = time.time() - st.st_mtime_ns / 1e9
        if signature != pending.signature:
            pending.signature = signature
            pending.since = now
        if quiet >= self.settle or now - pending.since >= self.settle:
            del self._settling[path]
            self._host.fire(pending.event)
            return
        pending.deadline = now + min(self.settle, max(self.settle - quiet, 0.01))
        heapq.heappush(self._heap, (pending.deadline, next(self._seq), path))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._settling.clear()
        self._heap.clear()
        self._host = None

    # ------------------------------------------------------------ reporting

    def event_fields(self) -> frozenset[str] | None:
        fields: set[str] = set(_EXTRA_FIELDS)
        for kind in _KINDS:
            fields |= KNOWN_FIELDS.get(f"file.{kind}", frozenset())
        return frozenset(fields)

    def event_hint(self) -> str:
        return "file events"

    def describe(self) -> str:
        text = f"{self.key} in {self.written}"
        if self.globs:
            text += f" ({', '.join(self.globs.patterns)})"
        if self.recursive:
            text += ", with sub-folders"
        if self.is_dir is not None:
            text += ", folders only" if self.is_dir else ", files only"
        if self.settle:
            text += f", once settled for {format_duration(self.settle)}"
        return text

    def __str__(self) -> str:
        return self.describe()


def _under(prefix: str, moved: bool) -> Callable[[Event], bool]:
    """A predicate: is the event's path (or, for a move, its source) below ``prefix``?"""

    def check(event: Event) -> bool:
        path = event.data.get("path")
        if isinstance(path, str) and path.startswith(prefix):
            return True
        src = event.data.get("src_path") if moved else None
        return isinstance(src, str) and src.startswith(prefix)

    return check


_DESCRIPTIONS = {
    "created": "A file or folder appears in a folder (created, or moved or renamed into it)",
    "modified": "A file's content was written (once per write, when the writer closes it)",
    "deleted": "A file or folder disappears from a folder (deleted, or moved out of it)",
    "moved": "A file or folder is renamed or moved within a watched folder",
    "changed": "Any of file.created, file.modified, file.deleted or file.moved",
}


def _register(kind: str) -> type[FileTrigger]:
    kinds = frozenset(_KINDS) if kind == "changed" else frozenset({kind})
    cls = type(
        f"File{kind.capitalize()}Trigger",
        (FileTrigger,),
        {
            "key": f"file.{kind}",
            "kinds": kinds,
            "description": _DESCRIPTIONS[kind],
            "__doc__": _DESCRIPTIONS[kind] + ".",
            "__module__": __name__,
        },
    )
    triggers.register(cls)
    return cls


FileCreatedTrigger = _register("created")
FileModifiedTrigger = _register("modified")
FileDeletedTrigger = _register("deleted")
FileMovedTrigger = _register("moved")
FileChangedTrigger = _register("changed")
