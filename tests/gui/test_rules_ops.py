"""Rules view operations over a real, started Nerve: add, duplicate, delete, undo, redo, edit.

Each change must land in the real pack file and, after the reload, in the
engine's rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QMenu, QPushButton
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from gui.editor_support import close_editors_fixture  # noqa: F401 - closes editors left open
from gui.support import Running, compile_pack
from nerve.bootstrap import Nerve
from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.gui import icons, views
from nerve.gui.core import Core
from nerve.gui.editor import RuleEditor, open_editor
from nerve.gui.main_window import MainWindow
from nerve.gui.models import RulesModel
from nerve.gui.views import RulesView, copy_id
from nerve.options import Options
from nerve.packs.loader import load_pack
from nerve.packs.trust import Approvals
from nerve.paths import locations

PACK = """\
nerve: 1
pack:
  id: me.tools
  name: My tools
rules:
  # Says hello.
  - id: greet
    name: Greet
    when: {event: x.go}
    do:
      - log: "hello {event.who}"   # the who field

  - id: bye
    when: {event: x.bye}
    do: [{log: bye}]
"""

OTHER = """\
nerve: 1
pack: {id: me.other, name: Other}
rules:
  - id: one
    when: {event: x.one}
    do: [{log: one}]
"""


def file_ids(path: Path) -> list[str]:
    pack = load_pack(path.read_bytes(), filename=str(path))
    assert not pack.errors, pack.errors
    return [rule.key.partition("/")[2] for rule in pack.rules]


def engine_keys(live: Nerve) -> list[str]:
    engine = live.engine
    assert engine is not None
    return [s["key"] for s in engine.call(engine.rules)]


@pytest.fixture
def live(nerve_env: dict[str, str]) -> Iterator[Nerve]:
    """Nerve with the user's packs folder holding two packs."""
    where = locations()
    where.packs.mkdir(parents=True)
    (where.packs / "tools.yaml").write_text(PACK)
    (where.packs / "other.yaml").write_text(OTHER)
    running = Nerve(where, Options())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def no_editor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "load_editor", lambda: None)


def rules_view(qtbot: QtBot, live: Nerve) -> RulesView:
    view = RulesView(Core.of(live))
    qtbot.addWidget(view)
    view.show()
    view.refresh()
    return view


def test_duplicate_delete_undo_redo_change_the_file_and_the_engine(
    qtbot: QtBot, live: Nerve, qtmodeltester: ModelTester
) -> None:
    view = rules_view(qtbot, live)
    tools = live.locations.packs / "tools.yaml"
    original = tools.read_text()
    qtmodeltester.check(view.model)

    assert view.select("me.tools/greet")
    assert view.duplicate_action.isEnabled()
    view.duplicate_action.trigger()
    assert file_ids(tools) == ["greet", "greet-copy", "bye"]
    assert "me.tools/greet-copy" in engine_keys(live)
    assert view.current_rule() == "me.tools/greet-copy"  # the copy is selected
    copied = view.model.rule_at(view.proxy.mapToSource(view.tree.currentIndex()))
    assert copied is not None
    assert copied["name"] == "Greet (copy)"

    assert view.select("me.tools/greet")
    view.duplicate_action.trigger()
    assert file_ids(tools) == ["greet", "greet-copy-2", "greet-copy", "bye"]

    assert view.select("me.tools/greet")
    view.delete_action.trigger()
    assert file_ids(tools) == ["greet-copy-2", "greet-copy", "bye"]
    assert "me.tools/greet" not in engine_keys(live)
    assert (tools.parent / "tools.yaml~").exists()  # the writer keeps a backup

    stack = view.undo_stack
    assert stack.undoText() == "delete greet"
    stack.undo()
    assert file_ids(tools) == ["greet", "greet-copy-2", "greet-copy", "bye"]  # back in place
    assert "me.tools/greet" in engine_keys(live)
    assert view.current_rule() == "me.tools/greet"
    stack.redo()
    assert file_ids(tools) == ["greet-copy-2", "greet-copy", "bye"]
    assert "me.tools/greet" not in engine_keys(live)

    while stack.canUndo():
        stack.undo()
    assert tools.read_text() == original  # comments and all
    assert [k for k in engine_keys(live) if k.startswith("me.tools/")] == [
        "me.tools/greet",
        "me.tools/bye",
    ]
    qtmodeltester.check(view.model)
    qtmodeltester.check(view.proxy)


