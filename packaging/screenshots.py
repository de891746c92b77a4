#!/usr/bin/env python3
"""Screenshots of the desktop app for the README, taken from a real Nerve.

Starts a private X server (Xvfb) with a window manager (openbox) and a tray
host (trayer), runs ``nerve`` there with a fresh HOME and XDG folders and a
demo pack, makes things happen (files land in Downloads, a hotkey is
pressed, ``nerve emit`` sends events), then moves through the window with
the keyboard as a user would and saves each view, cropped to its window, as
a PNG in ``resources/screenshots/``:

    rules.png  events.png  runs.png  settings.png  tray.png  (editor.png)

Needs: Xvfb, openbox, trayer, xdotool, xprop and xwininfo (x11-utils) and
ImageMagick (``import``, ``convert``); on Debian
``apt-get install xvfb openbox trayer xdotool x11-utils imagemagick``.

    python packaging/screenshots.py [--out DIR] [--width 1000] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCREEN = "1280x800x24"
WINDOW_HEIGHT = 660
TOOLS = ("Xvfb", "openbox", "trayer", "xdotool", "xprop", "xwininfo", "import", "convert")
#: How long a view gets to repaint after a key press (there is nothing to wait on).
SETTLE_S = 0.6
EDITOR_TIMEOUT_S = 10.0

DEMO_PACK = """\
nerve: 1
pack:
  id: demo.desktop
  name: Desktop helpers
  version: 1.0.0
  author: Sam
  description: Tidy downloads, a terminal hotkey, build notifications.
rules:
  - id: file-pdfs
    name: File new PDFs under Documents
    when:
      - file.created: {path: ~/Downloads, glob: "*.pdf"}
    do:
      - file.move: {src: "{event.path}", dest: ~/Documents/PDFs}
      - notify: "Filed {event.name}"
  - id: terminal
    name: Terminal on Ctrl+Alt+T
    when: {hotkey: ctrl+alt+t}
    if: [{window: {class: "!*terminal*"}}]
    do: [{run: [x-terminal-emulator]}]
  - id: build-done
    name: Tell me when a build finishes
    when: {event: build.done}
    if:
      - event: {status: ok}
    do:
      - notify: {title: Build, body: "{event.name} built in {event.seconds}s"}
      - set: {last_build: "{event.name}"}
  - id: three-failures
    name: Three failed builds in ten minutes
    when:
      count:
        of: {event: {type: build.done, data: {status: failed}}}
        times: 3
        within: 10m
    do:
      - notify: {title: Build, body: "Three failures in ten minutes.", urgency: critical}
  - id: signature
    name: ";sig types my signature"
    when: {typed: ";sig"}
    do: [{type: "Best regards,\\nSam"}]
  - id: nightly-backup
    name: Nightly backup
    enabled: false
    when: {schedule: {cron: "30 2 * * *"}}
    do: [{run: [rsync, -a, ~/Documents/, /mnt/backup/]}]
