"""Starting the desktop app: QApplication, the window and tray, then Nerve.

One instance runs per user. A second ``nerve`` finds the first through the
control socket and asks it to ``show`` its window, then exits.

The window shows first and the engine starts right after it is on screen
(its packs, store, listeners and control socket), then the views fill in: the
user sees the app at once, and what takes time happens behind a painted window
(``bench/bench_gui.py`` measures it).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import QEvent, QObject, QSocketNotifier, QTimer, Signal
from PySide6.QtWidgets import QApplication

from nerve.gui import PLAIN_IMPORT
from nerve.gui.core import Core
from nerve.gui.icons import icon
from nerve.gui.main_window import MainWindow
from nerve.gui.tray import Tray
from nerve.ipc import IpcError, NoInstance, request

if TYPE_CHECKING:
    from nerve.gui.instance import GuiNerve
    from nerve.options import Options
    from nerve.paths import Locations

log = logging.getLogger(__name__)

EXIT_OK, EXIT_INVALID = 0, 1

#: Python's own ``__import__``, as it was before PySide6 came (see plain_imports).
_PLAIN_IMPORT: Callable[..., Any] = (
    PLAIN_IMPORT if getattr(PLAIN_IMPORT, "__name__", "") == "__import__" else importlib.__import__
)


@contextlib.contextmanager
def plain_imports() -> Iterator[None]:
    """Import Qt-free modules with Python's own import.

    PySide6 replaces ``builtins.__import__`` with a hook that, for each module
    imported after it, reads the module's whole source (``inspect.getsource``)
    to look for the word "PySide6" (its ``__feature__`` switches). For Nerve's
    core (hundreds of modules: the engine, asyncio, jsonschema, APScheduler)
    that costs about 10 MB of cached source lines and tens of milliseconds,
    for modules that never use Qt. Only the Qt thread imports while this is on.
    """
    hooked = builtins.__import__
    builtins.__import__ = _PLAIN_IMPORT
    try:
        yield
    finally:
        builtins.__import__ = hooked


def probe_running() -> Literal["shown", "absent", "no-window"]:
    """Ask a running instance to show its window: "shown", "absent" (none
    runs) or "no-window" (one runs without a window, or is starting)."""
    try:
        request("show", timeout=5.0)
    except NoInstance:
        return "absent"
    except IpcError as exc:
        log.debug("the running instance did not show a window: %s", exc)
        return "no-window"
    return "shown"


def hand_off() -> bool:
    """Ask the running instance to show its window. False: it has no window."""
    return probe_running() == "shown"


class _Bridge(QObject):
    """Carries requests from other threads into the Qt thread (queued signals)."""

    show = Signal()
    quit = Signal()


class _FirstExpose(QObject):
    """Calls ``then`` once the window is on screen and painted."""

    def __init__(self, window: MainWindow, then: Callable[[], None]) -> None:
        super().__init__(window)
        self._then: Callable[[], None] | None = then
        handle = window.windowHandle()
        assert handle is not None, "show the window first"
        handle.installEventFilter(self)
        # Without a compositor or on some platforms no Expose may come: don't wait forever.
        QTimer.singleShot(1000, self._fire)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Expose:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self._fire)  # after this expose is painted
        return False

    def _fire(self) -> None:
        then, self._then = self._then, None
        if then is not None:
            then()


class DesktopApp:
    """The window and tray in this process's QApplication, over a Nerve that
    is started (``nerve`` given) or that :meth:`start` starts."""

    def __init__(self, nerve: GuiNerve | None = None, *, show: bool = True) -> None:
        app = QApplication.instance()
        assert isinstance(app, QApplication), "create the QApplication first"
        self.app = app
        self.nerve: GuiNerve | None = None
        self.bridge = _Bridge()
        self.tray = Tray()
        self.window = MainWindow(None, tray=self.tray)
        self.bridge.show.connect(self.window.bring_up)
        self.bridge.quit.connect(self.quit)
        self.window.quit_requested.connect(self.quit)
        self.tray.show()
        self._stopped = False
        if nerve is not None:
            self.attach(nerve)
        if show:
            self.window.show()

    def start(self, locations: Locations, options: Options) -> None:
        """Start Nerve (packs, store, engine, listeners, socket) and fill the
        window. Raises what :meth:`Nerve.start` raises (AlreadyRunning, …)."""
        with plain_imports():
            from nerve.gui.instance import GuiNerve

            nerve = GuiNerve(locations, options)
            nerve.start()
        self.attach(nerve)

    def attach(self, nerve: GuiNerve) -> None:
        """Show a started Nerve in the window, and answer a second launch."""
        self.nerve = nerve
        self.window.attach(Core.of(nerve))
        nerve.on_show = self.bridge.show.emit
        if nerve.show_pending:  # a second launch asked while we were starting
            self.window.bring_up()

    def quit(self) -> None:
        """Close the window, stop Nerve, leave the event loop."""
        if self._stopped:
            return
        self._stopped = True
        self.window.shutdown()
        self.tray.icon.hide()
        self.window.hide()
        if self.nerve is not None:
            self.nerve.on_show = None
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


def run(
    locations: Locations,
    options: Options,
    argv: list[str] | None = None,
    *,
    show_window: bool = True,
) -> int:
    """Run the desktop app until Quit. Returns the exit code.

    ``show_window=False`` (``nerve --tray``, the autostart entry): start in the
    tray without opening the window, and do nothing if Nerve already runs."""
    if not show_window:
        try:
            request("status", timeout=5.0)
        except IpcError:  # (NoInstance included) nobody answers: start
            pass
        else:
            log.info("Nerve is already running")
            return EXIT_OK
    running = probe_running() if show_window else "absent"
    if running == "shown":
        print("nerve: Nerve is already running; its window was brought up", file=sys.stderr)
        return EXIT_OK
    if running == "no-window":
        print(
            "nerve: Nerve is already running without a window;"
            " stop it (`nerve` cannot raise a headless instance)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Nerve")
    app.setDesktopFileName("nerve")
    app.setWindowIcon(icon("nerve"))
    app.setQuitOnLastWindowClosed(False)  # the tray keeps Nerve running
    from PySide6.QtWidgets import QSystemTrayIcon

    # Without a tray, a hidden window could never be opened: show it anyway.
    desktop = DesktopApp(show=show_window or not QSystemTrayIcon.isSystemTrayAvailable())
    notifier = _watch_signals(app, desktop.quit)
    exit_code = EXIT_OK

    def start() -> None:
        nonlocal exit_code
        from nerve import logs
        from nerve.ipc import AlreadyRunning

        logs.add_file(locations.log_file)
        logs.install_hooks()
        try:
            desktop.start(locations, options)
        except AlreadyRunning as exc:
            pid = f" (pid {exc.pid})" if getattr(exc, "pid", None) else ""
            print(f"nerve: Nerve is already running{pid}", file=sys.stderr)
            exit_code = EXIT_INVALID
            desktop.quit()
        except Exception as exc:  # a broken data folder, an unreadable settings file
            log.exception("Nerve could not start")
            print(f"nerve: could not start: {exc}", file=sys.stderr)
            exit_code = EXIT_INVALID
            desktop.quit()

    if desktop.window.isVisible():
        _FirstExpose(desktop.window, start)
    else:
        QTimer.singleShot(0, start)
    try:
        app.exec()
    finally:
        desktop.quit()
        notifier.setEnabled(False)
        signal.set_wakeup_fd(-1)
    return exit_code
