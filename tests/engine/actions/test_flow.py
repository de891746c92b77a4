"""Actions about the run and the engine: delay, wait_for, if/then/else, set, log,
notify, emit, pause, rule.enable and rule.disable."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import PACK_HEAD, Harness, wait_until
from nerve.events import Event, freeze
from nerve.packs.loader import load_pack
from nerve.storage import Store


def run_record(store: Store, rule: str = "r", count: int = 1) -> dict[str, Any]:
    runs = wait_until(
        lambda: (r := store.query_runs(rule_id=f"test.pack/{rule}")) and len(r) >= count and r,
        10,
        f"{count} run record(s) of {rule}",
    )
    return dict(runs[0])  # the newest


def load_errors(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


# --------------------------------------------------------------------- delay


def test_delay_waits(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - emit: started
      - delay: 300ms
      - emit: done
"""
    )
    stored.publish("t.go")
    (started,) = stored.recorder.wait("started")
    (done,) = stored.recorder.wait("done")
    assert done.time - started.time >= 0.29
    run = run_record(store)
    delay = run["trace"]["actions"][1]
    assert delay["result"] == {"waited_s": 0.3}
    assert delay["ms"] >= 290


def test_delay_from_a_placeholder(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    mode: queued
    when: {event: t.go}
    do:
      - delay: "{event.wait}"
      - emit: done
"""
    )
    stored.publish("t.go", wait="150ms")
    stored.recorder.wait("done")
    assert run_record(store)["trace"]["actions"][0]["result"] == {"waited_s": 0.15}
    stored.publish("t.go", wait="soon")
    (failed,) = stored.recorder.wait("rule.failed")
    assert "expected a duration" in failed.data["error"]
    stored.publish("t.go", wait="inf")  # not a wait that never ends
    stored.recorder.wait("rule.failed", 2)


# ------------------------------------------------------------------ wait_for


WAITER = """
  - id: r
    when: {event: t.go}
    do:
      - emit: waiting
      - wait_for: {event: {type: t.reply, data: {to: "yes*"}}, timeout: %s}
      - emit: done
"""


def test_wait_for_continues_on_the_matching_event(stored: Harness, store: Store) -> None:
    stored.load(WAITER % "5s")
    stored.publish("t.go")
    stored.recorder.wait("waiting")
    stored.publish("t.reply", to="no")
    reply = stored.publish("t.reply", to="yes please")
    stored.recorder.wait("done")
    (_, wait, _) = run_record(store)["trace"]["actions"]
    assert wait["result"] == {"event": reply.id, "type": "t.reply"}


def test_wait_for_timeout_fails_the_run(stored: Harness, store: Store) -> None:
    stored.load(WAITER % "200ms")
    start = time.monotonic()
    stored.publish("t.go")
    (failed,) = stored.recorder.wait("rule.failed")
    assert 0.19 <= time.monotonic() - start < 5
    assert failed.data["error"] == "no t.reply event within 0.2s"
    assert stored.recorder.of("done") == []


def test_wait_for_may_go_on_after_a_timeout(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - wait_for: {event: t.reply, timeout: 100ms, continue_on_timeout: true}
      - emit: done
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("done")
    assert run_record(store)["trace"]["actions"][0]["result"] == {"timed_out": True}


def test_wait_for_an_indexed_value_of_another_type(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - emit: waiting
      - wait_for: {event: {type: t.reply, data: {code: "200"}}, timeout: 5s}
      - emit: done
"""
    )
    harness.publish("t.go")
    harness.recorder.wait("waiting")
    harness.publish("t.reply", code=True)
    harness.publish("t.reply", code=200)  # the number 200 is the text "200"
    harness.recorder.wait("done")


# ----------------------------------------------------------------------- if


IF_RULE = """
  - id: r
    when: {event: t.go}
    do:
      - if: [{event: {size: {gt: 100}}}, {var: {mode: work}}]
        then:
          - emit: {type: branch, data: {which: then}}
        else:
          - emit: {type: branch, data: {which: else}}
          - if: {event: {size: 0}}
            then: [{emit: {type: branch, data: {which: empty}}}]
      - emit: done
"""


@pytest.mark.parametrize(
    ("size", "mode", "branches"),
    [
        (500, "work", ["then"]),
        (500, "home", ["else"]),
        (50, "work", ["else"]),
        (0, "work", ["else", "empty"]),
    ],
)
def test_if_then_else(
    stored: Harness, store: Store, size: int, mode: str, branches: list[str]
) -> None:
    stored.engine.call(stored.engine.set_variable, "mode", mode)
    stored.load(IF_RULE)
    stored.publish("t.go", size=size)
    stored.recorder.wait("done")
    assert [e.data["which"] for e in stored.recorder.of("branch")] == branches
    trace = run_record(store)["trace"]
    first = trace["actions"][0]
    assert first["path"] == "do[0]"
    assert first["result"]["branch"] == branches[0]
    # The conditions inside the action are in the trace too, with their paths
    # written as the actions' are (the rule is the run's).
    paths = [c["path"] for c in trace["conditions"]]
    assert paths[0] == "do[0].if[0]"
    if size == 0:
        assert paths[-1] == "do[0].else[1].if[0]"
    assert [a["path"] for a in trace["actions"]][1] == (
        "do[0].then[0]" if size > 100 and mode == "work" else "do[0].else[0]"
    )


