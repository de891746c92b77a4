"""Programs starting and ending: the ``process.started`` / ``process.exited``
triggers, the ``process.running`` condition, and the listener behind them.

Which backend the listener uses:

- **proc connector** (Linux): the kernel sends a netlink message on every
  ``exec`` and ``exit`` as it happens, with the exit status, so a start is
  seen within a millisecond or so, exit codes are known for every process,
  and the listener wakes only when a process starts or ends somewhere. It works in the machine's own
  network namespace (not inside a container with a network of its own), and
  on kernels before 6.6 only for root or with CAP_NET_ADMIN.
- **polling** (everywhere else, or when the connector is refused): every
  100 ms the listener reads ``/proc/loadavg``, whose last fields change
  whenever a task is created (the last pid handed out) or ends (the number of
  tasks). Only then does it read the new pids, which the kernel hands out in
  order, so /proc is not even listed (it is after a pid wrap-around, a burst
  of more than 256 new tasks, and every round off Linux, through
  ``psutil.pids()``). A process that lives shorter than the interval can be
  missed, exit codes are unknown (``exit_code`` is None), and an exit is
  seen when the parent reaps the process, or within half a second if it
  does not. A new process is looked at once more a round later, in case it
  was caught between fork and exec under its parent's name.

``NERVE_PROCESS_BACKEND=connector|poll`` forces one (``connector`` where it
cannot work makes the listener unavailable instead of falling back).

The listener reads a process once, when it starts (name, exe, command line,
user), and only if some loaded rule could care about it: rules whose ``name``
is exact text are looked up in a dict by name, so a thousand process rules
cost one lookup per started process. The processes that match a rule are
kept until they end, which is how ``process.exited`` knows their name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import socket
import struct
import sys
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from nerve import matching
from nerve.engine.registry import (
    CompileContext,
    Condition,
    ConfigError,
    Matcher,
    Trigger,
    conditions,
    triggers,
)
from nerve.engine.runs import RunContext
from nerve.events import Event, fields_for
from nerve.listeners.base import Listener, ListenerUnavailable, Need, listeners

log = logging.getLogger(__name__)

#: The environment variable that forces a backend: ``connector`` or ``poll``.
BACKEND_ENV = "NERVE_PROCESS_BACKEND"
BACKENDS = ("auto", "connector", "poll")
#: How often the polling backend looks for new and ended processes.
POLL_INTERVAL_S = 0.1
#: How often polling checks whether a process a rule is about ended but was not
#: reaped yet (it still has a pid, so listing pids does not tell).
ZOMBIE_SWEEP_S = 0.5
#: More new pids than this in one round are found by listing /proc instead.
MAX_PROBE = 256
#: The task flag "forked but did not exec" (include/linux/sched.h).
PF_FORKNOEXEC = 0x00000040
JOIN_TIMEOUT_S = 5.0
#: The kernel truncates a process's name (comm) to this many characters.
COMM_LEN = 15
FIELDS = ("name", "exe", "cmdline", "user")


# ---------------------------------------------------------------------------
# What is known about one process


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """A process as read once, when it started (or when the listener started)."""

    pid: int
    name: str
    exe: str | None
    cmdline: str
    user: str | None

    def get(self, field: str) -> Any:
        return getattr(self, field) if field in FIELDS else matching.MISSING

    def data(self, exit_code: int | None) -> dict[str, object]:
        return {
            "pid": self.pid,
            "name": self.name,
            "exe": self.exe,
            "cmdline": self.cmdline,
            "user": self.user,
            "exit_code": exit_code,
        }


class ProcessGone(Exception):
    """The process ended before it could be read (short-lived processes race us)."""


def _read(path: str, limit: int = 1 << 17) -> bytes:
    # os.open/os.read: a third of the cost of open(); these run per started process.
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessGone() from None
    try:
        chunks = []
        size = 0
        while size < limit:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except ProcessLookupError:
        raise ProcessGone() from None
    finally:
        os.close(fd)


@lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """The login name of ``uid`` (the number as text when it has none)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _full_name(comm: str, argv0: str) -> str:
    """``comm`` is cut at 15 characters; like psutil, take the program's file
    name instead when it starts with what the kernel kept."""
    if len(comm) >= COMM_LEN and argv0:
        base = os.path.basename(argv0)
        if base.startswith(comm):
            return base
    return comm


