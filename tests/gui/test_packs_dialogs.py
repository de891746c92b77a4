"""The Packs dialogs over a real, started Nerve (a fresh user's folders, offscreen Qt).

Import: the review shows what a pack can do, its rules and a form for its
inputs; "Import disabled" leaves the pack held, approving it (in the held
packs dialog) makes its rule run. Export: the saved pack loads and holds
exactly the ticked rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox, QLineEdit, QMainWindow, QToolButton
from pytestqt.qtbot import QtBot

from nerve.bootstrap import Nerve
from nerve.gui.core import Core
from nerve.gui.packs import (
    ExportDialog,
    HeldDialog,
    ImportDialog,
    add_packs_menu,
    approve_own,
    held_packs,
)
from nerve.options import Options
from nerve.packs.loader import load_pack
from nerve.paths import locations

SHARED = """\
nerve: 1
pack:
  id: shared.tools
  name: Shared tools
  version: 1.2.0
  author: Sam
  description: Touches a marker file when asked, and keeps notes.
  inputs:
    marker: {description: The file to touch, type: path}
    greeting: {description: What notes start with, type: text, default: Note}
    loud: {description: Log at warning level, type: boolean, default: false}
    level: {description: How much to say, type: text, default: some, choices: [some, all]}
rules:
  - id: touch
    name: Touch the marker
    when: {event: x.touch}
    do:
      - run: {argv: [touch, "{input.marker}"], wait: true}
  - id: shout
    name: Shout
    when: {hotkey: ctrl+alt+s}
    do: [{shell: "echo {input.level}"}]
  - id: note
    when: {event: x.note}
    do: [{log: "{input.greeting}: {event.text}"}]
"""


@pytest.fixture
def nerve(nerve_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Nerve]:
    """A started Nerve on a fresh user's packs folder (the starter pack installed)."""
    monkeypatch.delenv("DISPLAY", raising=False)  # no keyboard listener for the hotkey
    app = Nerve(locations(), Options())
    app.start()
    yield app
    app.stop()


@pytest.fixture
def core(nerve: Nerve) -> Core:
    return Core.of(nerve)


@pytest.fixture
def source(short_tmp: Path) -> Path:
    path = short_tmp / "downloaded.yaml"
    path.write_text(SHARED)
    return path


def rule_keys(nerve: Nerve) -> set[str]:
    assert nerve.engine is not None
    return {r["key"] for r in nerve.engine.call(nerve.engine.rules)}


def import_dialog(qtbot: QtBot, core: Core, path: Path) -> ImportDialog:
    dialog = ImportDialog(core, path)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_the_import_review_shows_capabilities_rules_and_inputs(
    qtbot: QtBot, core: Core, source: Path, shots_dir: Callable[[], Path]
) -> None:
    dialog = import_dialog(qtbot, core, source)
    review = dialog.review
    assert "Shared tools" in review.title.text()
    assert "Version 1.2.0 · by Sam" in review.about.text()
    texts = review.capability_texts()
    assert texts[:3] == [
        "Read what you type (hotkeys, abbreviations)",
        "Start the program touch",
        "Run the shell command line: echo {input.level}",
    ]
    first = review.capabilities.item(0)
    assert first is not None
    assert first.font().bold()  # dangerous ones stand out
    assert review.rule_ids() == ["touch", "shout", "note"]
    trigger = review.rules.topLevelItem(0)
    assert trigger is not None
    assert trigger.text(2) == "event x.touch"
    # One field per input, of its type, with its default.
    form = review.inputs
    assert set(form.fields) == {"marker", "greeting", "loud", "level"}
    assert isinstance(form.fields["loud"], QCheckBox)
    assert form.text_of("greeting") == "Note"
    assert form.text_of("level") == "some"
    assert form.missing() == ["marker"]
    path_field = form.fields["marker"]
    assert isinstance(path_field.property("nerve_edit"), QLineEdit)
    assert path_field.findChild(QToolButton) is not None  # a folder/file chooser
    assert dialog.errors.isHidden()
    # The marker has no default: nothing can be imported until it is given.
    assert not dialog.approve_button.isEnabled()
    assert not dialog.disabled_button.isEnabled()
    form.set_text("marker", "/tmp/marker")
    assert dialog.approve_button.isEnabled()
    assert dialog.disabled_button.isEnabled()

    dialog.resize(760, 720)
    shot = dialog.grab()
    assert not shot.isNull()
    assert shot.save(str(shots_dir() / "packs-import-review.png"))


