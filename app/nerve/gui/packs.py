"""Packs in the window: import with a review of what a pack can do, held packs, export.

- :class:`ImportDialog`: a pack file is checked and reviewed (its header, what
  it can do in plain words with the dangerous capabilities marked, its rules,
  a form for its inputs), then imported held ("Import disabled") or approved.
- :class:`HeldDialog`: the same review for packs in the packs folder that are
  held, with Approve and Keep held.
- :class:`ExportDialog`: packs and rules with check boxes; the chosen rules
  are saved as one pack.

The rules of trust and the file work are in :mod:`nerve.packs.trust`; these
widgets only ask the user and call it, then :meth:`Core.reload`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyle,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from nerve.gui.core import Core
from nerve.gui.icons import status_color, status_icon
from nerve.packs import trust
from nerve.packs.loader import Pack
from nerve.paths import atomic_write

log = logging.getLogger(__name__)

PACK_FILTER = "Rule packs (*.yaml *.yml);;All files (*)"


# ------------------------------------------------------------ for other views


def user_packs_dir(core: Core) -> Path | None:
    """Where imported packs go: the user's packs folder (also when Nerve runs ``--rules``)."""
    if core.packs_dir is not None:
        return core.packs_dir
    return core.config_dir / "packs" if core.config_dir is not None else None


def held_packs(core: Core) -> list[trust.PackState]:
    """The user's packs that are held (capabilities not approved, an edit not
    approved yet, a newcomer claiming another file's pack id), read from the
    packs folder as Nerve loads it.

    Packs given with ``--rules`` are trusted: with them, nothing is held."""
    if core.packs_dir is None or core.config_dir is None:
        return []
    store = trust.Approvals(core.config_dir)
    _, states = trust.load_folder(store, record=False)
    return [s for s in states if s.state == "held"]


def trusted_keys(core: Core) -> set[str]:
    """The fingerprints of the keys the user trusts (``nerve pack trust``)."""
    from nerve.packs.signing import TrustedKeys

    return TrustedKeys(core.config_dir).fingerprints() if core.config_dir is not None else set()


def approve_own(
    core: Core, pack_id: str, capabilities: Iterable[str], file: str | None = None
) -> None:
    """Approve a pack the user saved from the window (their own rules are trusted).

    ``file``: the name of the file saved (default: the file that owns the id).
    Call after saving the file, then :meth:`Core.reload`."""
    if core.config_dir is None or core.packs_dir is None:
        return  # packs given with --rules need no approval
    trust.Approvals(core.config_dir).approve(pack_id, capabilities, file=file)


# ----------------------------------------------------------------- the review