class ProcSource:
    """Processes read from Linux's ``/proc``."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root
        self._loadavg = f"{root}/loadavg"
        self._loadavg_fd = -1

    def pids(self) -> set[int]:
        return {int(n) for n in os.listdir(self.root) if n.isdigit()}

    def counters(self) -> tuple[int, int] | None:
        """(tasks, last pid): the number of tasks on the machine and the last
        pid the kernel handed out (the end of ``/proc/loadavg``). Every new
        task moves the second, every ended one changes the first."""
        try:
            if self._loadavg_fd < 0:
                self._loadavg_fd = os.open(self._loadavg, os.O_RDONLY)
            # Kept open, read from the start each time: one system call a round.
            # "0.10 0.20 0.30 2/107 27570": running/total tasks, last pid.
            parts = os.pread(self._loadavg_fd, 256, 0).split()
            return int(parts[3].partition(b"/")[2]), int(parts[4])
        except (OSError, IndexError, ValueError):
            return None

    def close(self) -> None:
        if self._loadavg_fd >= 0:
            os.close(self._loadavg_fd)
            self._loadavg_fd = -1

    def exists(self, pid: int) -> bool:
        return os.path.exists(f"{self.root}/{pid}")

    def is_process(self, pid: int) -> bool:
        """False for a thread: /proc/<tid> answers for threads too (unlisted)."""
        for line in _read(f"{self.root}/{pid}/status", 4096).splitlines():
            if line.startswith(b"Tgid:"):
                return int(line.split()[1]) == pid
        return True

    def comm(self, pid: int) -> str:
        return _read(f"{self.root}/{pid}/comm").rstrip(b"\n").decode("utf-8", "replace")

    def peek(self, pid: int) -> tuple[str, bool]:
        """The name, and whether the task has not exec'd since it was forked
        (a thread, or a child about to run another program): PF_FORKNOEXEC
        in the flags of ``/proc/<pid>/stat``."""
        stat = _read(f"{self.root}/{pid}/stat")
        end = stat.rfind(b")")
        name = stat[stat.find(b"(") + 1 : end].decode("utf-8", "replace")
        try:
            flags = int(stat[end + 2 :].split(maxsplit=7)[6])
        except (IndexError, ValueError):
            return name, True
        return name, bool(flags & PF_FORKNOEXEC)

    def info(self, pid: int, comm: str) -> ProcInfo:
        base = f"{self.root}/{pid}"
        raw = _read(f"{base}/cmdline")
        args = raw.rstrip(b"\0").split(b"\0") if raw else []
        cmdline = " ".join(a.decode("utf-8", "replace") for a in args)
        argv0 = args[0].decode("utf-8", "replace") if args else ""
        try:
            exe: str | None = os.readlink(f"{base}/exe")
        except OSError:  # a kernel thread, a zombie, or another user's process
            exe = None
        try:
            user: str | None = user_name(os.stat(base).st_uid)
        except (FileNotFoundError, ProcessLookupError):
            raise ProcessGone() from None
        return ProcInfo(pid, _full_name(comm, argv0), exe, cmdline, user)

    def is_zombie(self, pid: int) -> bool:
        try:
            stat = _read(f"{self.root}/{pid}/stat")
        except ProcessGone:
            return True
        return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


class PsutilSource:
    """Processes read through psutil (macOS, Windows, the BSDs)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil

    def pids(self) -> set[int]:
        return set(self._psutil.pids())

    def counters(self) -> tuple[int, int] | None:
        return None

    def close(self) -> None:
        pass

    def exists(self, pid: int) -> bool:
        return bool(self._psutil.pid_exists(pid))

    def is_process(self, pid: int) -> bool:
        return True

    def peek(self, pid: int) -> tuple[str, bool]:
        return self.comm(pid), True

    def comm(self, pid: int) -> str:
        try:
            return str(self._psutil.Process(pid).name())
        except self._psutil.NoSuchProcess:
            raise ProcessGone() from None
        except self._psutil.AccessDenied:
            return ""

    def info(self, pid: int, comm: str) -> ProcInfo:
        ps = self._psutil
        try:
            proc = ps.Process(pid)
            with proc.oneshot():
                exe = _or_none(proc.exe)
                argv = _or_none(proc.cmdline) or []
                user = _or_none(proc.username)
        except ps.NoSuchProcess:
            raise ProcessGone() from None
        return ProcInfo(pid, comm, exe or None, " ".join(argv), user)

    def is_zombie(self, pid: int) -> bool:
        try:
            return bool(self._psutil.Process(pid).status() == self._psutil.STATUS_ZOMBIE)
        except self._psutil.Error:
            return True