def test_import_disabled_leaves_the_pack_held_until_approved(
    qtbot: QtBot, nerve: Nerve, core: Core, source: Path, short_tmp: Path
) -> None:
    marker = short_tmp / "touched"
    dialog = import_dialog(qtbot, core, source)
    dialog.review.inputs.set_text("marker", str(marker))
    dialog.review.inputs.set_text("level", "all")
    target = dialog.import_pack(approve=False)

    assert target == nerve.locations.packs / "shared.tools.yaml"
    assert target.read_text() == SHARED
    assert dialog.result() == dialog.DialogCode.Accepted
    assert [s.pack.id for s in held_packs(core)] == ["shared.tools"]
    assert not [k for k in rule_keys(nerve) if k.startswith("shared.tools/")]
    approval = nerve.approvals.get("shared.tools")
    assert approval is not None
    assert approval.values == {"marker": str(marker), "level": "all"}  # defaults not stored

    held = HeldDialog(core)
    qtbot.addWidget(held)
    assert held.list.count() == 1
    assert "Start the program touch" in held.review.capability_texts()
    assert "which you have not approved" in held.reason.text()
    assert not held.review.inputs.fields["marker"].isEnabled()  # chosen at import
    held.approve_current()
    assert held.result() == held.DialogCode.Accepted  # nothing left to review
    assert held_packs(core) == []
    assert {"shared.tools/touch", "shared.tools/note"} <= rule_keys(nerve)

    assert nerve.bus is not None
    nerve.bus.publish("x.touch", {}, source="test")
    qtbot.waitUntil(marker.exists, timeout=10_000)


def test_import_and_approve_runs_at_once(
    qtbot: QtBot, nerve: Nerve, core: Core, source: Path
) -> None:
    dialog = import_dialog(qtbot, core, source)
    dialog.review.inputs.set_text("marker", "/tmp/x")
    assert dialog.import_pack(approve=True) is not None
    assert held_packs(core) == []
    assert "shared.tools/touch" in rule_keys(nerve)


def test_the_file_imported_is_the_one_reviewed(
    qtbot: QtBot, nerve: Nerve, core: Core, source: Path
) -> None:
    dialog = import_dialog(qtbot, core, source)
    assert "Run the shell command line: echo {input.level}" in dialog.review.capability_texts()
    assert not [t for t in dialog.review.capability_texts() if t.startswith("Send requests")]
    # Swapped on disk while the review is open: now it also calls the network.
    source.write_text(
        SHARED + "  - id: sneaky\n    when: {event: x.s}\n"
        "    do: [{http: {url: 'https://example.invalid/'}}]\n"
    )
    dialog.review.inputs.set_text("marker", "/tmp/x")
    target = dialog.import_pack(approve=True)
    assert target is not None
    assert target.read_text() == SHARED
    approval = nerve.approvals.get("shared.tools")
    assert approval is not None
    assert "network" not in approval.capabilities
    assert "shared.tools/sneaky" not in rule_keys(nerve)


def test_a_pack_without_capabilities_has_one_import_button(
    qtbot: QtBot, nerve: Nerve, core: Core, short_tmp: Path
) -> None:
    path = short_tmp / "notes.yaml"
    path.write_text(
        "nerve: 1\npack: {id: shared.notes}\nrules:\n"
        "  - {id: n, when: {event: x.n}, do: [{log: n}]}\n"
    )
    dialog = import_dialog(qtbot, core, path)
    assert "needs no special permissions" in dialog.review.caps_title.text()
    assert dialog.approve_button.text() == "Import"
    assert not dialog.disabled_button.isVisible()
    dialog.import_pack(approve=True)
    assert "shared.notes/n" in rule_keys(nerve)