def test_add_without_an_editor_writes_a_template_rule(
    qtbot: QtBot, live: Nerve, no_editor: None
) -> None:
    view = rules_view(qtbot, live)
    tools = live.locations.packs / "tools.yaml"
    assert view.select("me.tools/bye")  # a rule of the pack: the rule goes into that pack
    view.add_action.trigger()
    assert file_ids(tools) == ["greet", "bye", "new-rule"]
    assert "me.tools/new-rule" in engine_keys(live)
    assert view.current_rule() == "me.tools/new-rule"
    view.tree.setCurrentIndex(view.index_of("me.tools/greet").parent())  # the pack's row
    view.add_action.trigger()
    assert file_ids(tools)[-1] == "new-rule-2"
    view.undo_stack.undo()
    view.undo_stack.undo()
    assert file_ids(tools) == ["greet", "bye"]
    assert "me.tools/new-rule" not in engine_keys(live)


def test_add_with_nothing_selected_goes_into_my_rules(
    qtbot: QtBot, live: Nerve, no_editor: None
) -> None:
    view = rules_view(qtbot, live)
    view.tree.clearSelection()
    view.tree.setCurrentIndex(view.proxy.index(-1, -1))
    assert view.current_pack() is None
    view.add_action.trigger()
    mine = live.locations.packs / "my-rules.yaml"
    assert file_ids(mine) == ["new-rule"]
    assert "my-rules/new-rule" in engine_keys(live)
    assert view.model.index_of("my-rules/new-rule").isValid()
    view.undo_stack.undo()
    assert file_ids(mine) == []
    assert "my-rules/new-rule" not in engine_keys(live)


def test_packs_given_with_rules_are_written_in_place(
    qtbot: QtBot, nerve_env: dict[str, str], short_tmp: Path, no_editor: None
) -> None:
    pack = short_tmp / "shipped.yaml"
    pack.write_text(PACK)
    live = Nerve(locations(), Options(rule_paths=[pack]))
    live.start()
    try:
        view = rules_view(qtbot, live)
        assert view.core.packs_dir is None
        view.tree.setCurrentIndex(view.proxy.index(-1, -1))
        view.add_action.trigger()  # no packs folder: into the (only) pack
        assert file_ids(pack) == ["greet", "bye", "new-rule"]
        assert view.select("me.tools/greet")
        view.duplicate_action.trigger()
        assert file_ids(pack) == ["greet", "greet-copy", "bye", "new-rule"]
        assert "me.tools/greet-copy" in engine_keys(live)
        view.delete_action.trigger()  # the copy is selected
        assert file_ids(pack) == ["greet", "bye", "new-rule"]
        assert not (locations().packs / "my-rules.yaml").exists()
    finally:
        live.stop()


