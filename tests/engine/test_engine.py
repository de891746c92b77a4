"""The engine for real: run modes, rate controls, the cascade guard, pause,
switching rules on and off, variables, and the traces runs leave behind.

Runs that must stay "in progress" wait for a ``t.release`` event (``wait_for``)
instead of sleeping, so the tests decide when they end.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Harness, wait_until
from nerve.events import Event, freeze
from nerve.storage import Store

GATED = """
    do:
      - emit: {type: started, data: {n: "{event.n}"}}
      - wait_for: {event: t.release, timeout: 10s}
      - emit: {type: done, data: {n: "{event.n}"}}
"""


def runs_of(store: Store, rule_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The recorded runs of a rule, oldest first, once ``count`` are there."""

    def found() -> list[dict[str, Any]] | None:
        runs = store.query_runs(rule_id=f"test.pack/{rule_id}")
        return runs[::-1] if len(runs) >= count else None

    result: list[dict[str, Any]] = wait_until(found, 10, f"{count} run(s) of {rule_id}")
    return result


def ns(h: Harness, type_: str) -> list[Any]:
    return [e.data.get("n") for e in h.recorder.of(type_)]


# --------------------------------------------------------------------- modes


def test_single_ignores_triggers_while_running(harness: Harness) -> None:
    harness.load("  - id: r\n    when: {event: t.go}" + GATED)
    for n in (1, 2, 3):
        harness.publish("t.go", n=n)
    harness.recorder.wait("started")
    # The engine handles events in order: by the time it started run 1 it had
    # also skipped 2 and 3, so the counter settles without waiting on time.
    wait_until(lambda: harness.summary("r")["skipped"].get("busy") == 2, 5, "two skipped")
    harness.publish("t.release")
    harness.recorder.wait("done")
    assert ns(harness, "started") == [1]
    assert ns(harness, "done") == [1]
    summary = harness.summary("r")
    assert summary["fired"] == 1
    assert summary["last_skip"].startswith("busy")
    # Once it has finished, the rule takes the next trigger again.
    harness.publish("t.go", n=4)
    harness.recorder.wait("started", 2)
    assert ns(harness, "started") == [1, 4]


def test_restart_cancels_the_running_run(stored: Harness, store: Store) -> None:
    stored.load("  - id: r\n    mode: restart\n    when: {event: t.go}" + GATED)
    stored.publish("t.go", n=1)
    stored.recorder.wait("started")
    stored.publish("t.go", n=2)
    stored.recorder.wait("started", 2)
    first = runs_of(store, "r")[0]
    assert first["status"] == "cancelled"
    interrupted = first["trace"]["actions"][-1]
    assert (interrupted["action"], interrupted["error"]) == ("wait_for", "cancelled")
    stored.publish("t.release")
    stored.recorder.wait("done")
    assert ns(stored, "done") == [2]  # the cancelled run never got to its end
    assert [r["status"] for r in runs_of(store, "r", 2)] == ["cancelled", "ok"]


def test_queued_runs_one_after_another_in_order(harness: Harness) -> None:
    # max counts runs running or waiting (as in Home Assistant): 1 runs, 2 wait.
    harness.load("  - id: r\n    mode: queued\n    max: 3\n    when: {event: t.go}" + GATED)
    for n in (1, 2, 3, 4):
        harness.publish("t.go", n=n)
    harness.recorder.wait("started")
    wait_until(lambda: harness.summary("r")["queued"] == 2, 5, "two queued")
    summary = harness.summary("r")
    assert summary["running"] == 1
    assert summary["skipped"] == {"queue": 1}
    for count in (1, 2, 3):
        harness.recorder.wait("started", count)
        harness.publish("t.release")
        harness.recorder.wait("done", count)
    assert ns(harness, "started") == [1, 2, 3]
    assert ns(harness, "done") == [1, 2, 3]


def test_queued_max_one_behaves_like_single(harness: Harness) -> None:
    harness.load("  - id: r\n    mode: queued\n    max: 1\n    when: {event: t.go}" + GATED)
    harness.publish("t.go", n=1)
    harness.publish("t.go", n=2)
    harness.recorder.wait("started")
    wait_until(lambda: harness.summary("r")["skipped"].get("queue") == 1, 5, "one skipped")
    assert harness.summary("r")["queued"] == 0


