"""The control socket cannot be locked by idle, slow or trickling clients, and
serves only its own user: real sockets, real second processes, real other uids."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nerve import ipc
from nerve.ipc import IpcServer, request
from test_cli import PACK, StartNerve, cli_ok, socket_file, start_nerve  # noqa: F401

APP_DIR = Path(__file__).resolve().parents[1] / "app"
NOBODY = 65534


def handler(cmd: str, args: dict[str, Any]) -> Any:
    if cmd == "status":
        return {"running": True}
    if cmd == "whoami":
        who = ipc.peer()
        return who._asdict() if who is not None else None
    if cmd == "big":
        return "x" * 400_000
    raise ValueError(cmd)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nv", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def served(short_dir: Path) -> Iterator[Path]:
    """A server with the default limits (32 places, a few seconds of idleness)."""
    server = IpcServer(short_dir / "s.sock", handler)
    server.start()
    yield server.path
    server.stop()


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    deadline = time.monotonic() + 20
    while True:
        try:
            sock.connect(os.fspath(path))
            return sock
        except BlockingIOError:  # the listen backlog is full: the server catches up
            assert time.monotonic() < deadline
            time.sleep(0.01)


def status_quickly(path: Path, within: float = 2.5) -> None:
    start = time.monotonic()
    assert request("status", path=path, timeout=within) == {"running": True}
    assert time.monotonic() - start < within


# ------------------------------------------------------------------ idleness

REQUEST = b'{"v": 1, "id": 1, "cmd": "status"}\n'
BIG = b'{"v": 1, "id": 2, "cmd": "big"}\n'


def silent(sock: socket.socket) -> None:
    """Connects and never sends."""


def half_line(sock: socket.socket) -> None:
    sock.sendall(b'{"v": 1, "cmd": "sta')


def one_request_then_idle(sock: socket.socket) -> None:
    sock.sendall(REQUEST)
    assert sock.recv(4096).endswith(b"\n")


def never_reads(sock: socket.socket) -> None:
    """Asks for big replies and never reads them (a slow reader: the server's
    writes block once the socket's buffers are full)."""
    sock.settimeout(0.2)
    with contextlib.suppress(TimeoutError, OSError):
        sock.sendall(BIG * 4)


def blank_lines(sock: socket.socket) -> None:
    sock.sendall(b"\n\n\n")


ATTACKS: dict[str, Callable[[socket.socket], None]] = {
    "silent": silent,
    "half-line": half_line,
    "request-then-idle": one_request_then_idle,
    "never-reads": never_reads,
    "blank-lines": blank_lines,
}


@pytest.mark.parametrize("count", [32, 33, 100, 170])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_idle_clients_cannot_lock_the_socket(served: Path, attack: str, count: int) -> None:
    """Any number of idle/slow connections: a new client is answered at once."""
    socks = []
    try:
        for _ in range(count):
            sock = connect(served)
            ATTACKS[attack](sock)
            socks.append(sock)
        for _ in range(3):
            status_quickly(served)
    finally:
        for sock in socks:
            sock.close()


def test_a_trickling_client_is_cut_off_and_cannot_stall_others(served: Path) -> None:
    """One byte every 100 ms, never a newline: closed after the idle timeout,
    and others are served meanwhile."""
    sock = connect(served)
    sock.settimeout(0.05)
    stop = threading.Event()
    closed_at: list[float] = []

    def trickle() -> None:
        start = time.monotonic()
        while not stop.is_set():
            try:
                sock.sendall(b" ")
                if sock.recv(1) == b"":
                    closed_at.append(time.monotonic() - start)
                    return
            except TimeoutError:
                continue
            except OSError:
                closed_at.append(time.monotonic() - start)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        for _ in range(5):
            status_quickly(served)
        thread.join(15)
        assert closed_at, "the trickling connection was never closed"
        assert closed_at[0] < 10
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_idle_connections_time_out_in_a_few_seconds(served: Path) -> None:
    socks = [connect(served) for _ in range(5)]
    socks[1].sendall(b'{"v": 1')
    one_request_then_idle(socks[2])
    start = time.monotonic()
    for sock in socks:
        assert sock.recv(4096) in (b"",)  # closed by the server, nothing sent
        sock.close()
    assert time.monotonic() - start < 10


# ------------------------------------------------------------------ other users


SERVE = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import asyncio, concurrent.futures.thread, json, socket, struct, threading
from nerve.ipc import IpcServer
os.setgid(int(sys.argv[3]))
os.setgroups([])
os.setuid(int(sys.argv[3]))  # (after the imports: nobody cannot read root's Python)
server = IpcServer(Path(sys.argv[1]), lambda cmd, args: {"served": True})
server.start()
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""

CLIENT = """
import json, os, socket, sys
os.setgid(int(sys.argv[3]))
os.setgroups([])
os.setuid(int(sys.argv[2]))
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"v": 1, "id": 1, "cmd": "status"}\\n')
except BrokenPipeError:  # refused before it spoke: the reason is there to read
    pass
data = b""
while not data.endswith(b"\\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode() or "closed")
"""


def as_user(uid: int, gid: int, path: Path) -> dict[str, Any] | str:
    """Connect to ``path`` as another user (a real process with that uid)."""
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, str(path), str(uid), str(gid)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    return json.loads(out) if out.startswith("{") else out


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def open_up(path: Path) -> None:
    """What a careless umask or chmod would do: the file mode no longer protects it."""
    os.chmod(path.parent, 0o777)
    os.chmod(path, 0o777)


@needs_root
@pytest.mark.parametrize(("uid", "gid"), [(NOBODY, NOBODY), (1000, 1000), (4242, 0), (1, 1)])
def test_other_users_are_refused_even_when_the_mode_lets_them_in(
    served: Path, uid: int, gid: int
) -> None:
    open_up(served)
    reply = as_user(uid, gid, served)
    assert isinstance(reply, dict), reply
    assert reply["ok"] is False
    assert "permission denied" in reply["error"]
    status_quickly(served)  # and our own user is still served


@needs_root
def test_the_same_user_with_another_group_is_served(served: Path) -> None:
    reply = as_user(0, NOBODY, served)
    assert isinstance(reply, dict)
    assert reply["ok"] is True


@needs_root
def test_root_is_refused_by_another_users_nerve(short_dir: Path) -> None:
    """Root gets no exception: a Nerve running as nobody refuses root's connection."""
    os.chown(short_dir, NOBODY, NOBODY)
    path = short_dir / "s.sock"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(path), str(APP_DIR), str(NOBODY)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready", server.stderr and server.stderr.read()
        sock = connect(path)  # root passes the file mode: the uid check stops it
        with contextlib.suppress(BrokenPipeError):  # (refused before it spoke)
            sock.sendall(REQUEST)
        reply = json.loads(sock.makefile("rb").readline())
        sock.close()
        assert reply["ok"] is False
        assert "permission denied" in reply["error"]
        assert as_user(NOBODY, NOBODY, path) == {
            "v": 1,
            "id": 1,
            "ok": True,
            "result": {"served": True},
        }
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)


def test_the_handler_sees_its_peer(served: Path) -> None:
    who = request("whoami", path=served)
    assert ipc.Peer(**who) == ipc.Peer(os.getpid(), os.getuid(), os.getgid())
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, os; sys.path.insert(0, sys.argv[2]); from pathlib import Path;"
            "from nerve.ipc import request; print(request('whoami', path=Path(sys.argv[1]))['pid'],"
            " os.getpid())",
            str(served),
            str(APP_DIR),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout.split()
    assert out[0] == out[1]


# ------------------------------------------------------------ the daemon


@pytest.mark.parametrize("attack", ["silent", "half-line", "request-then-idle"])
def test_nerve_status_answers_while_idle_clients_hold_the_socket(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    attack: str,
) -> None:
    """The reported case: 32 connections that never send locked `nerve status` out."""
    start_nerve("--rules", PACK)
    path = socket_file(nerve_env)
    socks = []
    try:
        for _ in range(40):
            sock = connect(path)
            ATTACKS[attack](sock)
            socks.append(sock)
        started = time.monotonic()
        assert "running" in cli_ok(nerve_env, "status")
        assert time.monotonic() - started < 10  # (a Python start-up included)
    finally:
        for sock in socks:
            sock.close()
