"""A run's place is released on every path: cancelled before it starts, during
each kind of action, by a pause, a reload, a switch-off, a suspension, a failing
hook, or the engine stopping. A property test drives random interleavings of
events, pause, resume, reload, enable/disable and cancellation against a real
engine and checks that nothing stays counted once everything has settled."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from conftest import Harness, rules_from, wait_until
from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.engine.model import Rule
from test_cli import StartNerve, cli_ok, start_nerve  # noqa: F401

MODES = """
  - id: par
    when: {event: t.par}
    mode: parallel
    max: 3
    do: [{delay: "{event.ms}ms"}]
  - id: single
    when: {event: t.single}
    do: [{delay: "{event.ms}ms"}]
  - id: queued
    when: {event: t.queued}
    mode: queued
    max: 3
    do: [{delay: "{event.ms}ms"}]
  - id: restart
    when: {event: t.restart}
    mode: restart
    do: [{delay: "{event.ms}ms"}]
  - id: waiter
    when: {event: t.wait}
    mode: parallel
    max: 2
    do: [{wait_for: {event: t.never, timeout: 40ms}}]
  - id: prog
    when: {event: t.prog}
    mode: parallel
    max: 2
    do: [{run: {argv: [sleep, "0.02"], wait: true}}]
  - id: deb
    when: {event: t.deb}
    mode: parallel
    max: 2
    debounce: 5ms
    do: [{delay: "{event.ms}ms"}]
"""
TYPES = {
    "par": "t.par",
    "single": "t.single",
    "queued": "t.queued",
    "restart": "t.restart",
    "waiter": "t.wait",
    "prog": "t.prog",
    "deb": "t.deb",
}


def running(h: Harness) -> int:
    return int(h.engine.call(h.engine.status)["running"])


def settle(h: Harness, timeout: float = 10.0) -> None:
    wait_until(lambda: running(h) == 0, timeout, "no run left counted as running")


def fresh_run_starts(h: Harness, rule_id: str, type_: str) -> None:
    """A new event starts a new run of ``rule_id`` (no stale accounting refuses it)."""
    before = h.summary(rule_id)
    h.publish(type_, ms=1)
    wait_until(lambda: h.summary(rule_id)["fired"] > before["fired"], 5, f"{rule_id} fires")
    after = h.summary(rule_id)
    assert after["skipped"] == before["skipped"], (rule_id, after["last_skip"])


def on_loop(h: Harness, fn: Callable[[], Any]) -> Any:
    return h.engine.call(fn)


def tasks(engine: Engine) -> list[Any]:
    """The runs the rules count as theirs (on the loop)."""
    return [t for s in engine._states.values() for t in s.active]


# ------------------------------------------------------- cancelled before start


@pytest.mark.parametrize("rule_id", sorted(TYPES))
@pytest.mark.parametrize("how", ["pause", "disable", "reload-away", "suspend", "restart-mode"])
def test_runs_cancelled_before_they_start_are_released(
    harness: Harness, rule_id: str, how: str
) -> None:
    """Events handled and the runs cancelled in the same turn of the loop: the
    runs' coroutines never begin (the starter pack's `remind` had 20 stuck)."""
    rules = harness.load(MODES)
    engine = harness.engine
    key = f"test.pack/{rule_id}"

    # (Cancelling only the running runs lets a queued rule's waiting ones start.)
    ms = 50 if how == "restart-mode" else 5000

    def burst_then_cancel() -> int:
        for _ in range(6):
            harness.publish(TYPES[rule_id], ms=ms)
        engine._drain()
        started = len(tasks(engine))
        if how == "pause":
            engine.pause("test")
        elif how == "disable":
            engine.set_enabled(key, False)
        elif how == "reload-away":
            engine.set_rules([r for r in rules if r.key != key])
        elif how == "suspend":
            state = engine._states[key]
            engine._suspend(state, "test", harness.publish("t.x"))
        else:  # every run of a restart rule cancels the one before, before it began
            for _ in range(3):
                harness.publish("t.restart", ms=ms)
            engine._drain()
            for task in tasks(engine):
                task.cancel()
        return started

    started = on_loop(harness, burst_then_cancel)
    if rule_id != "deb":  # (debounced: nothing started yet)
        assert started >= 1
    settle(harness)
    # Put everything back and check the rule takes new runs, up to its max.
    on_loop(harness, engine.resume)
    harness.load(MODES)
    on_loop(harness, lambda: engine.set_enabled(key, True))
    for _ in range(3):
        fresh_run_starts(harness, rule_id, TYPES[rule_id])
        settle(harness)


# -------------------------------------------------- cancelled during an action

DURING = {
    "delay": "[{delay: 10s}]",
    "wait_for": "[{wait_for: {event: t.never, timeout: 10s}}]",
    "program": "[{run: {argv: [sleep, '10'], wait: true}}]",
    "shell": "[{shell: {command: 'sleep 10', wait: true}}]",
    "if-delay": "[{if: [{event: {n: 1}}], then: [{delay: 10s}], else: [{delay: 10s}]}]",
    "http": "[{http: {url: 'http://127.0.0.1:PORT/', timeout: 10s}}]",
}


@pytest.fixture(scope="module")
def silent_port() -> Any:
    """A local port that takes connections and never answers."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("action", sorted(DURING))