def test_edit_and_add_open_the_editor(
    qtbot: QtBot, live: Nerve, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_editor(core: Core, pack_file: Path, rule_id: str | None, parent: Any) -> None:
        calls.append((core, pack_file, rule_id, parent))

    monkeypatch.setattr(views, "load_editor", lambda: fake_editor)
    view = rules_view(qtbot, live)
    tools = live.locations.packs / "tools.yaml"
    assert view.select("me.tools/bye")
    view.edit_action.trigger()
    assert calls[-1][1:3] == (tools, "bye")
    assert calls[-1][0] is view.core
    view.add_action.trigger()
    assert calls[-1][1:3] == (tools, None)  # a new rule in the selected pack
    # Double-clicking a rule's name edits it; the Enabled column does not.
    index = view.index_of("me.tools/greet")
    view.tree.setCurrentIndex(index)
    view.tree.doubleClicked.emit(index)
    assert calls[-1][2] == "greet"
    count = len(calls)
    view.tree.doubleClicked.emit(view.index_of("me.tools/greet", RulesModel.ENABLED))
    assert len(calls) == count


def test_without_an_editor_edit_says_so(qtbot: QtBot, live: Nerve, no_editor: None) -> None:
    view = rules_view(qtbot, live)
    messages: list[str] = []
    view.message.connect(messages.append)
    assert view.select("me.tools/greet")
    assert view.edit_rule() is False
    assert "rule editor" in messages[-1]
    assert "tools.yaml" in messages[-1]


def test_the_real_editor_opens_when_present(qtbot: QtBot, live: Nerve) -> None:
    if views.load_editor() is None:
        pytest.skip("nerve.gui.editor.open_editor is not there yet")
    view = rules_view(qtbot, live)
    before = set(QApplication.topLevelWidgets())
    assert view.select("me.tools/greet")
    assert view.edit_rule()
    opened = [w for w in QApplication.topLevelWidgets() if w not in before and w.isVisible()]
    assert opened, "the editor showed no window"
    for window in opened:
        window.close()


def test_a_file_changed_behind_our_back_is_reported(
    qtbot: QtBot, live: Nerve, no_editor: None
) -> None:
    view = rules_view(qtbot, live)
    messages: list[str] = []
    view.message.connect(messages.append)
    tools = live.locations.packs / "tools.yaml"
    assert view.select("me.tools/bye")
    view.delete_action.trigger()
    assert view.undo_stack.count() == 1
    tools.write_text(PACK)  # someone restored the file by hand: "bye" is back
    view.undo_stack.undo()  # putting it back again would make two
    assert "there is a rule bye already" in messages[-1]
    assert file_ids(tools) == ["greet", "bye"]
    assert view.undo_stack.count() == 0  # the step that cannot be done is gone
    tools.unlink()
    assert view.select("me.tools/greet")
    assert view.delete_rule() is False
    assert messages[-1].startswith("delete greet: ")
    assert "tools.yaml" in messages[-1]
    assert view.undo_stack.count() == 0


def test_keys_delete_and_undo_in_the_window(qtbot: QtBot, live: Nerve, no_editor: None) -> None:
    window = MainWindow(Core.of(live))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    view = window.rules
    view.refresh()
    tools = live.locations.packs / "tools.yaml"
    assert view.select("me.tools/bye")
    view.search.setFocus()
    qtbot.keyClick(view.search, Qt.Key.Key_Delete)  # Delete in the search box edits the text
    assert file_ids(tools) == ["greet", "bye"]
    view.tree.setFocus()
    qtbot.keyClick(view.tree, Qt.Key.Key_Delete)
    assert file_ids(tools) == ["greet"]
    window.tabs.setCurrentWidget(window.events)
    assert not view.delete_action.isEnabled()  # only on the Rules tab
    qtbot.keyClick(window.events.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert file_ids(tools) == ["greet", "bye"]
    assert window.tabs.currentWidget() is view  # undo shows what it did
    qtbot.keyClick(
        view.tree,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert file_ids(tools) == ["greet"]
    assert view.select("me.tools/greet")
    qtbot.keyClick(view.tree, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert file_ids(tools) == ["greet", "greet-copy"]
    assert "Duplicated greet" in window.statusBar().currentMessage()
    window.shutdown()


def test_copy_ids() -> None:
    assert copy_id("a", ["a"]) == "a-copy"
    assert copy_id("a", ["a", "a-copy"]) == "a-copy-2"
    assert copy_id("a", ["a", "a-copy", "a-copy-2"]) == "a-copy-3"


def test_last_run_shows_at_a_glance_even_after_a_restart(
    qtbot: QtBot, running: Running, qtmodeltester: ModelTester
) -> None:
    running.bus.publish("x.fail", {}, source="test")
    qtbot.waitUntil(lambda: running.summary("broken")["last_run"] is not None, timeout=10_000)
    # A new engine over the same store: nothing in memory, the history is on disk.
    bus = Bus()
    engine = Engine(bus, store=running.store)
    engine.start()
    try:
        engine.call(engine.set_rules, compile_pack())
        core = Core(bus=bus, engine=engine, store=running.store)
        view = RulesView(core)
        qtbot.addWidget(view)
        view.show()
        view.refresh()
        qtmodeltester.check(view.model)
        last = view.index_of("gui.test/broken", RulesModel.LAST_RUN)
        assert last.data().startswith("failed at ")
        assert isinstance(last.data(Qt.ItemDataRole.DecorationRole), QIcon)
        assert "program not found" in last.data(Qt.ItemDataRole.ToolTipRole)
        never = view.index_of("gui.test/greet", RulesModel.LAST_RUN)
        assert never.data() == "never"
        assert isinstance(never.data(Qt.ItemDataRole.DecorationRole), QIcon)
    finally:
        engine.stop()


class FakeEditor(QObject):
    """What the view needs of an editor window: ``saved(rule_id)``."""

    saved = Signal(str)


def test_a_rule_saved_in_the_editor_is_shown_and_selected(
    qtbot: QtBot, live: Nerve, monkeypatch: pytest.MonkeyPatch
) -> None:
    editors: list[FakeEditor] = []

    def fake_editor(core: Core, pack_file: Path, rule_id: str | None, parent: Any) -> FakeEditor:
        editors.append(FakeEditor())
        return editors[-1]

    monkeypatch.setattr(views, "load_editor", lambda: fake_editor)
    view = rules_view(qtbot, live)
    tools = live.locations.packs / "tools.yaml"
    assert view.select("me.tools/greet")
    assert view.add_rule()
    # The editor writes the new rule and reloads Nerve, then says so.
    tools.write_text(PACK + "  - id: fresh\n    when: {event: x.new}\n    do: [{log: new}]\n")
    live.reload()
    editors[-1].saved.emit("fresh")
    assert view.current_rule() == "me.tools/fresh"
    assert view.model.index_of("me.tools/fresh").isValid()


def _mnemonic(text: str) -> str | None:
    text = text.replace("&&", "")
    at = text.find("&")
    return text[at + 1].lower() if at >= 0 and at + 1 < len(text) else None


def test_mnemonics_do_not_clash_and_tab_order_follows_the_layout(qtbot: QtBot, live: Nerve) -> None:
    window = MainWindow(Core.of(live))
    qtbot.addWidget(window)
    always = [a.text() for a in window.menuBar().actions()]
    always += [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert all(_mnemonic(t) for t in always), always
    for page in (window.rules, window.events, window.runs):
        texts = always + [b.text() for b in page.findChildren(QPushButton)]
        letters = [m for m in map(_mnemonic, texts) if m]
        assert len(letters) == len(set(letters)), texts
    for menu_action in window.menuBar().actions():
        menu = menu_action.menu()
        assert isinstance(menu, QMenu)
        letters = [_mnemonic(a.text()) for a in menu.actions() if not a.isSeparator()]
        assert None not in letters, [a.text() for a in menu.actions()]
        assert len(letters) == len(set(letters)), [a.text() for a in menu.actions()]

    view = window.rules
    chain = [view.search, view.tree, view.add_button, view.edit_button]
    chain += [view.duplicate_button, view.delete_button]
    for first, second in itertools.pairwise(chain):
        following = first.nextInFocusChain()
        while following is not second and not (
            following.focusPolicy() & Qt.FocusPolicy.TabFocus and following.isVisibleTo(window)
        ):
            following = following.nextInFocusChain()
        assert following is second, (first, following)
    window.shutdown()


def test_status_colours_and_marks_follow_a_dark_palette(qtbot: QtBot, live: Nerve) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    window = MainWindow(Core.of(live))
    qtbot.addWidget(window)
    window.show()
    light_ok = icons.status_color("ok")
    light_mark = icons.status_icon("ok").pixmap(16, 16).toImage()
    original = app.palette()
    dark = QPalette(original)
    for role, color in (
        (QPalette.ColorRole.Window, "#202124"),
        (QPalette.ColorRole.WindowText, "#e8eaed"),
        (QPalette.ColorRole.Base, "#171717"),
        (QPalette.ColorRole.Text, "#e8eaed"),
    ):
        dark.setColor(role, QColor(color))
    try:
        app.setPalette(dark)
        qtbot.waitUntil(icons.is_dark, timeout=3000)  # the window forgot the light theme
        dark_ok = icons.status_color("ok")
        assert dark_ok.lightness() > light_ok.lightness()  # a lighter green on dark
        assert icons.status_icon("ok").pixmap(16, 16).toImage() != light_mark
        assert not window.windowIcon().isNull()
    finally:
        app.setPalette(original)
        icons.forget_theme()
    assert not icons.is_dark()
    window.shutdown()


# ------------------------------------------- a new rule through the real editor


def new_editor(view: RulesView) -> RuleEditor:
    """Add rule (nothing selected) and the editor it opened."""
    before = set(QApplication.topLevelWidgets())
    view.tree.setCurrentIndex(view.proxy.index(-1, -1))
    assert view.current_pack() is None
    assert view.add_rule()
    opened = [
        w for w in QApplication.topLevelWidgets() if isinstance(w, RuleEditor) and w not in before
    ]
    assert len(opened) == 1, opened
    opened[0].confirm_close = lambda: "discard"  # type: ignore[method-assign]
    return opened[0]


def edit_yaml(editor: RuleEditor, text: str) -> None:
    editor.tabs.setCurrentIndex(1)
    editor.yaml.setPlainText(text)
    editor.flush()


def test_a_first_rule_that_runs_a_program_is_approved_and_runs(qtbot: QtBot, live: Nerve) -> None:
    view = rules_view(qtbot, live)
    mine = live.locations.packs / "my-rules.yaml"
    editor = new_editor(view)
    assert not mine.exists()  # nothing is written before Save
    edit_yaml(editor, "id: term\nwhen: {event: x.term}\ndo:\n  - run: [/bin/true]\n")
    assert editor.save()
    # The user's own rule is trusted: what it can do is approved, and it loads.
    assert "my-rules/term" in engine_keys(live)
    assert live.held == []
    approval = Approvals(live.locations.config).get("my-rules")
    assert approval is not None
    assert approval.file == "my-rules.yaml"
    assert approval.capabilities == {"runs-programs", "run:/bin/true"}
    assert editor.status.text().startswith("Saved to my-rules.yaml")
    assert "held" not in editor.status.text()
    assert load_pack(mine).name == "My rules"
    assert view.current_rule() == "my-rules/term"  # the view shows the new rule


def test_add_rule_then_close_leaves_no_pack_behind(qtbot: QtBot, live: Nerve) -> None:
    view = rules_view(qtbot, live)
    editor = new_editor(view)
    assert editor.close()
    assert not (live.locations.packs / "my-rules.yaml").exists()
    assert sorted(p.name for p in live.locations.packs.iterdir()) == ["other.yaml", "tools.yaml"]


SHARED = """\
nerve: 1
pack: {id: them.shared, name: Shared}
rules:
  - id: tidy
    when: {event: x.tidy}
    do: [{run: [/bin/true]}]
  - id: post
    when: {event: x.post}
    do: [{http: {url: "http://127.0.0.1:9/", method: POST}}]
"""


def test_saving_one_rule_of_a_held_pack_says_the_pack_is_still_held(
    qtbot: QtBot, live: Nerve
) -> None:
    shared = live.locations.packs / "shared.yaml"
    shared.write_text(SHARED)
    Approvals(live.locations.config).record("them.shared", file="shared.yaml", values={})
    live.reload()
    assert [s.pack.id for s in live.held] == ["them.shared"]  # imported, not approved
    editor = open_editor(Core.of(live), shared, "tidy")
    editor.confirm_close = lambda: "discard"  # type: ignore[method-assign]
    edit_yaml(editor, editor.text.replace("id: tidy", "id: tidy\nname: Tidy up"))
    assert editor.save(), (editor.text, editor.status.text())
    # The rule the user saved is theirs; the other rule's network access is not
    # approved by saving this one, and the editor says the pack is still held.
    approval = Approvals(live.locations.config).get("them.shared")
    assert approval is not None
    assert approval.capabilities == {"runs-programs", "run:/bin/true"}
    assert [s.pack.id for s in live.held] == ["them.shared"]
    status = editor.status.text()
    assert status.startswith("Saved to shared.yaml")
    assert "pack them.shared is held" in status
    assert "send requests to 127.0.0.1" in status
    assert "Packs > Review held packs" in status
    assert "them.shared/tidy" not in engine_keys(live)
