"""A test client program that reports JSON lines on stdout and takes commands on stdin."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any


class LineClient:
    """Starts ``argv``, collects each JSON line it prints; ``wait`` for one."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if env is not None else None,
            env=env,
            text=True,
            bufsize=1,
        )
        self.lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(json.loads(line))
                self._cond.notify_all()

    def wait(
        self,
        check: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
        what: str = "",
        since: int = 0,
    ) -> dict[str, Any]:
        """The first message from index ``since`` on that passes ``check``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = since
            while True:
                for message in self.lines[seen:]:
                    if check(message):
                        return message
                seen = max(seen, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; got {self.lines[-10:]}")
                self._cond.wait(left)

    @property
    def text(self) -> str:
        with self._cond:
            return next((m["text"] for m in reversed(self.lines) if "text" in m), "")

    def wait_text(self, expected: str, timeout: float = 10.0) -> None:
        self.wait(lambda m: m.get("text") == expected, timeout, f"text {expected!r}")

    def command(self, line: str, reply: Callable[[dict[str, Any]], bool]) -> None:
        """Send a command line; return once a message after it passes ``reply``."""
        assert self.proc.stdin is not None
        with self._cond:
            start = len(self.lines)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self.wait(reply, what=f"the answer to {line!r}", since=start)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