def _or_none(getter: Callable[[], Any]) -> Any:
    import psutil

    try:
        return getter()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None


Source = ProcSource | PsutilSource


def default_source() -> Source:
    """``/proc`` where there is one, psutil elsewhere (ListenerUnavailable without either)."""
    if os.path.isfile("/proc/self/stat"):
        return ProcSource()
    try:
        return PsutilSource()
    except ImportError:
        raise ListenerUnavailable(
            "process triggers need psutil on this system: pip install psutil"
        ) from None


# ---------------------------------------------------------------------------
# What rules ask for


class ProcessSpec(NamedTuple):
    """The processes one trigger or condition is about: a listener need.

    Hashable: each field's match spec is kept as canonical JSON text.
    ``exits``: a rule wants to know when they end (so they are kept until then).
    """

    fields: tuple[tuple[str, str], ...]
    exits: bool = False

    @classmethod
    def of(cls, options: Mapping[str, Any], *, exits: bool = False) -> ProcessSpec:
        fields = tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in options.items()))
        return cls(fields, exits)

    def options(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.fields}

    def describe(self) -> str:
        return ", ".join(f"{k}={json.loads(v)}" for k, v in self.fields) or "any process"


InfoCheck = Callable[[ProcInfo], bool]


def compile_info_check(specs: Mapping[str, Any]) -> InfoCheck:
    """A predicate over a ProcInfo for field match specs (name, exe, cmdline, user)."""
    if not specs:
        return lambda info: True
    check = matching.compile_fields(specs)
    return lambda info: check(info.get)


class Wanted:
    """Every need of the loaded rules, indexed by exact program name."""

    def __init__(self, needs: Sequence[Need]) -> None:
        self.everything = False
        self.by_name: dict[str, list[InfoCheck]] = {}
        self.others: list[InfoCheck] = []
        self.specs: frozenset[ProcessSpec] = frozenset(
            n for n in needs if isinstance(n, ProcessSpec)
        )
        for need in needs:
            if need is None:
                self.everything = True  # a monitor that shows every process
        #: Does any rule care about ends? If not, nothing is kept and, with the
        #: proc connector, the kernel is not even asked for exits.
        self.exits = self.everything or any(s.exits for s in self.specs)
        for spec in self.specs:
            options = spec.options()
            name = options.get("name")
            if isinstance(name, str) and matching.is_exact(name):
                del options["name"]
                self.by_name.setdefault(name, []).append(compile_info_check(options))
            else:
                self.others.append(compile_info_check(options))

    def may_want(self, comm: str) -> bool:
        """Worth reading the rest of the process? (Cheap: the name only.)"""
        return self.everything or bool(self.others) or comm in self.by_name or len(comm) >= COMM_LEN

    def wants(self, info: ProcInfo) -> bool:
        if self.everything:
            return True
        return any(c(info) for c in self.by_name.get(info.name, ())) or any(
            c(info) for c in self.others
        )


def exit_code_of(status: int) -> int:
    """A wait status as ``subprocess`` shows it: the code, or minus the signal."""
    signal = status & 0x7F
    return -signal if signal else (status >> 8) & 0xFF


