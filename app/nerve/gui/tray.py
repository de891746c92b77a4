"""The tray icon: pause/resume, open, settings, quit; its icon shows paused and error states."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from nerve.gui.icons import icon

_ICONS = {"running": "nerve", "paused": "nerve-paused", "error": "nerve-error"}


class Tray(QObject):
    """A QSystemTrayIcon with its menu. Works (hidden) where no tray host exists."""

    open_requested = Signal()
    pause_requested = Signal(bool)  # True: pause, False: resume
    quit_requested = Signal()
    settings_requested = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        self.menu = QMenu()
        self.open_action = QAction("&Open Nerve", self)
        self.open_action.triggered.connect(self.open_requested)
        self.pause_action = QAction("&Pause all rules", self)
        self.pause_action.setCheckable(True)
        self.pause_action.triggered.connect(self.pause_requested)
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.triggered.connect(self.settings_requested)
        self.quit_action = QAction("&Quit Nerve", self)
        self.quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.open_action)
        self.menu.addAction(self.pause_action)
        self.menu.addAction(self.settings_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.icon = QSystemTrayIcon(icon("nerve"), self)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.state = ""
        self.set_state(paused=False, error=None)

    def show(self) -> None:
        if self.available:
            self.icon.show()

    def set_state(self, *, paused: bool, error: str | None) -> None:
        """Paused wins over an error in the icon; the tooltip says both."""
        state = "paused" if paused else "error" if error else "running"
        self.pause_action.setChecked(paused)
        if state == self.state:
            return
        self.state = state
        self.icon.setIcon(icon(_ICONS[state]))
        tip = "Nerve: paused" if paused else "Nerve: running"
        if error:
            tip += f"\n{error}"
        self.icon.setToolTip(tip)

    def refresh_icon(self) -> None:
        """Set the icon again (after a theme change picked other variants)."""
        if self.state:
            self.icon.setIcon(icon(_ICONS[self.state]))

    def notify(self, title: str, body: str, *, error: bool = False) -> None:
        if self.available and QSystemTrayIcon.supportsMessages():
            kinds = QSystemTrayIcon.MessageIcon
            kind = kinds.Warning if error else kinds.Information
            self.icon.showMessage(title, body, kind, 8000)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.open_requested.emit()
