"""A real engine whose rules come from pack files in a folder, for the rule editor's tests.

``Core.reload`` reads the folder again and swaps the rules in, as the app does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.gui.core import Core
from nerve.gui.editor import RuleEditor
from nerve.gui.editor.fields import Field
from nerve.packs.loader import Pack, load_paths
from nerve.paths import shipped_packs_dir
from nerve.storage import Store

TESTS = Path(__file__).parents[1]
#: Every pack that ships, and the sample packs of the tests.
SAMPLE_PACKS = sorted(
    [
        *shipped_packs_dir().glob("*.yaml"),
        *(TESTS / "packs" / "good").glob("*.yaml"),
        *(TESTS / "cli_data").glob("*.yaml"),
    ]
)


@dataclass
class EditorWorld:
    """A packs folder, an engine running its rules, and the Core the editor gets."""

    folder: Path
    config: Path
    bus: Bus
    engine: Engine
    store: Store
    core: Core
    reloads: list[int] = field(default_factory=list)
    packs: list[Pack] = field(default_factory=list)

    def reload(self) -> None:
        self.packs = load_paths([self.folder]) if any(self.folder.iterdir()) else []
        rules = [r for p in self.packs if p.usable for r in p.rules]
        self.engine.call(self.engine.set_rules, rules)
        self.reloads.append(len(rules))

    def rule_keys(self) -> set[str]:
        return {str(s["key"]) for s in self.engine.call(self.engine.rules)}

    def add_pack(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        return path

    def copy_pack(self, source: Path) -> Path:
        target = self.folder / source.name
        shutil.copyfile(source, target)
        return target


@pytest.fixture(name="world")
def world_fixture(tmp_path: Path) -> Iterator[EditorWorld]:
    """Import this fixture into a test module to use ``world``."""
    folder = tmp_path / "config" / "packs"
    folder.mkdir(parents=True)
    store = Store(tmp_path / "nerve.db")
    bus = Bus()
    engine = Engine(bus, store=store, notifier=lambda t, b, u: "test")
    engine.start()
    holder: list[EditorWorld] = []
    core = Core(
        bus=bus,
        engine=engine,
        store=store,
        packs_dir=folder,
        config_dir=tmp_path / "config",
        packs=lambda: list(holder[0].packs),
        reload=lambda: holder[0].reload(),  # noqa: PLW0108 - holder is filled below
    )
    w = EditorWorld(folder, tmp_path / "config", bus, engine, store, core)
    holder.append(w)
    yield w
    engine.stop()
    store.close()


def open_rule(qtbot: QtBot, world: EditorWorld, path: Path, rule_id: str | None) -> RuleEditor:
    """An editor on ``rule_id`` that never asks questions when closed at the end of a test."""
    editor = RuleEditor(world.core, path, rule_id)
    editor.confirm_close = lambda: "discard"  # type: ignore[method-assign]
    _OPENED.append(editor)
    editor.show()
    editor.activateWindow()
    qtbot.waitUntil(editor.isActiveWindow, timeout=2000)
    return editor


_OPENED: list[RuleEditor] = []


@pytest.fixture(name="close_editors", autouse=True)
def close_editors_fixture() -> Iterator[None]:
    """Editors delete themselves when closed; close the ones a test left open."""
    yield
    for editor in QApplication.topLevelWidgets():
        if isinstance(editor, RuleEditor):
            editor.confirm_close = lambda: "discard"  # type: ignore[method-assign]
            editor.close()
    _OPENED.clear()


def find_field(editor: RuleEditor, kind: type[Field], name: str | None = None) -> Field:
    """The first field of ``kind`` (named ``name``) in the editor's form."""
    for found in editor.form.all_fields():
        if isinstance(found, kind) and (name is None or found.name == name):
            return found
    raise AssertionError(f"no {kind.__name__} {name or ''} in the form")


def touch_all(editor: RuleEditor) -> None:
    """Mark every field as edited, so that the form reads every widget back."""
    for found in editor.form.all_fields():
        found._touched = True
    for found in editor.form.fields_.values():
        found._touched = True