# ---------------------------------------------------------------------------
# The proc connector

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_NONE = 0
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000
#: Since Linux 6.6 a listener may ask for some event types only (and needs no root).
FILTER_SINCE = (6, 6)
RECEIVE_BUFFER = 4 << 20

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_U32 = struct.Struct("=I")
_TWO_U32 = struct.Struct("=II")
_FOUR_U32 = struct.Struct("=IIII")
# Offsets in one message: nlmsghdr (16), cn_msg (20), then proc_event:
# what (4), cpu (4), timestamp (8), then the event's own fields.
_WHAT = _NLMSGHDR.size + _CN_MSG.size
_FIELDS_AT = _WHAT + 16


def kernel_version(release: str | None = None) -> tuple[int, int]:
    release = release if release is not None else os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def open_connector(
    filtered: bool | None = None, timeout: float = 1.0, *, exits: bool = True
) -> socket.socket:
    """A netlink socket subscribed to exec (and ``exits``: exit) events of
    every process.

    Raises OSError when the kernel refuses (see :func:`connector_problem`).
    ``filtered`` (default: Linux 6.6 or newer) asks the kernel for those
    events only; otherwise the socket gets every event type.
    """
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, f"the proc connector is Linux only (this is {sys.platform})")
    if filtered is None:
        filtered = kernel_version() >= FILTER_SINCE
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    try:
        try:  # room for a burst of starts (a build) while we read the previous ones
            sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER)  # SO_RCVBUFFORCE (root)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((0, CN_IDX_PROC))
        if filtered:
            mask = PROC_EVENT_EXEC | (PROC_EVENT_EXIT if exits else 0)
            payload = _TWO_U32.pack(PROC_CN_MCAST_LISTEN, mask)
        else:
            payload = _U32.pack(PROC_CN_MCAST_LISTEN)
        # Ask for an acknowledgement (ack=1) when the kernel sends one: only the
        # old, unfiltered subscription gets it (the filter drops "no event").
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0 if filtered else 1, len(payload), 0)
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(cn) + len(payload), NLMSG_DONE, 0, 0, 0)
        sock.send(header + cn + payload)
        if not filtered:
            _await_ack(sock, timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def _await_ack(sock: socket.socket, timeout: float) -> None:
    ready, _, _ = select.select([sock], [], [], timeout)
    while ready:
        data = sock.recv(65536)
        if len(data) >= _FIELDS_AT + 4 and _U32.unpack_from(data, _WHAT)[0] == PROC_EVENT_NONE:
            (err,) = _U32.unpack_from(data, _FIELDS_AT)
            if err:
                raise OSError(err, os.strerror(err))
            return
        ready, _, _ = select.select([sock], [], [], timeout)
    raise OSError(errno.ETIMEDOUT, "the proc connector did not answer")


def connector_problem(exc: OSError) -> str:
    """Why the connector cannot be used, in words a user can act on."""
    code = exc.errno
    if code in (errno.EPERM, errno.EACCES):
        return "not permitted (this kernel allows it to root or with CAP_NET_ADMIN only)"
    if code == errno.ECONNREFUSED:
        return (
            "the kernel did not accept the subscription "
            "(inside a container with a network namespace of its own?)"
        )
    if code in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
        return "this kernel has no proc connector (CONFIG_PROC_EVENTS)"
    return str(exc.strerror or exc)


# ---------------------------------------------------------------------------
# The listener


@listeners.register
class ProcessListener(Listener):
    """Publishes ``process.started`` and ``process.exited`` for the processes
    that loaded rules are about (see the module docstring for the backends)."""

    id = "processes"
    description = "Programs starting and ending (Linux proc connector, or polling)"

    def __init__(
        self,
        bus: Any,
        on_failure: Any,
        *,
        backend: str | None = None,
        interval: float | None = None,
        source: Source | None = None,
        filtered: bool | None = None,
    ) -> None:
        super().__init__(bus, on_failure)
        self.requested = (backend or os.environ.get(BACKEND_ENV) or "auto").strip().lower()
        self.interval = interval if interval is not None else POLL_INTERVAL_S
        self.backend = ""
        #: Why the connector is not used, when it was tried and refused.
        self.fallback_reason = ""
        #: Started processes that ended before they could be read.
        self.missed = 0
        #: Times the kernel's queue overflowed (a resync followed each).
        self.overflows = 0
        self._source = source
        self._filtered = filtered
        self._lock = threading.Lock()
        self._wanted = Wanted(())
        self._tracked: dict[int, ProcInfo] = {}
        self._known: set[int] = set()
        #: Polling: pids first seen on the last round that no rule wanted, by name.
        self._fresh: dict[int, str] = {}
        self._counters: tuple[int, int] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._wake_r = self._wake_w = -1

    # ------------------------------------------------------------ contract

    def start(self, needs: Sequence[Need]) -> None:
        if self.requested not in BACKENDS:
            raise ListenerUnavailable(
                f"{BACKEND_ENV}={self.requested!r} is not a backend: use connector or poll"
            )
        if self._source is None:
            self._source = default_source()
        self._wanted = Wanted(needs)
        self._stopping.clear()
        if self.requested in ("auto", "connector"):
            try:
                self._sock = open_connector(self._filtered, exits=self._wanted.exits)
            except OSError as exc:
                reason = connector_problem(exc)
                if self.requested == "connector":
                    raise ListenerUnavailable(
                        f"the proc connector cannot be used: {reason}"
                    ) from None
                self.fallback_reason = reason
                log.info("proc connector not available (%s); polling for processes", reason)
        if self._sock is not None:
            self.backend = "connector"
            # Subscribed first, then read what already runs: nothing falls between.
            self._rescan(publish=False)
            target: Callable[[], None] = self._connector_loop
        else:
            self.backend = "poll"
            # Read before the scan: whatever starts from here on is new.
            self._counters = self._source.counters()
            self._rescan(publish=False)
            target = self._poll_loop
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=target, name=f"processes-{self.backend}", daemon=True
        )
        self._thread.start()

    def reconfigure(self, needs: Sequence[Need]) -> None:
        """New rules: look again at what runs (nothing is published). A restart
        only when exits start or stop mattering to the kernel subscription."""
        wanted = Wanted(needs)
        if self.backend == "connector" and wanted.exits != self._wanted.exits:
            self.stop()
            self.start(needs)
            return
        self._wanted = wanted
        self._rescan(publish=False, reread=True)

    def stop(self) -> None:
        self._stopping.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._source is not None:
            self._source.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def detail(self) -> str:
        count = len(self._tracked)
        if self.backend == "connector":
            how = "proc connector (event-driven)"
        elif self.backend == "poll":
            how = f"polling every {self.interval * 1000:g} ms"
            if self.fallback_reason:
                how += f"; proc connector not used: {self.fallback_reason}"
        else:
            return ""
        parts = [how]
        if self._wanted.exits:
            parts.append(f"{count} matching process(es) running")
        if self.missed:
            parts.append(f"{self.missed} ended before they could be read")
        return "; ".join(parts)

    def tracked(self) -> list[ProcInfo]:
        """The running processes that match a rule about exits (kept until they end)."""
        with self._lock:
            return list(self._tracked.values())

    # --------------------------------------------------------------- work

    def _inspect(
        self,
        pid: int,
        wanted: Wanted,
        unmatched: dict[int, str] | None = None,
        *,
        maybe_thread: bool = False,
        newest: int = -1,
    ) -> ProcInfo | None:
        """The process if a rule wants it; None if not (or it is already gone).

        Polling passes ``unmatched``: a task not wanted that has not exec'd
        yet goes there by name, to be looked at again. ``maybe_thread``: the
        pid came from a range of new pids (``newest`` the last), not a listing.
        """
        source = self._source
        assert source is not None
        unexeced = False
        try:
            if unmatched is None:
                comm = source.comm(pid)
            else:
                comm, unexeced = source.peek(pid)
            if wanted.may_want(comm):
                if maybe_thread and not source.is_process(pid):
                    return None
                info = source.info(pid, comm)
                if wanted.wants(info):
                    return info
        except ProcessGone:
            if not maybe_thread:
                self.missed += 1
            elif unmatched is not None and pid == newest:
                # Gone already, or not there yet: the newest pid is handed out
                # a moment before its task shows in /proc. Look again next round.
                unmatched[pid] = ""
            return None
        except PermissionError:
            return None
        if unmatched is not None and unexeced:
            unmatched[pid] = comm
        return None

    def _rescan(self, *, publish: bool, reread: bool = False) -> None:
        """Bring the tracked processes in line with what runs now: at start,
        after new needs (``reread``), and after the kernel dropped events."""
        source = self._source
        assert source is not None
        pids = source.pids()
        with self._lock:
            # Polling looks once more at what it saw just now (see _recheck).
            fresh: dict[int, str] | None = self._fresh if self.backend == "poll" else None
            wanted = self._wanted
            tracked = self._tracked
            # After lost events (publish), a process may also have ended unreaped.
            for pid in [p for p in tracked if p not in pids or (publish and source.is_zombie(p))]:
                ended = tracked.pop(pid)
                if publish:
                    self.publish("process.exited", ended.data(None))
            self._known = pids
            if not wanted.exits:
                tracked.clear()
                # Nothing is kept, so after lost events there is no telling
                # the new processes from the old: those starts are lost.
                if not publish and fresh is not None:
                    for pid in pids:
                        self._inspect(pid, wanted, fresh)  # for the second look
                return
            for pid in pids:
                old = tracked.get(pid)
                if old is not None and not reread:
                    continue
                if old is not None and wanted.wants(old):
                    continue
                tracked.pop(pid, None)
                info = self._inspect(pid, wanted, fresh)
                if info is not None and not source.is_zombie(pid):
                    tracked[pid] = info
                    if publish:
                        self.publish("process.started", info.data(None))

    # ---------------------------------------------------------- connector

    def _connector_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self._stopping.is_set():
                poller.poll()
                if self._stopping.is_set():
                    return
                self._drain(sock)
        except Exception as exc:
            if not self._stopping.is_set():
                log.exception("the proc connector listener stopped")
                self.failed(exc)

    def _drain(self, sock: socket.socket) -> None:
        """Read every message waiting (one wake-up per burst, not per process)."""
        while True:
            try:
                data = sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                # The kernel dropped events (a burst of starts): look at /proc again.
                self.overflows += 1
                log.warning("process events were lost (a burst of starts); resynchronising")
                self._rescan(publish=True)
                continue
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        offset = 0
        size = len(data)
        while offset + _FIELDS_AT + 8 <= size:
            (length,) = _U32.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                return
            (what,) = _U32.unpack_from(data, offset + _WHAT)
            if what == PROC_EVENT_EXEC:
                pid, tgid = _TWO_U32.unpack_from(data, offset + _FIELDS_AT)
                if pid == tgid:
                    self._on_exec(pid)
            elif what == PROC_EVENT_EXIT and offset + _FIELDS_AT + 16 <= size:
                pid, tgid, status, _signal = _FOUR_U32.unpack_from(data, offset + _FIELDS_AT)
                if pid == tgid:  # a process, not one of its threads
                    self._on_exit(pid, status)
            offset += (length + 3) & ~3

    def _on_exec(self, pid: int) -> None:
        with self._lock:
            info = self._inspect(pid, self._wanted)
            # A process that execs another program is, for rules, that program now.
            self._tracked.pop(pid, None)
            if info is not None:
                self._started(info)

    def _started(self, info: ProcInfo) -> None:
        """Publish a start; keep the process until it ends if a rule cares (lock held)."""
        if self._wanted.exits:
            self._tracked[info.pid] = info
        self.publish("process.started", info.data(None))

    def _on_exit(self, pid: int, status: int) -> None:
        with self._lock:
            info = self._tracked.pop(pid, None)
        if info is not None:
            self.publish("process.exited", info.data(exit_code_of(status)))

    # ------------------------------------------------------------ polling

    def _poll_loop(self) -> None:
        source = self._source
        assert source is not None
        last = self._counters
        sweep_every = max(1, round(ZOMBIE_SWEEP_S / self.interval))
        ticks = 0
        try:
            for _ in self._rounds():
                ticks += 1
                if self._tracked and ticks % sweep_every == 0:
                    self._sweep_zombies()
                if self._fresh:
                    self._recheck()
                now = source.counters()
                if now is None or last is None:
                    last = now
                    self._poll_listing()  # no counters here (psutil): list every time
                elif now != last:
                    created = now[1] - last[1]
                    if created == 0:
                        self._poll_exits()
                    elif 0 < created <= MAX_PROBE:
                        self._poll_new(range(last[1] + 1, now[1] + 1))
                    else:
                        self._poll_listing()  # pids wrapped around, or a burst
                    last = now
        except Exception as exc:
            if not self._stopping.is_set():
                log.exception("process polling stopped")
                self.failed(exc)

    def _rounds(self) -> Iterator[None]:
        """Once per interval until stop(). Sleeping in poll() on the wake-up
        pipe: a round costs one system call to wait (Event.wait costs more)."""
        if not hasattr(select, "poll"):  # Windows
            while not self._stopping.wait(self.interval):
                yield
            return
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        timeout_ms = max(1, round(self.interval * 1000))
        while not poller.poll(timeout_ms) and not self._stopping.is_set():
            yield

    def _poll_new(self, pids: range) -> None:
        """Tasks were created (their pids are ``pids``) and maybe some ended:
        read the new ones, check the tracked ones. No listing of /proc."""
        self._poll_exits()
        with self._lock:
            wanted = self._wanted
            for pid in pids:
                info = self._inspect(pid, wanted, self._fresh, maybe_thread=True, newest=pids[-1])
                if info is not None:
                    self._started(info)

    def _poll_exits(self) -> None:
        source = self._source
        assert source is not None
        with self._lock:
            tracked = self._tracked
            for pid in [p for p in tracked if not source.exists(p)]:
                self.publish("process.exited", tracked.pop(pid).data(None))

    def _poll_listing(self) -> None:
        """List every pid and read the ones not seen on the last listing."""
        source = self._source
        assert source is not None
        pids = source.pids()
        with self._lock:
            known, tracked, wanted = self._known, self._tracked, self._wanted
            for pid in [p for p in tracked if p not in pids]:
                self.publish("process.exited", tracked.pop(pid).data(None))
            for pid in sorted(pids - known):
                if pid in tracked:
                    continue
                info = self._inspect(pid, wanted, self._fresh)
                if info is not None:
                    self._started(info)
            self._known = pids

    def _recheck(self) -> None:
        """A new pid may not run its program yet: between fork and exec it has
        its parent's name (and exec closes the parent's pipe before the name
        changes). The ones no rule wanted are looked at once more, a round
        later; those whose name changed meanwhile are read again."""
        source = self._source
        assert source is not None
        with self._lock:
            fresh, self._fresh = self._fresh, {}
            tracked, wanted = self._tracked, self._wanted
            for pid, comm in fresh.items():
                if pid in tracked:
                    continue
                try:
                    if source.comm(pid) == comm:
                        continue
                except ProcessGone:
                    continue
                info = self._inspect(pid, wanted, maybe_thread=True)
                if info is not None:
                    self._started(info)

    def _sweep_zombies(self) -> None:
        """A process that ended stays in /proc until its parent reaps it; the
        ones rules are about are checked for that now and then."""
        source = self._source
        assert source is not None
        with self._lock:
            tracked = self._tracked
            for pid in [p for p in tracked if source.is_zombie(p)]:
                self.publish("process.exited", tracked.pop(pid).data(None))


