"""`nerve` started as a person starts it, under Xvfb: a failed start, two launches at once.

Real processes (``python -m nerve``) on a real X server with a window manager;
windows are found and answered with xdotool, as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from conftest import wait_until
from nerve.gui.app import ALREADY_SHOWN, DesktopApp
from nerve.gui.instance import GuiNerve
from nerve.options import Options
from nerve.paths import locations
from xserver import XServer

NERVE = [sys.executable, "-m", "nerve"]
PACK = Path(__file__).parents[1] / "cli_data" / "cli.yaml"


@pytest.fixture
def x_env(nerve_env: dict[str, str], xserver_wm: XServer) -> dict[str, str]:
    """A fresh user's folders, on the module's X server (not offscreen)."""
    return {**nerve_env, "DISPLAY": xserver_wm.display, "QT_QPA_PLATFORM": "xcb"}


class Launch:
    """One ``nerve`` (the desktop app), its standard error in a file."""

    def __init__(self, env: dict[str, str], err: Path) -> None:
        self.env = env
        self.err = err
        with open(err, "wb") as fh:
            self.proc = subprocess.Popen(
                NERVE, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT
            )

    @property
    def output(self) -> str:
        return self.err.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def windows(self, name: str) -> list[str]:
        """Its visible windows whose title matches ``name`` (a regular expression)."""
        pid = str(self.proc.pid)
        found = subprocess.run(
            ["xdotool", "search", "--all", "--onlyvisible", "--pid", pid, "--name", name],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        return found.stdout.split()

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def launch(x_env: dict[str, str], short_tmp: Path) -> Iterator[Callable[[], Launch]]:
    started: list[Launch] = []

    def start() -> Launch:
        started.append(Launch(x_env, short_tmp / f"nerve-{len(started)}.err"))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def log_text(env: dict[str, str]) -> str:
    path = Path(env["XDG_STATE_HOME"]) / "nerve" / "log" / "nerve.log"
    return path.read_text() if path.exists() else ""


def test_a_failed_start_says_why_in_a_dialog(
    launch: Callable[[], Launch], x_env: dict[str, str], shots_dir: Callable[[], Path]
) -> None:
    data = Path(x_env["XDG_DATA_HOME"]) / "nerve"
    data.write_text("a file where Nerve's data folder goes\n")
    nerve = launch()

    def dialog() -> str | None:
        assert nerve.alive(), f"nerve exited {nerve.proc.returncode}, no dialog:\n{nerve.output}"
        found = nerve.windows("^Nerve could not start$")
        return found[0] if found else None

    wid = wait_until(dialog, 30, "the dialog")
    shot = shots_dir() / "nerve-could-not-start.png"
    subprocess.run(["import", "-window", "root", str(shot)], env=x_env, check=True, timeout=20)
    assert nerve.windows("^Nerve$") == []  # the "Starting…" window made way for the dialog
    assert nerve.alive()  # it waits for the user to read it
    subprocess.run(
        ["xdotool", "windowactivate", "--sync", wid, "key", "--clearmodifiers", "Return"],
        env=x_env,
        timeout=10,
        check=True,
    )
    assert nerve.proc.wait(15) == 1
    out = nerve.output
    assert out.count("could not start") == 1, out
    assert f"{data}: File exists" in out
    assert "nerve.log" in out
    assert "Traceback" not in out
    assert "Traceback" in log_text(x_env)  # the details are in the log file


def test_two_launches_at_once_leave_one_window_up(launch: Callable[[], Launch]) -> None:
    first, second = launch(), launch()  # `nerve & nerve`
    done = wait_until(
        lambda: [n for n in (first, second) if not n.alive()], 40, "one launch to step aside"
    )
    assert len(done) == 1, [n.output for n in done]
    loser = done[0]
    winner = second if loser is first else first
    assert loser.proc.returncode == 0, loser.output
    assert loser.output.strip() == ALREADY_SHOWN
    assert wait_until(lambda: winner.windows("^Nerve$"), 20, "the window that stays")
    assert winner.alive()
    assert winner.stop() == 0, winner.output


def test_a_launch_that_loses_the_race_hands_over_to_the_winner(
    qtbot: QtBot, launch: Callable[[], Launch], x_env: dict[str, str]
) -> None:
    # The winner took the lock and is still starting: no control socket yet.
    winner = GuiNerve(locations(), Options(rule_paths=[PACK]))
    winner.lock.acquire()
    desktop: DesktopApp | None = None
    try:
        nerve = launch()

        def waiting() -> bool:
            assert nerve.alive(), f"nerve exited {nerve.proc.returncode}:\n{nerve.output}"
            return "asking it to show its window" in log_text(x_env)

        wait_until(waiting, 30, "the second launch to find the lock taken")
        assert nerve.windows("^Nerve$") == []  # it hid its own "Starting…" window
        winner.start()  # the lock is ours already; the socket comes up
        desktop = DesktopApp(winner, show=False)
        qtbot.addWidget(desktop.window)
        qtbot.waitUntil(desktop.window.isVisible, timeout=10_000)  # brought up
        assert nerve.proc.wait(15) == 0, nerve.output
        assert nerve.output.strip() == ALREADY_SHOWN
    finally:
        if desktop is not None:
            desktop.quit(ask=False)
        else:
            winner.stop()
    assert not os.path.exists(Path(x_env["XDG_RUNTIME_DIR"]) / "nerve" / "nerve.sock")


def test_the_running_app_maps_no_openssl(launch: Callable[[], Launch]) -> None:
    app = launch()
    assert wait_until(lambda: app.windows("^Nerve$"), 30, "the window")

    def core_answers() -> bool:
        status = subprocess.run(
            [*NERVE, "status"], env=app.env, capture_output=True, timeout=20, check=False
        )
        return status.returncode == 0

    wait_until(core_answers, 30, "the core behind the window to answer")
    maps = Path(f"/proc/{app.proc.pid}/maps").read_text()
    # asyncio (imported as the core starts) would load ssl; hashlib libcrypto.
    for library in ("libssl", "libcrypto", "_ssl", "_hashlib"):
        assert library not in maps, f"{library} is loaded"
    assert app.stop() == 0, app.output
