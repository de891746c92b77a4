"""The listener manager: on-demand start/stop, reconfiguration, supervision."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from conftest import Harness, wait_until
from nerve.bus import Bus
from nerve.engine.registry import Matcher, Trigger, triggers
from nerve.listeners import manager as manager_module
from nerve.listeners.base import Listener, ListenerRegistry, ListenerUnavailable, Need
from nerve.listeners.manager import ListenerManager


class Recording(Listener):
    """A listener type for these tests: records calls, can be told to fail."""

    id = "recording"
    instances: list[Recording] = []
    fail_start = 0  # how many starts raise before one succeeds

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.calls: list[tuple[str, tuple[Need, ...]]] = []
        self.stopped = threading.Event()
        Recording.instances.append(self)

    def start(self, needs: Sequence[Need]) -> None:
        self.calls.append(("start", tuple(needs)))
        if Recording.fail_start:
            Recording.fail_start -= 1
            raise OSError("device busy")

    def reconfigure(self, needs: Sequence[Need]) -> None:
        self.calls.append(("reconfigure", tuple(needs)))

    def stop(self) -> None:
        self.calls.append(("stop", ()))
        self.stopped.set()

    def detail(self) -> str:
        return "recording things"


class Missing(Listener):
    id = "missing"

    def start(self, needs: Sequence[Need]) -> None:
        raise ListenerUnavailable("no display: DISPLAY is not set")

    def stop(self) -> None:
        pass


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[ListenerManager]:
    monkeypatch.setattr(manager_module, "BACKOFF_FIRST_S", 0.05)
    Recording.instances = []
    Recording.fail_start = 0
    registry = ListenerRegistry()
    registry.register(Recording)
    registry.register(Missing)
    m = ListenerManager(Bus(), registry)
    m.start()
    yield m
    m.stop()


def state(m: ListenerManager, lid: str) -> dict[str, object]:
    return next((s for s in m.status() if s["id"] == lid), {})


def test_starts_on_demand_reconfigures_and_stops(manager: ListenerManager) -> None:
    assert manager.status() == []
    manager.update({"recording": ["~/a"]})
    wait_until(lambda: state(manager, "recording").get("state") == "running")
    (inst,) = Recording.instances
    assert inst.calls == [("start", ("~/a",))]
    assert state(manager, "recording")["detail"] == "recording things"

    manager.update({"recording": ["~/a", "~/b", "~/a"]})
    wait_until(lambda: len(inst.calls) == 2)
    assert inst.calls[1] == ("reconfigure", ("~/a", "~/b"))

    manager.update({})
    assert inst.stopped.wait(5)
    wait_until(lambda: manager.status() == [])


def test_unavailable_is_reported_and_others_run(manager: ListenerManager) -> None:
    manager.update({"missing": [None], "recording": [None], "nonexistent": [None]})
    wait_until(lambda: state(manager, "recording").get("state") == "running")
    wait_until(lambda: state(manager, "missing").get("state") == "unavailable")
    assert state(manager, "missing")["error"] == "no display: DISPLAY is not set"
    wait_until(lambda: state(manager, "nonexistent").get("state") == "unavailable")
    assert "no listener 'nonexistent'" in str(state(manager, "nonexistent")["error"])


def test_failed_start_is_retried_with_backoff(manager: ListenerManager) -> None:
    Recording.fail_start = 2
    manager.update({"recording": [None]})
    wait_until(lambda: state(manager, "recording").get("state") == "running")
    assert len(Recording.instances) == 3
    assert state(manager, "recording")["restarts"] == 2


def test_a_listener_that_dies_is_restarted(manager: ListenerManager) -> None:
    manager.update({"recording": [None]})
    wait_until(lambda: state(manager, "recording").get("state") == "running")
    first = Recording.instances[0]
    first.failed(ConnectionError("X connection closed"))
    wait_until(lambda: len(Recording.instances) == 2)
    wait_until(lambda: state(manager, "recording").get("state") == "running")
    assert first.stopped.is_set()
    assert state(manager, "recording")["restarts"] == 1
    # A late report from the replaced instance changes nothing.
    first.failed(ConnectionError("late"))
    assert state(manager, "recording")["state"] == "running"


def test_a_watcher_sees_every_change_of_state(manager: ListenerManager) -> None:
    """The window is told instead of polling: after each change, status() as
    read by the watcher shows it."""
    seen: list[object] = []
    changed = threading.Event()

    def on_change() -> None:
        seen.append(state(manager, "recording").get("state"))
        changed.set()

    manager.on_change = on_change
    manager.update({"recording": [None]})
    wait_until(lambda: "running" in seen)
    Recording.instances[0].failed(ConnectionError("X connection closed"))
    wait_until(lambda: "failed" in seen)  # reported as it happens, not at the retry
    wait_until(lambda: seen[-1] == "running" and len(Recording.instances) == 2)
    changed.clear()
    manager.update({})
    assert changed.wait(5)
    wait_until(lambda: seen[-1] is None)  # gone from status()


def test_stop_stops_every_listener(manager: ListenerManager) -> None:
    manager.update({"recording": [None]})
    wait_until(lambda: state(manager, "recording").get("state") == "running")
    manager.stop()
    assert Recording.instances[0].stopped.is_set()


def test_the_states_change_only_under_the_lock(manager: ListenerManager) -> None:
    """status() reads the states under the lock from other threads (the window's
    timer, IPC): the supervisor adds and removes them under it too."""
    unlocked: list[tuple[str, str]] = []
    lock = manager._lock

    class Guarded(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            if not lock.locked():
                unlocked.append(("add", key))
            super().__setitem__(key, value)

        def pop(self, key: str, *default: Any) -> Any:
            if not lock.locked():
                unlocked.append(("remove", key))
            return super().pop(key, *default)

    with lock:
        manager._states = Guarded(manager._states)
    manager.update({"recording": [None], "missing": [None]})
    wait_until(lambda: state(manager, "recording").get("state") == "running")
    wait_until(lambda: state(manager, "missing").get("state") == "unavailable")
    manager.update({})
    wait_until(lambda: manager.status() == [])
    assert unlocked == []


def test_engine_reports_needs_of_enabled_rules(harness: Harness) -> None:
    seen: list[dict[str, list[object]]] = []
    harness.engine.on_needs = seen.append

    class Watch(Trigger):
        key = "test.watch"
        schema = {"type": "string"}
        listeners = frozenset({"recording"})

        def __init__(self, path: str) -> None:
            self.path = path

        @classmethod
        def compile(cls, options: object, ctx: object) -> Watch:
            return cls(str(options))

        def matchers(self) -> list[Matcher]:
            return [Matcher("test.watched")]

        def needs(self) -> Iterator[tuple[str, object]]:  # type: ignore[override]
            yield "recording", self.path

    triggers.register(Watch)
    try:
        harness.load(
            """
  - id: a
    when: {test.watch: /tmp/a}
    do: [{log: a}]
  - id: b
    when: {sequence: {within: 1s, steps: [{test.watch: /tmp/b}, {event: x.y}]}}
    do: [{log: b}]
"""
        )
        wait_until(lambda: seen)
        assert seen[-1] == {"recording": ["/tmp/a", "/tmp/b"]}
        harness.engine.call(harness.engine.set_enabled, "test.pack/a", False)
        assert seen[-1] == {"recording": ["/tmp/b"]}
        harness.engine.call(harness.engine.set_rules, [])
        assert seen[-1] == {}
    finally:
        triggers._types.pop("test.watch")
