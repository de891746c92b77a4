from __future__ import annotations

from pathlib import Path

import pytest

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


def test_broken_yaml_keeps_defaults_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("panic_hotkey: [unclosed\n")
    s = Settings.load(path)
    assert s.panic_hotkey == DEFAULT_PANIC_HOTKEY
    assert len(s.errors) == 1
    assert str(path) in s.errors[0]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == s.errors
    assert s.errors[0].endswith("(using the default settings)")


def test_save_round_trips_and_keeps_unknown_keys_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("# mine\nlater: {host: broker.lan}  # later\nretention_days: 7\n")
    s = Settings.load(path)
    s.retention_days = 14.0
    s.panic_hotkey = None
    s.disabled_listeners = ["mouse", "clipboard"]
    s.save(path)
    text = path.read_text()
    assert text.startswith("# mine\nlater: {host: broker.lan}  # later\nretention_days: 14\n")
    assert "panic_hotkey: null\n" in text
    assert "max_events" not in text  # still the default: not written
    assert (tmp_path / "settings.yaml~").read_text().endswith("retention_days: 7\n")
    again = Settings.load(path)
    assert len(again.errors) == 1
    assert "unknown key 'later'" in again.errors[0]  # reported, and kept in the file
    assert (again.retention_days, again.panic_hotkey) == (14, None)
    assert again.disabled_listeners == ["mouse", "clipboard"]


def test_save_writes_only_changes_into_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "config" / "settings.yaml"
    s = Settings()
    s.save(path)
    assert Settings.load(path).values() == Settings().values()
    s.store_private = True
    s.save(path)
    assert path.read_text() == "store_private: true\n"


def test_save_replaces_a_broken_file_and_keeps_its_backup(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("panic_hotkey: [unclosed\n")
    s = Settings.load(path)
    s.max_events = 5000
    s.save(path)
    assert Settings.load(path).max_events == 5000
    assert (tmp_path / "settings.yaml~").read_text() == "panic_hotkey: [unclosed\n"


def test_saving_keeps_an_mqtt_block_and_host_as_written(tmp_path: Path) -> None:
    """Valid or not, the blocks the Settings window does not edit stay in the file."""
    path = tmp_path / "settings.yaml"
    for block in (
        "host: lap\nmqtt:\n  broker: mqtt://127.0.0.1:1883  # mine\n  publish: [build.*]\n",
        "host: bad host\nmqtt:\n  broker: http://x  # mine\n  password: p\n",
    ):
        path.write_text(block + "retention_days: 7\n")
        s = Settings.load(path)
        s.retention_days = 9
        s.save(path)
        assert path.read_text() == block + "retention_days: 9\n"
