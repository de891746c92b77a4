"""A real X server for tests: Xvfb (and optionally openbox) on a free display."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest


class XServer:
    """An Xvfb process on its own display number; ``display`` is like ``:3``."""

    def __init__(self, size: str = "1280x800x24") -> None:
        if shutil.which("Xvfb") is None:
            raise RuntimeError("Xvfb is not installed (Debian package xvfb)")
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                size,
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        try:
            number = b""
            while not number.endswith(b"\n"):
                chunk = os.read(read_fd, 16)
                if not chunk:
                    raise RuntimeError("Xvfb exited before it chose a display")
                number += chunk
        finally:
            os.close(read_fd)
        self.display = f":{number.decode().strip()}"
        self.wm: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def start_window_manager(self, config_dir: Path) -> None:
        """openbox, for EWMH (_NET_ACTIVE_WINDOW) and focus handling."""
        if shutil.which("openbox") is None:
            raise RuntimeError("openbox is not installed (Debian package openbox)")
        env = {**self.env(), "XDG_CONFIG_HOME": str(config_dir)}
        self.wm = subprocess.Popen(
            ["openbox", "--sm-disable"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from Xlib import display as xdisplay

        conn = xdisplay.Display(self.display)
        try:
            root = conn.screen().root
            atom = conn.intern_atom("_NET_SUPPORTING_WM_CHECK")
            deadline = time.monotonic() + 10
            while root.get_full_property(atom, 0) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("openbox did not come up within 10 s")
                time.sleep(0.02)  # the WM sets the property when ready; nothing to wait on
        finally:
            conn.close()

    def stop(self) -> None:
        for proc in (self.wm, self.proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def xserver(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A fresh Xvfb for the test module, DISPLAY set to it while the module runs."""
    server = XServer()
    saved = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = server.display
    yield server
    server.stop()
    if saved is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = saved


@pytest.fixture(scope="module")
def xserver_wm(xserver: XServer, tmp_path_factory: pytest.TempPathFactory) -> XServer:
    """The module's Xvfb with openbox running on it."""
    xserver.start_window_manager(tmp_path_factory.mktemp("openbox"))
    return xserver
