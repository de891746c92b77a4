"""The local control channel: real Unix sockets, real second processes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
import psutil
import pytest

from nerve import ipc
from nerve.ipc import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    AlreadyRunning,
    InstanceLock,
    IpcError,
    IpcServer,
    NoInstance,
    request,
)

APP_DIR = Path(__file__).resolve().parents[1] / "app"

MIB = 1 << 20


# --------------------------------------------------------------------------
# helpers


class Recorder:
    """A handler with a few commands and a record of what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.barrier = threading.Barrier(8, timeout=20)

    def __call__(self, cmd: str, args: dict[str, Any]) -> Any:
        self.calls.append((cmd, args))
        if cmd == "status":
            return {"running": True, "paused": False}
        if cmd == "echo":
            return args
        if cmd == "len":
            return len(args["s"])
        if cmd == "fail":
            raise IpcError("no such rule: x")
        if cmd == "boom":
            raise RuntimeError("kaboom")
        if cmd == "not-json":
            return object()
        if cmd == "wait":
            self.entered.set()
            assert self.release.wait(30)
            return "released"
        if cmd == "barrier":
            return self.barrier.wait()
        raise IpcError(f"unknown command {cmd!r}")


class Raw:
    """A bare client that speaks bytes, for what request() would never send."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(os.fspath(path))
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, message: Any) -> None:
        self.send(json.dumps(message).encode() + b"\n")

    def reply(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line.endswith(b"\n"), f"connection closed: {line!r}"
        reply = json.loads(line)
        assert isinstance(reply, dict)
        return reply

    def at_eof(self, *, skip_unread: bool = False) -> bool:
        """Whether the server closed (or reset) the connection with nothing more to read.

        With ``skip_unread``, whatever it still sent before closing is fine. A
        connection the server keeps open runs into the socket timeout.
        """
        unread = 0
        try:
            while chunk := self.file.read1(MIB):
                unread += len(chunk)
        except ConnectionResetError:  # it closed with our unread bytes pending
            pass
        return skip_unread or unread == 0

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """For server state that has no event to wait on."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory short enough for AF_UNIX paths (tmp_path can be too long)."""
    path = Path(tempfile.mkdtemp(prefix="nv", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sock_path(short_dir: Path) -> Path:
    return short_dir / "s.sock"


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


@pytest.fixture
def make_server(sock_path: Path, handler: Recorder) -> Iterator[Callable[..., IpcServer]]:
    servers: list[IpcServer] = []

    def make(path: Path = sock_path, **kwargs: Any) -> IpcServer:
        server = IpcServer(path, handler, **kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    handler.release.set()
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., IpcServer]) -> IpcServer:
    return make_server()


@pytest.fixture
def raw(server: IpcServer) -> Iterator[Raw]:
    client = Raw(server.path)
    yield client
    client.close()


# --------------------------------------------------------------------------
# round trips and error replies


def test_round_trip(server: IpcServer, sock_path: Path, handler: Recorder) -> None:
    assert request("status", path=sock_path) == {"running": True, "paused": False}
    args = {"text": "héllo \u2603", "n": [1, 2.5, None, True], "nested": {"a": {}}}
    assert request("echo", args, path=sock_path) == args
    assert handler.calls == [("status", {}), ("echo", args)]


def test_wire_format(raw: Raw) -> None:
    raw.send_json({"v": PROTOCOL_VERSION, "id": 7, "cmd": "status", "args": {}})
    assert raw.reply() == {
        "v": 1,
        "id": 7,
        "ok": True,
        "result": {"running": True, "paused": False},
    }
    raw.send_json({"v": 1, "id": "abc", "cmd": "echo"})  # args may be left out
    assert raw.reply() == {"v": 1, "id": "abc", "ok": True, "result": {}}
    raw.send(b"\n  \n")  # blank lines are skipped, not answered
    raw.send_json({"v": 1, "cmd": "fail"})
    assert raw.reply() == {"v": 1, "id": None, "ok": False, "error": "no such rule: x"}


def test_handler_ipc_error_is_a_clean_error(server: IpcServer, sock_path: Path) -> None:
    with pytest.raises(IpcError, match=r"^no such rule: x$") as info:
        request("fail", path=sock_path)
    assert not isinstance(info.value, NoInstance)


def test_handler_crash_is_an_internal_error(
    server: IpcServer, sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nerve.ipc"):
        with pytest.raises(IpcError, match=r"^internal error: kaboom$"):
            request("boom", path=sock_path)
        with pytest.raises(IpcError, match=r"^internal error: result is not JSON"):
            request("not-json", path=sock_path)
    crash = [r for r in caplog.records if r.exc_info and "boom" in r.getMessage()]
    assert crash, "the crash is logged with its traceback"
    assert isinstance(crash[0].exc_info[1], RuntimeError)  # type: ignore[index]
    assert request("status", path=sock_path)["running"] is True


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ({"v": 2, "id": 1, "cmd": "status"}, "version 2"),
        ({"id": 1, "cmd": "status"}, "no version"),
        ({"v": "1", "id": 1, "cmd": "status"}, "version '1'"),
        ({"v": True, "id": 1, "cmd": "status"}, "version True"),
        ({"v": 1.0, "id": 1, "cmd": "status"}, "version 1.0"),
    ],
)
def test_version_mismatch(raw: Raw, message: dict[str, Any], named: str) -> None:
    raw.send_json(message)
    reply = raw.reply()
    assert reply["ok"] is False
    assert reply["v"] == PROTOCOL_VERSION
    assert reply["id"] == 1
    assert named in reply["error"]
    assert f"version {PROTOCOL_VERSION}" in reply["error"]
    raw.send_json({"v": 1, "id": 2, "cmd": "status"})
    assert raw.reply()["ok"] is True