def test_if_needs_then() -> None:
    errors = load_errors("  - id: r\n    when: {event: t.go}\n    do: [{if: {event: {a: 1}}}]\n")
    assert any("'if' needs 'then'" in e for e in errors)


# ---------------------------------------------------------------------- set


def test_set_keeps_types_and_null_removes(harness: Harness) -> None:
    harness.engine.call(harness.engine.set_variable, "old", "x")
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - set:
          count: "{event.n}"
          label: "n={event.n}"
          flag: true
          list: [1, "{event.n}"]
          nested: {who: "{event.who}"}
          old: null
      - emit: done
"""
    )
    harness.publish("t.go", n=3, who="me")
    harness.recorder.wait("done")
    assert harness.engine.variables == {
        "count": 3,
        "label": "n=3",
        "flag": True,
        "list": [1, 3],
        "nested": {"who": "me"},
    }


def test_set_is_seen_by_later_actions_of_the_same_run(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - set: {step: one}
      - emit: {type: done, data: {step: "{var.step}"}}
"""
    )
    harness.publish("t.go")
    (done,) = harness.recorder.wait("done")
    assert done.data["step"] == "one"


def test_set_rejects_bad_names() -> None:
    errors = load_errors("  - id: r\n    when: {event: t.go}\n    do: [{set: {'a b': 1}}]\n")
    assert errors


# ------------------------------------------------------------ log and notify


def test_log(stored: Harness, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nerve.rules")
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - log: "plain {event.who}"
      - log: {message: "loud {rule.id}", level: error}
"""
    )
    stored.publish("t.go", who="me")
    run = run_record(store)
    assert [a["result"] for a in run["trace"]["actions"]] == ["plain me", "loud r"]
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "nerve.rules"]
    assert records == [("INFO", "[test.pack/r] plain me"), ("ERROR", "[test.pack/r] loud r")]


def test_log_in_a_dry_run_says_so(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nerve.rules")
    (rule,) = harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - log: "plain {event.who}"
"""
    )
    event = Event("t.go", freeze({"who": "me"}), "test", 1, time.time(), time.monotonic_ns())
    assert harness.engine.loop is not None
    ctx = asyncio.run_coroutine_threadsafe(
        harness.engine.dry_run(rule, event), harness.engine.loop
    ).result(timeout=10)
    assert ctx.trace.actions[0]["result"] == "plain me"  # the trace shows the text itself
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "nerve.rules"]
    # Nerve's log must not read as if the rule had run (the editor's Test button).
    assert records == [("INFO", "(dry run) [test.pack/r] plain me")]


def test_notify(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - notify: "Moved {event.name}"
      - notify: {title: "Nerve: {rule.id}", body: "{event.name} done", urgency: critical}
"""
    )
    stored.publish("t.go", name="a.png")
    stored.recorder.wait("test.notified", 2)
    assert stored.notifications == [("Nerve", "Moved a.png"), ("Nerve: r", "a.png done")]
    actions = run_record(store)["trace"]["actions"]
    assert actions[1]["result"] == {"title": "Nerve: r", "body": "a.png done", "via": "test"}


def test_notify_needs_title_or_body() -> None:
    errors = load_errors("  - id: r\n    when: {event: t.go}\n    do: [{notify: {urgency: low}}]\n")
    assert errors


# ---------------------------------------------------------------------- emit


def test_emit_carries_data_cause_and_depth(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - emit:
          type: my.done
          data:
            path: "{event.path}"
            size: "{event.size}"
            info: {n: "{event.size}"}
            tags: "{event.tags}"
            text: "{event.size} bytes"
      - emit: plain.done
"""
    )
    stored.publish("t.go", path="/x y", size=12, tags=["a", "b"])
    (done,) = stored.recorder.wait("my.done")
    (plain,) = stored.recorder.wait("plain.done")
    assert done.as_dict()["data"] == {
        "path": "/x y",
        "size": 12,
        "info": {"n": 12},
        "tags": ["a", "b"],
        "text": "12 bytes",
    }
    assert done.source == "rule:test.pack/r"
    assert done.depth == plain.depth == 1
    run = run_record(store)
    assert done.cause == plain.cause == run["id"]
    assert plain.data == {}


