from __future__ import annotations

from pathlib import Path

from nerve.settings import DEFAULT_PANIC_HOTKEY, Settings


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    s = Settings.load(tmp_path / "settings.yaml")
    assert s.panic_hotkey == DEFAULT_PANIC_HOTKEY
    assert s.retention_days == 30
    assert not s.store_private
    assert s.errors == []


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("panic_hotkey: super+escape\nretention_days: 7\nstore_private: true\n")
    s = Settings.load(path)
    assert (s.panic_hotkey, s.retention_days, s.store_private) == ("super+escape", 7, True)


def test_bad_values_are_reported_and_defaulted(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("retention_days: -3\nstore_privat: true\nmax_depth: 4\n")
    s = Settings.load(path)
    assert s.retention_days == 30
    assert s.max_depth == 4
    assert any(":1:1: retention_days: must be > 0" in e for e in s.errors), s.errors
    assert any(":2:1: store_privat: unknown key 'store_privat'" in e for e in s.errors), s.errors


def test_broken_yaml_keeps_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("panic_hotkey: [unclosed\n")
    s = Settings.load(path)
    assert s.panic_hotkey == DEFAULT_PANIC_HOTKEY
    assert len(s.errors) == 1
    assert str(path) in s.errors[0]
