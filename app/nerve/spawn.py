"""Start a detached program quickly.

``run`` and ``shell`` actions that do not wait start their program and move
on; the time from the trigger to the program is what a user feels after a
hotkey. ``subprocess.Popen`` spends a few hundred microseconds of Python (and
several hand-overs of the GIL) around its ``vfork``; on Linux ``posix_spawn``
does the same in one call into the C library, which also uses ``vfork``-like
cloning and reports a failed ``exec`` as an error.

What the child gets, on either path: stdin, stdout and stderr on /dev/null, a
session of its own (it survives Nerve and is not hit by signals sent to
Nerve's process group), SIGPIPE and SIGXFSZ back at their defaults (Python
ignores SIGPIPE, and an ignored signal stays ignored across ``exec``), an empty
signal mask, and no file descriptor of Nerve's: Python opens every descriptor
close-on-exec, and any without the flag (inherited from whoever started Nerve,
or opened by a C library) is closed in the child. (glibc's posix_spawn also
leaves its two internal signals, 32 and 33, ignored in the child; programs
never see those.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from typing import Protocol


class Child(Protocol):
    """A started program: its pid, and ``poll()`` (the exit code once reaped)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


class SpawnedChild:
    """A child started by ``posix_spawn``: polled and reaped by pid."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Reap the child if it ended; its exit code (or -signal), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone either way
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def __repr__(self) -> str:
        return f"<SpawnedChild pid={self.pid} returncode={self.returncode}>"


_FD_DIR = "/proc/self/fd"
_USE_POSIX_SPAWN = (
    sys.platform.startswith("linux") and hasattr(os, "posix_spawn") and os.path.isdir(_FD_DIR)
)
_DEFAULT_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s
)
_STDIO = (
    (
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, 0, 1),
        (os.POSIX_SPAWN_DUP2, 0, 2),
    )
    if _USE_POSIX_SPAWN
    else ()
)


def spawn_detached(argv: list[str], cwd: str | None, env: dict[str, str]) -> Child:
    """Start ``argv`` detached (see the module's docstring); OSError if it cannot start.

    ``argv[0]`` without a slash is looked up in ``env``'s PATH, as exec does."""
    if not _USE_POSIX_SPAWN or cwd is not None:  # posix_spawn has no chdir before 3.13
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    program = argv[0]
    if os.sep not in program:
        path = env.get("PATH", os.defpath)
        if path != os.environ.get("PATH", os.defpath):
            # posix_spawnp searches Nerve's own PATH: look in the child's.
            found = shutil.which(program, path=path)
            if found is None:
                raise FileNotFoundError(2, "No such file or directory", program)
            program = found
    spawn = os.posix_spawn if os.sep in program else os.posix_spawnp
    pid = spawn(
        program,
        argv,
        env,
        file_actions=[*_STDIO, *_close_inheritable()],
        setsid=True,
        setsigdef=_DEFAULT_SIGNALS,
        setsigmask=(),
    )
    return SpawnedChild(pid)


def _close_inheritable() -> list[tuple[int, int]]:
    """Close actions for our descriptors above 2 that would survive ``exec``."""
    out: list[tuple[int, int]] = []
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    out.append((os.POSIX_SPAWN_CLOSE, fd))
            except OSError:  # the listing's own descriptor, closed by now
                pass
    return out
