"""The rule editor window: Form, YAML and Test tabs over one rule of a pack file.

The rule's YAML text is what the editor edits. The Form tab turns edits
into that text through :class:`~nerve.packs.writer.PackDocument` (so the
user's comments and styles are kept); the YAML tab edits the text itself
and the form follows. Both go through one undo stack. The text is checked
by the pack loader as the user types; Save writes the file atomically
(with a backup), reloads the running engine and says so with :attr:`RuleEditor.saved`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QEvent, QFileSystemWatcher, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from nerve.engine.validation import pattern_holds
from nerve.events import Event, freeze, valid_type
from nerve.gui.core import Core
from nerve.gui.editor.checking import (
    RuleCheck,
    check_rule_text,
    placeholders,
    sample_event,
    trigger_info,
)
from nerve.gui.editor.fields import FormContext
from nerve.gui.editor.form import RuleForm, fix_tab_order
from nerve.gui.editor.hotkey import HotkeyEdit
from nerve.gui.editor.testpanel import TestPanel
from nerve.gui.editor.yamledit import YamlEdit
from nerve.packs.schema import PACK_ID_PATTERN
from nerve.packs.writer import PackDocument, PackWriteError
from nerve.packs.yamlsource import YamlError, load_yaml
from nerve.paths import read_user_file

log = logging.getLogger(__name__)

#: How long typing pauses before the text is taken (form, YAML) and checked.
FORM_DELAY_MS = 250
YAML_DELAY_MS = 400
CHECK_DELAY_MS = 250
DISK_DELAY_MS = 200

#: A new rule starts as a working example.
NEW_RULE: dict[str, Any] = {
    "id": "new-rule",
    "name": "New rule",
    "when": {"event": "my.event"},
    "do": [{"notify": "Hello from Nerve"}],
}

_OPEN: dict[tuple[str, str], RuleEditor] = {}
#: Open editors (a window nobody holds a reference to would vanish).
_ALIVE: set[RuleEditor] = set()


def open_editor(
    core: Core, pack_file: Path, rule_id: str | None, parent: QWidget | None = None
) -> RuleEditor:
    """Show the editor of ``rule_id`` in ``pack_file`` (None: a new rule); an editor
    already open on that rule is raised instead of opening a second one."""
    if rule_id is not None:
        existing = _OPEN.get(_key(pack_file, rule_id))
        if existing is not None:
            existing.show()
            existing.raise_()
            existing.activateWindow()
            return existing
    editor = RuleEditor(core, pack_file, rule_id, parent)
    editor.show()
    return editor


def close_all() -> bool:
    """Close every open rule editor, asking about unsaved edits as closing one does.

    False when one stays open (the user chose Cancel, or saving failed): the
    caller (Quit) should not go on. Editors closed before that one stay closed."""
    for editor in list(_ALIVE):
        if not shiboken6.isValid(editor):  # its window went with its parent
            _ALIVE.discard(editor)
            continue
        if editor.unsaved:  # the question is about this window: show it
            editor.show()
            editor.raise_()
            editor.activateWindow()
        if not editor.close():
            return False
    return True


def _key(pack_file: Path, rule_id: str) -> tuple[str, str]:
    return (str(Path(pack_file).expanduser().resolve()), rule_id)


class _TextChange(QUndoCommand):
    """The rule's text went from ``old`` to ``new`` (by the form or the YAML tab)."""

    def __init__(self, editor: RuleEditor, old: str, new: str, source: str) -> None:
        super().__init__("form edit" if source == "form" else "YAML edit")
        self.editor = editor
        self.old = old
        self.new = new
        self.source = source
        self._done = True  # pushed after the change was made

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        self.editor._apply_text(self.new, "undo")

    def undo(self) -> None:
        self.editor._apply_text(self.old, "undo")


class _DryRunDone(QObject):
    """Carries a dry run's record from the engine thread to the Qt thread."""

    finished = Signal(object)


