"""Detached programs: what the child gets from ``spawn_detached``."""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from pathlib import Path

import pytest

from nerve import spawn
from nerve.spawn import Child, spawn_detached

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process details"),
]

REPORT = """
import json, os, sys
def status(path):
    return dict(line.split(":\\t", 1) for line in open(path).read().splitlines())
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
json.dump({
    "fds": fds,
    "stdio": [os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2)],
    "sid": os.getsid(0), "pid": os.getpid(),
    # Python ignores SIGPIPE itself: the shell that exec'd it read those.
    "ignored": int(status(sys.argv[2])["SigIgn"], 16),
    "cwd": os.getcwd(), "marker": os.environ.get("MARKER"),
}, open(sys.argv[1], "w"))
"""


def wait(child: Child) -> int:
    """The child's exit code, once the kernel says it ended (a pidfd)."""
    fd = os.pidfd_open(child.pid)
    try:
        assert select.select([fd], [], [], 20)[0], "the child did not end"
    finally:
        os.close(fd)
    code = child.poll()
    assert code is not None
    return code


def report(tmp_path: Path, cwd: str | None = None) -> dict[str, object]:
    out = tmp_path / "report.json"
    status = tmp_path / "status"
    env = {**os.environ, "MARKER": "m1"}
    shell = 'grep ^Sig "/proc/$$/status" > "$3"; exec "$0" -c "$1" "$2" "$3"'
    argv = ["sh", "-c", shell, sys.executable, REPORT, str(out), str(status)]
    child = spawn_detached(argv, cwd, env)
    assert wait(child) == 0
    data: dict[str, object] = json.loads(out.read_text())
    assert data["pid"] == child.pid
    return data


@pytest.mark.parametrize("cwd", [None, "/"], ids=["posix_spawn", "popen-for-cwd"])
def test_the_child_is_detached_and_clean(tmp_path: Path, cwd: str | None) -> None:
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_r, True)  # as if inherited from whoever started Nerve
    try:
        data = report(tmp_path, cwd)
    finally:
        os.close(leaked_r)
        os.close(leaked_w)
    # 0-2 and the descriptor listdir() itself opened; nothing of ours.
    fds = data["fds"]
    assert isinstance(fds, list)
    assert len(fds) == 4, fds
    assert fds[:3] == [0, 1, 2], fds
    assert data["stdio"] == [os.devnull] * 3
    assert data["sid"] == data["pid"]  # a session of its own
    ignored = data["ignored"]
    assert isinstance(ignored, int)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the child must not
        assert not ignored & (1 << (sig - 1)), f"{sig!r} is still ignored"
    if cwd is None:
        assert data["cwd"] == os.getcwd()
    else:
        assert data["cwd"] == "/"
    assert data["marker"] == "m1"


def test_no_blocked_signal_is_inherited(tmp_path: Path) -> None:
    out = tmp_path / "mask"
    code = f"open({str(out)!r}, 'w').write(open('/proc/self/status').read())"
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        child = spawn_detached([sys.executable, "-c", code], None, dict(os.environ))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert wait(child) == 0
    (blocked,) = (line for line in out.read_text().splitlines() if line.startswith("SigBlk:"))
    assert int(blocked.split()[1], 16) == 0, blocked


def test_posix_spawn_is_the_path_on_linux() -> None:
    assert spawn._USE_POSIX_SPAWN
    child = spawn_detached(["true"], None, dict(os.environ))
    assert isinstance(child, spawn.SpawnedChild)
    assert wait(child) == 0


def test_exit_codes_and_signals(tmp_path: Path) -> None:
    child = spawn_detached(["sh", "-c", "exit 3"], None, dict(os.environ))
    assert wait(child) == 3
    assert child.poll() == 3  # stays known after reaping
    child = spawn_detached(["sh", "-c", "kill -TERM $$"], None, dict(os.environ))
    assert wait(child) == -signal.SIGTERM


def test_the_program_is_looked_up_in_the_childs_path(tmp_path: Path) -> None:
    tool = tmp_path / "only-here"
    out = tmp_path / "out"
    tool.write_text(f"#!/bin/sh\necho found > {out}\n")
    tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    assert wait(spawn_detached(["only-here"], None, env)) == 0
    assert out.read_text() == "found\n"
    with pytest.raises(FileNotFoundError):
        spawn_detached(["only-here"], None, dict(os.environ))


@pytest.mark.parametrize(
    "argv", [["no-such-program-nerve"], ["/nonexistent/program"]], ids=["name", "path"]
)
def test_a_missing_program_raises(argv: list[str]) -> None:
    with pytest.raises(FileNotFoundError):
        spawn_detached(argv, None, dict(os.environ))


def test_a_file_that_cannot_run_raises(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        spawn_detached([str(script)], None, dict(os.environ))