class InputsForm(QWidget):
    """A form for a pack's inputs, from their declarations (type, default, choices)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.specs: dict[str, dict[str, Any]] = {}
        self.fields: dict[str, QWidget] = {}

    def set_inputs(
        self,
        inputs: Mapping[str, dict[str, Any]],
        values: Mapping[str, Any] | None = None,
        *,
        editable: bool = True,
    ) -> None:
        """Build the form; ``values`` (chosen earlier) override the defaults shown."""
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self.specs = {k: dict(v) for k, v in inputs.items()}
        self.fields = {}
        for name, spec in self.specs.items():
            value = (values or {}).get(name, spec.get("default"))
            field = self._field(name, spec, value)
            field.setEnabled(editable)
            self.fields[name] = field
            label = QLabel(f"{name}:")
            column = QVBoxLayout()
            column.setSpacing(2)
            column.addWidget(field)
            about = [str(spec["description"])] if spec.get("description") else []
            if "default" not in spec:
                about.append("required")
            if about:
                caption = QLabel(" · ".join(about))
                caption.setWordWrap(True)
                caption.setStyleSheet(f"color: {status_color('muted').name()}")
                column.addWidget(caption)
            self.layout_.addRow(label, column)

    def _field(self, name: str, spec: Mapping[str, Any], value: Any) -> QWidget:
        kind = spec.get("type", "text")
        choices = spec.get("choices")
        if kind == "boolean":
            box = QCheckBox()
            box.setChecked(bool(value))
            box.toggled.connect(self.changed)
            return box
        if isinstance(choices, list) and choices:
            combo = QComboBox()
            combo.addItems([str(c) for c in choices])
            if value is not None and str(value) in [str(c) for c in choices]:
                combo.setCurrentText(str(value))
            combo.currentTextChanged.connect(self.changed)
            return combo
        edit = QLineEdit("" if value is None else str(value))
        edit.setPlaceholderText({"number": "a number", "path": "a file or folder"}.get(kind, ""))
        edit.textChanged.connect(self.changed)
        if spec.get("secret") is True:  # a token: typed, never shown
            edit.setEchoMode(QLineEdit.EchoMode.Password)
        if kind != "path":
            return edit
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit)
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip(f"Choose a folder or file for {name}")
        menu = QMenu(browse)
        menu.addAction("Folder…", lambda: self._pick(edit, folder=True))
        menu.addAction("File…", lambda: self._pick(edit, folder=False))
        browse.setMenu(menu)
        browse.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        layout.addWidget(browse)
        row.setProperty("nerve_edit", edit)
        return row

    def _pick(self, edit: QLineEdit, *, folder: bool) -> None:
        start = str(Path(edit.text()).expanduser()) if edit.text() else str(Path.home())
        if folder:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a file", start)
        if chosen:
            edit.setText(chosen)

    def text_of(self, name: str) -> str:
        field = self.fields[name]
        edit = field.property("nerve_edit")
        if isinstance(edit, QLineEdit):
            return edit.text().strip()
        if isinstance(field, QCheckBox):
            return "true" if field.isChecked() else "false"
        if isinstance(field, QComboBox):
            return field.currentText()
        if isinstance(field, QLineEdit):
            return field.text().strip()
        return ""

    def set_text(self, name: str, text: str) -> None:
        """Fill in one field (tests, and a value chosen elsewhere)."""
        field = self.fields[name]
        edit = field.property("nerve_edit")
        if isinstance(edit, QLineEdit):
            edit.setText(text)
        elif isinstance(field, QCheckBox):
            field.setChecked(text.lower() in ("true", "yes", "on", "1"))
        elif isinstance(field, QComboBox):
            field.setCurrentText(text)
        elif isinstance(field, QLineEdit):
            field.setText(text)

    def values(self) -> dict[str, str]:
        """The values to keep: what differs from a default, and what has none (as text)."""
        out: dict[str, str] = {}
        for name, spec in self.specs.items():
            text = self.text_of(name)
            if "default" in spec and text == _as_text(spec["default"]):
                continue
            if text:
                out[name] = text
        return out

    def missing(self) -> list[str]:
        """Inputs without a default still empty."""
        return [n for n, s in self.specs.items() if "default" not in s and not self.text_of(n)]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PackReview(QWidget):
    """A pack as the user decides about it: header, capabilities, rules, inputs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.caps_title = QLabel()
        self.capabilities = QListWidget()
        self.capabilities.setFrameShape(QFrame.Shape.NoFrame)
        self.capabilities.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.capabilities.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.rules = QTreeWidget()
        self.rules.setHeaderLabels(["Rule", "Name", "When", "Can"])
        self.rules.setRootIsDecorated(False)
        self.rules.setColumnWidth(0, 130)
        self.rules.setColumnWidth(1, 170)
        self.rules.setColumnWidth(2, 180)
        self.inputs_title = QLabel("<b>Inputs</b>")
        self.inputs = InputsForm()

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.about)
        layout.addWidget(self.caps_title)
        layout.addWidget(self.capabilities)
        layout.addWidget(QLabel("<b>Rules</b>"))
        layout.addWidget(self.rules, 1)
        layout.addWidget(self.inputs_title)
        layout.addWidget(self.inputs)

    def show_pack(
        self,
        pack: Pack,
        *,
        values: Mapping[str, Any] | None = None,
        editable_inputs: bool = True,
        asking: Iterable[str] | None = None,
    ) -> None:
        """Show ``pack``. ``asking``: the capabilities to approve (default: all it has)."""
        name = pack.name or pack.id
        self.title.setText(f"{name}  ({pack.id})" if name != pack.id else name)
        facts = [
            part
            for part in (
                pack.version and f"Version {pack.version}",
                pack.author and f"by {pack.author}",
                f"from {pack.file}",
            )
            if part
        ]
        about = " · ".join(facts)
        if pack.description:
            about = f"{pack.description}\n{about}"
        self.about.setText(about)

        caps = trust.shown_capabilities(pack.capabilities if asking is None else asking)
        self.capabilities.clear()
        if caps:
            self.caps_title.setText("<b>This pack can</b> (it runs only once you approve this):")
        else:
            self.caps_title.setText("<b>This pack needs no special permissions.</b>")
        for cap in caps:
            text = trust.capability_text(cap)
            item = QListWidgetItem(text[0].upper() + text[1:])
            item.setData(Qt.ItemDataRole.UserRole, cap)
            if trust.dangerous(cap):
                item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
                item.setForeground(status_color("failed"))
                bold = QFont(item.font())
                bold.setBold(True)
                item.setFont(bold)
                item.setToolTip(f"{cap}: can leak what you do or change things outside Nerve")
            else:
                item.setIcon(
                    self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation)
                )
                item.setToolTip(cap)
            self.capabilities.addItem(item)
        rows = max(1, len(caps))
        self.capabilities.setFixedHeight(
            rows * max(self.capabilities.sizeHintForRow(0), 18) + 6 if caps else 0
        )
        self.capabilities.setVisible(bool(caps))

        self.rules.clear()
        for rule in pack.rules:
            when = ", ".join(t.describe() for t in rule.triggers)
            can = "; ".join(trust.capability_words(rule.capabilities))
            row = QTreeWidgetItem([rule.id, rule.name if rule.name != rule.id else "", when, can])
            row.setToolTip(2, when)
            row.setToolTip(3, can)
            if any(trust.dangerous(c) for c in rule.capabilities):
                row.setForeground(3, status_color("failed"))
            self.rules.addTopLevelItem(row)

        self.inputs.set_inputs(pack.inputs, values, editable=editable_inputs)
        self.inputs_title.setVisible(bool(pack.inputs))
        self.inputs.setVisible(bool(pack.inputs))

    def capability_texts(self) -> list[str]:
        return [self.capabilities.item(i).text() for i in range(self.capabilities.count())]

    def rule_ids(self) -> list[str]:
        return [item.text(0) for item in _tops(self.rules)]