def test_client_reports_reply_version_mismatch(short_dir: Path) -> None:
    """A reply in another protocol version is an error, not a result."""
    path = short_dir / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(path))
    listener.listen(1)

    def fake_server() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.makefile("rb").readline()
            conn.sendall(b'{"v": 2, "id": 1, "ok": true, "result": 1}\n')

    thread = threading.Thread(target=fake_server)
    thread.start()
    try:
        with pytest.raises(IpcError, match=r"version 2.*version 1"):
            request("status", path=path)
    finally:
        thread.join()
        listener.close()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"hello", "not JSON"),
        (b"{", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"status"', "not a JSON object"),
        (b'{"v": 1, "cmd": NaN}', "not JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"v": 1}', "bad command None"),
        (b'{"v": 1, "cmd": 5}', "bad command 5"),
        (b'{"v": 1, "cmd": ""}', "bad command"),
        (b'{"v": 1, "cmd": "Status"}', "bad command 'Status'"),
        (b'{"v": 1, "cmd": "st atus"}', "bad command"),
        (b'{"v": 1, "cmd": "status\\n"}', "bad command"),
        (b'{"v": 1, "cmd": "' + b"x" * 65 + b'"}', "bad command"),
        (b'{"v": 1, "cmd": "echo", "args": [1]}', "args must be a JSON object"),
        (b'{"v": 1, "cmd": "echo", "args": null}', "args must be a JSON object"),
        (b'{"v": 1, "cmd": "echo", "id": {"a": 1}}', "id must be"),
        (b'{"v": 1, "cmd": "echo", "id": true}', "id must be"),
    ],
)
def test_invalid_request_then_valid_on_same_connection(
    raw: Raw, handler: Recorder, line: bytes, error: str
) -> None:
    raw.send(line + b"\n")
    reply = raw.reply()
    assert reply["ok"] is False
    assert error in reply["error"]
    assert reply["v"] == PROTOCOL_VERSION
    raw.send_json({"v": 1, "id": 3, "cmd": "echo", "args": {"k": "v"}})
    assert raw.reply() == {"v": 1, "id": 3, "ok": True, "result": {"k": "v"}}
    assert handler.calls == [("echo", {"k": "v"})]


