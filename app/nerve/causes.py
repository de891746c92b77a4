"""What rule runs did outside Nerve, so the events that come back carry their cause.

A rule's own ``emit`` gives its event a cause and a depth directly. A loop
through the outside world does not: a rule runs ``nerve emit x`` and reacts
to ``x``, or copies a file into the folder it watches. Without a cause such
events look like the user's, and the cascade guard (which suspends a rule past
``max_depth`` or re-fired by its own effects too fast) never sees the loop.

So the engine notes here the programs its runs start and the paths their file
actions write, and:

- the control socket asks :meth:`Causes.of_process` about the process that
  sent ``nerve emit`` (its pid from ``SO_PEERCRED``): the process, or one of its
  ancestors (the ``ppid`` chain), or the session it runs in (a program a rule
  starts leads a session of its own, so a grandchild that was re-parented to
  init still belongs to it) is one a run started;
- the file watcher asks :meth:`Causes.of_path` about each change it reports:
  a path a file action wrote (or a folder it copied, with what is inside)
  within the last :data:`PATH_TTL_S` seconds.

What a started program writes to disk by itself cannot be told apart from the
user's own writes, and is not attributed. Thread-safe; no Qt, no engine import.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

#: How long after a file action its paths are attributed to its run.
PATH_TTL_S = 5.0
#: How long after a started program ended its session is still attributed to
#: its run (descendants it left behind may still emit).
PROCESS_TTL_S = 600.0
#: Bounds on what is remembered (the oldest entries go first).
MAX_PROCESSES = 4096
MAX_PATHS = 4096
#: Ancestors walked at most (a chain longer than this is not ours).
MAX_ANCESTRY = 64


class Origin(NamedTuple):
    """The run an outside effect came from: its id and the depth of its trigger."""

    run: str
    depth: int


class _Proc(NamedTuple):
    origin: Origin
    start: int | None  # the process's start time (clock ticks since boot), if known
    ended: float | None  # monotonic time it ended, if it did


class _Path(NamedTuple):
    origin: Origin
    until: float
    tree: bool  # also what is below it (a copied folder)


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, session id, start time) of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return _stat_psutil(pid)
    # "pid (comm) state ppid pgrp session ... starttime": comm may hold anything.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _stat_psutil(pid: int) -> tuple[int, int, int] | None:
    if os.path.isdir("/proc"):
        return None  # Linux: the process is gone
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    try:
        proc = psutil.Process(pid)
        sid = os.getsid(pid) if hasattr(os, "getsid") else -1
        return proc.ppid(), sid, int(proc.create_time() * 100)
    except (psutil.Error, OSError):
        return None


def _norm(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


class Causes:
    """Programs and paths of recent runs (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: OrderedDict[int, _Proc] = OrderedDict()
        self._paths: OrderedDict[str, _Path] = OrderedDict()
        self._trees = 0  # how many path entries are trees (a quick skip when none)

    # ------------------------------------------------------------ processes

    def note_process(self, pid: int, origin: Origin) -> None:
        """A run started program ``pid`` (call right after starting it)."""
        info = _stat(pid)
        entry = _Proc(origin, info[2] if info else None, None)
        with self._lock:
            self._procs[pid] = entry
            self._procs.move_to_end(pid)
            while len(self._procs) > MAX_PROCESSES:
                self._procs.popitem(last=False)

    def process_ended(self, pid: int) -> None:
        """Program ``pid`` ended (was reaped); its session is remembered a while."""
        with self._lock:
            entry = self._procs.get(pid)
            if entry is not None and entry.ended is None:
                self._procs[pid] = entry._replace(ended=time.monotonic())

    def _known(self, pid: int, start: int | None, now: float) -> Origin | None:
        """``pid`` (started at ``start``, if known) is a program a run started."""
        entry = self._procs.get(pid)
        if entry is None:
            return None
        if entry.ended is not None and now - entry.ended > PROCESS_TTL_S:
            return None
        if start is not None and entry.start is not None and start != entry.start:
            return None  # the pid was reused by another process
        return entry.origin

    def of_process(self, pid: int) -> Origin | None:
        """The run whose program is ``pid`` or one of its ancestors, if any."""
        if not self._procs:
            return None
        own = os.getpid()
        now = time.monotonic()
        seen = 0
        while pid > 1 and pid != own and seen < MAX_ANCESTRY:
            seen += 1
            info = _stat(pid)
            with self._lock:
                found = self._known(pid, info[2] if info else None, now)
                if found is None and info is not None and info[1] not in (0, pid):
                    leader = info[1]
                    leader_info = _stat(leader)
                    # The session's leader, if it still runs, must be the one we started.
                    found = self._known(leader, leader_info[2] if leader_info else None, now)
            if found is not None:
                return found
            if info is None:
                return None
            pid = info[0]
        return None

    # ------------------------------------------------------------------ paths

    def note_path(self, path: str, origin: Origin, *, tree: bool = False) -> None:
        """A run's file action writes (or removes) ``path`` (``tree``: and below it)."""
        until = time.monotonic() + PATH_TTL_S
        keys = {_norm(path)}
        with contextlib.suppress(OSError, ValueError):
            keys.add(os.path.realpath(path))
        with self._lock:
            for key in keys:
                old = self._paths.pop(key, None)
                if old is not None and old.tree:
                    self._trees -= 1
                self._paths[key] = _Path(origin, until, tree)
                self._trees += tree
            while len(self._paths) > MAX_PATHS:
                _, dropped = self._paths.popitem(last=False)
                self._trees -= dropped.tree

    def of_path(self, path: str) -> Origin | None:
        """The run whose file action wrote ``path`` lately, if any."""
        if not self._paths:
            return None
        now = time.monotonic()
        key = _norm(path)
        with self._lock:
            entry = self._paths.get(key)
            if entry is not None and entry.until >= now:
                return entry.origin
            if self._trees:
                parent = os.path.dirname(key)
                while parent and parent != key:
                    entry = self._paths.get(parent)
                    if entry is not None and entry.tree and entry.until >= now:
                        return entry.origin
                    key, parent = parent, os.path.dirname(parent)
        return None
