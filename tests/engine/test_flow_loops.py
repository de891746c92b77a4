"""``stop``, ``repeat`` and ``parallel`` in a running engine: real programs,
real pauses, the cascade guard's bound on loops, dry runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PACK_HEAD, Harness, rules_from, wait_until
from nerve.engine.actions.flow import DRY_RUN_ITERATIONS, split_lines
from nerve.engine.runs import RunContext
from nerve.events import Event
from nerve.packs.loader import load_pack
from nerve.storage import Store


def run_record(store: Store, rule: str = "r", count: int = 1) -> dict[str, Any]:
    runs = wait_until(
        lambda: (r := store.query_runs(rule_id=f"test.pack/{rule}")) and len(r) >= count and r,
        10,
        f"{count} run record(s) of {rule}",
    )
    return dict(runs[0])


def load_errors(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


def dry(h: Harness, yaml_rules: str, **data: Any) -> RunContext:
    (rule,) = rules_from(yaml_rules)
    loop = h.engine.loop
    assert loop is not None
    future = asyncio.run_coroutine_threadsafe(h.engine.dry_run(rule, Event("t.go", data)), loop)
    return future.result(10)


# ---------------------------------------------------------------------- stop


def test_stop_ends_the_run_as_stopped_with_its_reason(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - emit: before
      - stop: "nothing to do for {event.name}"
      - emit: after
"""
    )
    stored.publish("t.go", name="x")
    record = run_record(store)
    assert record["status"] == "stopped"
    assert record["error"] == "nothing to do for x"
    assert record["trace"]["actions"][1]["result"] == {"stopped": "nothing to do for x"}
    assert "error" not in record["trace"]["actions"][1]
    assert [e.type for e in stored.recorder.events if e.type in ("before", "after")] == ["before"]
    assert stored.recorder.of("rule.failed") == []


def test_stop_inside_a_repeat_stops_the_whole_run(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          times: 5
          do:
            - emit: {type: t.round, data: {i: "{repeat.index}"}}
            - if: {event: {stop_at: 2}}
              then: [{stop: null}]
      - emit: after
"""
    )
    stored.publish("t.go", stop_at=2)
    record = run_record(store)
    assert record["status"] == "stopped"
    assert record["error"] == "stopped by a 'stop' action"
    assert [e.data["i"] for e in stored.recorder.of("t.round")] == [0]
    assert stored.recorder.of("after") == []


# -------------------------------------------------------------------- repeat


def test_repeat_times_with_index_and_number(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          times: "{event.n}"
          do:
            - emit: {type: t.round, data: {i: "{repeat.index}", n: "{repeat.number}"}}
      - emit: done
"""
    )
    harness.publish("t.go", n=4)
    harness.recorder.wait("done")
    rounds = [(e.data["i"], e.data["n"]) for e in harness.recorder.of("t.round")]
    assert rounds == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_repeat_while_and_until_with_variables(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - set: {n: 0}
      - repeat:
          while: {var: {n: {lt: 3}}}
          do:
            - set: {n: "{event.one}"}
            - emit: {type: t.w}
            - set: {n: 3}
      - repeat:
          until: {var: {n: 3}}
          do:
            - emit: {type: t.u}
      - emit: done
"""
    )
    stored.publish("t.go", one=1)
    stored.recorder.wait("done")
    assert len(stored.recorder.of("t.w")) == 1
    assert len(stored.recorder.of("t.u")) == 1  # until: checked after the round
    trace = run_record(store)["trace"]
    paths = [c["path"] for c in trace["conditions"]]
    assert paths == ["do[1].repeat.while[0]", "do[1].repeat.while[0]", "do[2].repeat.until[0]"]
    assert trace["actions"][1]["result"] == {"rounds": 1}


def test_for_each_over_a_list_and_over_a_programs_lines(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          for_each: [a, "{event.x}", {k: v}]
          do:
            - emit: {type: t.item, data: {item: "{repeat.item}"}}
      - shell: {command: "printf 'one\\r\\n\\ntwo three\\n'", wait: true}
        id: ls
      - repeat:
          for_each: "{steps.ls.stdout}"
          do:
            - emit: {type: t.line, data: {line: "{repeat.item}", i: "{repeat.index}"}}
      - emit: done
"""
    )
    harness.publish("t.go", x=5)
    harness.recorder.wait("done")
    assert [e.data["item"] for e in harness.recorder.of("t.item")] == ["a", 5, {"k": "v"}]
    lines = [(e.data["i"], e.data["line"]) for e in harness.recorder.of("t.line")]
    assert lines == [(0, "one"), (1, ""), (2, "two three")]