def test_errors_and_an_id_conflict_block_the_import(
    qtbot: QtBot, nerve: Nerve, core: Core, short_tmp: Path
) -> None:
    broken = short_tmp / "broken.yaml"
    broken.write_text(
        "nerve: 1\npack: {id: shared.broken}\nrules:\n  - id: a\n    when: {event: x}\n"
    )
    dialog = import_dialog(qtbot, core, broken)
    assert not dialog.errors.isHidden()
    assert "rules[0]" in dialog.errors.toPlainText()
    assert not dialog.approve_button.isEnabled()

    # The starter pack's id in another pack: replacing it must be asked for.
    other = short_tmp / "other.yaml"
    other.write_text(
        "nerve: 1\npack: {id: nerve.starter}\nrules:\n"
        "  - {id: n, when: {event: x.n}, do: [{log: n}]}\n"
    )
    dialog = import_dialog(qtbot, core, other)
    assert dialog.replace.isVisible()
    assert "starter.yaml" in dialog.conflict.text()
    assert not dialog.approve_button.isEnabled()
    dialog.replace.setChecked(True)
    assert dialog.approve_button.isEnabled()


def test_export_saves_exactly_the_chosen_rules(
    qtbot: QtBot, nerve: Nerve, core: Core, short_tmp: Path
) -> None:
    dialog = ExportDialog(core)
    qtbot.addWidget(dialog)
    assert not dialog.save_button.isEnabled()
    dialog.check("nerve.starter", "note")
    dialog.check("nerve.starter", "remind")
    assert dialog.save_button.isEnabled()
    assert dialog.pack_id.placeholderText() == "nerve.starter"
    dialog.pack_id.setText("me.notes")
    target = short_tmp / "exported.yaml"
    assert dialog.export_to(target)
    pack = load_pack(target)
    assert not pack.errors
    assert pack.id == "me.notes"
    assert [r.id for r in pack.rules] == ["remind", "note"]  # in the pack's order

    dialog.check("nerve.starter")  # the whole pack
    assert dialog.export_to(target)
    assert [r.id for r in load_pack(target).rules] == [r.id for r in nerve.packs[0].rules]

    dialog.pack_id.setText("Not an id")
    assert not dialog.export_to(short_tmp / "bad.yaml")
    assert "pack.id" in dialog.errors.toPlainText()
    assert not (short_tmp / "bad.yaml").exists()


def test_the_packs_menu(qtbot: QtBot, core: Core) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    menu = add_packs_menu(window, core)
    actions = [a for a in menu.actions() if not a.isSeparator()]
    assert [a.text() for a in actions] == [
        "&Import…",
        "&Export…",
        "&Review held packs…",
        "&Manage packs and updates…",
        "Add pack from &library…",
        "Import from &URL…",
    ]
    assert actions[0].shortcut().toString() == "Ctrl+I"


def test_a_pack_saved_in_the_window_is_approved_by_the_editor(nerve: Nerve, core: Core) -> None:
    pack = nerve.locations.packs / "mine.yaml"
    pack.write_text(
        SHARED.replace("shared.tools", "me.mine").replace("type: path}", "type: path, default: /x}")
    )
    core.reload()
    assert [s.pack.id for s in held_packs(core)] == ["me.mine"]
    approve_own(core, "me.mine", load_pack(pack).capabilities)
    core.reload()
    assert held_packs(core) == []


def test_the_status_bar_offers_the_review_of_held_packs(
    qtbot: QtBot, nerve: Nerve, core: Core
) -> None:
    from nerve.gui.main_window import MainWindow

    window = MainWindow(core)
    qtbot.addWidget(window)
    window.show()
    assert window.held_button.isHidden()
    with_default = SHARED.replace("type: path}", "type: path, default: /tmp/x}")
    (nerve.locations.packs / "shared.tools.yaml").write_text(with_default)
    nerve.reload()  # (the packs watcher would do it too)
    qtbot.waitUntil(window.held_button.isVisible, timeout=5000)
    assert window.held_button.text() == "Pack shared.tools held: review…"
    window.held_button.click()
    held = window.findChild(HeldDialog)
    assert held is not None
    assert held.list.count() == 1
    held.approve_current()
    qtbot.waitUntil(window.held_button.isHidden, timeout=5000)
    window.shutdown()
