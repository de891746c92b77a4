"""Driving the Qt text field client (qt_textfield.py) from a test."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from xclients.client import LineClient

CLIENT = Path(__file__).with_name("qt_textfield.py")


class QtField(LineClient):
    """A focused QPlainTextEdit in its own process; its text and caret as it reports them."""

    def __init__(self, display: str, title: str = "nerve qt field") -> None:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        env.pop("QT_IM_MODULE", None)
        super().__init__([sys.executable, str(CLIENT), "--title", title], env)
        self.window = int(self.wait(lambda m: "ready" in m, 20, "the Qt field to show")["ready"])

    @property
    def cursor(self) -> int:
        with self._cond:
            return int(next((m["cursor"] for m in reversed(self.lines) if "cursor" in m), 0))

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> str:
        """The text once nothing changed it for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                count = len(self.lines)
                self._cond.wait(quiet)
                if len(self.lines) == count or time.monotonic() > deadline:
                    return self.text

    def clear(self) -> None:
        self.command("clear", lambda m: m.get("done") == "clear")

    def focus(self) -> None:
        self.command("focus", lambda m: m.get("done") == "focus")