def test_for_each_over_a_json_list_with_item_keys(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          for_each: "{event.people}"
          do:
            - emit:
                type: t.item
                data: {name: "{repeat.item.name}", first: "{repeat.item.tags.0}"}
      - emit: done
"""
    )
    harness.publish("t.go", people=[{"name": "ann", "tags": ["x"]}, {"name": "bo", "tags": []}])
    harness.recorder.wait("done")
    assert [e.data for e in harness.recorder.of("t.item")] == [
        {"name": "ann", "first": "x"},
        {"name": "bo", "first": None},
    ]


_LINE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_LINE.filter(lambda s: not s.endswith("\r")), max_size=8), st.booleans())
def test_for_each_goes_over_arbitrary_lines(
    harness: Harness, lines: list[str], final_newline: bool
) -> None:
    if not harness.engine.call(lambda: bool(harness.engine.rules())):
        harness.load(
            """
  - id: r
    mode: queued
    max: 100
    when: {event: t.go}
    do:
      - repeat:
          for_each: "{event.text}"
          max: 100
          do:
            - emit: {type: t.line, data: {line: "{repeat.item}", tag: "{event.tag}"}}
      - emit: {type: t.done, data: {tag: "{event.tag}"}}
"""
        )
    text = "".join(f"{line}\n" for line in lines) if final_newline else "\n".join(lines)
    tag = time.monotonic_ns()
    harness.publish("t.go", text=text, tag=tag)
    wait_until(lambda: any(e.data["tag"] == tag for e in harness.recorder.of("t.done")), 10)
    got = [e.data["line"] for e in harness.recorder.of("t.line") if e.data["tag"] == tag]
    # Without a final line feed, a last empty line is the line feed of the one before.
    expected = lines[:-1] if not final_newline and lines and lines[-1] == "" else lines
    assert got == expected
    assert split_lines(text.replace("\n", "\r\n")) == expected


def test_a_loop_that_does_not_end_stops_at_its_max(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          while: {var: {never_set: {exists: false}}}
          max: 50
          do: [{log: round}]
      - emit: done
"""
    )
    stored.publish("t.go")
    (failed,) = stored.recorder.wait("rule.failed")
    assert failed.data["error"] == "repeat: still going after max 50 rounds; stopped it"
    result = run_record(store)["trace"]["actions"]
    # The first 20 rounds' actions are traced, then the repeat's own entry failed.
    assert len([a for a in result if a["action"] == "log"]) == 20
    assert stored.recorder.of("done") == []


def test_too_many_items_fail_before_the_first_round(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          for_each: "{event.items}"
          max: 3
          do: [{emit: t.round}]
"""
    )
    stored.publish("t.go", items=[1, 2, 3, 4])
    (failed,) = stored.recorder.wait("rule.failed")
    assert "repeat: 4 items, more than max 3" in failed.data["error"]
    assert stored.recorder.of("t.round") == []


def test_the_cascade_guard_bounds_nested_loops(stored: Harness, store: Store) -> None:
    stored.engine.max_iterations = 30
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          times: 10
          do:
            - repeat:
                times: 10
                do: [{emit: t.round}]
"""
    )
    stored.publish("t.go")
    (failed,) = stored.recorder.wait("rule.failed")
    assert "more than 30 loop rounds in all (the cascade guard's limit" in failed.data["error"]
    assert len(stored.recorder.of("t.round")) == 30 - 3  # (3 of the 30 rounds are outer)


