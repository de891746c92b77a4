"""Starting the desktop app: QApplication, the window and tray, then Nerve.

One instance runs per user. A second ``nerve`` finds the first through the
control socket and asks it to ``show`` its window, then exits. Of two started
at the same moment, the one that finds the lock taken hides its window and
asks the other, as soon as its socket answers, to show its own.

The window shows first and the engine starts right after it is on screen
(its packs, store, listeners and control socket), then the views fill in: the
user sees the app at once, and what takes time happens behind a painted window
(``bench/bench_gui.py`` measures it).
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import importlib
import linecache
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import QEvent, QObject, QSocketNotifier, QTimer, Signal
from PySide6.QtWidgets import QApplication, QWidget

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
ALREADY_SHOWN = "nerve: Nerve is already running; its window was brought up"
ALREADY_HEADLESS = (
    "nerve: Nerve is already running without a window;"
    " stop it (`nerve` cannot raise a headless instance)"
)
#: A launch that lost the race for the lock to another one started at the same
#: moment asks the winner this often, and this long, to show its window.
HAND_OFF_EVERY_MS = 100
HAND_OFF_WITHIN_S = 5.0

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


class QtThreadCollector(QObject):
    """Python's cycle collector, run on the Qt thread only.

    The collector runs in whichever thread happens to allocate when a
    threshold is crossed: in Nerve mostly the engine's and the listeners'.
    A PySide object in the garbage it finds is then destroyed off the Qt
    thread, which can deadlock the two threads (QObject's destructor takes a
    Qt lock and then wants the GIL). So automatic collection is switched off
    and this collects on the Qt thread, generation by generation as Python
    would, looking every ``interval_ms``; while hardly anything is allocated
    (an idle app) it looks half as often each time, down to every
    ``max_interval_ms``: on an idle desktop each wake-up costs more than the
    work done in it.
    """

    #: Fewer allocations than this since the last look count as idle.
    QUIET = 200

    def __init__(
        self, interval_ms: int = 5000, parent: QObject | None = None, max_interval_ms: int = 60_000
    ) -> None:
        super().__init__(parent)
        gc.disable()
        self.interval_ms = interval_ms
        self.max_interval_ms = max(interval_ms, max_interval_ms)
        self._last_count = gc.get_count()[0]
        self._timer = QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    @property
    def current_interval_ms(self) -> int:
        return self._timer.interval()

    def check(self) -> None:
        if linecache.cache:
            # PySide6's import hook reads the source of every module imported
            # after it (for its __feature__ switches) through linecache, which
            # keeps every line: ~2.5 MB once the window is up, and more with
            # each view or editor opened for the first time.
            linecache.clearcache()
        counts = gc.get_count()
        quiet = abs(counts[0] - self._last_count) < self.QUIET
        thresholds = gc.get_threshold()
        for generation in (2, 1, 0):
            if thresholds[generation] and counts[generation] > thresholds[generation]:
                gc.collect(generation)
                quiet = False
                break
        self._last_count = gc.get_count()[0]
        interval = self._timer.interval()
        wanted = min(interval * 2, self.max_interval_ms) if quiet else self.interval_ms
        if wanted != interval:
            self._timer.setInterval(wanted)

    def wake(self, *_: object) -> None:
        """Things are happening (events arrive): look every ``interval_ms`` again."""
        if self._timer.interval() != self.interval_ms:
            self._timer.start(self.interval_ms)

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()


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
        self.bridge.quit.connect(lambda: self.quit(ask=False))
        # The user's Quit (menu, tray, closing the window without a tray) asks
        # about unsaved edits in rule editors first.
        self.window.quit_requested.connect(lambda: self.quit(ask=True))
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
            from nerve import lean

            lean.import_asyncio_without_ssl()
            from nerve.gui.instance import GuiNerve

            nerve = GuiNerve(locations, options)
            nerve.start()
        self.attach(nerve)

    def attach(self, nerve: GuiNerve) -> None:
        """Show a started Nerve in the window, and answer a second launch."""
        self.nerve = nerve
        self.window.attach(Core.of(nerve))
        if nerve.engine is not None:  # the rules' dialogs open here, on the GUI thread
            from nerve.gui.prompter import QtPrompter

            self.prompter = QtPrompter(self.app)
            nerve.engine.prompter = self.prompter
        linecache.clearcache()  # see QtThreadCollector.check
        nerve.on_show = self.bridge.show.emit
        if nerve.show_pending:  # a second launch asked while we were starting
            self.window.bring_up()

    @property
    def stopped(self) -> bool:
        """Quit went ahead (Nerve stopped, the event loop told to end)."""
        return self._stopped

    def quit(self, *, ask: bool = True) -> bool:
        """Close the rule editors, the window, stop Nerve, leave the event loop.

        ``ask``: an editor with unsaved edits asks what to do with them, and
        Cancel there cancels the quit (returns False). SIGTERM and the end of
        the event loop quit without asking: unsaved edits are lost."""
        if self._stopped:
            return True
        if ask:
            from nerve.gui.editor import close_all

            if not close_all():
                self.window.show_message("Quit cancelled: a rule editor has unsaved edits")
                return False
        self._stopped = True
        self.window.shutdown()
        self.tray.icon.hide()
        self.window.hide()
        if self.nerve is not None:
            self.nerve.on_show = None
            self.nerve.stop()
        self.app.quit()
        return True


def _watch_signals(app: QApplication, on_signal: Callable[[], object]) -> QSocketNotifier:
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


def start_failed(exc: BaseException, parent: QWidget | None = None, *, dialog: bool = True) -> None:
    """Tell the user why Nerve could not start: the traceback goes to the log
    file, one line to standard error and, with ``dialog``, a message box (a
    Nerve started from the menu has no terminal to read)."""
    from nerve import logs

    log.error("Nerve could not start", exc_info=exc, extra=logs.FILE_ONLY)
    where = logs.log_file()
    reason = _reason(exc)
    print(
        f"nerve: could not start: {reason}" + (f" (details in {where})" if where else ""),
        file=sys.stderr,
    )
    if dialog:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QMessageBox

        more = (
            f"The log file has the details:\n{where}"
            if where
            else "Nerve could not write its log file either."
        )
        box = QMessageBox(
            QMessageBox.Icon.Critical,
            "Nerve could not start",
            "Nerve could not start.",
            QMessageBox.StandardButton.Ok,
            parent,
        )
        box.setInformativeText(f"{reason}\n\n{more}")
        # Wide enough for a path on one line (a message box wraps at a narrow width).
        box.setStyleSheet("QLabel#qt_msgbox_informativelabel { min-width: 34em; }")
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # the path
        box.exec()


def _reason(exc: BaseException) -> str:
    """``path: reason`` for an OSError about a file, else the error's own text."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