class RuleEditor(QWidget):
    """A window editing one rule of one pack file (non-modal)."""

    #: The rule was saved (its id, which may be new).
    saved = Signal(str)

    def __init__(
        self,
        core: Core,
        pack_file: Path,
        rule_id: str | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.core = core
        self.pack_file = Path(pack_file).expanduser()
        self.rule_id = rule_id  # the id in the file; None until a new rule is saved
        self.stack = QUndoStack(self)
        self.result: RuleCheck | None = None
        self._text = ""
        self._saved_text = ""
        self._disk_text: str | None = None
        self._doc: PackDocument | None = None
        self._index = 0
        self._created_file = False
        self._quiet_yaml = False
        self._form_ok = True
        self._task: Any = None
        self._info_cache: tuple[str, Any] | None = None
        self._build_ui()
        self._load()
        if self.rule_id is not None:
            _OPEN[_key(self.pack_file, self.rule_id)] = self
        _ALIVE.add(self)
        self._hook_shortcuts()

    # ------------------------------------------------------------------ layout

    def _build_ui(self) -> None:
        self.resize(920, 820)
        layout = QVBoxLayout(self)
        self.banner = QLabel(self)
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()
        layout.addWidget(self.banner)
        self.tabs = QTabWidget(self)
        layout.addWidget(self.tabs, 1)

        ctx = FormContext(placeholders=self.placeholders)
        self.form = RuleForm(ctx)
        self.form.changed.connect(self._form_timer_start)
        self.form_scroll = QScrollArea(self)
        self.form_scroll.setWidgetResizable(True)
        self.form_scroll.setWidget(self.form)
        self.form_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tabs.addTab(self.form_scroll, "&Form")

        yaml_tab = QSplitter(Qt.Orientation.Vertical, self)
        self.yaml = YamlEdit(yaml_tab)
        self.yaml.setUndoRedoEnabled(False)  # the window's undo stack covers the text
        self.yaml.textChanged.connect(self._yaml_edited)
        self.problem_list = QListWidget(yaml_tab)
        self.problem_list.setAccessibleName("Problems")
        self.problem_list.itemActivated.connect(self._go_to_problem)
        self.problem_list.itemClicked.connect(self._go_to_problem)
        self.problem_list.setMaximumHeight(self.fontMetrics().lineSpacing() * 7)
        yaml_tab.addWidget(self.yaml)
        yaml_tab.addWidget(self.problem_list)
        yaml_tab.setStretchFactor(0, 4)
        yaml_tab.setStretchFactor(1, 1)
        self.tabs.addTab(yaml_tab, "&YAML")

        self.test_panel = TestPanel(self)
        self.test_panel.run_requested.connect(self.run_test)
        self.test_panel.reset_requested.connect(self.fill_test_event)
        self.test_panel.stop_requested.connect(self.stop_test)
        self.tabs.addTab(self.test_panel, "T&est")

        self.undo_action = self.stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.stack.createRedoAction(self, "&Redo")
        redo_keys = [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")]
        for key in QKeySequence.keyBindings(QKeySequence.StandardKey.Redo):
            if key not in redo_keys:
                redo_keys.append(key)
        self.redo_action.setShortcuts(redo_keys)
        self.save_action = QAction("&Save", self)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.triggered.connect(self.save)
        self.test_action = QAction("&Test", self)
        self.test_action.setShortcut(QKeySequence("Ctrl+T"))
        self.test_action.triggered.connect(self.run_test)
        for action in (self.undo_action, self.redo_action, self.save_action, self.test_action):
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(action)

        bar = QHBoxLayout()
        for action in (self.undo_action, self.redo_action):
            button = QToolButton(self)
            button.setDefaultAction(action)
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
            bar.addWidget(button)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        bar.addWidget(self.status, 1)
        self.test_button = QPushButton("&Test", self)
        self.test_button.setToolTip("Dry-run the rule with a test event (Ctrl+T)")
        self.test_button.clicked.connect(self.run_test)
        self.save_button = QPushButton("&Save", self)
        self.save_button.setToolTip("Save the rule into its pack and reload (Ctrl+S)")
        self.save_button.clicked.connect(self.save)
        self.close_button = QPushButton("C&lose", self)
        self.close_button.clicked.connect(self.close)
        for push in (self.test_button, self.save_button, self.close_button):
            bar.addWidget(push)
        layout.addLayout(bar)

        self.form_timer = self._timer(FORM_DELAY_MS, self._form_changed)
        self.yaml_timer = self._timer(YAML_DELAY_MS, self._yaml_changed)
        self.check_timer = self._timer(CHECK_DELAY_MS, self.check)
        self.disk_timer = self._timer(DISK_DELAY_MS, self._disk_changed)
        self.tab_timer = self._timer(0, self._after_rebuild)
        self._dry = _DryRunDone(self)
        self._dry.finished.connect(self._test_done)
        self.watcher = QFileSystemWatcher(self)
        self.watcher.fileChanged.connect(self._on_disk_event)
        self.watcher.directoryChanged.connect(self._on_disk_event)
        self.stack.cleanChanged.connect(self._on_clean_changed)

    def _after_rebuild(self) -> None:
        fix_tab_order(self.form)
        self._hook_shortcuts()

    def _hook_shortcuts(self) -> None:
        """Text fields keep Ctrl+Z, Ctrl+Shift+Z and Ctrl+S for the window (see eventFilter)."""
        for widget in self.findChildren(QWidget):
            if isinstance(widget, (QLineEdit, QPlainTextEdit, QAbstractSpinBox, QComboBox)):
                widget.installEventFilter(self)

    def _on_disk_event(self, _path: str) -> None:
        self.disk_timer.start()

    def _on_clean_changed(self, _clean: bool) -> None:
        self._update_title()

    def _timer(self, ms: int, slot: Any) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(slot)
        return timer

    # ------------------------------------------------------------------ loading

    def _read_disk(self) -> str | None:
        try:
            return read_user_file(self.pack_file, max_bytes=1 << 30).decode("utf-8", "replace")
        except OSError:
            return None

    def _load(self) -> None:
        self._disk_text = self._read_disk()
        try:
            if self._disk_text is None:
                self._doc = PackDocument.new(
                    self.pack_file, _pack_id(self.pack_file), _pack_name(self.pack_file)
                )
            else:
                self._doc = PackDocument.load(self.pack_file)
        except PackWriteError as exc:
            self._doc = None
            self._fail(f"This pack cannot be edited here: {exc}")
            return
        doc = self._doc
        index = doc.index_of(self.rule_id) if self.rule_id is not None else None
        if index is None:
            if self.rule_id is not None:
                self._say(
                    f"There is no rule {self.rule_id!r} in {self.pack_file.name}; saving adds it."
                )
                self.rule_id = None
            data = dict(NEW_RULE, id=_free_id(doc.rule_ids()))
            index = doc.rule_count()
            doc.set_rule_text_at(index, _dump_new(doc, data))
        self._index = index
        text = doc.rule_text_at(index)
        self._saved_text = text if self.rule_id is not None else ""
        self._apply_text(text, "load")
        self.stack.clear()
        self.stack.setClean()
        self._watch()
        self._update_title()
        self.check()

    def _watch(self) -> None:
        paths = [str(self.pack_file.parent)]
        if self.pack_file.exists():
            paths.append(str(self.pack_file))
        missing = [p for p in paths if p not in self.watcher.files() + self.watcher.directories()]
        if missing and Path(paths[0]).is_dir():
            self.watcher.addPaths(missing)

    def _fail(self, message: str) -> None:
        self.banner.setText(f"⚠ {message}")
        self.banner.show()
        for widget in (self.tabs, self.save_button, self.test_button):
            widget.setEnabled(False)
        self.save_action.setEnabled(False)
        self.test_action.setEnabled(False)

    def _say(self, message: str) -> None:
        self.status.setText(message)

    # ------------------------------------------------------------------ state

    @property
    def text(self) -> str:
        """The rule's YAML as it stands (the YAML tab's text, once taken)."""
        return self._text

    @property
    def dirty(self) -> bool:
        return self.rule_id is None or self._text != self._saved_text

    @property
    def unsaved(self) -> bool:
        """Edits that closing would lose (a new rule left as it started has none)."""
        if self.rule_id is None:
            return not self.stack.isClean()
        return self._text != self._saved_text

    def _update_title(self) -> None:
        pack = self._doc.header().get("name") if self._doc is not None else None
        pack_name = str(pack or self.pack_file.name)
        what = self.rule_id if self.rule_id is not None else "New rule"
        self.setWindowTitle(f"{what} — {pack_name} — Nerve rule editor[*]")
        self.setWindowModified(self.dirty)

    def _apply_text(self, text: str, source: str) -> None:
        """Make ``text`` the rule's text; ``source``: who changed it (form, yaml, undo, load)."""
        self._text = text
        if source != "yaml":
            self._quiet_yaml = True
            self.yaml.replace_text(text)
            self._quiet_yaml = False
        data: Any = None
        try:
            data = load_yaml(text, filename=self.pack_file.name).data
        except YamlError:
            data = None
        if isinstance(data, dict) and self._doc is not None:
            try:
                self._doc.set_rule_text_at(self._index, text)
            except PackWriteError:
                data = None
        self._form_ok = isinstance(data, dict)
        self.form.setEnabled(self._form_ok)
        if self._form_ok and source != "form" and data != self.form.value():
            self.form.set_value(data)
            self.tab_timer.start()
        self._update_title()
        self.check_timer.start()

    def _form_timer_start(self) -> None:
        self.form_timer.start()
        self.tab_timer.start()

    def _form_changed(self) -> None:
        if not self._form_ok or self._doc is None:
            return
        data = self.form.value()
        try:
            self._doc.set_rule_at(self._index, data)
            text = self._doc.rule_text_at(self._index)
        except PackWriteError as exc:
            self._say(str(exc))
            return
        if text != self._text:
            self.stack.push(_TextChange(self, self._text, text, "form"))
            self._apply_text(text, "form")

    def _yaml_edited(self) -> None:
        if not self._quiet_yaml:
            self.setWindowModified(True)
            self.yaml_timer.start()

    def _yaml_changed(self) -> None:
        text = self.yaml.toPlainText()
        if text != self._text:
            self.stack.push(_TextChange(self, self._text, text, "yaml"))
            self._apply_text(text, "yaml")

    def flush(self) -> None:
        """Take pending edits now (form, YAML) and check the result."""
        for timer, slot in (
            (self.yaml_timer, self._yaml_changed),
            (self.form_timer, self._form_changed),
        ):
            if timer.isActive():
                timer.stop()
                slot()
        self.check_timer.stop()
        self.check()

    # ------------------------------------------------------------------ checking

    def _other_ids(self) -> frozenset[str]:
        if self._doc is None:
            return frozenset()
        ids = []
        for i in range(self._doc.rule_count()):
            rule = self._doc.rule_at(i)
            if i != self._index and isinstance(rule, dict) and "id" in rule:
                ids.append(str(rule["id"]))
        return frozenset(ids)

    def _header(self) -> dict[str, Any]:
        return self._doc.header() if self._doc is not None else {}

    def check(self) -> RuleCheck:
        """Validate the text as the pack loader will; show the problems."""
        self.result = check_rule_text(
            self._text, self._header(), filename=self.pack_file.name, other_ids=self._other_ids()
        )
        problems = self.result.problems
        self.yaml.set_problems(problems)
        self.problem_list.clear()
        for problem in problems:
            item = QListWidgetItem(f"⚠ {problem}")
            item.setData(Qt.ItemDataRole.UserRole, (problem.line, problem.column))
            self.problem_list.addItem(item)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.banner.setText(
                f"⚠ {first}{more}. The YAML tab shows where; the rule cannot be saved like this."
            )
            self.banner.show()
        else:
            self.banner.hide()
        ok = self.result.ok
        self.save_action.setEnabled(ok)
        self.save_button.setEnabled(ok)
        return self.result

    def _go_to_problem(self, item: QListWidgetItem) -> None:
        line, column = item.data(Qt.ItemDataRole.UserRole)
        self.yaml.go_to(int(line), int(column))

    # ------------------------------------------------------------------ placeholders

    def _trigger_info(self) -> Any:
        data = self.result.data if self.result is not None else None
        when = data.get("when") if isinstance(data, dict) else None
        key = json.dumps(when, sort_keys=True, default=str)
        if self._info_cache is None or self._info_cache[0] != key:
            self._info_cache = (key, trigger_info(when, self._header()))
        return self._info_cache[1]

    def _variables(self) -> list[str]:
        engine = self.core.engine
        try:
            return list(engine.call(lambda: sorted(engine.variables), timeout=1.0))
        except Exception:  # the engine is stopping: no variable names to offer
            return []

    def placeholders(self) -> list[str]:
        """The placeholders the rule's actions may use ({event.path}...)."""
        return placeholders(self._trigger_info(), self._header(), self._variables())

    # ------------------------------------------------------------------ saving

    def save(self) -> bool:
        """Write the rule into its pack (atomically), reload Nerve; False when refused."""
        self.flush()
        result = self.result
        if result is None or not result.ok or result.data is None:
            self._say("Not saved: fix the problems first (the YAML tab shows them).")
            return False
        new_id = str(result.data["id"])
        try:
            fresh = (
                PackDocument.load(self.pack_file)
                if self.pack_file.exists()
                else PackDocument.new(
                    self.pack_file, _pack_id(self.pack_file), _pack_name(self.pack_file)
                )
            )
            created = not self.pack_file.exists()
            target = fresh.index_of(self.rule_id) if self.rule_id is not None else None
            clash = fresh.index_of(new_id)
            if clash is not None and clash != target:
                self._say(f"Not saved: {self.pack_file.name} already has a rule {new_id!r}.")
                return False
            before = fresh.dumps()
            if target is None:
                fresh.set_rule_text_at(fresh.rule_count(), self._text)
            elif fresh.rule_text_at(target) != self._text:
                if fresh.rule_has_anchors(target):
                    # The rule's text stands alone (anchors and aliases become
                    # copies); merging the data keeps the file's &anchors and *aliases.
                    fresh.set_rule_at(target, result.data)
                else:
                    fresh.set_rule_text_at(target, self._text)
            after = fresh.dumps()
            if created or after != before:
                fresh.save()
        except PackWriteError as exc:
            self._say(f"Not saved: {exc}")
            return False
        self._disk_text = after
        pack_id = str(fresh.header().get("id", ""))
        self._approve(pack_id)
        old_id = self.rule_id
        if old_id is not None and _OPEN.get(_key(self.pack_file, old_id)) is self:
            del _OPEN[_key(self.pack_file, old_id)]
        self.rule_id = new_id
        _OPEN[_key(self.pack_file, new_id)] = self
        self._doc = fresh
        self._index = fresh.index_of(new_id) or 0
        self._saved_text = self._text
        self.stack.setClean()
        self._watch()
        self._update_title()
        try:
            self.core.reload()
        except Exception as exc:  # the file is saved; say why Nerve did not take it
            log.exception("reload after saving %s failed", self.pack_file)
            self._say(f"Saved to {self.pack_file.name}, but Nerve could not reload: {exc}")
        else:
            saved = f"Saved to {self.pack_file.name} at {time.strftime('%H:%M:%S')}."
            self._say(saved + self._held_note(pack_id))
        self.saved.emit(new_id)
        return True

    def _approve(self, pack_id: str) -> None:
        """The user's own edit is trusted: what the saved rule can do is approved.

        Only for a pack in the user's packs folder (packs given with ``--rules``
        need no approval). What the file was allowed before stays allowed; what
        the pack's other rules can do is not approved here (saving one rule of a
        held, imported pack does not approve the rest of it)."""
        result = self.result
        packs_dir = self.core.packs_dir
        if not pack_id or packs_dir is None or self.core.config_dir is None:
            return
        if result is None or result.rule is None:
            return
        if self.pack_file.parent.resolve() != Path(packs_dir).resolve():
            return
        from nerve.gui.packs import approve_own
        from nerve.packs.trust import Approvals, TrustError

        name = self.pack_file.name
        try:
            old = Approvals(self.core.config_dir).get(pack_id)
            # An approval given for another file with this pack id is not this file's.
            ours = old if old is not None and old.file == name else None
            allowed = ours.capabilities if ours is not None else frozenset()
            wanted = allowed | result.rule.capabilities
            if wanted == allowed:
                return  # nothing new to allow (a rule that can do nothing of note needs nothing)
            approve_own(self.core, pack_id, wanted, file=name)
        except (TrustError, OSError) as exc:
            log.warning("could not approve %s: %s", pack_id, exc)

    def _held_note(self, pack_id: str) -> str:
        """What to add to "Saved" when Nerve still holds the pack (its rules do not run)."""
        try:
            if not pack_id or pack_id not in self.core.held():
                return ""
            from nerve.gui.packs import held_packs

            reasons = [s.reason() for s in held_packs(self.core) if s.pack.id == pack_id]
        except Exception as exc:  # approvals.yaml unreadable: still say it is held
            log.warning("could not tell why pack %s is held: %s", pack_id, exc)
            reasons = []
        because = f" because {reasons[0]}" if reasons and reasons[0] else ""
        return (
            f" Its rules do not run: pack {pack_id} is held{because}. Review it in the"
            " main window: Packs > Review held packs."
        )

    # ------------------------------------------------------------------ the file on disk

    def _disk_changed(self) -> None:
        self._watch()  # an atomic replace drops the watch on the old file
        text = self._read_disk()
        if text == self._disk_text or text is None:
            return
        self._disk_text = text
        if self.unsaved and not self.confirm_reload():
            self._say(
                f"{self.pack_file.name} changed on disk; your edits are kept and saving "
                "writes them into the new version."
            )
            return
        self.reload_from_disk()

    def confirm_reload(self) -> bool:
        """Ask whether to drop unsaved edits because the file changed (tests replace this)."""
        answer = QMessageBox.question(
            self,
            "Pack changed on disk",
            f"{self.pack_file.name} was changed by another program. Reload it and lose the "
            "edits you made here?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def reload_from_disk(self) -> None:
        """Read the pack file again and show the rule as it is there now."""
        try:
            doc = PackDocument.load(self.pack_file)
        except PackWriteError as exc:
            self._say(f"{self.pack_file.name} changed and cannot be read now: {exc}")
            return
        index = doc.index_of(self.rule_id) if self.rule_id is not None else None
        if index is None:
            # A new rule, or the rule is gone from the file: keep the text, append on save.
            index = doc.rule_count()
            if self._form_ok:
                doc.set_rule_text_at(index, self._text)
            if self.rule_id is not None:
                self._say(
                    f"Rule {self.rule_id!r} is no longer in {self.pack_file.name}; saving adds it."
                )
                _OPEN.pop(_key(self.pack_file, self.rule_id), None)
                self.rule_id = None
            self._doc, self._index = doc, index
            self._update_title()
            self.check()
            return
        self._doc, self._index = doc, index
        text = doc.rule_text_at(index)
        self._saved_text = text
        self._apply_text(text, "load")
        self.stack.clear()
        self.stack.setClean()
        self._say(f"Reloaded: {self.pack_file.name} changed on disk.")
        self.check()

    # ------------------------------------------------------------------ testing

    def fill_test_event(self) -> None:
        event_type, data = sample_event(self._trigger_info())
        self.test_panel.fill(event_type, data)

    def run_test(self) -> None:
        """Dry-run the rule with the Test tab's event and show the trace there."""
        self.flush()
        self.tabs.setCurrentWidget(self.test_panel)
        if not self.test_panel.filled:
            self.fill_test_event()
        result = self.result
        if result is None or result.rule is None:
            self.test_panel.show_error("The rule has problems; fix them first (see the YAML tab).")
            return
        event_type, data = self.test_panel.test_event()
        if not valid_type(event_type):
            self.test_panel.show_error(
                f"{event_type!r} is not an event type (file.created, my.event)"
            )
            return
        event = Event(
            event_type,
            freeze(data),
            source="editor.test",
            time=time.time(),
            mono_ns=time.monotonic_ns(),
        )
        rule, engine, done = result.rule, self.core.engine, self._dry

        def start() -> Any:
            task = engine.spawn(engine.dry_run(rule, event))

            def finished(t: Any) -> None:
                if t.cancelled():
                    record: dict[str, Any] = {"status": "cancelled"}
                elif t.exception() is not None:
                    record = {"status": "failed", "error": f"internal error: {t.exception()!r}"}
                else:
                    record = t.result().record()
                with contextlib.suppress(RuntimeError):  # the editor was closed meanwhile
                    done.finished.emit(record)

            task.add_done_callback(finished)
            return task

        self.test_panel.set_running(True)
        try:
            self._task = engine.call(start, timeout=2.0)
        except Exception as exc:  # the engine is not running
            self.test_panel.show_error(f"Nerve's engine is not running: {exc}")

    def stop_test(self) -> None:
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception):  # the engine stopped: nothing runs
                self.core.engine.call(task.cancel, timeout=2.0)

    def _test_done(self, record: Any) -> None:
        self._task = None
        if isinstance(record, dict):
            self.test_panel.show_record(record)

    # ------------------------------------------------------------------ window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Ctrl+Z / Ctrl+Shift+Z / Ctrl+S are the window's, also inside text fields
        # (whose own undo would otherwise take them).
        if event.type() == QEvent.Type.ShortcutOverride and not (
            isinstance(watched, HotkeyEdit) and watched.recording
        ):
            assert isinstance(event, QKeyEvent)
            for action in (self.undo_action, self.redo_action, self.save_action):
                if any(_matches(event, seq) for seq in action.shortcuts()):
                    return True
        return super().eventFilter(watched, event)

    def confirm_close(self) -> str:
        """Ask what to do with unsaved edits: "save", "discard" or "cancel" (tests replace this)."""
        answer = QMessageBox.question(
            self,
            "Unsaved edits",
            "This rule has edits that are not saved. Save them?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(answer, "cancel")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.flush()
        if self._doc is not None and self.unsaved:
            choice = self.confirm_close()
            if choice == "cancel" or (choice == "save" and not self.save()):
                event.ignore()
                return
        self.stop_test()
        for key in [k for k, v in _OPEN.items() if v is self]:
            del _OPEN[key]
        _ALIVE.discard(self)
        super().closeEvent(event)


def _matches(event: QKeyEvent, sequence: QKeySequence) -> bool:
    return not sequence.isEmpty() and QKeySequence(event.keyCombination()) == sequence


def _pack_id(path: Path) -> str:
    """A pack id for a new pack file (``My Rules.yaml`` -> ``my-rules``)."""
    text = re.sub(r"[^a-z0-9_.\-]+", "-", path.stem.lower()).strip("-.") or "my-rules"
    return text if pattern_holds(PACK_ID_PATTERN, text) else "my-rules"


def _pack_name(path: Path) -> str:
    """A name for a new pack file (``my-rules.yaml`` -> ``My rules``)."""
    words = " ".join(re.split(r"[-_\s]+", path.stem)).strip()
    return words[:1].upper() + words[1:] if words else "My rules"


def _free_id(taken: list[str], base: str = "new-rule") -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _dump_new(doc: PackDocument, data: dict[str, Any]) -> str:
    """The text of a new rule as ``doc`` would write it."""
    probe = PackDocument(doc.path, doc.dumps())
    probe.insert_rule(probe.rule_count(), data)
    return probe.rule_text_at(probe.rule_count() - 1)