def test_valid_command_names(raw: Raw) -> None:
    for cmd in ("a", "rule.enable", "x-y_z.9", "a" + "b" * 63):
        raw.send_json({"v": 1, "id": 1, "cmd": cmd})
        reply = raw.reply()
        assert reply["error"] == f"unknown command {cmd!r}"


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe\xfd",
        b'{"v": 1, "cmd": "echo", "args": {"a": "\xc3"}}',
        b'{"v": 1, "cmd": "echo", "args": {"a": "\xed\xa0\x80"}}',  # encoded surrogate
        b"\x00\x01\x02garbage\x7f",
    ],
)
def test_invalid_utf8_and_garbage_bytes(raw: Raw, handler: Recorder, line: bytes) -> None:
    raw.send(line + b"\n")
    reply = raw.reply()
    assert reply["ok"] is False
    assert "UTF-8" in reply["error"] or "not JSON" in reply["error"]
    raw.send_json({"v": 1, "id": 2, "cmd": "status"})
    assert raw.reply()["ok"] is True
    assert handler.calls == [("status", {})]


def test_escaped_lone_surrogate_round_trips(server: IpcServer, sock_path: Path) -> None:
    """JSON may escape a lone surrogate; the reply must still encode."""
    assert request("echo", {"s": "\ud800"}, path=sock_path) == {"s": "\ud800"}


# --------------------------------------------------------------------------
# size limit


def test_line_at_the_limit_is_accepted_one_more_byte_is_not(raw: Raw) -> None:
    def line(size: int) -> bytes:
        head = b'{"v":1,"id":1,"cmd":"len","args":{"s":"'
        tail = b'"}}'
        return head + b"x" * (size - len(head) - len(tail)) + tail + b"\n"

    exact = line(MAX_LINE_BYTES)
    assert len(exact) == MAX_LINE_BYTES + 1
    raw.send(exact)
    assert raw.reply()["ok"] is True

    raw.send(line(MAX_LINE_BYTES + 1))
    assert raw.reply() == {
        "v": 1,
        "id": None,
        "ok": False,
        "error": "message too large (limit 1 MiB)",
    }
    assert raw.at_eof()


def test_request_refuses_to_send_too_much(server: IpcServer, sock_path: Path) -> None:
    with pytest.raises(IpcError, match="too large"):
        request("echo", {"s": "x" * MAX_LINE_BYTES}, path=sock_path)


def test_100_mb_line_is_refused_without_buffering_it(
    server: IpcServer, sock_path: Path, handler: Recorder
) -> None:
    proc = psutil.Process()
    chunk = b"x" * MIB
    rss_before = proc.memory_info().rss
    peak = [rss_before]
    sent = [0]
    client = Raw(sock_path)

    def flood() -> None:
        try:
            client.send(b'{"v": 1, "cmd": "echo", "args": {"s": "')
            for _ in range(100):
                client.send(chunk)
                sent[0] += len(chunk)
                peak[0] = max(peak[0], proc.memory_info().rss)
            client.send(b'"}}\n')
        except OSError:
            pass  # the server hung up on us, as it should
        finally:
            peak[0] = max(peak[0], proc.memory_info().rss)

    sender = threading.Thread(target=flood)
    sender.start()
    sender.join(30)
    assert not sender.is_alive()
    try:
        assert client.reply()["error"] == "message too large (limit 1 MiB)"
        assert client.at_eof()
    finally:
        client.close()
    assert sent[0] < 100 * MIB, "the server stopped reading long before the end"
    assert peak[0] - rss_before < 20 * MIB
    assert request("status", path=sock_path)["running"] is True
    assert [c for c, _ in handler.calls] == ["status"]


# --------------------------------------------------------------------------
# misbehaving clients