def test_a_pause_interrupts_a_long_repeat_within_100ms(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          times: 100000
          max: 100000
          do:
            - set: {n: "{repeat.number}"}
            - log: {message: "round {repeat.number}", level: debug}
"""
    )
    stored.publish("t.go")
    wait_until(lambda: (stored.engine.variables.get("n") or 0) > 100, 10, "rounds")
    start = time.monotonic()
    stored.engine.call(stored.engine.pause, "test")
    wait_until(lambda: not stored.engine.call(stored.engine.running_runs), 5, "the run to end")
    assert time.monotonic() - start < 0.1
    record = run_record(store)
    assert record["status"] == "cancelled"
    assert 100 < stored.engine.variables["n"] < 100000


def test_a_pause_interrupts_a_round_waiting_for_a_program(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          times: 3
          do:
            - emit: t.round
            - shell: {command: "sleep 30", wait: true}
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("t.round")
    start = time.monotonic()
    stored.engine.call(stored.engine.pause, "test")
    wait_until(lambda: not stored.engine.call(stored.engine.running_runs), 5, "the run to end")
    assert time.monotonic() - start < 0.5
    shell = run_record(store)["trace"]["actions"][-1]
    assert shell["action"] == "shell"
    assert shell["error"] == "cancelled"


def test_a_repeat_in_a_dry_run_goes_round_a_few_times(harness: Harness) -> None:
    ctx = dry(
        harness,
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          times: 50
          do:
            - log: "round {repeat.number}"
            - run: [/bin/false]
""",
    )
    assert ctx.status == "ok"
    actions = ctx.trace.actions
    assert [a["result"] for a in actions if a["action"] == "log"] == [
        f"round {i + 1}" for i in range(DRY_RUN_ITERATIONS)
    ]
    assert all(a["result"] == "skipped (dry run)" for a in actions if a["action"] == "run")
    assert actions[0]["result"]["rounds"] == DRY_RUN_ITERATIONS
    assert "a dry run repeats at most 3 times" in actions[0]["result"]["dry_run"]


# ------------------------------------------------------------------ parallel


def test_parallel_branches_run_at_once_and_all_finish(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - parallel:
          - - shell: {command: "sleep 0.4; echo a", wait: true}
              id: a
          - - shell: {command: "sleep 0.4; echo b", wait: true}
              id: b
            - emit: t.b
      - emit: {type: done, data: {out: "{steps.a.stdout}{steps.b.stdout}"}}
"""
    )
    start = time.monotonic()
    stored.publish("t.go")
    (done,) = stored.recorder.wait("done")
    assert time.monotonic() - start < 0.75  # not 0.8 s one after the other
    assert done.data["out"] == "a\nb\n"
    trace = run_record(store)["trace"]["actions"]
    assert trace[0] == {**trace[0], "path": "do[0]", "result": {"branches": 2}}
    paths = sorted(a["path"] for a in trace[1:4])
    assert paths == ["do[0].parallel[0][0]", "do[0].parallel[1][0]", "do[0].parallel[1][1]"]


def test_a_failing_branch_cancels_the_others(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - parallel:
          - [{shell: {command: "sleep 30", wait: true}}]
          - [{delay: 100ms}, {shell: {command: "echo broken >&2; exit 4", wait: true}}]
          - [{delay: 30s}]
      - emit: after
"""
    )
    start = time.monotonic()
    stored.publish("t.go")
    (failed,) = stored.recorder.wait("rule.failed")
    assert time.monotonic() - start < 3
    assert failed.data["error"] == (
        "parallel: branch 1 failed: /bin/sh exited with 4: broken; cancelled branches 0, 2"
    )
    trace = run_record(store)["trace"]["actions"]
    by_path = {a["path"]: a for a in trace}
    assert by_path["do[0].parallel[0][0]"]["error"] == "cancelled"
    assert by_path["do[0].parallel[2][0]"]["error"] == "cancelled"
    assert by_path["do[0]"]["error"] == failed.data["error"]
    assert stored.recorder.of("after") == []


