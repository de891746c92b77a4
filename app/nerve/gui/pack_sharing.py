"""Packs beyond one import, in the window: versions and updates, the shipped library.

- :class:`PacksDialog` (Packs → Manage packs…): the user's packs with their
  version and state, an "update available" badge for packs whose
  ``source_url`` has a newer version (checked in the background, one request
  per pack), and Update… / Add from library… / Import from URL….
- :class:`UpdateDialog`: a new version of an installed pack reviewed: versions,
  signature (and a warning when another key signed it), what it can do beyond
  what was approved, the inputs (kept values filled in, new ones asked);
  installed approved, or held while the approved version keeps running.
- :class:`LibraryDialog`: the packs shipped with Nerve with their descriptions;
  Add… opens the usual import review.

The work is in :mod:`nerve.packs.update`, :mod:`nerve.packs.fetch` and
:mod:`nerve.pack_commands`; these widgets ask and call them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from nerve.gui.core import Core
from nerve.gui.icons import status_color
from nerve.gui.packs import (
    ImportDialog,
    PackReview,
    _error_box,
    _reload,
    trusted_keys,
    user_packs_dir,
)
from nerve.packs import trust

log = logging.getLogger(__name__)

#: Badge text of a pack with a newer version at its source.
BADGE = "⬆ {version} available"


class _Checks(QObject):
    """Results of the background checks, delivered on the Qt thread."""

    done = Signal(object)


class PacksDialog(QDialog):
    """The user's packs: version, state, updates."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Your packs")
        self.resize(760, 420)
        #: pack id -> the last check of its source (nerve.packs.update.Outdated).
        self.checked: dict[str, Any] = {}
        self._checks = _Checks(self)
        self._checks.done.connect(self._checked)
        self.checking = False

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Pack", "Version", "State", "Update"])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(0, 240)
        self.tree.currentItemChanged.connect(lambda *_: self._buttons())
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.check_button = QPushButton("Check for updates")
        self.check_button.clicked.connect(self.check_updates)
        self.update_button = QPushButton("Update…")
        self.update_button.clicked.connect(self.update_current)
        self.library_button = QPushButton("Add from library…")
        self.library_button.clicked.connect(self.open_library)
        self.url_button = QPushButton("Import from URL…")
        self.url_button.clicked.connect(self.import_url)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        for button in (self.check_button, self.update_button, self.library_button, self.url_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        self.refresh()

    def states(self) -> list[trust.PackState]:
        if self.core.config_dir is None or user_packs_dir(self.core) is None:
            return []
        _, states = trust.load_folder(trust.Approvals(self.core.config_dir), record=False)
        return states

    def refresh(self) -> None:
        current = self.current_id()
        self.tree.clear()
        for state in self.states():
            pack = state.pack
            result = self.checked.get(pack.id)
            badge = ""
            if result is not None:
                if result.problem:
                    badge = "check failed"
                elif result.newer:
                    badge = BADGE.format(version=result.available)
                else:
                    badge = "up to date"
            row = QTreeWidgetItem([pack.id or "?", pack.version, state.state, badge])
            row.setData(0, Qt.ItemDataRole.UserRole, pack.id)
            row.setToolTip(0, pack.file)
            if result is not None and result.problem:
                row.setToolTip(3, result.problem)
                row.setForeground(3, status_color("warning"))
            elif result is not None and result.newer:
                row.setToolTip(3, f"from {result.source_url}")
                row.setForeground(3, status_color("ok"))
                font = row.font(3)
                font.setBold(True)
                row.setFont(3, font)
            if state.state != "active":
                row.setToolTip(2, state.reason())
            self.tree.addTopLevelItem(row)
            if pack.id == current:
                self.tree.setCurrentItem(row)
        self._buttons()

    def badge(self, pack_id: str) -> str:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == pack_id:
                return item.text(3)
        raise KeyError(pack_id)

    def current_id(self) -> str | None:
        item = self.tree.currentItem()
        return str(item.data(0, Qt.ItemDataRole.UserRole)) if item is not None else None

    def select(self, pack_id: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == pack_id:
                self.tree.setCurrentItem(item)

    def _buttons(self) -> None:
        self.update_button.setEnabled(self.current_id() is not None)
        self.check_button.setEnabled(not self.checking)

    def check_updates(self) -> None:
        """Ask each pack's source_url for its version, in a background thread."""
        from nerve.packs.update import check_source

        packs = [s.pack for s in self.states() if s.pack.source_url and s.pack.id]
        if not packs:
            self.note.setText("None of your packs names a source_url to check.")
            return
        self.checking = True
        self._buttons()
        self.note.setText(f"Checking {len(packs)} pack(s)…")
        signal = self._checks.done

        def work() -> None:
            results = [check_source(p) for p in packs]
            signal.emit(results)

        threading.Thread(target=work, name="pack-updates", daemon=True).start()

    def _checked(self, results: list[Any]) -> None:
        self.checking = False
        for result in results:
            self.checked[result.pack_id] = result
        newer = [r for r in results if r.newer]
        self.note.setText(
            f"{len(newer)} update(s) available." if newer else "Your packs are up to date."
        )
        self.refresh()

    def update_current(self, source: str | None = None) -> UpdateDialog | None:
        pack_id = self.current_id()
        if pack_id is None:
            return None
        if source is None:
            result = self.checked.get(pack_id)
            pack = next((s.pack for s in self.states() if s.pack.id == pack_id), None)
            source = pack.source_url if pack is not None else None
            if result is not None and result.newer:
                source = result.source_url
            if not source:
                text, ok = QInputDialog.getText(
                    self, "Update a pack", "The new version (a file or an https:// address):"
                )
                if not ok or not text.strip():
                    return None
                source = text.strip()
        dialog = UpdateDialog(self.core, pack_id, source, self)
        dialog.finished.connect(lambda *_: self.refresh())
        dialog.open()
        return dialog

    def open_library(self) -> LibraryDialog:
        dialog = LibraryDialog(self.core, self)
        dialog.finished.connect(lambda *_: self.refresh())
        dialog.open()
        return dialog

    def import_url(self, url: str | None = None) -> ImportDialog | None:
        dialog = import_from_url(self.core, self, url)
        if dialog is not None:
            dialog.finished.connect(lambda *_: self.refresh())
        return dialog


def import_from_url(
    core: Core, parent: QWidget | None, url: str | None = None
) -> ImportDialog | None:
    """Ask for an https:// address (unless given), fetch it once, show the import review."""
    if url is None:
        text, ok = QInputDialog.getText(parent, "Import from URL", "The pack's https:// address:")
        if not ok or not text.strip():
            return None
        url = text.strip()
    dialog = ImportDialog(core, None, parent)
    dialog.load_source(url)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


# ---------------------------------------------------------------------- update


class UpdateDialog(QDialog):
    """A new version of an installed pack, reviewed before it is installed."""

    def __init__(
        self, core: Core, pack_id: str, source: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.core = core
        self.pack_id = pack_id
        self.setWindowTitle(f"Update {pack_id}")
        self.resize(720, 640)
        self.plan: Any = None
        self.updated: bool | None = None
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.signature = QLabel()
        self.signature.setWordWrap(True)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"color: {status_color('failed').name()}")
        self.diff = QListWidget()
        self.diff.setMaximumHeight(110)
        self.errors = _error_box()
        self.review = PackReview()
        self.review.inputs.changed.connect(self._buttons)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        self.held_button = QPushButton("Update, keep it held")
        self.held_button.setToolTip("Install it held: the version you approved keeps running")
        self.held_button.clicked.connect(lambda: self.install(approve=False))
        self.approve_button = QPushButton("Update and approve")
        self.approve_button.clicked.connect(lambda: self.install(approve=True))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.held_button)
        buttons.addWidget(self.approve_button)
        layout = QVBoxLayout(self)
        for widget in (self.heading, self.signature, self.warning, self.diff, self.errors):
            layout.addWidget(widget)
        layout.addWidget(self.review, 1)
        layout.addLayout(buttons)
        self.load(source)

    def load(self, source: str) -> None:
        from nerve import pack_commands
        from nerve.packs import update

        self.heading.setText(f"Reading {source}…")
        self.plan = None
        if self.core.config_dir is None:
            self._fail("Nerve has no packs folder here; nothing can be updated.")
            return
        store = trust.Approvals(self.core.config_dir)
        try:
            trusted = trusted_keys(self.core)
            got = pack_commands.read_for_import(source, trusted)
            plan = update.plan_update(store, self.pack_id, got.data, got.name, trusted=trusted)
        except (pack_commands.SourceError, trust.TrustError) as exc:
            self._fail(str(exc))
            return
        self.plan = plan
        pack = plan.pack
        if plan.same:
            self.heading.setText(f"{pack.id} {pack.version}: this is the version you have.")
        else:
            self.heading.setText(
                f"<b>{pack.name or pack.id}</b>: {plan.old.version or '?'} → "
                f"{pack.version or '?'}" + (" (older: a downgrade)" if plan.downgrade else "")
            )
        self.signature.setText(f"Signature: {plan.signature.text()}")
        self.warning.setText(
            f"It is signed by another key than the version you approved "
            f"(that one: {plan.old_signer}; this one: {plan.signature.fingerprint or 'unsigned'})."
            if plan.signer_changed
            else ""
        )
        self.warning.setVisible(plan.signer_changed)
        lines = plan.diff_lines() if plan.needs_approval else []
        self.diff.clear()
        for line in lines:
            QListWidgetItem(line, self.diff)
        if not plan.needs_approval:
            QListWidgetItem("It asks for nothing you have not allowed.", self.diff)
        self.review.show_pack(pack, values=plan.values, asking=plan.added)
        self.errors.hide()
        self._buttons()

    def _fail(self, message: str) -> None:
        self.plan = None
        self.heading.setText("This update cannot be installed.")
        self.errors.setPlainText(message)
        self.errors.show()
        self.review.hide()
        self.diff.hide()
        self._buttons()

    def diff_lines(self) -> list[str]:
        return [self.diff.item(i).text() for i in range(self.diff.count())]

    def _buttons(self) -> None:
        plan = self.plan
        ok = plan is not None and not plan.same and not self.review.inputs.missing()
        needs = plan is not None and plan.needs_approval
        self.held_button.setVisible(needs)
        self.held_button.setEnabled(ok)
        self.approve_button.setText("Update and approve" if needs else "Update")
        self.approve_button.setEnabled(ok)

    def install(self, *, approve: bool) -> bool:
        from nerve.packs import update

        if self.plan is None or self.core.config_dir is None:
            return False
        values = {
            k: v for k, v in self.review.inputs.values().items() if k in self.plan.pack.inputs
        }
        try:
            plan = self.plan.with_values(values)
            runs = update.apply_update(plan, trust.Approvals(self.core.config_dir), approve=approve)
        except (trust.TrustError, OSError) as exc:
            self.errors.setPlainText(str(exc))
            self.errors.show()
            return False
        log.info(
            "updated %s to %s (%s)", plan.pack.id, plan.pack.version, "active" if runs else "held"
        )
        self.updated = runs
        _reload(self.core, self)
        self.accept()
        return True


# --------------------------------------------------------------------- library


class LibraryDialog(QDialog):
    """Packs shipped with Nerve: name and description; Add… opens the import review."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from nerve import pack_commands
        from nerve.packs.loader import load_pack

        self.core = core
        self.setWindowTitle("Add a pack from the library")
        self.resize(760, 560)
        self.list = QListWidget()
        self.review = PackReview()
        self.files: dict[str, Path] = pack_commands.library()
        for name, path in self.files.items():
            pack = load_pack(path, overrides={}, strict_overrides=False)
            item = QListWidgetItem(f"{pack.name}\n{pack.description}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(pack.description)
            self.list.addItem(item)
        self.list.setWordWrap(True)
        self.list.currentRowChanged.connect(self._show)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(self.review)
        split.setSizes([300, 460])
        self.add_button = QPushButton("Add…")
        self.add_button.clicked.connect(self.add_current)
        cancel = QPushButton("Close")
        cancel.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        self.import_dialog: ImportDialog | None = None
        if self.files:
            self.list.setCurrentRow(0)

    def names(self) -> list[str]:
        return list(self.files)

    def descriptions(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _show(self, row: int) -> None:
        from nerve.packs.loader import load_pack

        if row < 0:
            return
        path = self.files[self.names()[row]]
        self.review.show_pack(
            load_pack(path, overrides={}, strict_overrides=False), editable_inputs=False
        )

    def select(self, name: str) -> None:
        self.list.setCurrentRow(self.names().index(name))

    def add_current(self) -> ImportDialog | None:
        row = self.list.currentRow()
        if row < 0:
            return None
        dialog = ImportDialog(self.core, self.files[self.names()[row]], self)
        dialog.finished.connect(lambda *_: self.accept())
        self.import_dialog = dialog
        dialog.open()
        return dialog


def add_actions(menu: Any, window: Any, core: Core) -> None:
    """Manage packs…, Add pack from library…, Import from URL… in the Packs menu."""
    from PySide6.QtGui import QAction

    manage = QAction("&Manage packs and updates…", window)
    manage.triggered.connect(lambda: _open(PacksDialog(core, window)))
    library = QAction("Add pack from &library…", window)
    library.triggered.connect(lambda: _open(LibraryDialog(core, window)))
    url = QAction("Import from &URL…", window)
    url.triggered.connect(lambda: import_from_url(core, window))
    menu.addSeparator()
    menu.addAction(manage)
    menu.addAction(library)
    menu.addAction(url)


def _open(dialog: QDialog) -> None:
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
