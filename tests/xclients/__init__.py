"""Small X clients for the listener tests, and helpers to drive them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from Xlib import X
from Xlib import display as xdisplay
from Xlib.error import XError

_HERE = Path(__file__).parent


class XWindow:
    """A top-level window of another process (``window.py``), with a title and class."""

    def __init__(self, title: str, klass: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(_HERE / "window.py"), "--title", title, "--class", klass],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the test window did not start")
        self.id = int(line, 16)
        self.pid = self.proc.pid

    def activate(self) -> None:
        """Make it the active window and wait until the window manager has."""
        subprocess.run(
            ["xdotool", "windowactivate", "--sync", str(self.id)], check=True, timeout=10
        )

    def set_title(self, title: str) -> None:
        self._command(f"title {title}")

    def _command(self, line: str) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def kill_connection(conn: Any) -> None:
    """Have the X server close a python-xlib connection, as ``xkill`` does.

    KillClient names the client by a resource of its, so the connection
    first makes a window (a request only: its thread may be in select()).
    """
    window = conn.screen().root.create_window(
        0, 0, 1, 1, 0, X.CopyFromParent, X.InputOnly, X.CopyFromParent
    )
    conn.flush()
    killer = xdisplay.Display(conn.get_display_name())
    try:
        target = killer.create_resource_object("window", window.id)
        deadline = time.monotonic() + 5
        while True:  # until the server has made the window
            try:
                target.get_geometry()
                break
            except XError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        target.kill_client()
        killer.sync()
    finally:
        killer.close()