@pytest.mark.parametrize("how", ["pause", "disable", "reload-away", "reload-same", "stop"])
def test_runs_cancelled_during_each_action_are_released(
    action: str, how: str, silent_port: int
) -> None:
    h = Harness()
    try:
        do = DURING[action].replace("PORT", str(silent_port))
        text = f"""
  - id: r
    when: {{event: t.go}}
    mode: parallel
    max: 4
    do: {do}
"""
        h.load(text)
        for n in range(4):
            h.publish("t.go", n=n)
        wait_until(lambda: running(h) == 4, 10, "four runs in progress")
        time.sleep(0.05)  # (each run is in its action by now)
        engine = h.engine
        if how == "pause":
            on_loop(h, lambda: engine.pause("test"))
        elif how == "disable":
            on_loop(h, lambda: engine.set_enabled("test.pack/r", False))
        elif how == "reload-away":
            on_loop(h, lambda: engine.set_rules([]))
        elif how == "reload-same":
            # The runs go on through a reload of the same rule; then the pause ends them.
            h.load(text)
            assert running(h) == 4
            on_loop(h, lambda: engine.pause("test"))
        else:
            engine.stop()
            assert sum(len(s.active) for s in engine._states.values()) == 0
            return
        settle(h)
        on_loop(h, engine.resume)
        h.load(text.replace(do, "[{log: hi}]"))
        on_loop(h, lambda: engine.set_enabled("test.pack/r", True))
        for _ in range(5):  # more than its max: nothing stale counts against it
            fresh_run_starts(h, "r", "t.go")
        settle(h)
    finally:
        h.close()


# --------------------------------------------------------- hooks that fail


class FailingStore:
    """A store whose every write fails (as a full or broken disk would)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def load_variables(self) -> dict[str, Any]:
        return {}

    def record_run(self, record: Any) -> None:
        raise self.exc

    def set_variable(self, name: str, value: Any) -> None:
        raise self.exc


@pytest.mark.parametrize(
    "broken",
    ["record_run", "record_run-runtime", "notifier", "on_change", "store-executor-gone"],
)
def test_runs_are_released_when_a_hook_fails(broken: str) -> None:
    import sqlite3

    store: Any = None
    if broken == "record_run":
        store = FailingStore(sqlite3.OperationalError("database or disk is full"))
    elif broken == "record_run-runtime":
        store = FailingStore(RuntimeError("boom"))
    bus = Bus()

    def notifier(title: str, body: str, urgency: str) -> str:
        raise RuntimeError("notifications are broken")

    engine = Engine(bus, store=store, notifier=notifier if broken == "notifier" else None)
    if broken == "on_change":

        def bad_watcher() -> None:
            engine._change_pending = False  # keep calling it
            raise RuntimeError("watcher broken")

        engine.on_change = bad_watcher
    engine.start()
    h = Harness.__new__(Harness)
    h.bus, h.engine = bus, engine
    try:
        text = """
  - id: r
    when: {event: t.go}
    mode: parallel
    max: 2
    do: [{notify: hi}, {run: {argv: ["false"], wait: true}}]