class _HandOff(QObject):
    """Asks the instance that holds the lock to show its window, every
    HAND_OFF_EVERY_MS for up to HAND_OFF_WITHIN_S (it may still be starting),
    then calls ``done`` with its last answer (see :func:`probe_running`)."""

    def __init__(
        self, parent: QObject, done: Callable[[Literal["shown", "absent", "no-window"]], None]
    ) -> None:
        super().__init__(parent)
        self._done = done
        self._deadline = time.monotonic() + HAND_OFF_WITHIN_S
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(HAND_OFF_EVERY_MS)
        self._timer.timeout.connect(self._probe)
        self._probe()

    def _probe(self) -> None:
        answer = probe_running()
        if answer == "absent" and time.monotonic() < self._deadline:
            self._timer.start()  # its control socket is not up yet
            return
        self._done(answer)


def run(
    locations: Locations,
    options: Options,
    argv: list[str] | None = None,
    *,
    show_window: bool = True,
    dialogs: bool = True,
) -> int:
    """Run the desktop app until Quit. Returns the exit code.

    ``show_window=False`` (``nerve --tray``, the autostart entry): start in the
    tray without opening the window, and do nothing if Nerve already runs.
    ``dialogs=False``: a failed start is only logged and printed (tests)."""
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
        print(ALREADY_SHOWN, file=sys.stderr)
        return EXIT_OK
    if running == "no-window":
        print(ALREADY_HEADLESS, file=sys.stderr)
        return EXIT_INVALID
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Nerve")
    app.setDesktopFileName("nerve")
    app.setWindowIcon(icon("nerve"))
    app.setQuitOnLastWindowClosed(False)  # the tray keeps Nerve running
    from PySide6.QtWidgets import QSystemTrayIcon

    # Without a tray, a hidden window could never be opened: show it anyway.
    collector = QtThreadCollector(parent=app)
    desktop = DesktopApp(show=show_window or not QSystemTrayIcon.isSystemTrayAvailable())
    notifier = _watch_signals(app, lambda: desktop.quit(ask=False))
    exit_code = EXIT_OK

    def lost_the_race(exc: Exception) -> None:
        """Another `nerve` started at the same moment and holds the lock: it is
        starting. Step aside and ask it to show its window, once it answers."""
        number = getattr(exc, "pid", None)
        pid = f" (pid {number})" if number else ""
        desktop.window.hide()
        desktop.tray.icon.hide()
        if not show_window:  # the autostart: nothing to show, nothing to say
            log.info("Nerve is already running%s", pid)
            desktop.quit(ask=False)
            return
        from nerve.logs import FILE_ONLY

        # The terminal gets the one line below, once there is an answer.
        log.info("Nerve%s is starting too; asking it to show its window", pid, extra=FILE_ONLY)

        def answered(answer: Literal["shown", "absent", "no-window"]) -> None:
            nonlocal exit_code
            if answer == "shown":
                print(ALREADY_SHOWN, file=sys.stderr)
                exit_code = EXIT_OK
            elif answer == "no-window":
                print(ALREADY_HEADLESS, file=sys.stderr)
                exit_code = EXIT_INVALID
            else:
                print(f"nerve: Nerve is already running{pid}", file=sys.stderr)
                exit_code = EXIT_INVALID
            desktop.quit(ask=False)

        _HandOff(desktop.bridge, answered)

    def start() -> None:
        nonlocal exit_code
        from nerve import logs
        from nerve.ipc import AlreadyRunning

        logs.add_file(locations.log_file)
        logs.install_hooks()
        # Before the core's objects move into the memory (see QtThreadCollector.check).
        linecache.clearcache()
        try:
            desktop.start(locations, options)
            desktop.window.events.batch_arrived.connect(collector.wake)
        except AlreadyRunning as exc:
            lost_the_race(exc)
        except Exception as exc:  # a broken data folder, an unreadable settings file
            exit_code = EXIT_INVALID
            desktop.window.hide()  # "Starting…" no more: the dialog says what happened
            start_failed(exc, dialog=dialogs)
            desktop.quit(ask=False)

    if desktop.window.isVisible():
        _FirstExpose(desktop.window, start)
    else:
        QTimer.singleShot(0, start)
    try:
        app.exec()
    finally:
        desktop.quit(ask=False)
        notifier.setEnabled(False)
        signal.set_wakeup_fd(-1)
        collector.stop()
    return exit_code
