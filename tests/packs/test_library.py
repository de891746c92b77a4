"""The packs shipped in ``rules/library``: each one loads without an error, and
its main rule fires on the event it is made for (a real engine; file packs with
the real file watcher; programs replaced by stand-ins given as inputs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Harness, LiveHarness, wait_until
from nerve.events import Event, freeze
from nerve.packs import semver
from nerve.packs.loader import Pack, load_pack

LIBRARY = Path(__file__).resolve().parents[2] / "rules" / "library"
EXPECTED = {
    "snippets",
    "downloads-sorter",
    "screenshots",
    "launcher",
    "focus-mode",
    "power-network",
    "clipboard-cleaner",
}


def load(name: str, **values: str) -> Pack:
    pack = load_pack(LIBRARY / f"{name}.yaml", overrides=values or None)
    assert not pack.errors, "\n".join(map(str, pack.errors))
    return pack


@pytest.fixture(autouse=True)
def _no_desktop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a pack does may reach the desktop the tests run on."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"):
        monkeypatch.delenv(name, raising=False)


def test_every_shipped_pack_validates_and_says_what_it_is() -> None:
    names = {p.stem for p in LIBRARY.glob("*.yaml")}
    assert names == EXPECTED
    ids = set()
    for name in names:
        pack = load(name)
        assert pack.id.startswith("library."), name
        assert pack.description
        assert pack.name
        assert pack.author
        assert semver.try_parse(pack.version) is not None
        assert pack.rules
        ids.add(pack.id)
        proc = subprocess.run(
            [sys.executable, "-m", "nerve", "validate", str(LIBRARY / f"{name}.yaml")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(ids) == len(names)


def fire(h: Harness, pack: Pack, rule_id: str, type_: str, **data: Any) -> dict[str, Any]:
    """Load ``pack`` into the engine, publish the event, wait until ``rule_id`` fired."""
    h.engine.call(h.engine.set_rules, pack.rules)
    key = f"{pack.id}/{rule_id}"
    h.publish(type_, **data)

    def fired() -> dict[str, Any] | None:
        for s in h.engine.call(h.engine.rules):
            if s["key"] == key and s["fired"] >= 1 and not s["running"]:
                return dict(s)
        return None

    found: dict[str, Any] = wait_until(fired, what=f"{key} to fire on {type_}")
    return found


def test_snippets_type_the_signature(harness: Harness) -> None:
    pack = load("snippets", signature="Cheers,\nSam")
    for rule_id, abbreviation in (("signature", ";sig"), ("email", ";mail"), ("date", ";date")):
        fire(harness, pack, rule_id, "typed", text=abbreviation)
    texts = {r.id: typed_text(r, ";x") for r in pack.rules}
    assert texts["signature"] == "Cheers,\nSam"
    assert texts["email"] == "me@example.com"
    assert texts["date"] == time.strftime("%Y-%m-%d")


def typed_text(rule: Any, abbreviation: str) -> str:
    """What the rule's first action (``type``) types for an abbreviation typed."""
    from nerve.templates import Scope

    event = Event("typed", freeze({"text": abbreviation}), "test", 1, time.time(), 0)
    scope = Scope(event, rule.inputs, {}, {"id": rule.id}, {"id": "r"})
    text: str = rule.actions[0].template.render(scope)
    return text


def watching(live: LiveHarness) -> None:
    """Wait until the file watcher watches every folder the rules name."""
    wait_until(
        lambda: "waiting" not in live.listener("filesystem")["detail"], what="folders watched"
    )


def test_downloads_are_sorted(live: LiveHarness, tmp_path: Path) -> None:
    folders = {n: tmp_path / n for n in ("dl", "docs", "pics", "music", "videos", "arch")}
    for folder in folders.values():
        folder.mkdir()
    pack = load(
        "downloads-sorter",
        downloads=str(folders["dl"]),
        documents=str(folders["docs"]),
        pictures=str(folders["pics"]),
        music=str(folders["music"]),
        videos=str(folders["videos"]),
        archives=str(folders["arch"]),
    )
    live.engine.call(live.engine.set_rules, pack.rules)
    watching(live)
    (folders["dl"] / "report.pdf").write_bytes(b"%PDF")
    (folders["dl"] / "cat.jpg").write_bytes(b"jpg")
    (folders["dl"] / "app.tar.gz").write_bytes(b"tgz")
    (folders["dl"] / "notes.unknown").write_bytes(b"?")
    wait_until((folders["docs"] / "report.pdf").exists, 20, "the pdf to be moved")
    wait_until((folders["pics"] / "cat.jpg").exists, 20, "the picture to be moved")
    wait_until((folders["arch"] / "app.tar.gz").exists, 20, "the archive to be moved")
    assert (folders["dl"] / "notes.unknown").exists()


