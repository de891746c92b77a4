"""The rule editor: schema forms, YAML tab, undo, hotkeys, cron, Test, saving, outside changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QGroupBox, QLabel, QLineEdit, QToolButton
from pytestqt.qtbot import QtBot

from gui.editor_support import (
    SAMPLE_PACKS,
    EditorWorld,
    close_editors_fixture,  # noqa: F401 - closes the editors a test opened
    find_field,
    open_rule,
    touch_all,
    world_fixture,  # noqa: F401 - the `world` fixture
)
from nerve.gui.editor import RuleEditor, open_editor
from nerve.gui.editor.fields import (
    CronField,
    DurationField,
    EnumField,
    HotkeyField,
    TextField,
    TypedItemField,
    TypedListField,
    UnionField,
)
from nerve.gui.editor.form import focus_chain
from nerve.packs.loader import load_pack
from nerve.packs.writer import PackDocument

PACK = """\
# Tests of the rule editor.
nerve: 1
pack:
  id: editor.test
  name: Editor tests
rules:
  - id: greet
    name: Greet on x.go
    when: {event: x.go}
    if:
      - event: {who: "ann"}   # only Ann
    do:
      - log: "hello {event.who}"
      - set: {greeted: "{event.who}"}

  - id: files
    name: Tidy downloads
    when:
      - file.created: {path: /tmp/downloads, glob: "*.pdf"}
    do:
      - file.move: {src: "{event.path}", dest: /tmp/papers}
      - notify: "Moved {event.name}"
    debounce: 500ms

  - id: keys
    when: {hotkey: ctrl+alt+t}
    do: [{run: [x-terminal-emulator]}]

  - id: nightly
    when: {schedule: {cron: "*/5 9-17 * * mon-fri"}}
    do:
      - log: tick
"""


@pytest.fixture
def pack(world: EditorWorld) -> Path:
    path = world.add_pack("editor.yaml", PACK)
    world.reload()
    return path


def edit_text(editor: RuleEditor, text: str) -> None:
    """Type ``text`` into the YAML tab as a whole and let the editor take it."""
    editor.tabs.setCurrentIndex(1)
    editor.yaml.setPlainText(text)
    editor.flush()


def assert_ok(editor: RuleEditor) -> None:
    """The editor's rule has no problems."""
    assert editor.result is not None
    assert editor.result.ok, editor.result.problems


def shot(widget: RuleEditor, where: Callable[[], Path], name: str) -> Path:
    QApplication.processEvents()
    target = where() / name
    assert widget.grab().save(str(target))
    return target


# ---------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("source", SAMPLE_PACKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_rule_of_every_sample_pack_round_trips(
    qtbot: QtBot, world: EditorWorld, source: Path
) -> None:
    path = world.copy_pack(source)
    original = path.read_bytes()
    doc = PackDocument.load(path)
    assert doc.rule_ids()
    for rule_id in doc.rule_ids():
        editor = open_rule(qtbot, world, path, rule_id)
        data = doc.rule(rule_id)
        assert editor.form.value() == data
        # Every widget read back gives the same rule: no field lost, none reordered.
        touch_all(editor)
        read = editor.form.value()
        assert json.dumps(read) == json.dumps(data), rule_id
        assert list(read) == list(data)
        assert_ok(editor)
        assert editor.save()
        assert path.read_bytes() == original, rule_id
        assert not (path.parent / (path.name + "~")).exists()
        editor.close()