def _tops(tree: QTreeWidget) -> list[QTreeWidgetItem]:
    items = (tree.topLevelItem(i) for i in range(tree.topLevelItemCount()))
    return [item for item in items if item is not None]


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    children = (item.child(i) for i in range(item.childCount()))
    return [child for child in children if child is not None]


def _error_box() -> QPlainTextEdit:
    box = QPlainTextEdit()
    box.setReadOnly(True)
    box.setMaximumHeight(110)
    box.setStyleSheet(f"color: {status_color('failed').name()}")
    box.hide()
    return box


# --------------------------------------------------------------------- import


class ImportDialog(QDialog):
    """Check a pack file, show what it can do, and import it held or approved."""

    def __init__(self, core: Core, path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Import a rule pack")
        self.resize(720, 640)
        self.path: Path | None = None
        self.plan: trust.ImportPlan | None = None
        #: Where the pack went, once imported.
        self.imported: Path | None = None
        #: What keeps the pack from being imported (shown above the review).
        self.error_lines: list[str] = []
        #: The pack's signature in words ("signed by ...", "unsigned").
        self.signature = ""

        self.file_label = QLabel("No file chosen")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        choose = QPushButton("Choose file…")
        choose.clicked.connect(self.choose_file)
        top = QHBoxLayout()
        top.addWidget(self.file_label, 1)
        top.addWidget(choose)

        self.errors = _error_box()
        self.review = PackReview()
        self.review.inputs.changed.connect(self._update_buttons)
        self.conflict = QLabel()
        self.conflict.setWordWrap(True)
        self.conflict.setStyleSheet(f"color: {status_color('warning').name()}")
        self.replace = QCheckBox("Replace it (the old file is kept with a ~ after its name)")
        self.replace.toggled.connect(self._update_buttons)

        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.disabled_button = QPushButton("Import disabled")
        self.disabled_button.setToolTip("Add the pack, held until you approve it")
        self.disabled_button.clicked.connect(lambda: self.import_pack(approve=False))
        self.approve_button = QPushButton("Import and approve")
        self.approve_button.clicked.connect(lambda: self.import_pack(approve=True))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.disabled_button)
        buttons.addWidget(self.approve_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.errors)
        layout.addWidget(self.review, 1)
        layout.addWidget(self.conflict)
        layout.addWidget(self.replace)
        layout.addLayout(buttons)
        self.review.hide()
        self.conflict.hide()
        self.replace.hide()
        self._update_buttons()
        if path is not None:
            self.load(path)

    @classmethod
    def ask(cls, core: Core, parent: QWidget | None = None) -> ImportDialog | None:
        """Choose a file, then show the dialog (the Packs menu); None when cancelled."""
        chosen, _ = QFileDialog.getOpenFileName(
            parent, "Import a rule pack", str(Path.home()), PACK_FILTER
        )
        if not chosen:
            return None
        dialog = cls(core, Path(chosen), parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def choose_file(self) -> None:
        start = str(self.path.parent) if self.path else str(Path.home())
        chosen, _ = QFileDialog.getOpenFileName(self, "Import a rule pack", start, PACK_FILTER)
        if chosen:
            self.load(Path(chosen))

    def load(self, path: Path) -> None:
        """Check ``path`` and show its review (or its errors)."""
        self.path = path
        self.load_source(str(path))

    def load_source(self, source: str) -> None:
        """Read a file or fetch an https:// address once, check it, and show its
        review with its signature (or why it cannot be imported)."""
        from nerve import pack_commands

        self.file_label.setText(source)
        packs_dir = user_packs_dir(self.core)
        if packs_dir is None:
            self._show_errors(["Nerve has no packs folder here; nothing can be imported."])
            self.plan = None
            self._update_buttons()
            return
        try:
            got = pack_commands.read_for_import(source, trusted_keys(self.core))
            plan = trust.plan_data(got.name, got.data, packs_dir)
        except (pack_commands.SourceError, trust.TrustError) as exc:
            self.plan = None
            self.review.hide()
            self._show_errors([str(exc)])
            self._update_buttons()
            return
        self.signature = got.signature.text()
        self.file_label.setText(f"{got.name}\nSignature: {self.signature}")
        self.show_plan(plan)

    def show_plan(self, plan: trust.ImportPlan) -> None:
        self.plan = plan
        asked = {f"pack.inputs.{name}" for name in plan.missing_inputs}
        # Inputs without a default are asked for in the form: not errors yet.
        self._show_errors([str(e) for e in plan.pack.errors if e.path not in asked])
        self.review.show_pack(plan.pack)
        self.review.show()
        has_caps = bool(plan.pack.capabilities)
        self.approve_button.setText("Import and approve" if has_caps else "Import")
        self.disabled_button.setVisible(has_caps)
        if plan.conflicts:
            names = ", ".join(p.name for p in plan.conflicts)
            self.conflict.setText(
                f"Your packs folder already has another pack with the id “{plan.pack.id}” "
                f"({names})."
            )
        self.conflict.setVisible(bool(plan.conflicts))
        self.replace.setVisible(bool(plan.conflicts))
        self.replace.setChecked(False)
        self._update_buttons()

    def _show_errors(self, errors: list[str]) -> None:
        self.error_lines = errors
        self.errors.setPlainText("\n".join(errors))
        self.errors.setVisible(bool(errors))

    def _update_buttons(self) -> None:
        plan = self.plan
        ok = (
            plan is not None
            and not self.error_lines
            and not self.review.inputs.missing()
            and (not plan.conflicts or self.replace.isChecked())
        )
        self.disabled_button.setEnabled(ok)
        self.approve_button.setEnabled(ok)

    def import_pack(self, *, approve: bool) -> Path | None:
        """Import the pack with the form's values; the file, or None if it could not be.

        What is imported is the file as it was read for the review, whatever
        happened to it since."""
        if self.plan is None or self.core.config_dir is None:
            return None
        values = self.review.inputs.values()
        try:
            plan = self.plan.with_values(values)
            if plan.pack.errors:
                self._show_errors([str(e) for e in plan.pack.errors])
                self._update_buttons()
                return None
            approve = approve and bool(plan.pack.capabilities)
            target = trust.install(
                plan,
                trust.Approvals(self.core.config_dir),
                values=values,
                approve=approve,
                replace=self.replace.isChecked(),
            )
        except (trust.TrustError, OSError) as exc:
            self._show_errors([str(exc)])
            return None
        log.info(
            "imported %s into %s (%s)", plan.pack.id, target, "approved" if approve else "held"
        )
        self.imported = target
        _reload(self.core, self)
        self.accept()
        return target


def _reload(core: Core, parent: QWidget) -> None:
    try:
        core.reload()
    except Exception as exc:  # an --set value no pack declares, a broken engine
        log.warning("reloading the packs failed: %s", exc)
        QMessageBox.warning(parent, "Nerve", f"The packs could not be read again: {exc}")


# ---------------------------------------------------------------------- held


class HeldDialog(QDialog):
    """The user's held packs, one reviewed at a time: Approve or Keep held."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Held packs")
        self.resize(860, 560)
        self.states: list[trust.PackState] = []
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._show)
        self.review = PackReview()
        self.empty = QLabel("No pack is waiting for approval.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet(f"color: {status_color('warning').name()}")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.reason)
        right_layout.addWidget(self.review, 1)
        right_layout.addWidget(self.empty, 1)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([220, 640])

        self.keep_button = QPushButton("Keep held")
        self.keep_button.setToolTip("Close; the pack stays off until you approve it")
        self.keep_button.clicked.connect(self.reject)
        self.approve_button = QPushButton("Approve")
        self.approve_button.clicked.connect(self.approve_current)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.keep_button)
        buttons.addWidget(self.approve_button)
        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        self.states = held_packs(self.core)
        self.list.clear()
        for state in self.states:
            self.list.addItem(
                QListWidgetItem(status_icon("suspended"), state.pack.name or state.pack.id)
            )
        has = bool(self.states)
        self.review.setVisible(has)
        self.reason.setVisible(has)
        self.empty.setVisible(not has)
        self.approve_button.setEnabled(has)
        if has:
            ids = [s.pack.id for s in self.states]
            self.list.setCurrentRow(ids.index(select) if select in ids else 0)

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.states):
            return
        state = self.states[row]
        values: Mapping[str, Any] = dict(state.pack.values)
        self.reason.setText(f"Held: {state.reason()}. Its rules are off until you approve it.")
        self.review.show_pack(state.pack, values=values, editable_inputs=False, asking=None)

    def current(self) -> trust.PackState | None:
        row = self.list.currentRow()
        return self.states[row] if 0 <= row < len(self.states) else None

    def approve_current(self) -> None:
        """Approve what the shown pack can do, and load it."""
        state = self.current()
        if state is None or self.core.config_dir is None:
            return
        pack = state.pack
        if not state.approvable:  # a newcomer claiming another file's pack id
            QMessageBox.warning(
                self, "Nerve", f"{state.file_name} cannot be approved: {state.reason()}"
            )
            return
        try:
            trust.Approvals(self.core.config_dir).approve(
                pack.id, pack.capabilities, file=state.file_name
            )
        except (trust.TrustError, OSError) as exc:
            QMessageBox.warning(self, "Nerve", f"{pack.id} was not approved: {exc}")
            return
        log.info("approved %s in the window", pack.id)
        _reload(self.core, self)
        self.refresh()
        if not self.states:
            self.accept()


# -------------------------------------------------------------------- export


class ExportDialog(QDialog):
    """Packs and their rules with check boxes; the chosen rules are saved as a pack."""

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Export rules as a pack")
        self.resize(620, 560)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Pack / rule", "Id"])
        self.tree.setColumnWidth(0, 320)
        self.tree.itemChanged.connect(self._checked)
        self.pack_id = QLineEdit()
        self.pack_id.setPlaceholderText("the shared pack's id, e.g. me.tools")
        self.pack_name = QLineEdit()
        self.errors = _error_box()
        form = QFormLayout()
        form.addRow("Pack id:", self.pack_id)
        form.addRow("Name:", self.pack_name)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        self.save_button = QPushButton("Save as…")
        self.save_button.clicked.connect(self.save_as)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Choose the rules to share:"))
        layout.addWidget(self.tree, 1)
        layout.addLayout(form)
        layout.addWidget(self.errors)
        layout.addLayout(buttons)
        self._fill()

    def _fill(self) -> None:
        self.tree.blockSignals(True)
        self.tree.clear()
        for pack in self.core.packs():
            if not pack.id or not pack.rules:
                continue
            top = QTreeWidgetItem([pack.name or pack.id, pack.id])
            top.setData(0, Qt.ItemDataRole.UserRole, pack.file)
            top.setFlags(
                top.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate
            )
            top.setCheckState(0, Qt.CheckState.Unchecked)
            for rule in pack.rules:
                child = QTreeWidgetItem([rule.name, rule.id])
                child.setData(0, Qt.ItemDataRole.UserRole, rule.id)
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                child.setCheckState(0, Qt.CheckState.Unchecked)
                top.addChild(child)
            self.tree.addTopLevelItem(top)
        self.tree.expandAll()
        self.tree.blockSignals(False)
        self._checked()

    def check(self, pack_id: str, rule_id: str | None = None, on: bool = True) -> None:
        """Tick a pack (all its rules) or one rule."""
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        for top in _tops(self.tree):
            if top.text(1) != pack_id:
                continue
            if rule_id is None:
                top.setCheckState(0, state)
            for child in _children(top):
                if rule_id is not None and child.text(1) == rule_id:
                    child.setCheckState(0, state)

    def chosen(self) -> list[tuple[Path, list[str]]]:
        """(pack file, rule ids) of the ticked rules, in the tree's order."""
        out = []
        for top in _tops(self.tree):
            ids = [
                str(child.data(0, Qt.ItemDataRole.UserRole))
                for child in _children(top)
                if child.checkState(0) == Qt.CheckState.Checked
            ]
            if ids:
                out.append((Path(str(top.data(0, Qt.ItemDataRole.UserRole))), ids))
        return out

    def _checked(self, *_: Any) -> None:
        chosen = self.chosen()
        self.save_button.setEnabled(bool(chosen))
        # One pack: its id and name are the defaults; the user may change them.
        packs = {str(p): p for p, _ in chosen}
        if len(packs) == 1:
            pack = next((p for p in self.core.packs() if p.file in packs), None)
            if pack is not None:
                self.pack_id.setPlaceholderText(pack.id)
                self.pack_name.setPlaceholderText(pack.name)
        else:
            self.pack_id.setPlaceholderText("exported.rules")
            self.pack_name.setPlaceholderText("Exported rules")

    def export_text(self) -> str:
        """The pack of the ticked rules; TrustError when it cannot be made."""
        header = {"id": self.pack_id.text().strip(), "name": self.pack_name.text().strip()}
        return trust.export_text(self.chosen(), header)

    def save_as(self) -> None:
        suggested = (self.pack_id.text().strip() or self.pack_id.placeholderText()) + ".yaml"
        chosen, _ = QFileDialog.getSaveFileName(
            self, "Save the pack", str(Path.home() / suggested), PACK_FILTER
        )
        if chosen and self.export_to(Path(chosen)):
            self.accept()

    def export_to(self, path: Path) -> bool:
        """Write the pack of the ticked rules to ``path``; False (errors shown) if not."""
        try:
            text = self.export_text()
            atomic_write(path, text.encode("utf-8"))
        except trust.TrustError as exc:
            self._error(str(exc))
            return False
        except OSError as exc:
            self._error(f"cannot write {path}: {exc.strerror or exc}")
            return False
        self.errors.hide()
        log.info("exported %d rule(s) to %s", sum(len(i) for _, i in self.chosen()), path)
        return True

    def _error(self, text: str) -> None:
        self.errors.setPlainText(text)
        self.errors.show()


# ---------------------------------------------------------------------- menu


def add_packs_menu(window: QMainWindow, core: Core) -> QMenu:
    """The window's Packs menu: Import…, Export…, Review held packs…."""
    menu = window.menuBar().addMenu("&Packs")
    import_action = QAction("&Import…", window)
    import_action.setShortcut(QKeySequence("Ctrl+I"))
    import_action.triggered.connect(lambda: ImportDialog.ask(core, window))
    export_action = QAction("&Export…", window)
    export_action.triggered.connect(lambda: _open(ExportDialog(core, window)))
    held_action = QAction("&Review held packs…", window)
    held_action.triggered.connect(lambda: _open(HeldDialog(core, window)))
    menu.addAction(import_action)
    menu.addAction(export_action)
    menu.addSeparator()
    menu.addAction(held_action)

    def update() -> None:
        count = len(held_packs(core))
        held_action.setText(f"&Review held packs ({count})…" if count else "&Review held packs…")

    menu.aboutToShow.connect(update)
    from nerve.gui import pack_sharing

    pack_sharing.add_actions(menu, window, core)
    return menu


def _open(dialog: QDialog) -> None:
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