"""


class Failed(Exception):
    """A step did not work; the message says which and why."""


def run(argv: list[str], env: dict[str, str], **kw: Any) -> str:
    done = subprocess.run(
        argv, check=False, env=env, capture_output=True, text=True, timeout=30, **kw
    )
    if done.returncode != 0:
        raise Failed(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return str(done.stdout)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Failed, subprocess.SubprocessError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


# ------------------------------------------------------------------ the desk


class Desk:
    """Xvfb + openbox + trayer, and a home for Nerve, all private and temporary.

    ``base`` is the home folder, laid out as a real one (``~/.config``…)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: list[subprocess.Popen[bytes]] = []
        self.home = base
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY", "SESSION_MANAGER")
            and not key.startswith(("XDG_", "QT_"))
        }
        for name, sub in (
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_STATE_HOME", ".local/state"),
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_RUNTIME_DIR", ".run"),
        ):
            folder = base / sub
            folder.mkdir(mode=0o700, parents=True)
            self.env[name] = str(folder)
        self.env["HOME"] = str(self.home)
        self.env["LANG"] = self.env.get("LANG") or "C.UTF-8"
        # A stand-in terminal, so that the demo's hotkey rule has something to start.
        bin_dir = base / ".local" / "bin"
        bin_dir.mkdir(parents=True)
        fake = bin_dir / "x-terminal-emulator"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"

    def start_x(self) -> None:
        read_fd, write_fd = os.pipe()
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(xvfb)
        os.close(write_fd)
        number = b""
        with os.fdopen(read_fd, "rb") as pipe:
            while not number.endswith(b"\n"):
                chunk = pipe.read(1)
                if not chunk:
                    raise Failed("Xvfb exited before it chose a display")
                number += chunk
        self.env["DISPLAY"] = f":{number.decode().strip()}"
        # A plain grey desktop (the default is black) behind the windows.
        if shutil.which("xsetroot"):
            run(["xsetroot", "-solid", "#5b6770"], self.env)
        self._spawn(["openbox", "--sm-disable"])
        wait_for(
            "openbox",
            lambda: "window id" in run(["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"], self.env),
            60,
        )
        self._spawn(
            [
                "trayer",
                *["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "28"],
                *["--SetDockType", "true", "--SetPartialStrut", "true", "--iconspacing", "4"],
                *["--transparent", "false", "--tint", "0xdddddd"],
            ]
        )
        wait_for("the tray host", lambda: self.find_window(class_="trayer"))

    def _spawn(self, argv: list[str], log_name: str | None = None) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if log_name:
            out = open(self.base / log_name, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    # -- X helpers

    def find_window(self, *, name: str | None = None, class_: str | None = None) -> int | None:
        argv = ["xdotool", "search", "--onlyvisible"]
        argv += ["--name", name] if name else ["--class", class_ or ""]
        done = subprocess.run(
            argv, check=False, env=self.env, capture_output=True, text=True, timeout=10
        )
        ids = [int(line) for line in done.stdout.split()]
        return ids[-1] if ids else None

    def key(self, *keys: str) -> None:
        run(["xdotool", "key", "--clearmodifiers", "--delay", "60", *keys], self.env)
        time.sleep(SETTLE_S)

    def frame(self, window: int) -> tuple[int, int, int, int]:
        """x, y, width, height of a window with its title bar and borders."""
        info = run(["xwininfo", "-id", str(window)], self.env)
        number = {
            k: int(v)
            for k, v in re.findall(r"(Absolute upper-left [XY]|Width|Height):\s+(-?\d+)", info)
        }
        x, y = number["Absolute upper-left X"], number["Absolute upper-left Y"]
        width, height = number["Width"], number["Height"]
        left, right, top, bottom = self.extents(window)
        return x - left, y - top, width + left + right, height + top + bottom

    def extents(self, window: int) -> tuple[int, int, int, int]:
        """The window manager's frame around a window: left, right, top, bottom."""
        extents = run(["xprop", "-id", str(window), "_NET_FRAME_EXTENTS"], self.env)
        found = [int(v) for v in re.findall(r"\d+", extents.partition("=")[2])]
        return (found[0], found[1], found[2], found[3]) if len(found) == 4 else (0, 0, 0, 0)

    def shoot(self, target: Path, box: tuple[int, int, int, int], width: int) -> None:
        """The screen, cropped to ``box`` and scaled down to ``width``, as a small PNG."""
        raw = self.base / "screen.png"
        run(["import", "-window", "root", str(raw)], self.env)
        x, y, w, h = box
        crop = [str(raw), "-crop", f"{w}x{h}+{x}+{y}", "+repage"]
        scale = ["-filter", "Lanczos", "-resize", f"{width}x>"]
        small = ["-strip", "-define", "png:compression-level=9"]
        run(["convert", *crop, *scale, *small, str(target)], self.env)
        print(f"  {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


# ------------------------------------------------------------------- nerve


def nerve_argv() -> list[str]:
    """The ``nerve`` of this Python's environment, else ``python -m nerve``."""
    script = Path(sys.executable).with_name("nerve")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nerve"]


def shots(desk: Desk, out: Path, width: int) -> list[Path]:
    env = desk.env
    nerve = nerve_argv()
    # As a user would: import the demo pack, allowing what it does (the
    # starter pack comes with the first start).
    demo = desk.home / "desktop.yaml"
    demo.write_text(DEMO_PACK)
    run([*nerve, "pack", "import", str(demo), "--approve"], env)
    packs = Path(env["XDG_CONFIG_HOME"]) / "nerve" / "packs"
    run([*nerve, "validate", str(packs)], env)
    downloads = desk.home / "Downloads"
    downloads.mkdir()

    desk._spawn(nerve, log_name="nerve.log")
    window = wait_for("the Nerve window", lambda: desk.find_window(name="^Nerve$"), 30)
    wait_for("nerve status", lambda: run([*nerve, "status"], env))
    # Exactly ``width`` wide with its frame: no scaling, crisp text, small files.
    left, right, _, _ = desk.extents(window)
    size = (width - left - right, WINDOW_HEIGHT)
    run(["xdotool", "windowsize", str(window), *map(str, size)], env)
    run(["xdotool", "windowmove", str(window), "60", "60"], env)
    run(["xdotool", "windowactivate", "--sync", str(window)], env)

    # Things happen: files arrive, a hotkey, builds report, a note.
    (downloads / "invoice-0117.pdf").write_bytes(b"%PDF-1.4\n")
    wait_for("the PDF filed", lambda: not (downloads / "invoice-0117.pdf").exists())
    (downloads / "notes.txt").write_text("call Sam back\n")
    for seconds in (12, 9, 14):
        run([*nerve, "emit", "build.done", "status=failed", "name=api", f"seconds={seconds}"], env)
    run([*nerve, "emit", "note", "text=call Sam back"], env)
    run(["xdotool", "key", "ctrl+alt+t"], env)  # the terminal rule
    run([*nerve, "emit", "build.done", "status=ok", "name=app", "seconds=42"], env)
    wait_for(
        "the runs",
        lambda: len(run([*nerve, "runs", "--json", "--limit", "50"], env).splitlines()) >= 8,
    )
    run(["xdotool", "windowactivate", "--sync", str(window)], env)
    taken: list[Path] = []

    def shoot(name: str, target_window: int) -> None:
        path = out / f"{name}.png"
        desk.shoot(path, desk.frame(target_window), width)
        taken.append(path)

    # Rules: the tree, with the build rule selected.
    desk.key("ctrl+1", "Home", "Down", "Down", "Down")
    shoot("rules", window)
    # Events: the newest event and its details.
    desk.key("ctrl+2", "ctrl+End")
    shoot("events", window)
    # Runs: the newest run and its trace.
    desk.key("ctrl+3", "Down", "Up")
    shoot("runs", window)
    # Settings (Ctrl+,), then closed with Escape.
    desk.key("ctrl+comma")
    settings = wait_for("the Settings window", lambda: desk.find_window(name="^Nerve Settings$"))
    time.sleep(SETTLE_S)
    shoot("settings", settings)
    desk.key("Escape")
    wait_for("the Settings window to close", lambda: not desk.find_window(name="^Nerve Settings$"))
    # The rule editor, where this version has one (Return on a rule).
    desk.key("ctrl+1", "Home", "Down", "Down", "Down")
    before = set(_visible_windows(desk))
    desk.key("Return")
    try:
        opened = wait_for(
            "the rule editor",
            lambda: [w for w in _visible_windows(desk) if w not in before],
            EDITOR_TIMEOUT_S,
        )
    except Failed:
        print("  (no rule editor opened: editor.png not taken)")
    else:
        editor = opened[-1]
        left, right, _, _ = desk.extents(editor)
        run(["xdotool", "windowsize", str(editor), str(width - left - right), "700"], env)
        run(["xdotool", "windowmove", str(editor), "40", "40"], env)
        time.sleep(SETTLE_S)
        shoot("editor", editor)
        run(["xdotool", "windowclose", str(editor)], env)
    # The tray icon's menu, top right, over the window.
    tray_box = _tray_icon(desk)
    if tray_box is not None:
        x, y, w, h = tray_box
        run(["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "3"], env)
        menu = wait_for("the tray menu", lambda: _newest_popup(desk), 10)
        time.sleep(SETTLE_S)
        mx, my, mw, mh = desk.frame(menu)
        left = min(mx, x) - 16
        shoot_box = (left, 0, max(mx + mw, x + w) + 16 - left, my + mh + 16)
        path = out / "tray.png"
        desk.shoot(path, shoot_box, min(width, shoot_box[2]))
        taken.append(path)
        desk.key("Escape")
    return taken


def _visible_windows(desk: Desk) -> list[int]:
    done = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", "."],
        check=False,
        env=desk.env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return [int(line) for line in done.stdout.split()]


def _tray_icon(desk: Desk) -> tuple[int, int, int, int] | None:
    """Where Nerve's icon sits in the tray (the first child of trayer's window)."""
    tray = desk.find_window(class_="trayer")
    if tray is None:
        return None
    tree = run(["xwininfo", "-children", "-id", str(tray)], desk.env)
    children = re.findall(r"^\s+(0x[0-9a-f]+)", tree, re.MULTILINE)
    for child in children:
        x, y, w, h = desk.frame(int(child, 16))
        if w > 4 and h > 4:
            return x, y, w, h
    return None


def _newest_popup(desk: Desk) -> int | None:
    """The tray's context menu: a visible override-redirect window of Nerve, menu-sized."""
    ids = run(["xdotool", "search", "--onlyvisible", "--class", "nerve"], desk.env).split()
    for wid in reversed(ids):
        info = run(["xwininfo", "-id", wid], desk.env)
        if "Override Redirect State: yes" in info:
            _, _, width, height = desk.frame(int(wid))
            if width >= 80 and height >= 60:
                return int(wid)
    return None


@contextlib.contextmanager
def desk_in(keep: bool) -> Iterator[Desk]:
    base = Path(tempfile.mkdtemp(prefix="sam."))  # short paths in the event list
    desk = Desk(base)
    try:
        desk.start_x()
        yield desk
    finally:
        desk.stop()
        if keep:
            print(f"kept {base} (nerve.log, screen.png)")
        else:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "screenshots")
    parser.add_argument("--width", type=int, default=1000, help="scale down to this width")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"screenshots: missing {', '.join(missing)} (see this script's docstring)")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with desk_in(args.keep) as desk:
            taken = shots(desk, args.out, args.width)
    except Failed as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    print(f"{len(taken)} screenshot(s) in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
