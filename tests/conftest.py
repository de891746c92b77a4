"""Shared fixtures: a running bus and engine, packs from text, waiting for events."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.engine.model import Rule
from nerve.events import Event
from nerve.packs.loader import load_pack
from nerve.storage import Store


class Recorder:
    """Collects every event from the bus and lets a test wait for one."""

    def __init__(self, bus: Bus, pattern: str = "*") -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._sub = bus.subscribe(pattern, self._on_batch, name="test-recorder")

    def _on_batch(self, batch: list[Event]) -> None:
        with self._cond:
            self.events.extend(batch)
            self._cond.notify_all()

    def of(self, type_: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.type == type_]

    def wait(
        self,
        type_: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Event], bool] | None = None,
    ) -> list[Event]:
        """Wait until ``count`` events of ``type_`` (matching ``where``) arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [e for e in self.events if e.type == type_ and (where is None or where(e))]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({e.type for e in self.events})
                    raise AssertionError(
                        f"waited {timeout}s for {count} {type_} event(s), got {len(hits)}; "
                        f"seen types: {seen}"
                    )
                self._cond.wait(left)

    def close(self) -> None:
        self._sub.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it is truthy (for state with no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.005)


PACK_HEAD = """\
nerve: 1
pack:
  id: test.pack
rules:
"""


def rules_from(yaml_rules: str, pack_head: str = PACK_HEAD, **overrides: str) -> list[Rule]:
    """Compile rules given as the YAML list under ``rules:``; fail on any error."""
    pack = load_pack(
        (pack_head + yaml_rules).encode(), filename="test.yaml", overrides=overrides or None
    )
    assert not pack.errors, "\n".join(map(str, pack.errors))
    return pack.rules


class Harness:
    """A started bus + engine, with a recorder and notifications captured."""

    def __init__(self, store: Any = None) -> None:
        self.bus = Bus()
        self.notifications: list[tuple[str, str]] = []
        self.engine = Engine(self.bus, store=store, notifier=self._notify)
        self.recorder = Recorder(self.bus)
        self.engine.start()

    def _notify(self, title: str, body: str, urgency: str) -> str:
        self.notifications.append((title, body))
        self.bus.publish("test.notified", {"title": title, "body": body})
        return "test"

    def load(self, yaml_rules: str, **overrides: str) -> list[Rule]:
        rules = rules_from(yaml_rules, **overrides)
        self.engine.call(self.engine.set_rules, rules)
        return rules

    def publish(self, type_: str, **data: Any) -> Event:
        return self.bus.publish(type_, data, source="test")

    def summary(self, rule_id: str) -> dict[str, Any]:
        for s in self.engine.call(self.engine.rules):
            if s["key"] == f"test.pack/{rule_id}":
                return dict(s)
        raise KeyError(rule_id)

    def close(self) -> None:
        self.engine.stop()
        self.recorder.close()


class LiveHarness(Harness):
    """A Harness whose rules start real listeners through a ListenerManager."""

    def __init__(self, store: Any = None) -> None:
        from nerve.listeners.manager import ListenerManager

        super().__init__(store)
        self.listeners = ListenerManager(self.bus)
        self.listeners.start()
        self.engine.on_needs = self.listeners.update

    def listener(self, lid: str, state: str = "running", timeout: float = 10.0) -> dict[str, Any]:
        """Wait until listener ``lid`` is in ``state``; return its status."""

        def current() -> dict[str, Any] | None:
            for s in self.listeners.status():
                if s["id"] == lid and s["state"] == state:
                    return s
            return None

        found: dict[str, Any] = wait_until(current, timeout, f"listener {lid} {state}")
        return found

    def close(self) -> None:
        self.engine.stop()
        self.listeners.stop()
        self.recorder.close()


@pytest.fixture
def live() -> Iterator[LiveHarness]:
    """Engine + bus + real listeners started on demand by the loaded rules."""
    h = LiveHarness()
    yield h
    h.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real event/run/variable store in a temporary folder."""
    s = Store(tmp_path / "nerve.db")
    yield s
    s.close()


@pytest.fixture
def stored(store: Store) -> Iterator[Harness]:
    """A harness whose engine records runs and variables in a real Store."""
    h = Harness(store=store)
    yield h
    h.close()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary folder (Unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="nv", dir="/tmp"))
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def xdg_folders(root: Path) -> dict[str, str]:
    """A fresh user's XDG folders under ``root`` (made, user-only): name -> path."""
    folders: dict[str, str] = {}
    for name, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        folder = root / sub
        folder.mkdir(mode=0o700)
        folders[name] = str(folder)
    return folders


@pytest.fixture
def nerve_env(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """XDG folders of a fresh user, for running `nerve` as a subprocess or in-process."""
    env = dict(os.environ)
    for name, folder in xdg_folders(short_tmp).items():
        env[name] = folder
        monkeypatch.setenv(name, folder)
    env.pop("DISPLAY", None)  # notifications go to the log in tests
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    return env


# A real X server for the modules that need one (fixtures: xserver, xserver_wm).
from xserver import xserver, xserver_wm  # noqa: E402, F401


@pytest.fixture(autouse=True, scope="session")
def _quick_validation_agrees_with_jsonschema() -> Iterator[None]:
    """Every value the tests validate is also given to jsonschema, and the
    quick check (``validation.is_valid``) must reach the same verdict."""
    import json

    from nerve.engine import validation

    quick = validation.is_valid
    # Collected, not raised where they happen: the loader reports anything a
    # rule raises as an error of that rule, and would swallow the assertion.
    disagreements: list[str] = []

    def cross_checked(schema: dict[str, Any], value: Any) -> bool | None:
        verdict = quick(schema, value)
        if verdict is not None:
            # jsonschema as Nerve runs it (JSON Schema's '$' in patterns, 'maxDuration').
            full = validation._validator(json.dumps(schema, sort_keys=True))
            expected = full.is_valid(value)
            if verdict != expected:
                disagreements.append(
                    f"quick check says {verdict}, jsonschema {expected}, for {value!r}"
                )
        return verdict

    validation.is_valid = cross_checked
    try:
        yield
    finally:
        validation.is_valid = quick
    assert not disagreements, disagreements[:5]