# ---------------------------------------------------------------------------
# Finding running processes (for the condition)


def running(spec: ProcessSpec, source: Source | None = None) -> list[ProcInfo]:
    """Processes running now that match ``spec`` (zombies, which have ended
    but not been reaped yet, do not count)."""
    source = source or default_source()
    wanted = Wanted([spec])
    found = []
    for pid in sorted(source.pids()):
        try:
            comm = source.comm(pid)
            if not wanted.may_want(comm):
                continue
            info = source.info(pid, comm)
        except (ProcessGone, PermissionError):
            continue
        if wanted.wants(info) and not source.is_zombie(pid):
            found.append(info)
    return found


# ---------------------------------------------------------------------------
# Triggers and the condition

_FIELD_DOCS = {
    "name": "Program name (firefox); text with * ? [ is a glob, a leading ! negates",
    "exe": "Full path of the program file (/usr/bin/*)",
    "cmdline": "The command line, arguments joined by spaces (*--profile work*)",
    "user": "The user the process runs as",
}


def _options_schema(what: str, *, allow_any: bool) -> dict[str, Any]:
    by_fields: dict[str, Any] = {
        "type": "object",
        "properties": {
            f: {**matching.SPEC_SCHEMA, "description": d} for f, d in _FIELD_DOCS.items()
        },
        "additionalProperties": False,
    }
    branches: list[dict[str, Any]] = [
        {"type": "string", "description": f"The name of the program {what} (or a glob)"},
        by_fields,
    ]
    if allow_any:
        branches.append({"type": "null", "description": "Any process"})
    else:
        by_fields["minProperties"] = 1
    return {"anyOf": branches}