def test_a_pause_cancels_every_branch(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - parallel:
          - [{emit: t.started}, {shell: {command: "sleep 30", wait: true}}]
          - [{repeat: {times: 100000, max: 100000, do: [{log: x}]}}]
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("t.started")
    start = time.monotonic()
    stored.engine.call(stored.engine.pause, "test")
    wait_until(lambda: not stored.engine.call(stored.engine.running_runs), 5, "the run to end")
    assert time.monotonic() - start < 0.5
    assert run_record(store)["status"] == "cancelled"


# ------------------------------------------------- capabilities and loading


def test_flow_actions_have_no_capability_of_their_own_but_count_their_actions() -> None:
    (rule,) = rules_from(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          times: 2
          do:
            - parallel:
                - [{shell: {command: "true", wait: true}}]
                - [{http: "http://127.0.0.1:9/x"}, {stop: done}]
"""
    )
    assert {"runs-shell", "network", "http:127.0.0.1:9"} <= rule.capabilities
    (plain,) = rules_from(
        """
  - id: r
    when: {event: t.go}
    do: [{repeat: {times: 2, do: [{log: x}]}}, {parallel: [[{log: y}]]}, {stop: null}]
"""
    )
    assert plain.capabilities == frozenset()


@pytest.mark.parametrize(
    ("do", "path", "message"),
    [
        ("{repeat: {times: 2, until: {var: {a: 1}}, do: []}}", "do[1].repeat", "one of 'times'"),
        ("{repeat: {do: [{log: x}]}}", "do[1].repeat", "needs one of 'times'"),
        ("{repeat: {times: 2000, do: [{log: x}]}}", "do[1].repeat.times", "more than max (1000)"),
        ("{repeat: {times: 2, max: 200000, do: []}}", "do[1].repeat.max", ""),
        ("{repeat: {times: 2, do: [{log: '{repeat.idx}'}]}}", "do[1].repeat.do[0].log", "index"),
        ("{repeat: {times: 2, do: [{nope: 1}]}}", "do[1].repeat.do[0].nope", "unknown action"),
        ("{parallel: [[{log: x}], [{log: '{steps.a.x}'}]]}", "do[1].parallel[1][0].log", "id: a"),
        ("{stop: {why: x}}", "do[1].stop", ""),
    ],
)
def test_flow_load_errors(do: str, path: str, message: str) -> None:
    errors = load_errors(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run: {{argv: [/bin/true], wait: true}}
        id: z
      - {do}
"""
    ).copy()
    assert len(errors) == 1, errors
    assert errors[0].startswith("test.yaml:")
    assert f"rules[0].{path}" in errors[0]
    assert message in errors[0]


def test_what_loops_and_branches_define_afterwards() -> None:
    head = """
  - id: r
    when: {event: t.go}
    do:
"""
    ok = (
        head
        + """
      - parallel:
          - - run: {argv: [/bin/true], wait: true}
              id: a
          - - run: {argv: [/bin/true], wait: true}
              id: b
      - repeat:
          until: {var: {x: 1}}
          do:
            - run: {argv: [/bin/echo, "{steps.a.stdout}{steps.b.stdout}"], wait: true}
              id: c
      - log: "{steps.c.stdout}"
"""
    )
    assert load_errors(ok) == []
    maybe_never = (
        head
        + """
      - repeat:
          for_each: "{event.items}"
          do:
            - run: {argv: [/bin/true], wait: true}
              id: c
      - log: "{steps.c.stdout}"
"""
    )
    (error,) = load_errors(maybe_never)
    assert "rules[0].do[1].log" in error
    assert "no action with 'id: c' runs before this point" in error


@pytest.mark.parametrize("wait_s", [0.0, 0.0001, 0.0005, 0.001, 0.005, 0.02])
def test_a_pause_while_a_program_starts_ends_it_and_its_children(
    stored: Harness, store: Store, tmp_path: Any, wait_s: float
) -> None:
    import os

    pid_file = tmp_path / "pid"
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - repeat:
          times: 2
          do:
            - emit: t.round
            - shell: {{command: "sleep 30 & echo $! > {pid_file}; wait", wait: true}}
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("t.round")
    time.sleep(wait_s)  # (the moment of the pause, against the start of the program)
    start = time.monotonic()
    stored.engine.call(stored.engine.pause, "test")
    wait_until(lambda: not stored.engine.call(stored.engine.running_runs), 5, "the run to end")
    assert time.monotonic() - start < 0.5
    if pid_file.exists() and pid_file.read_text().strip():
        pid = int(pid_file.read_text())

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{pid}/stat") as f:  # (a zombie until reaped by init)
                return f.read().split(") ", 1)[1].startswith("Z")

        wait_until(gone, 2, "the program's child to end")


def test_a_failing_round_past_the_traced_ones_is_in_the_trace(
    stored: Harness, store: Store
) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat:
          for_each: "{event.items}"
          do:
            - log: "item {repeat.item}"
            - run: {argv: [/bin/sh, -c, 'test "$1" != 25', sh, "{repeat.item}"], wait: true}
      - emit: after
"""
    )
    stored.publish("t.go", items=list(range(40)))
    (failed,) = stored.recorder.wait("rule.failed")
    assert failed.data["error"].startswith("/bin/sh exited with 1")
    actions = run_record(store)["trace"]["actions"]
    logs = [a["result"] for a in actions if a["action"] == "log"]
    assert logs == [f"item {i}" for i in range(20)] + ["item 25"]
    assert actions[-1]["path"] == "do[0].repeat.do[1]"
    assert actions[-1]["error"] == failed.data["error"]
    assert stored.recorder.of("after") == []


def test_stop_in_a_parallel_branch_stops_the_run(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - parallel:
          - [{shell: {command: "sleep 30", wait: true}}]
          - [{delay: 50ms}, {stop: "enough"}]
      - emit: after
"""
    )
    start = time.monotonic()
    stored.publish("t.go")
    record = run_record(store)
    assert time.monotonic() - start < 3
    assert record["status"] == "stopped"
    assert record["error"] == "enough"
    by_path = {a["path"]: a for a in record["trace"]["actions"]}
    assert by_path["do[0].parallel[0][0]"]["error"] == "cancelled"
    assert by_path["do[0].parallel[1][1]"]["result"] == {"stopped": "enough"}
    assert stored.recorder.of("after") == []