def test_parallel_runs_side_by_side_up_to_max(harness: Harness) -> None:
    harness.load("  - id: r\n    mode: parallel\n    max: 2\n    when: {event: t.go}" + GATED)
    for n in (1, 2, 3):
        harness.publish("t.go", n=n)
    harness.recorder.wait("started", 2)
    wait_until(lambda: harness.summary("r")["skipped"].get("max") == 1, 5, "one over max")
    assert harness.summary("r")["running"] == 2
    harness.publish("t.release")  # one event ends both waits
    harness.recorder.wait("done", 2)
    assert sorted(ns(harness, "done")) == [1, 2]
    assert ns(harness, "started") == [1, 2]


# ------------------------------------------------------------- rate controls


def test_debounce_runs_once_for_the_last_of_a_burst(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    debounce: 200ms
    when: {event: t.go}
    do: [{emit: {type: done, data: {n: "{event.n}"}}}]
"""
    )
    start = time.monotonic()
    for n in range(1, 6):
        harness.publish("t.go", n=n)
    harness.recorder.wait("done")
    assert time.monotonic() - start >= 0.19  # it waited for the quiet period
    assert ns(harness, "done") == [5]
    assert harness.summary("r")["skipped"] == {"debounced": 4}
    # A short look (≤ 0.5 s) that no late run follows the burst.
    time.sleep(0.3)
    assert ns(harness, "done") == [5]


def test_throttle_lets_one_through_per_window(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    throttle: 300ms
    when: {event: t.go}
    do: [{emit: {type: done, data: {n: "{event.n}"}}}]
"""
    )
    start = time.monotonic()
    for n in (1, 2, 3):
        harness.publish("t.go", n=n)
    harness.recorder.wait("done")
    wait_until(lambda: harness.summary("r")["skipped"].get("throttled") == 2, 5, "throttled")
    assert ns(harness, "done") == [1]  # the first one wins, the others are dropped
    # No event marks the end of the window: let it pass, then one goes through again.
    time.sleep(max(0.0, start + 0.4 - time.monotonic()))
    harness.publish("t.go", n=4)
    harness.recorder.wait("done", 2)
    assert ns(harness, "done") == [1, 4]


def test_cooldown_counts_from_the_end_of_the_last_run(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    cooldown: 300ms
    when: {event: t.go}
    do:
      - delay: 200ms
      - emit: {type: done, data: {n: "{event.n}"}}
"""
    )
    harness.publish("t.go", n=1)
    harness.recorder.wait("done")
    ended = time.monotonic()
    harness.publish("t.go", n=2)  # 0 ms after the end: cooling down
    wait_until(lambda: harness.summary("r")["skipped"].get("cooldown") == 1, 5, "cooldown")
    # 300 ms after the end, not after the start (which was 500 ms ago by then).
    time.sleep(max(0.0, ended + 0.35 - time.monotonic()))
    harness.publish("t.go", n=3)
    harness.recorder.wait("done", 2)
    assert ns(harness, "done") == [1, 3]


def test_a_failed_condition_does_not_start_a_cooldown(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    cooldown: 10s
    when: {event: t.go}
    if: [{event: {ok: true}}]
    do: [{emit: {type: done, data: {n: "{event.n}"}}}]
"""
    )
    harness.publish("t.go", n=1, ok=False)
    wait_until(lambda: (harness.summary("r")["last_run"] or {}).get("status") == "condition")
    harness.publish("t.go", n=2, ok=True)
    harness.recorder.wait("done")
    assert ns(harness, "done") == [2]


# ------------------------------------------------------------- cascade guard


def test_self_triggering_rule_is_suspended_and_others_keep_firing(harness: Harness) -> None:
    harness.load(
        """
  - id: loop
    when: {event: t.loop}
    do: [{emit: t.loop}]
  - id: other
    when: {event: t.other}
    do: [{emit: other.done}]
"""
    )
    harness.publish("t.loop")
    (suspended,) = harness.recorder.wait("rule.suspended")
    assert suspended.data["rule"] == "test.pack/loop"
    assert "re-fired by its own events" in suspended.data["reason"]
    status = harness.engine.call(harness.engine.status)
    assert list(status["suspended"]) == ["test.pack/loop"]
    assert status["enabled"] == 1
    summary = harness.summary("loop")
    assert summary["suspended"] == suspended.data["reason"]
    assert summary["fired"] == 6  # the first run and 5 re-fires; the 6th re-fire is cut
    # Everything else keeps running...
    harness.publish("t.other")
    harness.recorder.wait("other.done")
    # ...and the loop is over: the cut rule ignores its trigger from outside too.
    harness.publish("t.loop")
    harness.publish("t.other")
    harness.recorder.wait("other.done", 2)
    assert harness.summary("loop")["fired"] == 6
    # Two from outside, and one from each of the 6 runs.
    assert len(harness.recorder.of("t.loop")) == 8
    assert len(harness.recorder.of("rule.suspended")) == 1


