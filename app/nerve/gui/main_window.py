"""The main window: Events, Runs and Rules tabs, a status bar, the tray."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QTabWidget, QWidget

from nerve.events import Event
from nerve.gui.core import Core
from nerve.gui.icons import icon
from nerve.gui.tray import Tray
from nerve.gui.views import EventsView, RulesView, RunsView

log = logging.getLogger(__name__)

STATUS_MS = 1000
CLOSE_NOTE = "Nerve keeps running in the tray. Use Quit in its menu to stop it."


class MainWindow(QMainWindow):
    """The desktop window over a running core. Quitting is the app's business."""

    quit_requested = Signal()

    def __init__(
        self,
        core: Core,
        *,
        tray: Tray | None = None,
        monitor_capacity: int = 10_000,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Nerve")
        self.setWindowIcon(icon("nerve"))
        self.resize(1000, 640)

        self.events = EventsView(core, monitor_capacity)
        self.runs = RunsView(core)
        self.rules = RulesView(core)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.rules, "&Rules")
        self.tabs.addTab(self.events, "&Events")
        self.tabs.addTab(self.runs, "R&uns")
        self.setCentralWidget(self.tabs)

        self.paused_label = QLabel()
        self.listeners_label = QLabel()
        self.drops_label = QLabel()
        for label in (self.paused_label, self.listeners_label, self.drops_label):
            label.setContentsMargins(6, 0, 6, 0)
        bar = self.statusBar()
        bar.addWidget(self.paused_label)
        bar.addPermanentWidget(self.listeners_label)
        bar.addPermanentWidget(self.drops_label)

        self.pause_action = QAction("&Pause all rules", self)
        self.pause_action.setCheckable(True)
        self.pause_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.pause_action.triggered.connect(self.set_engine_paused)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit_requested)
        menu = self.menuBar().addMenu("&Nerve")
        menu.addAction(self.pause_action)
        menu.addSeparator()
        menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        for number, name in enumerate(("Rules", "Events", "Runs"), start=1):
            action = QAction(name, self)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _=False, i=number - 1: self.tabs.setCurrentIndex(i))
            view_menu.addAction(action)

        self.tray = tray
        self.close_note_shown = False
        self.last_failure: str | None = None
        if tray is not None:
            tray.open_requested.connect(self.bring_up)
            tray.pause_requested.connect(self.set_engine_paused)
            tray.quit_requested.connect(self.quit_requested)
        self.events.batch_arrived.connect(self._watch_failures)

        self._status_timer = QTimer(self, interval=STATUS_MS)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()
        self.refresh_status()

    # -- control

    def set_engine_paused(self, paused: bool) -> None:
        """Pause or resume every rule (the menu, the tray)."""
        try:
            if paused:
                self.core.pause("the window")
            else:
                self.core.resume()
        except Exception as exc:
            log.warning("could not %s: %s", "pause" if paused else "resume", exc)
        self.refresh_status()

    def bring_up(self) -> None:
        """Show, raise and focus the window (the tray, a second `nerve`)."""
        handle = self.windowHandle()
        if self.isVisible() and handle is not None and not handle.isExposed():
            # Unmapped behind Qt's back, or on another desktop: map it again, here.
            self.hide()
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    # -- status

    def refresh_status(self) -> None:
        try:
            engine: dict[str, Any] = self.core.engine_status()
        except Exception:
            engine = {}
        paused = bool(engine.get("paused"))
        if paused:
            reason = engine.get("pause_reason") or "paused"
            self.paused_label.setText(f"⏸ {reason[0].upper()}{reason[1:]}")
        elif engine:
            self.paused_label.setText(f"Running: {engine.get('enabled', 0)} rule(s) on")
        else:
            self.paused_label.setText("Engine not answering")
        self.pause_action.setChecked(paused)

        listeners = self.core.listener_status()
        bad = [s for s in listeners if s.get("state") not in ("running", "starting")]
        if not listeners:
            self.listeners_label.setText("No listeners needed")
        elif bad:
            self.listeners_label.setText(
                "Listeners: " + ", ".join(f"{s['id']} {s.get('state')}" for s in bad)
            )
        else:
            self.listeners_label.setText(f"Listeners: {len(listeners)} running")
        self.listeners_label.setToolTip("\n".join(_listener_line(s) for s in listeners))
        drops = self.core.drops()
        self.drops_label.setText(f"Dropped events: {drops:,}" if drops else "No events dropped")
        error = None
        if bad:
            error = f"listener {bad[0]['id']} {bad[0].get('state')}"
        elif self.last_failure:
            error = self.last_failure
        if self.tray is not None:
            self.tray.set_state(paused=paused, error=error)

    def _watch_failures(self, batch: list[Event]) -> None:
        failures = [e for e in batch if e.type == "rule.failed"]
        if not failures:
            return
        last = failures[-1]
        self.last_failure = f"rule {last.data.get('rule')} failed: {last.data.get('error')}"
        if self.tray is not None:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            self.tray.notify("A rule failed", self.last_failure + more, error=True)
            self.tray.set_state(paused=self.pause_action.isChecked(), error=self.last_failure)

    # -- closing

    def closeEvent(self, event: QCloseEvent) -> None:
        """With a tray, closing hides the window and Nerve keeps running."""
        if self.tray is not None and self.tray.available:
            event.ignore()
            self.hide()
            if not self.close_note_shown:
                self.close_note_shown = True
                self.tray.notify("Nerve", CLOSE_NOTE)
            return
        event.accept()
        self.quit_requested.emit()

    def shutdown(self) -> None:
        """Stop timers and the monitor's subscription (before the core stops)."""
        self._status_timer.stop()
        self.events.close_subscription()


def _listener_line(status: dict[str, Any]) -> str:
    more = status.get("error") or status.get("detail")
    return f"{status['id']}: {status.get('state')}" + (f" ({more})" if more else "")