def _compile_options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if isinstance(options, str):
        options = {"name": options}
    out = dict(options)
    for field, spec in out.items():
        try:
            matching.compile_spec(spec)
        except matching.SpecError as exc:
            raise ConfigError(str(exc), (field,)) from None
    return out


class _ProcessTrigger(Trigger):
    event_type = ""
    listeners = frozenset({"processes"})

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.spec = ProcessSpec.of(options, exits=self.event_type == "process.exited")
        name = options.get("name")
        # An exact name is the engine's index key: 1,000 rules cost one lookup.
        self.index = ("name", name) if matching.is_exact(name) else None
        rest = {k: v for k, v in options.items() if not (k == "name" and self.index)}
        check = matching.compile_fields(rest) if rest else None
        self.predicate: Callable[[Event], bool] | None = (
            (lambda e: check(lambda n: e.get(n, matching.MISSING))) if check else None
        )

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> _ProcessTrigger:
        return cls(_compile_options(options))

    def matchers(self) -> list[Matcher]:
        return [Matcher(self.event_type, self.index, self.predicate)]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "processes", self.spec

    def event_fields(self) -> frozenset[str] | None:
        return fields_for(self.event_type)

    def event_hint(self) -> str:
        return f"{self.event_type} events"

    def describe(self) -> str:
        return f"{self.key} {self.spec.describe()}"


