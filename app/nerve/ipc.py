"""The local control channel between ``nerve`` commands and the running instance.

One instance runs per user (:class:`InstanceLock`). It owns a Unix socket in the
user's runtime directory, readable and writable by the user only, that speaks
versioned JSON lines (UTF-8, one message per line, at most
:data:`MAX_LINE_BYTES` each)::

    -> {"v": 1, "id": 7, "cmd": "status", "args": {}}
    <- {"v": 1, "id": 7, "ok": true, "result": {...}}
    <- {"v": 1, "id": 7, "ok": false, "error": "message for the user"}

Everything that arrives on the socket is validated here; the handler only ever
sees a well-formed command name and a dict of arguments. The server runs an
asyncio loop on a thread of its own and calls the handler in worker threads, so
a command that waits for the engine does not hold up other clients. A
misbehaving client (garbage, invalid UTF-8, an endless line, silence, not
reading its replies) only ever loses its own connection: a connection that
sends no complete request for :data:`DEFAULT_IDLE_TIMEOUT` seconds is closed,
and when all :data:`DEFAULT_MAX_CLIENTS` places are taken the connection idle
the longest is dropped to make room, so a new client always gets in.

Who may connect: besides the socket's mode (0600, in a 0700 directory), the
server asks the kernel who the peer is (``SO_PEERCRED`` on Linux) and serves
only processes of its own user id. Root gets no exception (root can act as
the user anyway: ``sudo -u USER nerve status``). Where the platform cannot
say, the file mode alone protects the socket. The handler can see the peer
of the request it serves with :func:`peer` (its pid: ``nerve emit`` run by a
rule's program carries that run as its cause).

Streams (``nerve events --follow``): a command registered as a stream answers
its request with one ordinary reply and then keeps the connection, pushing
message lines that carry the request's id until either side closes::

    -> {"v": 1, "id": 3, "cmd": "follow", "args": {"after": 41}}
    <- {"v": 1, "id": 3, "ok": true, "result": {...}}
    <- {"v": 1, "id": 3, "event": {...}}
    <- {"v": 1, "id": 3, "gap": {"first": 50, "last": 60, "count": 4, ...}}

A stream has lifetime rules of its own: it leaves the request places (at most
:data:`DEFAULT_MAX_STREAMS` streams run at once; one more is refused), the idle
timeout does not apply (a follower is silent by nature), the client sending
anything more or hanging up ends it, and a client that does not read for
:data:`STREAM_STALL_TIMEOUT` seconds is dropped. Each pushed line obeys the
size limit. What a stream does while its client reads slowly is up to the
stream (the follow stream keeps a bounded queue and reports what it dropped).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import re
import socket
import stat
import struct
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import platformdirs

if TYPE_CHECKING:
    # The server's loop: imported when a server starts, so that clients (a
    # second `nerve` asking the first to show its window) start quickly.
    import asyncio
    from collections.abc import AsyncIterator, Iterator
    from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20  # 1 MiB per message, newline not counted

SOCKET_NAME = "nerve.sock"
LOCK_NAME = "nerve.lock"

#: Seconds a connection may take to send a complete request (and a client to
#: read its reply) before it is closed.
DEFAULT_IDLE_TIMEOUT = 5.0
DEFAULT_MAX_CLIENTS = 32
#: Streams (followers) served at once, apart from the request places.
DEFAULT_MAX_STREAMS = 16
#: Seconds a stream's client may leave pushed lines unread before it is dropped.
STREAM_STALL_TIMEOUT = 60.0

_TOO_LARGE = "message too large (limit 1 MiB)"
_CMD_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_DIR_MODE = 0o700
_SOCKET_MODE = 0o600
_LISTEN_BACKLOG = 128
# sun_path holds 108 bytes on Linux and 104 on the BSDs and macOS, NUL included.
_SUN_PATH_SAFE = 100
_CLOSE_TIMEOUT = 1.0
_WAITING_PER_CLIENT = 4
_EVICT_GRACE = 0.5
_ERROR_TEXT_LIMIT = 2000
_ids = itertools.count(1)

#: ``(cmd, args) -> result``. The result must be JSON-serialisable. Raise
#: :class:`IpcError` for an error reply meant for the user; any other exception
#: becomes ``"internal error: ..."`` and is logged with its traceback.
Handler = Callable[[str, dict[str, Any]], Any]


class Stream(Protocol):
    """One stream's server side (see the module's docstring), made per request
    by a :data:`StreamOpener` in a worker thread and then run on the server's loop."""

    async def open(self) -> Any:
        """Start (subscribe); returns the result of the opening reply.
        Raise :class:`IpcError` to refuse with a message."""

    def messages(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of messages to push; each message is a dict merged into a
        line with ``v`` and the request's ``id``."""

    def too_large(self, message: dict[str, Any]) -> dict[str, Any]:
        """What to push instead of ``message``, whose line is over the size limit."""

    def close(self) -> None:
        """Stop and release everything (any thread; called once the stream ends)."""


#: ``args -> Stream`` (a worker thread): raise :class:`IpcError` for bad arguments.
StreamOpener = Callable[[dict[str, Any]], Stream]


class _Opened(NamedTuple):
    rid: Any
    stream: Stream


class IpcError(Exception):
    """A request failed; ``str(exc)`` is a message for the user."""


class NoInstance(IpcError):
    """Nothing is listening on the socket: Nerve is not running."""


class Peer(NamedTuple):
    """The process at the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int


_current = threading.local()


def peer() -> Peer | None:
    """The peer of the request the calling handler serves (None: unknown)."""
    found: Peer | None = getattr(_current, "peer", None)
    return found


def peer_of(sock: socket.socket) -> Peer | None:
    """Who is connected to the Unix socket ``sock`` (None where the platform cannot say)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


class AlreadyRunning(Exception):
    """Another process holds the instance lock; ``pid`` is its pid when known."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        where = f" (pid {pid})" if pid is not None else ""
        super().__init__(f"Nerve is already running{where}")


# --------------------------------------------------------------------------
# Where things live


def _uid() -> int | str:
    """The user's id, or the user name where there are no uids."""
    if hasattr(os, "getuid"):
        return os.getuid()
    import getpass

    return getpass.getuser()


def _private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 (or accept it) if it is a real directory of ours.

    An existing directory of ours with a wider mode is narrowed to 0700.

    Raises :class:`OSError` (:class:`PermissionError` for a directory that is a
    symlink, not a directory, or owned by someone else).
    """
    path.mkdir(mode=_DIR_MODE, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"{path} is not a directory (a symlink?)")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to uid {os.getuid()}")
    if stat.S_IMODE(st.st_mode) != _DIR_MODE:
        os.chmod(path, _DIR_MODE)
    return path


def _platform_runtime_dir() -> Path:
    """platformdirs' runtime dir for Nerve, created, without its warnings on stderr."""
    category = getattr(platformdirs, "RuntimeDirWarning", None)
    with warnings.catch_warnings():
        if isinstance(category, type) and issubclass(category, Warning):
            warnings.simplefilter("ignore", category)
        return Path(platformdirs.user_runtime_dir("nerve", ensure_exists=True))


def runtime_dir() -> Path:
    """The per-user runtime directory (socket, lock), created with mode 0700.

    This is ``platformdirs.user_runtime_dir("nerve")``, which honours
    ``XDG_RUNTIME_DIR`` on Linux. When that variable is unset and the platform
    path cannot be used, a directory ``nerve-<uid>`` in the temporary directory
    is used instead, provided it is a real directory owned by the user.

    Raises :class:`OSError` when no usable directory can be had.
    """
    try:
        return _private_dir(_platform_runtime_dir())
    except OSError as exc:
        if os.environ.get("XDG_RUNTIME_DIR", "").strip():
            raise
        log.debug("runtime directory unusable (%s), falling back to the temp dir", exc)
    return _private_dir(Path(tempfile.gettempdir()) / f"nerve-{_uid()}")


def socket_path() -> Path:
    """The path of the running instance's control socket."""
    return runtime_dir() / SOCKET_NAME


# --------------------------------------------------------------------------
# One instance per user


class InstanceLock:
    """Single instance per user: ``fcntl.flock`` on ``runtime_dir()/nerve.lock``.

    The holder writes its pid into the file, so a second instance can say who
    is running. The kernel drops the lock when the holder exits, however it
    exits, so a crash never leaves a stale lock behind. Usable as a context
    manager.
    """

    def __init__(self, directory: Path | None = None) -> None:
        """Lock in ``directory`` (default: :func:`runtime_dir`, resolved on acquire)."""
        self._directory = directory
        self._fd: int | None = None
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The lock file."""
        if self._path is None:
            self._path = (self._directory or runtime_dir()) / LOCK_NAME
        return self._path

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting; a no-op if this object already holds it.

        Raises :class:`AlreadyRunning` (with the holder's pid when it can be
        read) if another process holds it, :class:`OSError` if the file cannot
        be opened.
        """
        import fcntl  # POSIX only; imported here so the module imports anywhere

        if self._fd is not None:
            return
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                os.close(fd)
                raise
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(pid) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; a no-op if it is not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> InstanceLock:
        """Acquire the lock."""
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock."""
        self.release()


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote into the lock file, if it is there yet."""
    for attempt in range(5):
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return None
        if text.isdigit() and int(text) > 0:
            return int(text)
        if attempt < 4:  # the holder locks first and writes its pid right after
            time.sleep(0.02)
    return None


# --------------------------------------------------------------------------
# Wire format


def _encode(message: dict[str, Any]) -> bytes:
    """One JSON line. ASCII only, so lone surrogates and the like cannot fail to encode."""
    text = json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.encode("ascii") + b"\n"


def _error(rid: Any, message: str) -> bytes:
    """An error reply line."""
    if len(message) > _ERROR_TEXT_LIMIT:
        message = message[: _ERROR_TEXT_LIMIT - 3] + "..."
    return _encode({"v": PROTOCOL_VERSION, "id": rid, "ok": False, "error": message})


def _short(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> Any:
    """``json.loads`` hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _valid_id(value: Any) -> bool:
    """Request ids are echoed back, so only small scalars are accepted."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return value is None or (isinstance(value, str) and len(value) <= 64)


# --------------------------------------------------------------------------
# Server


class _Conn:
    """One connection's bookkeeping on the server loop."""

    __slots__ = ("busy", "last", "peer", "writer")

    def __init__(self, writer: asyncio.StreamWriter, peer: Peer | None, now: float) -> None:
        self.writer = writer
        self.peer = peer
        self.last = now  # when it connected or last got a reply
        self.busy = False  # a request of it is being handled


class IpcServer:
    """Serves requests on a Unix socket, from a thread of its own.

    Each connection is served sequentially (one request in flight); up to
    ``max_clients`` connections are served at once. A connection that sends no
    complete line for ``idle_timeout`` seconds, or does not read a reply within
    that time, is closed. When all places are taken, the connection that has
    been idle the longest (not in the middle of a request) is dropped for the
    newcomer, so idle or slow clients can never lock others out; only when all
    places are busy with requests does a newcomer wait (up to ``idle_timeout``;
    four per place may wait, any beyond that are told Nerve is busy). Peers of
    another user id are refused (see the module's docstring).
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        streams: dict[str, StreamOpener] | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
        stall_timeout: float = STREAM_STALL_TIMEOUT,
    ) -> None:
        """Serve ``handler`` at ``path`` once :meth:`start` is called; the
        commands in ``streams`` open streams instead."""
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.path = path
        self._handler = handler
        self._idle_timeout = idle_timeout
        self._max_clients = max_clients
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conns: dict[asyncio.Task[Any], _Conn] = {}
        self._freed: asyncio.Condition | None = None
        self._waiters: list[list[bool]] = []
        self._max_waiting = _WAITING_PER_CLIENT * max_clients
        self._socket_id: tuple[int, int] | None = None
        #: How long a connection must have been idle before a newcomer may take its place.
        self._grace = min(_EVICT_GRACE, idle_timeout / 4)
        self._uid = os.getuid() if hasattr(os, "getuid") else None
        self._refused_uids: set[int] = set()
        self._streams: dict[str, StreamOpener] = dict(streams or {})
        self._max_streams = max_streams
        self._stall_timeout = stall_timeout
        self._streaming: set[asyncio.Task[Any]] = set()
        #: Connections dropped for idleness or to make room (for tests and status).
        self.dropped_idle = 0
        self.refused = 0

    @property
    def running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._thread is not None

    def start(self) -> None:
        """Bind the socket (mode 0600) and start serving; returns once it accepts.

        A stale socket file at ``path`` is replaced: the :class:`InstanceLock`
        guarantees nobody else owns it. Raises :class:`OSError` if the socket
        cannot be bound, :class:`RuntimeError` if already started.
        """
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            if self._thread is not None:
                raise RuntimeError("IPC server already started")
            self._closing = False
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_clients, thread_name_prefix="nerve-ipc-worker"
            )
            ready = threading.Event()
            errors: list[BaseException] = []
            thread = threading.Thread(
                target=self._run, args=(ready, errors), name="nerve-ipc", daemon=True
            )
            thread.start()
            ready.wait()
            if errors:
                thread.join()
                self._executor.shutdown(wait=False)
                self._executor = None
                raise errors[0]
            self._thread = thread

    def stop(self) -> None:
        """Close the server and every connection, join the thread, remove the socket.

        Idempotent. Handlers still running in worker threads are not waited for;
        their replies are dropped.
        """
        with self._lock:
            thread, loop, stop_event = self._thread, self._loop, self._stop_event
            if thread is None:
                return
            self._thread = None
            if loop is not None and stop_event is not None:
                with suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(stop_event.set)
            if thread is not threading.current_thread():
                thread.join()
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    # -- the loop thread ---------------------------------------------------

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        import asyncio

        try:
            asyncio.run(self._main(ready, errors))
        except BaseException as exc:
            if ready.is_set():
                log.exception("IPC server loop failed")
            else:
                errors.append(exc)
        finally:
            ready.set()

    async def _main(self, ready: threading.Event, errors: list[BaseException]) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._freed = asyncio.Condition()
        self._conns = {}
        self._waiters = []
        try:
            sock = self._bind()
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            return
        try:
            server = await asyncio.start_unix_server(
                self._on_client, sock=sock, limit=MAX_LINE_BYTES + 1
            )
        except BaseException as exc:
            sock.close()
            self._remove_socket()
            errors.append(exc)
            ready.set()
            return
        log.debug("IPC server listening on %s", self.path)
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            self._closing = True
            server.close()
            while self._tasks:
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()
            self._remove_socket()
            log.debug("IPC server on %s stopped", self.path)

    def _bind(self) -> socket.socket:
        """A listening socket at ``path`` with mode 0600.

        It is bound under a temporary name, chmod-ed and then renamed over
        ``path``, so the socket is never reachable with wider permissions and
        a stale file is replaced atomically.
        """
        path = self.path
        tmp = path.with_name(f".{os.getpid()}.{path.name}")
        direct = len(os.fsencode(tmp)) > _SUN_PATH_SAFE
        target = path if direct else tmp
        with suppress(FileNotFoundError):
            target.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(target))
            try:
                os.chmod(target, _SOCKET_MODE)
                sock.listen(_LISTEN_BACKLOG)
                if not direct:
                    os.replace(tmp, path)
                st = os.lstat(path)
            except BaseException:
                with suppress(OSError):
                    target.unlink()
                raise
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._socket_id = (st.st_dev, st.st_ino)
        return sock

    def _remove_socket(self) -> None:
        """Unlink the socket file if it is still ours (not a newer instance's)."""
        ours, self._socket_id = self._socket_id, None
        if ours is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == ours:
                self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove %s: %s", self.path, exc)

    # -- connections --------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio

        task = asyncio.current_task()
        if self._closing or task is None:
            writer.transport.abort()
            return
        self._tasks.add(task)
        conn: _Conn | None = None
        try:
            sock = writer.get_extra_info("socket")
            who = peer_of(sock) if sock is not None else None
            if not self._allowed(who):
                self.refused += 1
                await self._send(writer, _error(None, "permission denied: not this Nerve's user"))
                return
            if await self._take_place(writer):
                conn = _Conn(writer, who, asyncio.get_running_loop().time())
                self._conns[task] = conn
                await self._serve(reader, writer, conn)
        except asyncio.CancelledError:
            # stop(). End normally: on 3.11 asyncio's stream callback chokes on
            # a cancelled client task.
            pass
        except Exception:
            log.exception("IPC connection failed")
        finally:
            self._tasks.discard(task)
            if self._conns.pop(task, None) is not None:
                await self._notify_freed()
            await self._close(writer)

    def _allowed(self, who: Peer | None) -> bool:
        """Serve only our own user (root included: it gets no exception)."""
        if who is None or self._uid is None or who.uid == self._uid:
            return True
        if who.uid not in self._refused_uids and len(self._refused_uids) < 64:
            self._refused_uids.add(who.uid)
            log.warning(
                "refused a connection from uid %d (pid %d): this Nerve serves uid %d only",
                who.uid,
                who.pid,
                self._uid,
            )
        return False

    async def _notify_freed(self) -> None:
        freed = self._freed
        if freed is not None and self._waiters:
            async with freed:
                freed.notify_all()

    def _make_room(self, now: float) -> bool:
        """True if a newcomer may have a place: one is free, or the connection
        idle the longest (for at least the grace) was dropped for it."""
        if len(self._conns) < self._max_clients:
            return True
        idle = [(c.last, t) for t, c in self._conns.items() if not c.busy]
        if not idle:
            return False
        last, task = min(idle, key=lambda item: item[0])
        if now - last < self._grace:
            return False  # (just connected: its request is likely on its way)
        victim = self._conns.pop(task)
        self.dropped_idle += 1
        log.debug("dropping the IPC connection idle the longest to make room")
        victim.writer.transport.abort()
        return True

    async def _take_place(self, writer: asyncio.StreamWriter) -> bool:
        """A place among the ``max_clients``; False (client told) if Nerve is busy."""
        import asyncio

        loop = asyncio.get_running_loop()
        if self._make_room(loop.time()):
            return True
        freed = self._freed
        assert freed is not None
        if len(self._waiters) >= self._max_waiting:
            # The one waiting the longest gives way: waiting clients hold no
            # place, and a newcomer must always get a chance.
            self._waiters.pop(0)[0] = True
            async with freed:
                freed.notify_all()
        me = [False]  # [told to give way]
        self._waiters.append(me)
        transport = writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()  # buffer nothing for a connection that waits
        deadline = loop.time() + self._idle_timeout
        try:
            while me[0] or not self._make_room(loop.time()):
                left = deadline - loop.time()
                if me[0] or left <= 0:
                    await self._send(writer, _error(None, "Nerve is busy (too many connections)"))
                    return False
                # Woken when a place frees or a connection turns idle; at the
                # latest when the oldest idle one has been idle for the grace.
                with suppress(TimeoutError):
                    async with asyncio.timeout(min(left, self._grace)), freed:
                        await freed.wait()
        finally:
            if me in self._waiters:
                self._waiters.remove(me)
        if isinstance(transport, asyncio.ReadTransport):
            transport.resume_reading()
        return True

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        """Answer request lines one at a time until EOF, an error or idleness."""
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout):
                    line = await reader.readuntil(b"\n")
            except TimeoutError:
                log.debug("closing idle IPC connection")
                self.dropped_idle += 1
                return
            except asyncio.IncompleteReadError:
                return  # EOF, possibly in the middle of a line: nothing to answer
            except (asyncio.LimitOverrunError, ValueError):
                # The reader holds at most ~limit bytes; drop them with the connection.
                await self._send(writer, _error(None, _TOO_LARGE))
                return
            except OSError:
                return
            if len(line) - 1 > MAX_LINE_BYTES:
                await self._send(writer, _error(None, _TOO_LARGE))
                return
            if not line.strip():
                continue  # blank lines are not requests
            conn.busy = True
            try:
                reply = await loop.run_in_executor(self._executor, self._process, line, conn.peer)
            finally:
                conn.busy = False
            if isinstance(reply, _Opened):
                await self._stream(reader, writer, reply)
                return
            ok = await self._send(writer, reply)
            conn.last = loop.time()
            await self._notify_freed()  # it is idle now: a waiting newcomer may take its place
            if not ok:
                return

    @property
    def streams(self) -> int:
        """Streams running now."""
        return len(self._streaming)

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened: _Opened
    ) -> None:
        """Run a stream on this connection until either side ends it."""
        import asyncio

        task = asyncio.current_task()
        rid, stream = opened
        try:
            if task is None or len(self._streaming) >= self._max_streams:
                await self._send(
                    writer, _error(rid, f"too many followers (limit {self._max_streams})")
                )
                return
            # The connection leaves the request places: it holds a stream place.
            if self._conns.pop(task, None) is not None:
                await self._notify_freed()
            self._streaming.add(task)
            try:
                result = await stream.open()
            except IpcError as exc:
                await self._send(writer, _error(rid, str(exc) or "cannot follow"))
                return
            head = {"v": PROTOCOL_VERSION, "id": rid, "ok": True, "result": result}
            if not await self._send(writer, _encode(head)):
                return
            ended = asyncio.ensure_future(reader.read(1))  # the client says no more
            pump = asyncio.ensure_future(self._pump(writer, rid, stream))
            try:
                await asyncio.wait({ended, pump}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for part in (ended, pump):
                    part.cancel()
                await asyncio.gather(ended, pump, return_exceptions=True)
        finally:
            if task is not None:
                self._streaming.discard(task)
            stream.close()

    async def _pump(self, writer: asyncio.StreamWriter, rid: Any, stream: Stream) -> None:
        """Push the stream's batches; end when the client stops reading for too long."""
        import asyncio

        try:
            async for batch in stream.messages():
                if not await self._push(writer, rid, stream, batch):
                    return
        except Exception as exc:  # (the stream failed: say so, then close)
            log.exception("IPC stream failed")
            writer.write(_error(rid, f"the stream failed: {exc or type(exc).__name__}"))
            with suppress(OSError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await writer.drain()

    async def _push(
        self, writer: asyncio.StreamWriter, rid: Any, stream: Stream, batch: list[dict[str, Any]]
    ) -> bool:
        """Write one batch; False when the connection is done for."""
        import asyncio

        for message in batch:
            line = _encode({"v": PROTOCOL_VERSION, "id": rid, **message})
            if len(line) - 1 > MAX_LINE_BYTES:
                line = _encode({"v": PROTOCOL_VERSION, "id": rid, **stream.too_large(message)})
            writer.write(line)
        if writer.is_closing():
            return False
        try:
            async with asyncio.timeout(self._stall_timeout):
                await writer.drain()
        except TimeoutError:
            log.info("dropping a follower that read nothing for %gs", self._stall_timeout)
            return False
        except OSError:
            return False
        return True

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> bool:
        """Write one reply; False if the client is gone or does not read."""
        import asyncio

        if writer.is_closing():
            return False
        try:
            writer.write(data)
            async with asyncio.timeout(self._idle_timeout):
                await writer.drain()
        except (OSError, TimeoutError):
            return False
        return True

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        import asyncio

        if self._closing:
            writer.transport.abort()
            return
        writer.close()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()

    # -- requests (worker threads) ------------------------------------------

    def _process(self, line: bytes, who: Peer | None = None) -> bytes | _Opened:
        """Validate one request line, run the handler, and return the reply line."""
        _current.peer = who
        try:
            return self._answer(line)
        finally:
            _current.peer = None

    def _answer(self, line: bytes) -> bytes | _Opened:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return _error(None, "invalid request: not UTF-8")
        try:
            message = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            return _error(None, "invalid request: JSON nested too deeply")
        except ValueError as exc:
            return _error(None, f"invalid request: not JSON ({exc})")
        if not isinstance(message, dict):
            return _error(None, "invalid request: not a JSON object")
        rid = message.get("id")
        if not _valid_id(rid):
            return _error(None, "invalid request: id must be an integer, a short string or null")
        version = message.get("v")
        if type(version) is not int or version != PROTOCOL_VERSION:
            theirs = "no version" if version is None else f"version {_short(version)}"
            return _error(
                rid,
                f"protocol version mismatch: the request has {theirs}, "
                f"this Nerve speaks version {PROTOCOL_VERSION}",
            )
        cmd = message.get("cmd")
        if not isinstance(cmd, str) or not _CMD_RE.fullmatch(cmd):
            return _error(rid, f"invalid request: bad command {_short(cmd)}")
        args = message.get("args", {})
        if not isinstance(args, dict):
            return _error(rid, "invalid request: args must be a JSON object")
        opener = self._streams.get(cmd)
        if opener is not None:
            try:
                return _Opened(rid, opener(args))
            except IpcError as exc:
                return _error(rid, str(exc) or f"{cmd} failed")
            except Exception as exc:
                log.exception("IPC stream %r failed to open", cmd)
                return _error(rid, f"internal error: {exc or type(exc).__name__}")
        try:
            result = self._handler(cmd, args)
        except IpcError as exc:
            return _error(rid, str(exc) or f"{cmd} failed")
        except Exception as exc:
            log.exception("IPC command %r failed", cmd)
            return _error(rid, f"internal error: {exc or type(exc).__name__}")
        try:
            reply = _encode({"v": PROTOCOL_VERSION, "id": rid, "ok": True, "result": result})
        except (TypeError, ValueError, RecursionError) as exc:
            log.error("IPC command %r returned a result that is not JSON: %s", cmd, exc)
            return _error(rid, f"internal error: result is not JSON-serialisable ({exc})")
        if len(reply) - 1 > MAX_LINE_BYTES:
            log.error("IPC command %r returned %d bytes, over the limit", cmd, len(reply))
            return _error(rid, "internal error: reply too large (limit 1 MiB)")
        return reply


# --------------------------------------------------------------------------
# Client


def request(
    cmd: str,
    args: dict[str, Any] | None = None,
    *,
    path: Path | None = None,
    timeout: float = 5.0,
) -> Any:
    """Send one command to the running instance and return its result.

    ``timeout`` bounds the whole exchange. Raises :class:`NoInstance` if no
    instance is listening, :class:`IpcError` for an error reply, a timeout or a
    broken connection, and :class:`TypeError`/:class:`ValueError` if ``args``
    is not JSON-serialisable.
    """
    target = path if path is not None else socket_path()
    rid = next(_ids)
    payload = _encode({"v": PROTOCOL_VERSION, "id": rid, "cmd": cmd, "args": args or {}})
    if len(payload) - 1 > MAX_LINE_BYTES:
        raise IpcError(_TOO_LARGE)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        _connect(sock, target, deadline, timeout)
        try:
            sock.settimeout(_remaining(deadline, timeout))
            sock.sendall(payload)
        except TimeoutError:
            raise IpcError(f"no reply from Nerve within {timeout:g} s") from None
        except OSError:
            pass  # the server may have answered (e.g. busy) and closed: read that
        line = _read_line(sock, deadline, timeout)
    return _parse_reply(line, rid)


def open_stream(
    cmd: str,
    args: dict[str, Any] | None = None,
    *,
    path: Path | None = None,
    timeout: float = 5.0,
) -> tuple[Any, StreamMessages]:
    """Open a stream: ``(result of the opening reply, iterator of pushed messages)``.

    ``timeout`` bounds connecting and the opening reply; the messages are
    waited for as long as it takes. The iterator ends when Nerve closes the
    stream (it stopped, say) and raises :class:`IpcError` for a malformed
    line; closing it (or dropping it) closes the connection. Raises like
    :func:`request` when the stream cannot be opened.
    """
    target = path if path is not None else socket_path()
    rid = next(_ids)
    payload = _encode({"v": PROTOCOL_VERSION, "id": rid, "cmd": cmd, "args": args or {}})
    if len(payload) - 1 > MAX_LINE_BYTES:
        raise IpcError(_TOO_LARGE)
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _connect(sock, target, deadline, timeout)
        try:
            sock.settimeout(_remaining(deadline, timeout))
            sock.sendall(payload)
        except TimeoutError:
            raise IpcError(f"no reply from Nerve within {timeout:g} s") from None
        except OSError:
            pass
        lines = _LineReader(sock)
        result = _parse_reply(lines.next_line(deadline, timeout), rid)
    except BaseException:
        sock.close()
        raise
    return result, StreamMessages(sock, lines, rid)


class _LineReader:
    """Lines from a socket, each at most MAX_LINE_BYTES, keeping what follows."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def next_line(self, deadline: float | None = None, timeout: float = 0.0) -> bytes:
        """The next line (no newline); b"" at a clean end of the stream."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 1]
                return line
            if len(self.buf) > MAX_LINE_BYTES:
                raise IpcError("a line from Nerve is too large (limit 1 MiB)")
            try:
                self.sock.settimeout(None if deadline is None else _remaining(deadline, timeout))
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise IpcError(f"no reply from Nerve within {timeout:g} s") from None
            except OSError as exc:
                raise IpcError(f"connection to Nerve failed: {exc.strerror or exc}") from None
            if not chunk:
                if deadline is not None:
                    raise IpcError("Nerve closed the connection without replying")
                return b""
            self.buf += chunk


class StreamMessages:
    """The messages a stream pushes (see :func:`open_stream`); iterate once."""

    def __init__(self, sock: socket.socket, lines: _LineReader, rid: int) -> None:
        self._sock = sock
        self._lines = lines
        self._rid = rid
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            while not self._closed:
                try:
                    line = self._lines.next_line()
                except IpcError:
                    if self.closed:  # (closed from another thread)
                        return
                    raise
                if not line:
                    return
                yield self._parse(line)
        finally:
            self.close()

    def _parse(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise IpcError("invalid line from Nerve (not JSON)") from None
        if not isinstance(message, dict) or message.get("id") != self._rid:
            raise IpcError("invalid line from Nerve (not this stream's)")
        if type(message.get("v")) is not int or message.get("v") != PROTOCOL_VERSION:
            raise IpcError(
                f"protocol version mismatch: Nerve sent version {_short(message.get('v'))}"
            )
        if message.get("ok") is False:
            error = message.get("error")
            raise IpcError(error if isinstance(error, str) and error else "stream failed")
        return message

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """End the stream (from any thread: a blocked iteration ends)."""
        self._closed = True
        with suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def _remaining(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise IpcError(f"no reply from Nerve within {timeout:g} s")
    return left


def _connect(sock: socket.socket, target: Path, deadline: float, timeout: float) -> None:
    while True:
        sock.settimeout(_remaining(deadline, timeout))
        try:
            sock.connect(os.fspath(target))
        except FileNotFoundError:
            raise NoInstance(f"Nerve is not running (no socket at {target})") from None
        except ConnectionRefusedError:
            raise NoInstance(f"Nerve is not running (nothing listens at {target})") from None
        except BlockingIOError:
            time.sleep(0.01)  # the listen backlog is full: the server is catching up
            continue
        except TimeoutError:
            raise IpcError(f"timed out connecting to Nerve at {target}") from None
        except OSError as exc:
            raise IpcError(f"cannot connect to Nerve at {target}: {exc.strerror or exc}") from None
        return


def _read_line(sock: socket.socket, deadline: float, timeout: float) -> bytes:
    buf = bytearray()
    while True:
        sock.settimeout(_remaining(deadline, timeout))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise IpcError(f"no reply from Nerve within {timeout:g} s") from None
        except OSError as exc:
            raise IpcError(f"connection to Nerve failed: {exc.strerror or exc}") from None
        if not chunk:
            raise IpcError("Nerve closed the connection without replying")
        end = chunk.find(b"\n")
        buf += chunk if end < 0 else chunk[:end]
        if len(buf) > MAX_LINE_BYTES:
            raise IpcError("reply from Nerve too large (limit 1 MiB)")
        if end >= 0:
            return bytes(buf)


def _parse_reply(line: bytes, rid: int) -> Any:
    try:
        reply = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise IpcError("invalid reply from Nerve (not JSON)") from None
    if not isinstance(reply, dict):
        raise IpcError("invalid reply from Nerve (not an object)")
    ok = reply.get("ok")
    if ok is False:
        error = reply.get("error")
        raise IpcError(error if isinstance(error, str) and error else "request failed")
    if ok is not True:
        raise IpcError("invalid reply from Nerve (no 'ok')")
    version = reply.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise IpcError(
            f"protocol version mismatch: Nerve replied with version {_short(version)}, "
            f"this command speaks version {PROTOCOL_VERSION}"
        )
    if reply.get("id") != rid:
        raise IpcError("invalid reply from Nerve (id does not match the request)")
    return reply.get("result")


__all__ = [
    "LOCK_NAME",
    "MAX_LINE_BYTES",
    "PROTOCOL_VERSION",
    "SOCKET_NAME",
    "AlreadyRunning",
    "Handler",
    "InstanceLock",
    "IpcError",
    "IpcServer",
    "NoInstance",
    "Peer",
    "Stream",
    "StreamMessages",
    "StreamOpener",
    "open_stream",
    "peer",
    "peer_of",
    "request",
    "runtime_dir",
    "socket_path",
]