def test_ping_pong_past_max_depth_is_suspended(harness: Harness) -> None:
    harness.load(
        """
  - id: ping
    when: {event: t.ping}
    do: [{emit: t.pong}]
  - id: pong
    when: {event: t.pong}
    do: [{emit: t.ping}]
"""
    )
    harness.publish("t.ping")
    (suspended,) = harness.recorder.wait("rule.suspended")
    assert "cascade" in suspended.data["reason"]
    assert "limit 8" in suspended.data["reason"]
    deepest = max(e.depth for e in harness.recorder.events if e.type in ("t.ping", "t.pong"))
    assert deepest == 9
    status = harness.engine.call(harness.engine.status)
    assert list(status["suspended"]) == [suspended.data["rule"]]
    # Enabling a suspended rule revives it.
    assert harness.engine.call(harness.engine.set_enabled, suspended.data["rule"], True)
    assert harness.engine.call(harness.engine.status)["suspended"] == {}


def test_a_rule_reacting_to_another_rules_events_is_fine(harness: Harness) -> None:
    harness.load(
        """
  - id: first
    mode: queued
    when: {event: t.go}
    do: [{emit: step.one}]
  - id: second
    mode: queued
    when: {event: step.one}
    do: [{emit: step.two}]
"""
    )
    for _ in range(10):
        harness.publish("t.go")
    harness.recorder.wait("step.two", 10)
    assert harness.engine.call(harness.engine.status)["suspended"] == {}
    assert all(e.depth == 2 for e in harness.recorder.of("step.two"))


# --------------------------------------------------------------------- pause


