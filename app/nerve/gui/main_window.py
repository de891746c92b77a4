"""The main window: Rules, Events and Runs tabs, menus, a status bar, the tray."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QPushButton, QTabWidget, QWidget

from nerve.gui.icons import forget_theme, icon
from nerve.gui.tray import Tray

if TYPE_CHECKING:
    # Imported when the core is attached: the window shows before they load.
    from nerve.events import Event
    from nerve.gui.core import Core
    from nerve.gui.settings_dialog import SettingsDialog
    from nerve.gui.views import EventsView, RulesView, RunsView

log = logging.getLogger(__name__)

MESSAGE_MS = 6000
CLOSE_NOTE = "Nerve keeps running in the tray. Use Quit in its menu to stop it."


class MainWindow(QMainWindow):
    """The desktop window over a running core. Quitting is the app's business.

    Made without a core, it shows at once with "Starting…" and fills in when
    :meth:`attach` gives it the started core (the app starts Nerve behind a
    window that is already on screen)."""

    quit_requested = Signal()

    # Set by attach():
    core: Core
    events: EventsView
    rules: RulesView
    runs: RunsView

    def __init__(
        self,
        core: Core | None,
        *,
        tray: Tray | None = None,
        monitor_capacity: int = 10_000,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Nerve")
        self.setWindowIcon(icon("nerve"))
        self.resize(1000, 640)
        self._monitor_capacity = monitor_capacity
        self._attached = False

        self.paused_label = QLabel("Starting…")
        self.listeners_label = QLabel()
        self.drops_label = QLabel()
        self.storage_label = QLabel()
        self.storage_label.hide()
        self.bridges_label = QLabel()  # the webhook, MQTT...: shown when there are some
        self.bridges_label.hide()
        for label in (
            self.paused_label,
            self.listeners_label,
            self.drops_label,
            self.storage_label,
            self.bridges_label,
        ):
            label.setContentsMargins(6, 0, 6, 0)
        # Packs waiting for approval: a button that opens their review.
        self.held_button = QPushButton()
        self.held_button.setFlat(True)
        self.held_button.hide()
        self.held_button.clicked.connect(self.review_held)
        bar = self.statusBar()
        bar.addWidget(self.paused_label)
        bar.addPermanentWidget(self.held_button)
        bar.addPermanentWidget(self.listeners_label)
        bar.addPermanentWidget(self.drops_label)
        bar.addPermanentWidget(self.bridges_label)
        bar.addPermanentWidget(self.storage_label)
        starting = QLabel("Starting Nerve…")
        # (Not Qt.AlignmentFlag: building Qt's enums costs ~15 ms before the window shows.)
        starting.setStyleSheet("qproperty-alignment: AlignCenter;")
        self.setCentralWidget(starting)

        self.tray = tray
        self.close_note_shown = False
        self.last_failure: str | None = None
        if tray is not None:
            tray.open_requested.connect(self.bring_up)
            tray.quit_requested.connect(self.quit_requested)
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._theme_changed)
        if core is not None:
            self.attach(core)

    def attach(self, core: Core) -> None:
        """Build the views over a started core (once)."""
        from nerve.gui.packs import add_packs_menu
        from nerve.gui.views import EventsView, RulesView, RunsView

        assert not self._attached, "attached twice"
        self._attached = True
        self.core = core
        self.events = EventsView(core, self._monitor_capacity)
        self.runs = RunsView(core)
        self.rules = RulesView(core)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        # Mnemonics: Alt+R, Alt+T, Alt+U (E, N, V and P belong to the menus).
        self.tabs.addTab(self.rules, "&Rules")
        self.tabs.addTab(self.events, "Even&ts")
        self.tabs.addTab(self.runs, "R&uns")
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)

        self.pause_action = QAction("&Pause all rules", self)
        self.pause_action.setCheckable(True)
        self.pause_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.pause_action.triggered.connect(self.set_engine_paused)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit_requested)
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.triggered.connect(self.open_settings)
        self.settings_dialog: SettingsDialog | None = None
        menu = self.menuBar().addMenu("&Nerve")
        menu.addAction(self.pause_action)
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(quit_action)

        rules = self.rules
        self.undo_action = rules.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.redo_action = rules.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for action in (self.undo_action, self.redo_action, rules.add_action):
            action.triggered.connect(self.show_rules)
        rules.message.connect(self.show_message)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        edit_menu.addAction(rules.add_action)
        edit_menu.addAction(rules.edit_action)
        edit_menu.addAction(rules.duplicate_action)
        edit_menu.addAction(rules.delete_action)

        view_menu = self.menuBar().addMenu("&View")
        for number, name in enumerate(("&Rules", "&Events", "R&uns"), start=1):
            action = QAction(name, self)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.triggered.connect(lambda _=False, i=number - 1: self.show_tab(i))
            view_menu.addAction(action)
        self.packs_menu = add_packs_menu(self, core)  # Import…, Export…, Review held packs…

        tray = self.tray
        if tray is not None:
            tray.pause_requested.connect(self.set_engine_paused)
            tray.settings_requested.connect(self.open_settings)
        self.events.batch_arrived.connect(self._watch_failures)

        from nerve.gui.views import ChangeWatch

        self._changes = ChangeWatch(core, self.refresh_status, self)
        # The engine's changes, listener states and drops arrive as they
        # happen: nothing polls, and an idle window wakes nobody.
        self._changes.start()
        self.refresh_status()
        if self.isVisible():
            self.show_tab(self.tabs.currentIndex())  # the keyboard in the first list

    # -- menus

    def open_settings(self) -> SettingsDialog:
        """Show the Settings window (one at a time), in front of this window."""
        from nerve.gui.settings_dialog import SettingsDialog

        dialog = self.settings_dialog
        if dialog is None:
            if self.isHidden():
                self.bring_up()
            dialog = SettingsDialog(self.core, self)
            dialog.accepted.connect(self._settings_saved)
            dialog.finished.connect(self._settings_closed)
            self.settings_dialog = dialog
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _settings_closed(self) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.deleteLater()
            self.settings_dialog = None

    def _settings_saved(self) -> None:
        self.show_message("Settings saved")
        self.refresh_status()
        self.rules.refresh()

    def review_held(self) -> None:
        """Open the review of the packs waiting for approval."""
        from nerve.gui.packs import HeldDialog

        dialog = HeldDialog(self.core, self)
        dialog.finished.connect(lambda _result: self.refresh_status())
        dialog.open()

    def show_rules(self) -> None:
        self.tabs.setCurrentWidget(self.rules)

    def show_tab(self, index: int) -> None:
        """Show a tab with the keyboard in its list (Ctrl+1, Ctrl+2, Ctrl+3)."""
        self.tabs.setCurrentIndex(index)
        if index == 0:
            self.rules.refresh()  # now, not at the next poll
        elif index == 2:
            self.runs.refresh()
        lists = (self.rules.tree, self.events.table, self.runs.table)
        if 0 <= index < len(lists):
            from PySide6.QtCore import Qt

            lists[index].setFocus(Qt.FocusReason.ShortcutFocusReason)

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, MESSAGE_MS)

    def _tab_changed(self, index: int) -> None:
        self.rules.set_active(self.tabs.widget(index) is self.rules)
        if self.tabs.widget(index) is self.runs:
            self.failure_seen()

    def failure_seen(self) -> None:
        """The user looked (the window came up, the Runs tab opened): the tray
        leaves its error state until the next failure."""
        if self.last_failure is not None:
            self.last_failure = None
            self.refresh_status()

    # -- looks

    def changeEvent(self, event: QEvent) -> None:
        """A new palette (dark/light switch, another theme): redraw marks and icons."""
        super().changeEvent(event)
        if event.type() in (
            QEvent.Type.ApplicationPaletteChange,
            QEvent.Type.PaletteChange,
            QEvent.Type.ThemeChange,
        ):
            self._theme_changed()

    def _theme_changed(self, *_: object) -> None:
        forget_theme()
        self.setWindowIcon(icon("nerve"))
        if self.tray is not None:
            self.tray.refresh_icon()
        if not self._attached:
            return
        self.runs.show_trace()  # its colours are set when it is filled
        for view in (self.rules.tree, self.runs.table, self.runs.tree, self.events.table):
            view.viewport().update()

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
        self.failure_seen()

    # -- status

    def refresh_status(self) -> None:
        if not self._attached:
            return
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
        held = self.core.held()
        self.held_button.setVisible(bool(held))
        if held:
            many = f"{len(held)} packs held: review…"
            self.held_button.setText(many if len(held) > 1 else f"Pack {held[0]} held: review…")
            self.held_button.setToolTip(
                "These packs can do things you have not allowed yet, so their rules are off"
            )
        drops = self.core.drops()
        self.drops_label.setText(f"Dropped events: {drops:,}" if drops else "No events dropped")
        self._show_bridges()
        storage = self.core.storage_problem()
        self.storage_label.setVisible(bool(storage))
        self.storage_label.setText(f"⚠ {storage}" if storage else "")
        error = None
        if storage:
            error = storage
        elif bad:
            error = f"listener {bad[0]['id']} {bad[0].get('state')}"
        elif self.last_failure:
            error = self.last_failure
        if self.tray is not None:
            self.tray.set_state(paused=paused, error=error)

    def _show_bridges(self) -> None:
        from nerve.cli import bridge_line

        try:
            bridges = self.core.bridges()
        except Exception:
            bridges = []
        self.bridges_label.setVisible(bool(bridges))
        if not bridges:
            return
        bad = [b for b in bridges if b.get("state") in _BAD_BRIDGE_STATES]
        shown = ", ".join(_bridge_text(b) for b in (bad or bridges))
        self.bridges_label.setText(("⚠ " if bad else "") + shown)
        self.bridges_label.setToolTip("\n".join(bridge_line(b) for b in bridges))

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
        # No tray: closing is quitting. The app hides the window if the quit goes
        # ahead; a rule editor whose unsaved edits the user keeps cancels it.
        event.ignore()
        self.quit_requested.emit()

    def shutdown(self) -> None:
        """Stop timers and the monitor's subscription (before the core stops)."""
        if self._attached:
            self._changes.stop()
            for view in (self.rules, self.runs):
                if view._watch is not None:
                    view._watch.stop()
            self.events.close_subscription()


def _listener_line(status: dict[str, Any]) -> str:
    more = status.get("error") or status.get("detail")
    return f"{status['id']}: {status.get('state')}" + (f" ({more})" if more else "")


#: Bridge states the status bar marks with a warning sign.
_BAD_BRIDGE_STATES = frozenset({"failed", "reconnecting", "auth failed", "stopped"})


def _bridge_text(bridge: dict[str, Any]) -> str:
    """``webhook listening``, ``mqtt reconnecting, 12 dropped``."""
    text = f"{bridge.get('name')} {bridge.get('state')}"
    dropped = bridge.get("dropped")
    if isinstance(dropped, int) and dropped:
        text += f", {dropped:,} dropped"
    return text
