"""Starting the desktop app: QApplication, Nerve, the window, the tray.

One instance runs per user. A second ``nerve`` finds the first through the
control socket and asks it to ``show`` its window, then exits.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, Signal
from PySide6.QtWidgets import QApplication

from nerve.bootstrap import Nerve, Options
from nerve.gui.core import Core
from nerve.gui.icons import icon
from nerve.gui.main_window import MainWindow
from nerve.gui.tray import Tray
from nerve.ipc import AlreadyRunning, IpcError, NoInstance, request
from nerve.paths import Locations

log = logging.getLogger(__name__)

EXIT_OK, EXIT_INVALID = 0, 1


class GuiNerve(Nerve):
    """Nerve with a window: also answers the ``show`` request of a second launch."""

    def __init__(self, locations: Locations, options: Options) -> None:
        super().__init__(locations, options)
        #: Called on an IPC worker thread; must only hand over to the Qt thread.
        self.on_show: Callable[[], None] | None = None

    def handle(self, cmd: str, args: dict[str, Any]) -> Any:
        if cmd == "show":
            if self.on_show is None:
                raise IpcError("Nerve is starting up; try again")
            self.on_show()
            return {"shown": True}
        return super().handle(cmd, args)


class _Bridge(QObject):
    """Carries requests from other threads into the Qt thread (queued signals)."""

    show = Signal()
    quit = Signal()


def hand_off() -> bool:
    """Ask the running instance to show its window. False: it has no window."""
    try:
        request("show", timeout=5.0)
    except NoInstance:
        return False
    except IpcError as exc:
        log.debug("the running instance did not show a window: %s", exc)
        return False
    return True


class DesktopApp:
    """A started Nerve with its window and tray, in this process's QApplication."""

    def __init__(self, nerve: GuiNerve, *, show: bool = True) -> None:
        app = QApplication.instance()
        assert isinstance(app, QApplication), "create the QApplication first"
        self.app = app
        self.nerve = nerve
        self.bridge = _Bridge()
        self.tray = Tray()
        self.window = MainWindow(Core.of(nerve), tray=self.tray)
        self.bridge.show.connect(self.window.bring_up)
        self.bridge.quit.connect(self.quit)
        self.window.quit_requested.connect(self.quit)
        nerve.on_show = self.bridge.show.emit
        self.tray.show()
        if show:
            self.window.show()
        self._stopped = False

    def quit(self) -> None:
        """Close the window, stop Nerve, leave the event loop."""
        if self._stopped:
            return
        self._stopped = True
        self.nerve.on_show = None
        self.window.shutdown()
        self.tray.icon.hide()
        self.window.hide()
        self.nerve.stop()
        self.app.quit()


def _watch_signals(app: QApplication, on_signal: Callable[[], None]) -> QSocketNotifier:
    """SIGINT/SIGTERM end the app cleanly: Qt's loop wakes through a socket pair."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)  # the wakeup fd does the work
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, app)

    def readable() -> None:
        with contextlib.suppress(OSError):
            reader.recv(64)
        on_signal()

    notifier.activated.connect(readable)
    # Keep the sockets alive as long as the notifier.
    notifier.setProperty("nerve_sockets", (reader, writer))
    app.setProperty("nerve_sockets", [reader, writer])
    return notifier


def run(locations: Locations, options: Options, argv: list[str] | None = None) -> int:
    """Run the desktop app until Quit. Returns the exit code."""
    if hand_off():
        print("nerve: Nerve is already running; its window was brought up", file=sys.stderr)
        return EXIT_OK
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Nerve")
    app.setDesktopFileName("nerve")
    app.setWindowIcon(icon("nerve"))
    app.setQuitOnLastWindowClosed(False)  # the tray keeps Nerve running
    nerve = GuiNerve(locations, options)
    try:
        nerve.start()
    except AlreadyRunning as exc:
        pid = f" (pid {exc.pid})" if getattr(exc, "pid", None) else ""
        print(
            f"nerve: Nerve is already running without a window{pid};"
            " stop it (`nerve` cannot raise a headless instance)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    desktop = DesktopApp(nerve)
    notifier = _watch_signals(app, desktop.quit)
    try:
        app.exec()
    finally:
        desktop.quit()
        notifier.setEnabled(False)
        signal.set_wakeup_fd(-1)
    return EXIT_OK