def test_saving_unchanged_rule_keeps_file_and_reloads(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    with qtbot.waitSignal(editor.saved, timeout=2000) as signal:
        assert editor.save()
    assert signal.args == ["greet"]
    assert pack.read_text() == PACK
    assert world.reloads


# ---------------------------------------------------------------------------
# Form <-> YAML


def test_a_form_edit_shows_in_the_yaml_tab(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    name = editor.form.field("name")
    assert isinstance(name, TextField)
    name.set_text("Tidy the downloads")
    editor.flush()
    assert "name: Tidy the downloads\n" in editor.yaml.toPlainText()
    # Only that line changed; comments and styles elsewhere stay.
    assert editor.text == PackDocument.load(pack).rule_text("files").replace(
        "name: Tidy downloads", "name: Tidy the downloads"
    )
    assert editor.isWindowModified()


ANCHORS = """\
nerve: 1
pack: {id: t.anchors, name: Anchors}
rules:
  - id: a
    name: &nm Shared name   # the name
    when: {event: x.a}
    if: &cond [{var: {mode: work}}]
    do: [{log: a}]
  - id: b
    name: *nm
    when: {event: x.b}
    if: *cond
    do: [{log: b}]
"""


def test_saving_a_rule_with_aliases_keeps_the_files_anchors(
    qtbot: QtBot, world: EditorWorld
) -> None:
    path = world.add_pack("anchors.yaml", ANCHORS)
    world.reload()
    editor = open_rule(qtbot, world, path, "b")
    edit_text(editor, editor.text.replace("x.b", "x.bee"))
    assert_ok(editor)
    assert editor.save()
    # Only the edited value changed: the aliases are still aliases.
    assert path.read_text() == ANCHORS.replace("x.b}", "x.bee}")


def test_a_yaml_edit_shows_in_the_form(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    text = editor.text.replace("debounce: 500ms", "debounce: 2s\nmode: queued")
    edit_text(editor, text)
    debounce = editor.form.field("debounce")
    assert isinstance(debounce, DurationField)
    assert debounce.text() == "2s"
    mode = editor.form.field("mode")
    assert isinstance(mode, EnumField)
    assert mode.combo.currentText() == "queued"
    assert editor.form.field("max").isEnabled()


def test_adding_and_moving_actions_in_the_form(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    actions = editor.form.list_field("do")
    added = actions.add("log")
    assert isinstance(added, TypedItemField)
    message = find_field(editor, TextField, None)
    assert message is not None
    options = added.options
    assert options is not None
    text_fields = [f for f in options.fields() if isinstance(f, TextField)]
    text_fields[0].set_text("moved {event.name}")
    actions.move_item(actions.items()[2], -1)
    editor.flush()
    data = editor.result.data if editor.result else None
    assert data is not None
    assert [next(iter(a)) for a in data["do"]] == ["file.move", "log", "notify"]
    assert '  - log: "moved {event.name}"\n' in editor.text
    assert_ok(editor)
    actions.remove(actions.items()[0])
    editor.flush()
    assert [next(iter(a)) for a in editor.form.value()["do"]] == ["log", "notify"]


def test_a_shorthand_stays_a_shorthand(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    notify = [f for f in editor.form.all_fields() if isinstance(f, UnionField)]
    # `notify: "Moved {event.name}"` is shown in the long form, body filled in.
    union = next(u for u in notify if u.forms and "title" in json.dumps(u.forms))
    body = next(f for f in union.inner.fields() if isinstance(f, TextField) and f.name == "body")
    assert body.text() == "Moved {event.name}"
    body.set_text("Filed {event.name}")
    editor.flush()
    assert '- notify: "Filed {event.name}"' in editor.text
    title = next(f for f in union.inner.fields() if isinstance(f, TextField) and f.name == "title")
    title.set_text("Downloads")
    editor.flush()
    assert '- notify: {title: Downloads, body: "Filed {event.name}"}' in editor.text


# ---------------------------------------------------------------------------
# Errors


def test_an_invalid_edit_shows_its_line_and_save_is_refused(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    lines = editor.text.split("\n")
    assert lines[2].startswith("when:")
    lines[2] = "when: {event: x.go}\nmax: 0"
    edit_text(editor, "\n".join(lines))
    assert editor.yaml.error_lines() == {4}
    problem = editor.yaml.problems_at(4)[0]
    assert problem.path == "max"
    assert editor.problem_list.count() >= 1
    assert "line 4" in editor.problem_list.item(0).text()
    assert not editor.save_button.isEnabled()
    assert not editor.save()
    assert pack.read_text() == PACK
    assert "fix the problems" in editor.status.text()
    assert editor.banner.isVisible()


def test_broken_yaml_is_shown_at_its_line_and_the_form_waits(
    qtbot: QtBot, world: EditorWorld, pack: Path, shots_dir: Callable[[], Path]
) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    text = editor.text.replace("    glob: ", "    glob: ")
    text = text.replace("do:\n", "do:\n  - notify: {title: [unclosed\n", 1)
    edit_text(editor, text)
    line = text.split("\n").index("  - notify: {title: [unclosed") + 1
    assert editor.yaml.error_lines() & {line, line + 1}
    assert not editor.form.isEnabled()
    assert not editor.save()
    assert pack.read_text() == PACK
    editor.yaml.go_to(line)
    picture = shot(editor, shots_dir, "editor-yaml-error.png")
    assert picture.stat().st_size > 0
    # Mending the text brings the form back.
    edit_text(editor, text.replace("[unclosed", "Done}"))
    assert editor.form.isEnabled()
    assert_ok(editor)


def test_a_duplicate_id_is_an_error(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "keys")
    edit_text(editor, editor.text.replace("id: keys", "id: greet"))
    assert editor.yaml.error_lines() == {1}
    assert "already has a rule" in editor.yaml.problems_at(1)[0].message
    assert not editor.save()


# ---------------------------------------------------------------------------
# Undo / redo


def test_undo_and_redo_over_form_and_yaml_edits(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    start = editor.text
    name = editor.form.field("name")
    assert isinstance(name, TextField)
    name.set_text("Say hello")
    editor.flush()
    after_form = editor.text
    edit_text(editor, after_form.replace("x.go", "x.hello"))
    after_yaml = editor.text
    assert editor.stack.count() == 2
    editor.undo_action.trigger()
    assert editor.text == after_form
    assert editor.yaml.toPlainText() == after_form
    editor.undo_action.trigger()
    assert editor.text == start
    assert editor.form.field("name").value() == "Greet on x.go"
    assert not editor.isWindowModified()
    editor.redo_action.trigger()
    editor.redo_action.trigger()
    assert editor.text == after_yaml
    when = editor.form.field("when").value()
    assert when == {"event": "x.hello"}


def test_ctrl_z_in_a_text_field_undoes_the_rule_edit(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    start = editor.text
    name = editor.form.field("name")
    assert isinstance(name, TextField)
    assert isinstance(name.edit, QLineEdit)
    editor.activateWindow()
    name.edit.setFocus()
    qtbot.keyClicks(name.edit, "!")
    editor.flush()
    assert "name: Greet on x.go!" in editor.text
    qtbot.keyClick(name.edit, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert editor.text == start
    qtbot.keyClick(
        name.edit,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert "name: Greet on x.go!" in editor.text


# ---------------------------------------------------------------------------
# Special fields


def test_the_hotkey_recorder_records_a_combo(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "keys")
    field = find_field(editor, HotkeyField)
    assert isinstance(field, HotkeyField)
    edit = field.recorder.edit
    assert edit.text() == "ctrl+alt+t"
    editor.activateWindow()
    edit.setFocus()
    qtbot.keyPress(edit, Qt.Key.Key_Control, Qt.KeyboardModifier.ControlModifier)
    assert edit.text() == "ctrl+…"
    qtbot.keyRelease(edit, Qt.Key.Key_Control)
    assert edit.text() == "ctrl+alt+t"
    qtbot.keyClick(
        edit, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    assert edit.text() == "ctrl+shift+k"
    qtbot.keyClick(edit, Qt.Key.Key_F9, Qt.KeyboardModifier.MetaModifier)
    assert edit.text() == "super+f9"
    qtbot.keyClick(edit, Qt.Key.Key_PageDown, Qt.KeyboardModifier.AltModifier)
    assert edit.text() == "alt+page_down"
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert edit.text() == "alt+page_down"
    editor.flush()
    assert "when: {hotkey: alt+page_down}" in editor.text
    assert_ok(editor)
    # Ctrl+Z while recording is a combo, not an undo.
    qtbot.keyClick(edit, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert edit.text() == "ctrl+z"
    # Typing instead of pressing.
    field.recorder.mode.setChecked(True)
    edit.clear()
    qtbot.keyClicks(edit, "ctrl_r+k")
    editor.flush()
    assert "when: {hotkey: ctrl_r+k}" in editor.text


def test_the_cron_field_lists_the_next_five_times(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "nightly")
    field = find_field(editor, CronField, "cron")
    assert isinstance(field, CronField)
    assert len(field.times) == 5
    assert field.preview.text().splitlines()[1:] == [f"  {t}" for t in field.times]
    assert all(t[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri") for t in field.times)
    field.set_text("0 7 * * sat")
    assert len(field.times) == 5
    assert all(t.startswith("Sat") and t.endswith("07:00") for t in field.times)
    assert field.preview.text().startswith("at 07:00 on Saturday")
    field.set_text("61 * * * *")
    assert field.times == []
    assert field.preview.text().startswith("⚠")


def test_placeholders_follow_the_trigger(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    offered = editor.placeholders()
    assert "{event.path}" in offered
    assert "{event.name}" in offered
    assert "{event.combo}" not in offered
    dest = find_field(editor, TextField, "dest")
    assert isinstance(dest, TextField)
    assert dest.placeholder_button is not None
    dest.placeholder_button.fill()
    texts = [a.text() for a in dest.placeholder_button.menu_.actions()]
    assert "{event.dir}" in texts
    next(a for a in dest.placeholder_button.menu_.actions() if a.text() == "{event.dir}").trigger()
    assert dest.text() == "/tmp/papers{event.dir}"
    # Typing "{" offers them as completions.
    assert isinstance(dest.edit, QLineEdit)
    dest.edit.setFocus()
    dest.edit.setText("")
    qtbot.keyClicks(dest.edit, "{event.na")
    completer = dest.edit.completer_  # type: ignore[attr-defined]
    assert completer.completionPrefix() == "{event.na"
    assert completer.currentCompletion() == "{event.name}"


# ---------------------------------------------------------------------------
# Test button


def test_the_test_button_shows_verdicts_and_actions(
    qtbot: QtBot,
    world: EditorWorld,
    pack: Path,
    qtmodeltester: object,
    shots_dir: Callable[[], Path],
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    editor.test_button.click()
    panel = editor.test_panel
    assert editor.tabs.currentWidget() is panel
    event_type, _data = panel.test_event()
    assert event_type == "x.go"
    panel.set_field("who", "ann")
    editor.run_test()
    qtbot.waitUntil(lambda: panel.status.text().startswith("✔"), timeout=5000)
    model = panel.trace_model
    qtmodeltester.check(model)  # type: ignore[attr-defined]
    editor.resize(900, 700)
    panel.trace.expandAll()
    shot(editor, shots_dir, "editor-test-trace.png")
    rows = {model.item(r, 0).text(): r for r in range(model.rowCount())}
    conditions = model.item(rows["Conditions (1)"], 0)
    assert conditions.child(0, 1).text().startswith("holds")
    actions = model.item(rows["Actions (2)"], 0)
    assert actions.child(0, 0).text().startswith("log")
    assert "hello ann" in actions.child(0, 1).text()
    assert actions.child(1, 0).text().startswith("set")
    # The dry run did not touch the real variables.
    assert "greeted" not in world.engine.call(lambda: dict(world.engine.variables))
    panel.set_field("who", "bob")
    editor.run_test()
    qtbot.waitUntil(lambda: panel.status.text().startswith("✘ A condition"), timeout=5000)
    rows = {model.item(r, 0).text(): r for r in range(model.rowCount())}
    assert model.item(rows["Conditions (1)"], 0).child(0, 1).text().startswith("does not hold")
    assert "Actions (0)" in rows


def test_the_test_button_reports_skipped_actions_and_waits_without_waiting(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    editor.run_test()
    panel = editor.test_panel
    event_type, data = panel.test_event()
    assert event_type == "file.created"
    assert data["dir"] == "/tmp/downloads"
    qtbot.waitUntil(lambda: panel.status.text().startswith("✔"), timeout=5000)
    model = panel.trace_model
    rows = {model.item(r, 0).text(): r for r in range(model.rowCount())}
    actions = model.item(rows["Actions (2)"], 0)
    assert actions.child(0, 1).text() == "skipped (dry run)"
    # A long delay is shown, not waited for.
    edit_text(editor, editor.text.replace("do:\n", "do:\n  - delay: 1h\n", 1))
    panel.status.setText("")
    editor.run_test()
    qtbot.waitUntil(lambda: panel.status.text().startswith("✔"), timeout=5000)
    rows = {model.item(r, 0).text(): r for r in range(model.rowCount())}
    actions = model.item(rows["Actions (3)"], 0)
    assert actions.child(0, 0).text().startswith("delay")
    assert "3600" in actions.child(0, 1).text()
    assert not panel.stop_button.isEnabled()


# ---------------------------------------------------------------------------
# Saving


def test_saving_a_new_rule_appends_it_and_the_engine_runs_it(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, None)
    assert editor.windowTitle().startswith("New rule")
    ident = editor.form.field("id")
    assert isinstance(ident, TextField)
    ident.set_text("welcome")
    editor.flush()
    assert_ok(editor)
    with qtbot.waitSignal(editor.saved, timeout=2000) as signal:
        assert editor.save()
    assert signal.args == ["welcome"]
    text = pack.read_text()
    assert text.startswith(PACK)
    # The file's own spacing: a blank line between rules.
    assert text[len(PACK) :] == (
        "\n  - id: welcome\n"
        "    name: New rule\n"
        "    when: {event: my.event}\n"
        "    do:\n"
        "      - notify: Hello from Nerve\n"
    )
    assert load_pack(pack).errors == []
    assert "editor.test/welcome" in world.rule_keys()
    assert (pack.parent / "editor.yaml~").read_text() == PACK
    assert editor.windowTitle().startswith("welcome")
    assert not editor.isWindowModified()


def test_a_new_rule_in_a_new_pack_is_approved(qtbot: QtBot, world: EditorWorld) -> None:
    from nerve.packs.trust import Approvals

    path = world.folder / "mine.yaml"
    editor = open_rule(qtbot, world, path, None)
    edit_text(
        editor,
        "id: term\nwhen: {hotkey: ctrl+alt+t}\ndo:\n  - run: [x-terminal-emulator]\n",
    )
    assert editor.save()
    assert path.read_text() == (
        "nerve: 1\npack:\n  id: mine\n  name: Mine\nrules:\n"
        "  - id: term\n    when: {hotkey: ctrl+alt+t}\n"
        "    do:\n      - run: [x-terminal-emulator]\n"
    )
    approval = Approvals(world.config).get("mine")
    assert approval is not None
    assert {"reads-keyboard", "runs-programs"} <= approval.capabilities
    assert "mine/term" in world.rule_keys()


def test_renaming_a_rule_on_save(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "keys")
    edit_text(editor, editor.text.replace("id: keys", "id: terminal"))
    assert editor.save()
    doc = PackDocument.load(pack)
    assert doc.rule_ids() == ["greet", "files", "terminal", "nightly"]
    assert "editor.test/terminal" in world.rule_keys()
    assert "editor.test/keys" not in world.rule_keys()
    assert open_editor(world.core, pack, "terminal") is editor


def test_ctrl_s_saves(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "nightly")
    edit_text(editor, editor.text.replace("log: tick", "log: tock"))
    editor.activateWindow()
    editor.yaml.setFocus()
    with qtbot.waitSignal(editor.saved, timeout=2000):
        qtbot.keyClick(editor.yaml, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert "log: tock" in pack.read_text()


def test_open_editor_raises_the_open_one(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    first = open_editor(world.core, pack, "greet")
    assert first.isVisible()
    assert open_editor(world.core, pack, "greet") is first
    other = open_editor(world.core, pack, "files")
    assert other is not first
    assert open_editor(world.core, pack, None) is not open_editor(world.core, pack, None)
    first.close()
    again = open_editor(world.core, pack, "greet")
    assert again is not first
    shown = [
        w for w in QApplication.topLevelWidgets() if isinstance(w, RuleEditor) and w.isVisible()
    ]
    assert len(shown) == 4


# ---------------------------------------------------------------------------
# The file changes on disk


def test_an_outside_change_reloads_a_clean_editor(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    pack.write_text(PACK.replace("Greet on x.go", "Greet when x.go"))
    qtbot.waitUntil(lambda: "name: Greet when x.go" in editor.text, timeout=5000)
    assert editor.form.field("name").value() == "Greet when x.go"
    assert not editor.isWindowModified()
    assert "Reloaded" in editor.status.text()


def test_an_outside_change_asks_before_dropping_edits(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    asked: list[bool] = []
    answer = [False]

    def confirm() -> bool:
        asked.append(True)
        return answer[0]

    editor.confirm_reload = confirm  # type: ignore[method-assign]
    edit_text(editor, editor.text.replace("{event: x.go}", "{event: x.went}"))
    pack.write_text(PACK.replace("Greet on x.go", "Greet when x.go"))
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=5000)
    assert "x.went" in editor.text
    assert "changed on disk" in editor.status.text()
    # Saving now writes the edit into the new version of the file.
    assert editor.save()
    saved = pack.read_text()
    assert "{event: x.went}" in saved
    assert "Greet on x.go" in saved
    # Asked again, and this time the user takes the file's version.
    answer[0] = True
    edit_text(editor, editor.text.replace("x.went", "x.gone"))
    pack.write_text(PACK)
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=5000)
    qtbot.waitUntil(lambda: "{event: x.go}" in editor.text, timeout=5000)
    assert not editor.isWindowModified()


# ---------------------------------------------------------------------------
# Keyboard and looks


def test_tab_order_and_mnemonics(qtbot: QtBot, world: EditorWorld, pack: Path) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    chain = focus_chain(editor.form)
    ident = editor.form.field("id")
    assert isinstance(ident, TextField)
    assert chain[0] is ident.edit
    labels = editor.form.labels
    assert labels["id"].text() == "&Id *"
    assert labels["id"].buddy() is ident
    # Tab goes from the id to the name.
    editor.activateWindow()
    ident.edit.setFocus()
    qtbot.keyClick(ident.edit, Qt.Key.Key_Tab)
    name = editor.form.field("name")
    assert isinstance(name, TextField)
    assert QApplication.focusWidget() is name.edit
    # Rows added later come in reading order too.
    actions = editor.form.list_field("do")
    assert isinstance(actions, TypedListField)
    added = actions.add("log")
    assert isinstance(added, TypedItemField)
    qtbot.waitUntil(lambda: added.type_combo in focus_chain(editor.form), timeout=1000)
    chain = focus_chain(editor.form)
    assert chain.index(added.type_combo) < chain.index(actions.add_button)


def test_screenshot_of_the_form(
    qtbot: QtBot, world: EditorWorld, pack: Path, shots_dir: Callable[[], Path]
) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    editor.resize(900, 1100)
    picture = shot(editor, shots_dir, "editor-form.png")
    assert picture.stat().st_size > 0


def test_a_saved_form_edit_changes_only_its_line(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "greet")
    name = editor.form.field("name")
    assert isinstance(name, TextField)
    name.set_text("Greet Ann")
    assert editor.save()
    assert pack.read_text() == PACK.replace("name: Greet on x.go", "name: Greet Ann")
    assert "# only Ann" in editor.text


def test_mnemonics_are_unique_and_lead_to_their_fields(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "files")
    # (Alt+letter itself cannot be pressed on the offscreen platform: it has no mnemonics.)
    for key, label in editor.form.labels.items():
        assert "&" in label.text(), key
        assert label.buddy() is editor.form.field(key)
    texts = [editor.tabs.tabText(i) for i in range(editor.tabs.count())]
    texts += [b.text() for b in (editor.test_button, editor.save_button, editor.close_button)]
    texts += [label.text() for label in editor.form.labels.values()]
    texts += [box.title() for box in editor.form.findChildren(QGroupBox)]
    texts.append(editor.form.field("enabled").check.text())  # type: ignore[attr-defined]
    letters = [t[t.index("&") + 1].lower() for t in texts if "&" in t]
    assert len(letters) == len(set(letters)), texts
    # Nested fields take other letters.
    nested = [
        label.text()
        for label in editor.form.findChildren(QLabel)
        if "&" in label.text() and label not in editor.form.labels.values()
    ]
    assert nested
    assert not {t[t.index("&") + 1].lower() for t in nested} & set(letters)


def test_path_fields_have_file_and_folder_pickers(
    qtbot: QtBot, world: EditorWorld, pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nerve.gui.editor import fields

    asked: list[tuple[str, str]] = []

    def pick(_parent: object, kind: str, start: str) -> str:
        asked.append((kind, start))
        return "/srv/inbox" if kind == "folder" else "/srv/inbox/a.pdf"

    monkeypatch.setattr(fields, "_dialog_pick", pick)
    editor = open_rule(qtbot, world, pack, "files")
    dest = find_field(editor, TextField, "dest")
    assert isinstance(dest, TextField)
    buttons = {b.text(): b for b in dest.findChildren(QToolButton)}
    buttons["Folder…"].click()
    assert asked == [("folder", "/tmp/papers")]
    editor.flush()
    assert "dest: /srv/inbox}" in editor.text
    watched = find_field(editor, TextField, "path")
    assert isinstance(watched, TextField)
    {b.text(): b for b in watched.findChildren(QToolButton)}["File…"].click()
    editor.flush()
    assert "file.created: {path: /srv/inbox/a.pdf," in editor.text


def test_typing_in_the_yaml_tab_is_checked_as_you_go(
    qtbot: QtBot, world: EditorWorld, pack: Path
) -> None:
    editor = open_rule(qtbot, world, pack, "nightly")
    editor.tabs.setCurrentIndex(1)
    editor.yaml.setFocus()
    editor.yaml.moveCursor(editor.yaml.textCursor().MoveOperation.End)
    qtbot.keyClicks(editor.yaml, "mode: sometimes")
    assert editor.isWindowModified()
    qtbot.waitUntil(lambda: editor.yaml.error_lines() == {5}, timeout=3000)
    assert "mode" in editor.yaml.problems_at(5)[0].path
    assert editor.stack.count() == 1