def test_for_each_over_a_mapping_fails_clearly(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat: {for_each: "{event.m}", do: [{log: x}]}
"""
    )
    harness.publish("t.go", m={"a": 1})
    (failed,) = harness.recorder.wait("rule.failed")
    assert failed.data["error"] == (
        "repeat: for_each '{event.m}' gives a mapping, not a list or a text"
    )


@pytest.mark.parametrize(
    ("n", "rounds", "error"),
    [
        (2, 2, None),
        (2.0, 2, None),
        ("3", 3, None),
        (0, 0, None),
        (2.5, 0, "repeat: times is '2.5', not a whole number"),
        ("many", 0, "repeat: times is 'many', not a whole number"),
        ("inf", 0, "repeat: times is 'inf', not a whole number"),
        (-1, 0, "repeat: times is -1, below 0"),
        (1001, 0, "repeat: 1001 rounds, more than max 1000"),
    ],
)
def test_times_from_a_placeholder(harness: Harness, n: Any, rounds: int, error: str) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - repeat: {times: "{event.n}", do: [{emit: t.round}]}
      - emit: done
"""
    )
    harness.publish("t.go", n=n)
    if error is None:
        harness.recorder.wait("done")
    else:
        (failed,) = harness.recorder.wait("rule.failed")
        assert failed.data["error"].startswith(error)
    assert len(harness.recorder.of("t.round")) == rounds


def test_parallel_and_stop_in_a_dry_run(harness: Harness) -> None:
    ctx = dry(
        harness,
        """
  - id: r
    when: {event: t.go}
    do:
      - parallel:
          - [{log: a}, {shell: {command: "touch /tmp/never", wait: true}}]
          - [{log: b}]
      - stop: "done for {event.x}"
      - log: after
""",
        x=1,
    )
    assert ctx.status == "stopped"
    assert ctx.error == "done for 1"
    results = {a["path"]: a.get("result") for a in ctx.trace.actions}
    assert results["do[0]"] == {"branches": 2}
    assert results["do[0].parallel[0][0]"] == "a"
    assert results["do[0].parallel[0][1]"] == "skipped (dry run)"
    assert results["do[0].parallel[1][0]"] == "b"
    assert results["do[1]"] == {"stopped": "done for 1"}
    assert "do[2]" not in results