"""
        engine.call(engine.set_rules, rules_from(text))
        if broken == "store-executor-gone":
            engine._store_executor.shutdown(wait=True)
            engine.store = FailingStore(RuntimeError("unused"))
        for _ in range(6):
            bus.publish("t.go", {}, source="test")
            wait_until(lambda: engine.call(engine.status)["running"] == 0, 5, "released")
        rules = engine.call(engine.rules)
        assert rules[0]["fired"] == 6
        assert rules[0]["skipped"] == {}
    finally:
        engine.stop()


# ------------------------------------------------------- status shows runs


def test_status_lists_each_running_run_with_its_rule_and_age(harness: Harness) -> None:
    harness.load(MODES)
    harness.publish("t.par", ms=5000)
    harness.publish("t.queued", ms=5000)
    wait_until(lambda: running(harness) == 2)
    time.sleep(0.05)  # (an age to see)
    status = harness.engine.call(harness.engine.status)
    rules = sorted(r["rule"] for r in status["runs"])
    assert rules == ["test.pack/par", "test.pack/queued"]
    for run in status["runs"]:
        assert run["age"] >= 0.05
        assert len(run["id"]) == 16
    harness.engine.call(harness.engine.pause, "test")
    settle(harness)
    assert harness.engine.call(harness.engine.status)["runs"] == []


# ------------------------------------------------------- random interleavings

EXAMPLES = 25


class Interleavings(RuleBasedStateMachine):
    """Random events, pauses, resumes, reloads, switches and cancellations."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.rules: list[Rule] = rules_from(MODES)
        self.h.engine.call(self.h.engine.set_rules, self.rules)

    @initialize()
    def ready(self) -> None:
        pass

    @rule(
        kinds=st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=12),
        ms=st.integers(0, 40),
    )
    def burst(self, kinds: list[str], ms: int) -> None:
        for kind in kinds:
            self.h.publish(TYPES[kind], ms=ms)

    @rule(kinds=st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=8))
    def burst_then_pause_same_turn(self, kinds: list[str]) -> None:
        engine = self.h.engine

        def go() -> None:
            for kind in kinds:
                self.h.publish(TYPES[kind], ms=30)
            engine._drain()
            engine.pause("test")

        engine.call(go)

    @rule()
    def pause(self) -> None:
        self.h.engine.call(self.h.engine.pause, "test")

    @rule(seconds=st.floats(0.001, 0.03))
    def pause_for(self, seconds: float) -> None:
        self.h.engine.call(self.h.engine.pause, "test", seconds)

    @rule()
    def resume(self) -> None:
        self.h.engine.call(self.h.engine.resume)

    @rule(drop=st.sets(st.sampled_from(sorted(TYPES)), max_size=3))
    def reload(self, drop: set[str]) -> None:
        keep = [r for r in rules_from(MODES) if r.id not in drop]
        self.h.engine.call(self.h.engine.set_rules, keep)

    @rule(rule_id=st.sampled_from(sorted(TYPES)), on=st.booleans())
    def switch(self, rule_id: str, on: bool) -> None:
        self.h.engine.call(self.h.engine.set_enabled, f"test.pack/{rule_id}", on)

    @rule(count=st.integers(1, 5))
    def cancel_some(self, count: int) -> None:
        def go() -> None:
            for task in tasks(self.h.engine)[:count]:
                task.cancel()

        self.h.engine.call(go)

    def teardown(self) -> None:
        try:
            engine = self.h.engine
            engine.call(engine.resume)
            engine.call(engine.set_rules, rules_from(MODES))
            for rule_id in TYPES:
                engine.call(engine.set_enabled, f"test.pack/{rule_id}", True)
            settle(self.h)
            for rule_id, type_ in TYPES.items():
                fresh_run_starts(self.h, rule_id, type_)
            settle(self.h)
        finally:
            self.h.close()


Interleavings.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
TestInterleavings = Interleavings.TestCase
TestInterleavings.pytestmark = [pytest.mark.timeout(120)]  # type: ignore[attr-defined]
# ------------------------------------------------------------ the daemon


def test_nerve_status_shows_each_running_run_with_its_age(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    pack = short_tmp / "slow.yaml"
    pack.write_text(
        "nerve: 1\npack: {id: test.slow}\nrules:\n"
        "  - id: slow\n    when: {event: t.slow}\n    mode: parallel\n    max: 3\n"
        "    do: [{delay: 30s}]\n"
        "  - id: other\n    when: {event: t.other}\n"
        "    do: [{wait_for: {event: t.x, timeout: 30s}}]\n"
    )
    start_nerve("--rules", pack)
    for type_ in ("t.slow", "t.slow", "t.other"):
        cli_ok(nerve_env, "emit", type_)
    status = wait_until(
        lambda: (s := cli_ok(nerve_env, "status")).count("running for") == 3 and s,
        10,
        "three runs listed",
    )
    assert "3 running" in status
    lines = [line for line in status.splitlines() if "running for" in line]
    assert sum("of test.slow/slow:" in line for line in lines) == 2
    assert sum("of test.slow/other:" in line for line in lines) == 1
    cli_ok(nerve_env, "pause")
    wait_until(lambda: "running for" not in cli_ok(nerve_env, "status"), 10, "none listed")
    cli_ok(nerve_env, "resume")
    cli_ok(nerve_env, "emit", "t.slow")
    wait_until(lambda: "1 running" in cli_ok(nerve_env, "status"), 10, "a new run starts")