def test_client_disconnects_mid_line(server: IpcServer, sock_path: Path, handler: Recorder) -> None:
    for partial in (b'{"v": 1, "cmd": "ec', b"x" * (MIB // 2), b""):
        client = Raw(sock_path)
        client.send(partial)
        client.close()
    client = Raw(sock_path)
    client.send(b'{"v": 1, "cmd": "status"')
    client.sock.shutdown(socket.SHUT_WR)
    assert client.at_eof()  # half a request and EOF: nothing to answer
    client.close()
    assert request("status", path=sock_path)["running"] is True
    assert handler.calls == [("status", {})]


def test_half_closed_client_still_gets_its_reply(raw: Raw) -> None:
    raw.send(b'{"v": 1, "id": 1, "cmd": "status"}\n')
    raw.sock.shutdown(socket.SHUT_WR)
    assert raw.reply()["ok"] is True
    assert raw.at_eof()


def test_idle_connection_times_out(make_server: Callable[..., IpcServer], sock_path: Path) -> None:
    make_server(idle_timeout=0.3)
    idle = Raw(sock_path)
    slow = Raw(sock_path)
    slow.send(b'{"v": 1, "cmd": ')  # never finishes its line
    try:
        assert request("status", path=sock_path)["running"] is True
        assert idle.at_eof()
        assert slow.at_eof()
    finally:
        idle.close()
        slow.close()
    assert request("status", path=sock_path)["running"] is True


def test_client_that_never_reads_its_replies(
    make_server: Callable[..., IpcServer], sock_path: Path
) -> None:
    """The server stops writing to it after idle_timeout and hangs up."""
    make_server(idle_timeout=0.5)
    greedy = Raw(sock_path)
    big = json.dumps({"v": 1, "cmd": "echo", "args": {"s": "x" * 500_000}}).encode() + b"\n"
    try:
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # noqa: PT012
            for _ in range(200):  # 100 MB of replies nobody reads
                greedy.send(big)
        assert request("status", path=sock_path)["running"] is True
        assert greedy.at_eof(skip_unread=True)
    finally:
        greedy.close()


# --------------------------------------------------------------------------
# concurrency


def test_many_concurrent_clients(server: IpcServer, sock_path: Path) -> None:
    def one(i: int) -> Any:
        return request("echo", {"i": i}, path=sock_path, timeout=30)

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(one, range(300)))
    assert results == [{"i": i} for i in range(300)]


def test_handlers_run_in_parallel(server: IpcServer, sock_path: Path) -> None:
    """Eight requests meet at a barrier: they would deadlock if run one at a time."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: request("barrier", path=sock_path), range(8)))
    assert sorted(results) == list(range(8))


def test_slow_handler_does_not_block_other_clients(
    server: IpcServer, sock_path: Path, handler: Recorder
) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(request, "wait", path=sock_path, timeout=30)
        assert handler.entered.wait(10)
        assert request("status", path=sock_path)["running"] is True
        assert not waiting.done()
        handler.release.set()
        assert waiting.result(10) == "released"


def test_too_many_connections(make_server: Callable[..., IpcServer], sock_path: Path) -> None:
    """All places taken by idle clients and the waiting list full: a newcomer
    still gets in, the connection idle the longest gives way to it and the one
    waiting the longest is told Nerve is busy."""
    server = make_server(max_clients=2, idle_timeout=30)
    holders = [Raw(sock_path) for _ in range(2)]
    for holder in holders:
        holder.send_json({"v": 1, "id": 1, "cmd": "status"})
        assert holder.reply()["ok"] is True
    queued = [Raw(sock_path) for _ in range(8)]  # four per place may wait
    wait_until(lambda: len(server._waiters) == 8)
    try:
        started = time.monotonic()
        assert request("status", path=sock_path)["running"] is True
        assert time.monotonic() - started < 5
        assert holders[0].at_eof()  # idle the longest: dropped for the newcomer
        assert "busy" in queued[0].reply()["error"]  # waited the longest: gave way
        queued[1].send_json({"v": 1, "id": 2, "cmd": "status"})
        assert queued[1].reply()["id"] == 2  # the next waiter got the place after
    finally:
        for client in holders + queued:
            client.close()
    assert request("status", path=sock_path)["running"] is True


def test_busy_places_make_a_newcomer_wait_then_busy(
    make_server: Callable[..., IpcServer], sock_path: Path, handler: Recorder
) -> None:
    """Places busy with requests (not idle) are not taken away."""
    make_server(max_clients=1, idle_timeout=0.5)
    busy = Raw(sock_path)
    busy.send_json({"v": 1, "id": 1, "cmd": "wait"})
    assert handler.entered.wait(10)
    try:
        with pytest.raises(IpcError, match="busy"):
            request("status", path=sock_path)
        handler.release.set()
        assert busy.reply()["result"] == "released"
    finally:
        busy.close()
    assert request("status", path=sock_path)["running"] is True


def test_request_timeout(server: IpcServer, sock_path: Path, handler: Recorder) -> None:
    with pytest.raises(IpcError, match=r"no reply from Nerve within 0\.3 s"):
        request("wait", path=sock_path, timeout=0.3)
    handler.release.set()
    assert request("status", path=sock_path)["running"] is True


# --------------------------------------------------------------------------
# lifecycle, files and permissions


def test_socket_is_user_only(server: IpcServer, sock_path: Path) -> None:
    mode = os.stat(sock_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert os.listdir(sock_path.parent) == [sock_path.name]  # no temporary left behind


def test_stop_removes_socket_then_no_instance(server: IpcServer, sock_path: Path) -> None:
    assert server.running
    server.stop()
    assert not server.running
    assert not sock_path.exists()
    with pytest.raises(NoInstance, match="Nerve is not running"):
        request("status", path=sock_path)
    server.stop()  # idempotent


def test_stop_closes_connections_and_abandons_running_handlers(
    server: IpcServer, sock_path: Path, handler: Recorder
) -> None:
    idle = Raw(sock_path)
    busy = Raw(sock_path)
    busy.send_json({"v": 1, "cmd": "wait"})
    assert handler.entered.wait(10)
    server.stop()
    assert idle.at_eof()
    assert busy.at_eof()
    idle.close()
    busy.close()
    handler.release.set()


def test_restart_after_stop(server: IpcServer, sock_path: Path) -> None:
    server.stop()
    server.start()
    assert request("status", path=sock_path)["running"] is True


def test_start_twice_is_an_error(server: IpcServer) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        server.start()


def test_start_failure_is_raised(short_dir: Path, handler: Recorder) -> None:
    server = IpcServer(short_dir / "missing" / "s.sock", handler)
    with pytest.raises(FileNotFoundError):
        server.start()
    assert not server.running
    server.stop()


def test_stale_socket_is_replaced(sock_path: Path, make_server: Callable[..., IpcServer]) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(sock_path))
    stale.close()  # a crashed instance leaves its socket file behind
    assert sock_path.exists()
    with pytest.raises(NoInstance, match="nothing listens"):
        request("status", path=sock_path)
    make_server()
    assert request("status", path=sock_path)["running"] is True


def test_stopping_an_old_server_keeps_a_newer_socket(
    sock_path: Path, make_server: Callable[..., IpcServer]
) -> None:
    old = make_server()
    make_server()  # replaces the socket file
    old.stop()
    assert sock_path.exists()
    assert request("status", path=sock_path)["running"] is True


def test_no_socket_is_no_instance(short_dir: Path) -> None:
    with pytest.raises(NoInstance, match=r"no socket at .*nope\.sock") as info:
        request("status", path=short_dir / "nope.sock")
    assert isinstance(info.value, IpcError)


# --------------------------------------------------------------------------
# runtime directory


def test_runtime_dir_honours_xdg(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(short_dir))
    assert ipc.runtime_dir() == short_dir / "nerve"
    assert stat.S_IMODE(os.stat(short_dir / "nerve").st_mode) == 0o700
    assert ipc.socket_path() == short_dir / "nerve" / "nerve.sock"
    os.chmod(short_dir / "nerve", 0o755)
    ipc.runtime_dir()
    assert stat.S_IMODE(os.stat(short_dir / "nerve").st_mode) == 0o700


def test_default_socket_path(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, handler: Recorder
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(short_dir))
    server = IpcServer(ipc.socket_path(), handler)
    server.start()
    try:
        assert request("status") == {"running": True, "paused": False}
        assert stat.S_IMODE(os.stat(ipc.socket_path()).st_mode) == 0o600
    finally:
        server.stop()
    with pytest.raises(NoInstance):
        request("status")


@pytest.fixture
def no_platform_dir(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_RUNTIME_DIR unset and a platformdirs path that cannot be created."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    blocker = short_dir / "file"
    blocker.write_text("")
    monkeypatch.setattr(
        platformdirs, "user_runtime_dir", lambda *a, **k: os.fspath(blocker / "nerve")
    )
    temp = short_dir / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", os.fspath(temp))
    return temp


def test_runtime_dir_falls_back_to_temp(no_platform_dir: Path) -> None:
    expected = no_platform_dir / f"nerve-{os.getuid()}"
    assert ipc.runtime_dir() == expected
    assert stat.S_IMODE(os.stat(expected).st_mode) == 0o700


def test_runtime_dir_fallback_must_be_ours(
    no_platform_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = os.getuid() + 4242
    (no_platform_dir / f"nerve-{other}").mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: other)
    with pytest.raises(PermissionError, match="belongs to uid"):
        ipc.runtime_dir()


def test_runtime_dir_fallback_rejects_symlink(no_platform_dir: Path) -> None:
    target = no_platform_dir / "elsewhere"
    target.mkdir(mode=0o700)
    (no_platform_dir / f"nerve-{os.getuid()}").symlink_to(target)
    with pytest.raises(PermissionError, match="not a directory"):
        ipc.runtime_dir()


def test_runtime_dir_with_xdg_does_not_fall_back(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(short_dir))
    blocker = short_dir / "file"
    blocker.write_text("")
    monkeypatch.setattr(
        platformdirs, "user_runtime_dir", lambda *a, **k: os.fspath(blocker / "nerve")
    )
    with pytest.raises(OSError, match="file"):
        ipc.runtime_dir()


# --------------------------------------------------------------------------
# single instance

LOCK_SCRIPT = """
import sys
from pathlib import Path
from nerve.ipc import AlreadyRunning, InstanceLock

lock = InstanceLock(Path(sys.argv[1]))
try:
    lock.acquire()
except AlreadyRunning as exc:
    print("running", exc.pid, flush=True)
    sys.exit(0)
print("locked", flush=True)
if sys.argv[2] == "hold":
    sys.stdin.read()
lock.release()
"""


def _lock_cmd(directory: Path, mode: str) -> list[str]:
    return [sys.executable, "-c", LOCK_SCRIPT, os.fspath(directory), mode]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.fspath(APP_DIR)}


@contextmanager
def _hold_lock(directory: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that holds the lock until its stdin closes."""
    with subprocess.Popen(
        _lock_cmd(directory, "hold"),
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            yield holder
        finally:
            holder.kill()


def test_second_process_sees_already_running(short_dir: Path) -> None:
    lock = InstanceLock(short_dir)
    lock.acquire()
    try:
        assert lock.held
        assert (short_dir / "nerve.lock").read_text() == f"{os.getpid()}\n"
        assert stat.S_IMODE(os.stat(short_dir / "nerve.lock").st_mode) == 0o600
        done = subprocess.run(
            _lock_cmd(short_dir, "try"),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["running", str(os.getpid())]
    finally:
        lock.release()
    assert not lock.held
    lock.release()  # idempotent
    done = subprocess.run(
        _lock_cmd(short_dir, "try"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout.split() == ["locked"], done.stderr


def test_lock_held_by_another_process(short_dir: Path) -> None:
    with _hold_lock(short_dir) as holder:
        lock = InstanceLock(short_dir)
        with pytest.raises(AlreadyRunning) as info:
            lock.acquire()
        assert info.value.pid == holder.pid
        assert str(holder.pid) in str(info.value)
        assert not lock.held
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(30) == 0
    with InstanceLock(short_dir) as lock:  # released when the holder exits
        assert lock.held
    assert not lock.held


def test_lock_released_when_holder_dies(short_dir: Path) -> None:
    with _hold_lock(short_dir) as holder:
        holder.kill()
        holder.wait(30)
    lock = InstanceLock(short_dir)
    lock.acquire()
    lock.release()


def test_lock_default_directory(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(short_dir))
    lock = InstanceLock()
    assert lock.path == short_dir / "nerve" / "nerve.lock"
    with lock:
        lock.acquire()  # already held by this object: a no-op
        assert lock.path.read_text() == f"{os.getpid()}\n"
    assert lock.path.read_text() == ""
