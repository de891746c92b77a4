"""Qt tests run offscreen: set before pytest-qt creates the QApplication."""

from __future__ import annotations

import gc
import os

os.environ["QT_QPA_PLATFORM"] = os.environ.get("NERVE_TEST_QPA", "offscreen")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gui.support import Running, compile_pack
from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.gui.core import Core
from nerve.storage import Store


@pytest.fixture(autouse=True)
def _qt_garbage_on_the_qt_thread() -> Iterator[None]:
    """Collect each test's garbage here, on the Qt thread: left for later, a
    collection run by another thread (a listener's, in a later test) destroys
    Qt objects there, which can deadlock (the app collects on its Qt thread
    only; see nerve.gui.app.QtThreadCollector)."""
    yield
    gc.collect()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    store = Store(tmp_path / "nerve.db")
    bus = Bus()
    notes: list[str] = []
    engine = Engine(bus, store=store, notifier=lambda t, b, u: notes.append(b) or "test")
    engine.start()
    rules = compile_pack()
    engine.call(engine.set_rules, rules)
    core = Core(bus=bus, engine=engine, store=store, pack_names=lambda: {"gui.test": "GUI tests"})
    yield Running(bus, engine, store, core, rules)
    engine.stop()
    store.close()


@pytest.fixture
def shots_dir(tmp_path: Path) -> Callable[[], Path]:
    """Where screenshots go: $NERVE_SHOTS if set, else a temporary folder."""

    def where() -> Path:
        target = Path(os.environ.get("NERVE_SHOTS") or tmp_path / "shots")
        target.mkdir(parents=True, exist_ok=True)
        return target

    return where