@triggers.register
class ProcessStartedTrigger(_ProcessTrigger):
    """A program started (matched on name, exe, cmdline and user)."""

    key = "process.started"
    event_type = "process.started"
    description = (
        "A program started: a name (firefox), or {name, exe, cmdline, user} with globs. "
        "Event: pid, name, exe, cmdline, user"
    )
    schema = _options_schema("that starts", allow_any=True)


@triggers.register
class ProcessExitedTrigger(_ProcessTrigger):
    """A program ended; ``exit_code`` where the platform tells it."""

    key = "process.exited"
    event_type = "process.exited"
    description = (
        "A program ended: a name, or {name, exe, cmdline, user}. Event: pid, name, exe, "
        "cmdline, user, exit_code (minus the signal if killed; empty when polling)"
    )
    schema = _options_schema("that ends", allow_any=True)


@conditions.register
class ProcessRunningCondition(Condition):
    """Some process matching the options is running (``not`` for the opposite)."""

    key = "process.running"
    description = (
        "A program is running: a name (firefox), or {name, exe, cmdline, user} with globs; "
        "wrap in 'not' for 'is not running'"
    )
    schema = _options_schema("that runs", allow_any=False)

    def __init__(self, options: dict[str, Any]) -> None:
        self.spec = ProcessSpec.of(options)

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> ProcessRunningCondition:
        return cls(_compile_options(options))

    def check(self, run: RunContext) -> tuple[bool, str]:
        if run.at is not None:
            return False, "which programs were running then is not known (replay)"
        # A fresh look at /proc (about a millisecond): exact even between two
        # polls, and it needs no listener running.
        found = running(self.spec)
        if not found:
            return False, f"no process with {self.spec.describe()}"
        pids = ", ".join(str(p.pid) for p in found[:5]) + (", ..." if len(found) > 5 else "")
        return True, f"{found[0].name} running (pid {pids})"