def test_emit_type_must_be_valid() -> None:
    errors = load_errors("  - id: r\n    when: {event: t.go}\n    do: [{emit: Not.Valid}]\n")
    assert any("is not an event type" in e for e in errors)


# --------------------------------------------------------------------- pause


def test_pause_action_pauses_and_stops_its_own_run(
    stored: Harness, store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "after-pause"
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - pause:
      - run: [touch, "{marker}"]
      - emit: never
  - id: other
    when: {{event: t.other}}
    do: [{{emit: other.done}}]
"""
    )
    stored.publish("t.go")
    run = run_record(store)
    # Pausing cancels every run, the pausing one included: nothing after
    # 'pause' starts (a program after it used to be started anyway).
    assert run["status"] == "cancelled"
    assert run["error"] == "paused by rule test.pack/r"
    assert [a["action"] for a in run["trace"]["actions"]] == ["pause"]
    assert not marker.exists()
    status = stored.engine.call(stored.engine.status)
    assert status["paused"] is True
    assert status["pause_reason"] == "paused by rule test.pack/r"
    stored.publish("t.other")
    wait_until(lambda: stored.summary("other")["skipped"].get("paused") == 1, 5, "skipped")
    stored.engine.call(stored.engine.resume)
    stored.publish("t.other")
    stored.recorder.wait("other.done")
    assert not marker.exists()
    assert stored.recorder.of("never") == []


def test_pause_action_for_a_while(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do: [{pause: {for: 300ms}}]
  - id: other
    when: {event: t.other}
    do: [{emit: other.done}]
"""
    )
    harness.publish("t.go")
    wait_until(lambda: harness.engine.call(harness.engine.status)["paused"], 5, "paused")
    paused = time.monotonic()
    wait_until(lambda: not harness.engine.call(harness.engine.status)["paused"], 5, "resumed")
    assert time.monotonic() - paused >= 0.2
    harness.publish("t.other")
    harness.recorder.wait("other.done")


def test_pause_cancels_other_running_rules(harness: Harness) -> None:
    harness.load(
        """
  - id: slow
    when: {event: t.slow}
    do: [{emit: slow.started}, {delay: 30s}, {emit: slow.done}]
  - id: panic
    when: {event: t.panic}
    do: [{pause: }]
"""
    )
    harness.publish("t.slow")
    harness.recorder.wait("slow.started")
    start = time.monotonic()
    harness.publish("t.panic")
    wait_until(lambda: (harness.summary("slow")["last_run"] or {}).get("status"), 5, "cancelled")
    assert time.monotonic() - start < 1.0
    assert harness.summary("slow")["last_run"]["status"] == "cancelled"


# ---------------------------------------------------- rule.enable / disable


def test_rule_enable_and_disable(harness: Harness) -> None:
    harness.load(
        """
  - id: target
    enabled: false
    when: {event: t.ping}
    do: [{emit: pong}]
  - id: on_switch
    when: {event: t.on}
    do: [{rule.enable: target}, {emit: on.done}]
  - id: off_switch
    when: {event: t.off}
    do: [{rule.disable: test.pack/target}, {emit: off.done}]
"""
    )
    harness.publish("t.on")
    harness.recorder.wait("on.done")
    harness.publish("t.ping")
    harness.recorder.wait("pong")
    harness.publish("t.off")
    harness.recorder.wait("off.done")
    assert harness.summary("target")["enabled"] is False
    harness.publish("t.ping")
    harness.publish("t.on")  # handled after the ping: the ping found the rule off
    harness.recorder.wait("on.done", 2)
    assert len(harness.recorder.of("pong")) == 1


def test_rule_switch_of_an_unknown_rule_fails(harness: Harness) -> None:
    harness.load("  - id: r\n    when: {event: t.go}\n    do: [{rule.enable: ghost}]\n")
    harness.publish("t.go")
    (failed,) = harness.recorder.wait("rule.failed")
    assert "no rule 'test.pack/ghost' is loaded" in failed.data["error"]


def test_rule_disabling_itself_stops_its_run(stored: Harness, store: Store, tmp_path: Path) -> None:
    marker = tmp_path / "after-disable"
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - rule.disable: r
      - run: [touch, "{marker}"]
"""
    )
    stored.publish("t.go")
    run = run_record(store)
    assert run["status"] == "cancelled"
    assert not marker.exists()
    assert stored.summary("r")["enabled"] is False


# ---------------------------------------------------------- continue_on_error


def test_continue_on_error(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - rule.enable: ghost
        continue_on_error: true
      - emit: done
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("done")
    run = run_record(store)
    assert run["status"] == "ok"
    assert "no rule" in run["trace"]["actions"][0]["error"]