def test_screenshots_are_renamed_and_filed(live: LiveHarness, tmp_path: Path) -> None:
    watch, target = tmp_path / "Pictures", tmp_path / "Screens"
    watch.mkdir()
    target.mkdir()
    pack = load("screenshots", watch=str(watch), target=str(target))
    live.engine.call(live.engine.set_rules, pack.rules)
    watching(live)
    (watch / "Screenshot from 2026-12-08 10-00-00.png").write_bytes(b"png")
    (watch / "holiday.png").write_bytes(b"png")
    filed = wait_until(lambda: list(target.glob("screenshot *.png")), 20, "the screenshot filed")
    assert filed[0].name.startswith("screenshot " + time.strftime("%Y-%m-"))
    assert (watch / "holiday.png").exists()
    wait_until(lambda: live.notifications, what="the notification")


def stand_in(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A program that records its arguments in a file."""
    record = tmp_path / f"{name}.args"
    program = tmp_path / name
    program.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    program.chmod(0o755)
    return program, record


def test_launcher_hotkeys_start_programs(harness: Harness, tmp_path: Path) -> None:
    terminal, record = stand_in(tmp_path, "term")
    pack = load("launcher", terminal=str(terminal))
    combo = next(r for r in pack.rules if r.id == "terminal").triggers[0].text  # type: ignore[attr-defined]
    fire(harness, pack, "terminal", "hotkey", combo=combo)
    wait_until(record.exists, what="the terminal stand-in to start")


def test_focus_mode_pauses_notifications_and_sets_a_status(
    harness: Harness, tmp_path: Path
) -> None:
    pauser, record = stand_in(tmp_path, "dunstctl")
    pack = load("focus-mode", pause_command=str(pauser))
    combo = next(r for r in pack.rules if r.id == "focus-toggle").triggers[0].text  # type: ignore[attr-defined]
    fire(harness, pack, "focus-toggle", "hotkey", combo=combo)
    wait_until(lambda: record.exists() and record.read_text() == "set-paused\ntrue\n")
    assert harness.engine.variables["status"] == "busy"
    record.unlink()
    harness.publish("hotkey", combo=combo)
    wait_until(lambda: record.exists() and record.read_text() == "set-paused\nfalse\n")
    assert harness.engine.variables["status"] == "available"
    fire(harness, pack, "meeting-start", "process.started", name="zoom", pid=42)
    wait_until(lambda: harness.engine.variables.get("status_reason") == "meeting")


def test_battery_and_network_reactions(harness: Harness) -> None:
    pack = load("power-network")
    fire(harness, pack, "battery-low", "power.low", below=15, percent=12, plugged=False)
    wait_until(lambda: any("12% left" in body for _, body in harness.notifications))
    fire(harness, pack, "network-down", "network.down", interface="wlan0")
    assert harness.engine.variables["network"] == "down"
    fire(harness, pack, "network-up", "network.up", interface="wlan0")
    wait_until(lambda: any("wlan0 is back" in body for _, body in harness.notifications))


CLEANED = [
    ("https://a.example/p?utm_source=x&utm_medium=y", "https://a.example/p"),
    ("https://a.example/p?id=5&utm_source=x", "https://a.example/p?id=5"),
    ("https://a.example/p?utm_source=x&id=5&fbclid=abc#top", "https://a.example/p?id=5#top"),
    ("https://a.example/?gclid=1&q=a%26b&si=zz", "https://a.example/?q=a%26b"),
    ("http://b.example/x?fbclid=1", "http://b.example/x"),
    ("https://c.example/?q=1&msclkid=2&page=3", "https://c.example/?q=1&page=3"),
    (
        "https://d.example/?x=$(touch%20/tmp/pwn)&utm_id=1",
        "https://d.example/?x=$(touch%20/tmp/pwn)",
    ),
]


@pytest.mark.parametrize(("copied", "cleaned"), CLEANED)
def test_the_clipboard_cleaner_strips_tracking_parameters(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copied: str, cleaned: str
) -> None:
    xclip, record = stand_in(tmp_path, "xclip")
    xclip.write_text(f'#!/bin/sh\ncat > "{record}"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    pack = load("clipboard-cleaner")
    fire(harness, pack, "clean-url", "clipboard.changed", selection="clipboard", text=copied)
    wait_until(record.exists, what="the cleaned address on the clipboard")
    assert record.read_text() == cleaned


@pytest.mark.parametrize(
    "copied",
    ["https://a.example/p?id=5", "not a url utm_source=x", "https://a.example/p?autm_source=1"],
)
def test_the_clipboard_cleaner_leaves_other_text_alone(harness: Harness, copied: str) -> None:
    pack = load("clipboard-cleaner")
    (rule,) = pack.rules
    event = Event(
        "clipboard.changed",
        freeze({"selection": "clipboard", "text": copied}),
        "test",
        1,
        time.time(),
        time.monotonic_ns(),
    )
    matcher = rule.triggers[0].matchers()[0]
    assert matcher.predicate is not None
    assert not matcher.predicate(event)
