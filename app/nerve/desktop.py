"""Desktop services with a per-platform answer: opening things and notifications."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

log = logging.getLogger(__name__)


def opener_argv(target: str) -> list[str] | None:
    """The command that opens ``target`` with the desktop's default handler."""
    if sys.platform == "darwin":
        return ["open", target]
    if sys.platform == "win32":
        return None  # os.startfile
    return ["xdg-open", target]


def open_target(target: str) -> subprocess.Popen[bytes] | None:
    """Open a file, folder or URL with its default application (detached).

    Returns the opener's process where one was started (to reap it, and so
    what it emits is known to come from this opening)."""
    argv = opener_argv(target)
    if argv is None:
        os.startfile(target)  # type: ignore[attr-defined,unused-ignore]
        return None
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(f"{argv[0]} is not installed, so nothing can open {target!r}")
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def notify(title: str, body: str, *, urgency: str = "normal") -> str:
    """Show a desktop notification; return how it was delivered (for traces).

    Uses ``notify-send`` (libnotify) where present; otherwise the log.
    """
    if (
        sys.platform.startswith("linux")
        and shutil.which("notify-send")
        and (os.environ.get("DBUS_SESSION_BUS_ADDRESS") or os.environ.get("DISPLAY"))
    ):
        try:
            subprocess.run(
                ["notify-send", "--app-name=Nerve", f"--urgency={urgency}", "--", title, body],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=5,
                check=True,
            )
            return "notify-send"
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("notify-send failed (%s); logging the notification instead", exc)
    log.warning("notification: %s%s%s", title, ": " if body else "", body)
    return "log"
