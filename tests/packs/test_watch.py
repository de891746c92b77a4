"""Reloading on pack file changes: the watcher alone, then a running Nerve.

Real files in a temporary folder, real inotify (watchdog). The watcher hands
over the names that changed, so a test can tell an ignored file from a late
callback without sleeping: it waits for the next callback and looks at it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_until
from nerve.bootstrap import Nerve
from nerve.options import Options
from nerve.packs.watch import PacksWatcher
from nerve.paths import atomic_write, locations

PACK = """\
nerve: 1
pack: {id: watched.pack}
rules:
  - id: first
    when: {event: x.first}
    do: [{log: first}]
"""


class Calls:
    """The watcher's callbacks, in order."""

    def __init__(self) -> None:
        self.queue: queue.Queue[set[str]] = queue.Queue()

    def __call__(self, names: set[str]) -> None:
        self.queue.put(names)

    def next(self, timeout: float = 10.0) -> set[str]:
        return self.queue.get(timeout=timeout)


@pytest.fixture
def watched(short_tmp: Path) -> Iterator[tuple[Path, Calls]]:
    folder = short_tmp / "packs"
    calls = Calls()
    watcher = PacksWatcher(folder, calls)
    watcher.start()
    yield folder, calls
    watcher.stop()
    assert not [t for t in threading.enumerate() if t.name == "packs-reload"]


def test_editor_and_temporary_files_are_ignored(watched: tuple[Path, Calls]) -> None:
    folder, calls = watched
    for name in (
        ".pack.yaml.4242.tmp",  # paths.atomic_write's temporary file
        "pack.yaml~",  # its backup (and many editors')
        ".pack.yaml.swp",  # vim
        "4913",  # vim's probe
        "#pack.yaml#",  # emacs
        "notes.txt",
    ):
        (folder / name).write_text("x")
    (folder / "real.yaml").write_text(PACK)
    assert calls.next() == {"real.yaml"}


def test_a_burst_of_changes_is_one_reload(watched: tuple[Path, Calls]) -> None:
    folder, calls = watched
    for i in range(5):
        (folder / "a.yaml").write_text(PACK + f"# {i}\n")
    (folder / "b.yml").write_text(PACK)
    assert calls.next() == {"a.yaml", "b.yml"}

    atomic_write(folder / "a.yaml", PACK.encode())  # temp file, rename, backup
    assert calls.next() == {"a.yaml"}
    (folder / "b.yml").unlink()
    assert calls.next() == {"b.yml"}
    os.replace(folder / "a.yaml", folder / "c.yaml")
    assert calls.next() == {"a.yaml", "c.yaml"}
    assert calls.queue.empty()


def test_a_failing_callback_is_logged_and_watching_goes_on(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls()

    def flaky(names: set[str]) -> None:
        calls(names)
        if "bad.yaml" in names:
            raise RuntimeError("boom")

    folder = short_tmp / "packs"
    watcher = PacksWatcher(folder, flaky, settle=0.05)
    watcher.start()
    try:
        (folder / "bad.yaml").write_text("x")
        assert calls.next() == {"bad.yaml"}
        (folder / "good.yaml").write_text("x")
        assert calls.next() == {"good.yaml"}
    finally:
        watcher.stop()
    assert "reloading after a change of bad.yaml failed" in caplog.text


# ----------------------------------------------------------- a running Nerve


@pytest.fixture
def running(nerve_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Nerve]:
    """A started Nerve on a fresh user's packs folder (the starter pack)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    app = Nerve(locations(), Options())
    app.start()
    yield app
    app.stop()
    assert app.watcher is not None
    assert not [t for t in threading.enumerate() if t.name == "packs-reload"]


def rule_keys(app: Nerve) -> set[str]:
    assert app.engine is not None
    return {r["key"] for r in app.engine.call(app.engine.rules)}


def test_a_file_edit_reaches_the_running_engine(running: Nerve) -> None:
    packs = running.locations.packs
    assert "nerve.starter/note" in rule_keys(running)
    pack = packs / "watched.yaml"
    pack.write_text(PACK)  # as a text editor saves
    wait_until(lambda: "watched.pack/first" in rule_keys(running), what="the new pack's rule")

    pack.write_text(PACK.replace("first", "second"))
    wait_until(
        lambda: {"watched.pack/second"} == {k for k in rule_keys(running) if "watched" in k},
        what="the edited rule",
    )
    pack.unlink()
    wait_until(lambda: not [k for k in rule_keys(running) if "watched" in k], what="the rule to go")
    assert "nerve.starter/note" in rule_keys(running)


def test_a_save_then_an_explicit_reload_is_fine(
    running: Nerve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pack = running.locations.packs / "watched.yaml"
    # What the window does: save atomically, reload at once; the watcher reloads again.
    atomic_write(pack, PACK.encode())
    running.reload()
    assert "watched.pack/first" in rule_keys(running)
    wait_until(lambda: "watched.yaml; reloading" in caplog.text, what="the watcher's reload")
    assert "watched.pack/first" in rule_keys(running)
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