def test_pause_cancels_a_run_in_a_delay_promptly(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: slow
    when: {event: t.go}
    do:
      - emit: started
      - delay: 30s
      - emit: done
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("started")
    paused_at = time.time()
    assert stored.engine.call(stored.engine.pause, "test") == 1
    (run,) = runs_of(store, "slow")
    assert run["status"] == "cancelled"
    assert run["error"] == "paused by test"
    assert run["ended"] - paused_at < 1.0  # not the delay's 30 s
    assert run["trace"]["actions"][1]["action"] == "delay"
    assert run["trace"]["actions"][1]["error"] == "cancelled"
    assert stored.recorder.of("done") == []
    status = stored.engine.call(stored.engine.status)
    assert status["paused"] is True
    assert status["running"] == 0


def test_paused_engine_starts_nothing_until_resumed(harness: Harness) -> None:
    harness.load("  - id: r\n    when: {event: t.go}\n    do: [{emit: done}]\n")
    harness.engine.call(harness.engine.pause, "test")
    harness.publish("t.go")
    wait_until(lambda: harness.summary("r")["skipped"].get("paused") == 1, 5, "skip")
    assert harness.summary("r")["fired"] == 0
    harness.engine.call(harness.engine.resume)
    harness.publish("t.go")
    harness.recorder.wait("done")
    assert harness.summary("r")["fired"] == 1


def test_pause_for_a_while_resumes_by_itself(harness: Harness) -> None:
    harness.load("  - id: r\n    when: {event: t.go}\n    do: [{emit: done}]\n")
    harness.engine.call(harness.engine.pause, "test", 0.2)
    assert harness.engine.call(harness.engine.status)["paused"]
    wait_until(lambda: not harness.engine.call(harness.engine.status)["paused"], 5, "resume")
    harness.publish("t.go")
    harness.recorder.wait("done")


def test_pause_drops_pending_debounce_and_queue(harness: Harness) -> None:
    harness.load(
        """
  - id: deb
    debounce: 200ms
    when: {event: t.deb}
    do: [{emit: deb.done}]
  - id: q
    mode: queued
    when: {event: t.go}
"""
        + GATED
    )
    harness.publish("t.deb")
    harness.publish("t.go", n=1)
    harness.publish("t.go", n=2)
    harness.recorder.wait("started")
    harness.engine.call(harness.engine.pause, "test")
    assert harness.summary("q")["queued"] == 0
    harness.engine.call(harness.engine.resume)
    # A short look (≤ 0.5 s) past the debounce time: the pending run was dropped,
    # and the queued run 2 did not start after run 1 was cancelled.
    time.sleep(0.35)
    assert harness.recorder.of("deb.done") == []
    assert ns(harness, "started") == [1]


# -------------------------------------------------------- enabling, disabling


def test_disabled_rule_does_not_fire_until_enabled(harness: Harness) -> None:
    harness.load(
        """
  - id: dormant
    enabled: false
    when: {event: t.go}
    do: [{emit: dormant.done}]
  - id: witness
    when: {event: t.go}
    do: [{emit: witness.done}]
"""
    )
    harness.publish("t.go")
    # Both rules see the same event in the same step: once the witness ran,
    # the disabled rule would have started too.
    harness.recorder.wait("witness.done")
    assert harness.summary("dormant")["fired"] == 0
    assert harness.summary("dormant")["enabled"] is False
    assert harness.engine.call(harness.engine.set_enabled, "test.pack/dormant", True)
    harness.publish("t.go")
    harness.recorder.wait("dormant.done")
    assert not harness.engine.call(harness.engine.set_enabled, "test.pack/nope", True)


def test_disabling_cancels_a_running_run(harness: Harness) -> None:
    harness.load("  - id: r\n    when: {event: t.go}" + GATED)
    harness.publish("t.go", n=1)
    harness.recorder.wait("started")
    harness.engine.call(harness.engine.set_enabled, "test.pack/r", False)
    wait_until(lambda: (harness.summary("r")["last_run"] or {}).get("status"), 5, "end")
    assert harness.summary("r")["last_run"]["status"] == "cancelled"
    assert harness.summary("r")["running"] == 0


def test_reloading_keeps_counters_and_drops_removed_rules(harness: Harness) -> None:
    rule = "  - id: r\n    when: {event: t.go}\n    do: [{emit: done}]\n"
    harness.load(rule)
    harness.publish("t.go")
    harness.recorder.wait("done")
    harness.load(rule + "  - id: s\n    when: {event: t.s}\n    do: [{emit: s.done}]\n")
    assert harness.summary("r")["fired"] == 1
    harness.load("  - id: s\n    when: {event: t.s}\n    do: [{emit: s.done}]\n")
    with pytest.raises(KeyError):
        harness.summary("r")
    harness.publish("t.go")
    harness.publish("t.s")
    harness.recorder.wait("s.done")
    assert len(harness.recorder.of("done")) == 1


# ----------------------------------------------------------------- variables


SET_AND_USE = """
  - id: set
    when: {event: t.set}
    do:
      - set: {greeting: "{event.text}", count: "{event.n}", gone: null}
      - emit: set.done
  - id: use
    when: {event: t.use}
    if: [{var: {count: {gt: 2}}}]
    do: [{emit: {type: used, data: {text: "hello {var.greeting}", count: "{var.count}"}}}]
"""


def test_variables_set_read_and_compared(harness: Harness) -> None:
    harness.load(SET_AND_USE)
    harness.publish("t.set", text="world", n=3)
    harness.recorder.wait("set.done")
    assert harness.engine.variables == {"greeting": "world", "count": 3}  # 3 stays a number
    harness.publish("t.use")
    (used,) = harness.recorder.wait("used")
    assert used.data == {"text": "hello world", "count": 3}


def test_variables_survive_an_engine_restart(store: Store) -> None:
    first = Harness(store=store)
    try:
        first.load(SET_AND_USE)
        first.publish("t.set", text="again", n=5)
        first.recorder.wait("set.done")
    finally:
        first.close()  # flushes the pending variable writes
    assert store.load_variables() == {"greeting": "again", "count": 5}

    second = Harness(store=store)
    try:
        assert second.engine.variables == {"greeting": "again", "count": 5}
        second.load(SET_AND_USE)
        second.publish("t.use")
        (used,) = second.recorder.wait("used")
        assert used.data == {"text": "hello again", "count": 5}
        second.load("  - id: clear\n    when: {event: t.c}\n    do: [{set: {count: null}}]\n")
        second.publish("t.c")
        wait_until(lambda: "count" not in second.engine.variables, 5, "count removed")
    finally:
        second.close()
    assert store.load_variables() == {"greeting": "again"}


# -------------------------------------------------------------------- traces


def test_run_record_has_event_verdicts_and_action_results(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: traced
    when: {event: {type: t.go, data: {who: "w*"}}}
    if:
      - event: {who: world}
      - any: [{var: {mode: work}}, {time: {after: "00:00"}}]
    do:
      - log: "hi {event.who}"
      - run: {argv: [python3, -c, "import sys; sys.exit(3)"], wait: true}
        continue_on_error: true
      - emit: {type: traced.done}
"""
    )
    event = stored.publish("t.go", who="world")
    stored.recorder.wait("traced.done")
    (run,) = runs_of(store, "traced")
    assert run["status"] == "ok"
    assert run["error"] is None
    assert run["event_id"] == event.id
    assert run["ended"] >= run["started"]
    trace = run["trace"]
    assert trace["event"]["data"] == {"who": "world"}
    assert trace["dry_run"] is False
    conditions = trace["conditions"]
    assert [(c["path"], c["condition"], c["ok"]) for c in conditions] == [
        ("if[0]", "event", True),
        ("if[1]", "any", True),
    ]
    assert "world" in conditions[0]["detail"]
    assert conditions[1]["detail"].startswith("[1] time")
    log_, run_, emit_ = trace["actions"]
    assert log_["path"] == "do[0]"
    assert log_["result"] == "hi world"
    assert run_["action"] == "run"
    assert "exited with 3" in run_["error"]
    assert emit_["result"]["event"] == stored.recorder.of("traced.done")[0].id
    for entry in (log_, run_, emit_):
        assert isinstance(entry["ms"], float)
        assert entry["ms"] >= 0
    assert run_["ms"] > log_["ms"]  # starting python3 takes longer than a log line


def test_run_record_of_a_failed_condition_and_a_failure(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: guarded
    when: {event: t.go}
    if: [{var: {mode: work}}]
    do: [{emit: never}]
  - id: failing
    when: {event: t.go}
    do:
      - log: before
      - run: {argv: [python3, -c, "import sys; sys.stderr.write('boom'); sys.exit(2)"], wait: true}
      - emit: never
"""
    )
    stored.publish("t.go")
    (failed,) = stored.recorder.wait("rule.failed")
    assert failed.data["rule"] == "test.pack/failing"
    assert "exited with 2: boom" in failed.data["error"]
    (guarded,) = runs_of(store, "guarded")
    assert guarded["status"] == "condition"
    assert guarded["trace"]["conditions"] == [
        {"path": "if[0]", "condition": "var", "ok": False, "detail": 'variables are {"mode": null}'}
    ]
    assert guarded["trace"]["actions"] == []
    (failing,) = runs_of(store, "failing")
    assert failing["status"] == "failed"
    assert failing["id"] == failed.data["run"]
    assert [a["action"] for a in failing["trace"]["actions"]] == ["log", "run"]
    assert "boom" in failing["trace"]["actions"][1]["error"]
    assert stored.recorder.of("never") == []


def test_trace_keeps_typed_text_private(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: keys
    when: {event: key.down}
    do: [{emit: keys.done}]
"""
    )
    stored.publish("key.down", key="p", modifiers=[], injected=False)
    stored.recorder.wait("keys.done")
    (run,) = runs_of(store, "keys")
    assert run["trace"]["event"]["data"]["key"] == "<private>"


def test_status_counts(harness: Harness) -> None:
    harness.load(
        "  - id: a\n    when: {event: t.a}\n    do: [{emit: a.done}]\n"
        "  - id: b\n    enabled: false\n    when: {event: t.b}\n    do: [{emit: b.done}]\n"
    )
    harness.publish("t.a")
    harness.recorder.wait("a.done")
    status = harness.engine.call(harness.engine.status)
    assert status["rules"] == 2
    assert status["enabled"] == 1
    assert status["paused"] is False
    assert status["handled"] >= 2


def test_a_dry_run_shows_waits_and_side_effects_without_doing_them(
    harness: Harness, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    (rule,) = harness.load(
        f"""
  - id: slow
    when: {{event: t.go}}
    do:
      - delay: 1h
      - run: [touch, "{marker}"]
      - set: {{seen: yes}}
"""
    )
    event = Event("t.go", freeze({}), "test", 1, time.time(), time.monotonic_ns())
    assert harness.engine.loop is not None
    future = asyncio.run_coroutine_threadsafe(
        harness.engine.dry_run(rule, event), harness.engine.loop
    )
    ctx = future.result(timeout=10)  # an hour's delay is shown, not waited for
    delay, run, set_ = ctx.trace.actions
    assert delay["result"] == {"would_wait_s": 3600.0}
    assert run["result"] == "skipped (dry run)"
    assert set_["action"] == "set"
    assert ctx.status == "ok"
    assert not marker.exists()
    assert "seen" not in harness.engine.variables  # a dry run's variables are its own
