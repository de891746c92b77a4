"""Driving the Qt text field client (qt_textfield.py) from a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLIENT = Path(__file__).with_name("qt_textfield.py")


class QtField:
    """A focused QPlainTextEdit in its own process; its text and caret as it reports them."""

    def __init__(self, display: str, title: str = "nerve qt field") -> None:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        env.pop("QT_IM_MODULE", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENT), "--title", title],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            bufsize=1,
        )
        self.lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.window = int(self.wait(lambda m: "ready" in m, 20, "the Qt field to show")["ready"])

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
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; last text {self.text!r}")
                self._cond.wait(left)

    @property
    def text(self) -> str:
        with self._cond:
            return next((m["text"] for m in reversed(self.lines) if "text" in m), "")

    @property
    def cursor(self) -> int:
        with self._cond:
            return int(next((m["cursor"] for m in reversed(self.lines) if "cursor" in m), 0))

    def wait_text(self, expected: str, timeout: float = 10.0) -> None:
        self.wait(lambda m: m.get("text") == expected, timeout, f"text {expected!r}")

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> str:
        """The text once nothing changed it for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                count = len(self.lines)
                self._cond.wait(quiet)
                if len(self.lines) == count or time.monotonic() > deadline:
                    return self.text

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        name = line.split(" ", 1)[0]
        with self._cond:
            start = len(self.lines)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self.wait(lambda m: m.get("done") == name, what=f"{name} done", since=start)

    def clear(self) -> None:
        self.command("clear")

    def focus(self) -> None:
        self.command("focus")

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
