"""Triggers for real: event matching (globs, regex, numbers, the index), schedules,
and the patterns over time (``sequence``, ``count``, ``for``)."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import PACK_HEAD, Harness, rules_from, wait_until
from nerve.engine.triggers import ScheduleTrigger
from nerve.packs.loader import load_pack
from nerve.storage import Store


def hits(h: Harness, type_: str = "hit") -> list[Any]:
    return [e.data.get("n") for e in h.recorder.of(type_)]


def witness(h: Harness, n: int) -> None:
    """Wait until the always-matching ``witness`` rule has handled event ``n``.

    All rules see an event in the same step, so after that any other rule
    that was going to fire for events up to ``n`` has fired: no sleep needed.
    """
    h.recorder.wait("seen", where=lambda e: e.data.get("n") == n)


WITNESS = """
  - id: witness
    mode: queued
    when: {event: "t.*"}
    do: [{emit: {type: seen, data: {n: "{event.n}"}}}]
"""


def rule(when: str, **extra: str) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    return (
        f"  - id: r\n    mode: queued\n{lines}    when: {when}\n"
        '    do: [{emit: {type: hit, data: {n: "{event.n}"}}}]\n'
    )


def load_errors(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


# --------------------------------------------------------------------- event


@pytest.mark.parametrize(
    ("when", "events", "expected"),
    [
        # type: exact, and globs
        ("{event: t.a}", [("t.a", {}), ("t.b", {}), ("t.a.x", {})], [1]),
        ('{event: "t.a*"}', [("t.a", {}), ("u.a", {}), ("t.a.x", {}), ("t.b", {})], [1, 3]),
        ('{event: "t.?"}', [("t.a", {}), ("t.ab", {})], [1]),
        # data: exact (indexed), glob, negation, missing field
        ("{event: {type: t.a, data: {who: world}}}", [("t.a", {"who": "world"})] * 1, [1]),
        (
            "{event: {type: t.a, data: {who: world}}}",
            [("t.a", {"who": "World"}), ("t.a", {}), ("t.a", {"who": "world"})],
            [3],
        ),
        (
            '{event: {type: t.a, data: {name: "*.png"}}}',
            [("t.a", {"name": "a.jpg"}), ("t.a", {"name": "b.png"})],
            [2],
        ),
        (
            '{event: {type: t.a, data: {class: "!*term*"}}}',
            [("t.a", {"class": "xterm"}), ("t.a", {"class": "firefox"}), ("t.a", {})],
            [2, 3],
        ),
        # regex and numbers
        (
            '{event: {type: t.a, data: {code: {regex: "^E\\\\d+$"}}}}',
            [("t.a", {"code": "W12"}), ("t.a", {"code": "E42"}), ("t.a", {"code": "E4x"})],
            [2],
        ),
        (
            "{event: {type: t.a, data: {size: {gt: 100, le: 200}}}}",
            [("t.a", {"size": 50}), ("t.a", {"size": 150}), ("t.a", {"size": "200"})],
            [2, 3],
        ),
        (
            "{event: {type: t.a, data: {size: {in: [1, 2]}}}}",
            [("t.a", {"size": 3}), ("t.a", {"size": 2.0})],
            [2],
        ),
        # nested fields
        (
            "{event: {type: t.a, data: {window.class: firefox}}}",
            [("t.a", {"window": {"class": "xterm"}}), ("t.a", {"window": {"class": "firefox"}})],
            [2],
        ),
        # several fields: all must hold (one is indexed, the other a predicate)
        (
            "{event: {type: t.a, data: {who: world, n: {ge: 2}}}}",
            [("t.a", {"who": "world"}), ("t.a", {"who": "x"}), ("t.a", {"who": "world"})],
            [3],
        ),
    ],
)
def test_event_matching(
    harness: Harness, when: str, events: list[tuple[str, dict[str, Any]]], expected: list[int]
) -> None:
    harness.load(rule(when) + WITNESS)
    for n, (type_, data) in enumerate(events, 1):
        harness.publish(type_, **{"n": n, **data})
    harness.publish("t.end", n=0)
    witness(harness, 0)
    assert hits(harness) == expected


def test_match_on_source(harness: Harness) -> None:
    harness.load(rule('{event: {type: t.a, source: "bridge:*"}}') + WITNESS)
    harness.bus.publish("t.a", {"n": 1}, source="test")
    harness.bus.publish("t.a", {"n": 2}, source="bridge:mqtt")
    harness.publish("t.end", n=0)
    witness(harness, 0)
    assert hits(harness) == [2]


@pytest.mark.parametrize(
    ("spec", "value", "fires"),
    [
        # The exact-value index must agree with the matching rules: numbers
        # compare as numbers, text as text, and a boolean is not a number.
        ("5", "5", True),
        ("5", 5, True),  # `nerve emit t.a v=5` sends a number; the rule wrote "5"
        ("5", 5.0, False),
        ("5", True, False),
        ("5", None, False),
        ("5", [5], False),
        ("5", {"x": 5}, False),
        ("true", True, True),
        ("1", True, False),
        ("ok", "ok", True),
    ],
)
def test_indexed_text_value(harness: Harness, spec: str, value: Any, fires: bool) -> None:
    harness.load(rule(f'{{event: {{type: t.a, data: {{v: "{spec}"}}}}}}') + WITNESS)
    harness.publish("t.a", n=1, v=value)
    witness(harness, 1)
    assert hits(harness) == ([1] if fires else [])


@pytest.mark.parametrize(
    ("spec", "value", "fires"),
    [
        ("5", "5", True),  # was missed: the index looked the text up under the number
        ("5", 5.0, True),
        ("5", "5.0", True),
        ("1", True, False),  # was a false hit: True == 1 for a dict lookup
        ("true", True, True),
        ("true", 1, False),
        ("true", "true", False),
        ("null", None, True),
        ("null", "", False),
    ],
)
def test_number_boolean_null_values(harness: Harness, spec: str, value: Any, fires: bool) -> None:
    harness.load(rule(f"{{event: {{type: t.a, data: {{v: {spec}}}}}}}") + WITNESS)
    harness.publish("t.a", n=1, v=value)
    witness(harness, 1)
    assert hits(harness) == ([1] if fires else [])


def test_many_rules_indexed_by_one_field(harness: Harness) -> None:
    rules = "".join(
        f"  - id: r{i}\n    when: {{event: {{type: t.key, data: {{key: k{i}}}}}}}\n"
        f"    do: [{{emit: {{type: hit, data: {{n: {i}}}}}}}]\n"
        for i in range(50)
    )
    harness.load(rules + WITNESS)
    for n, i in enumerate((7, 42, 7), 1):
        harness.publish("t.key", key=f"k{i}", n=n)
        witness(harness, n)
    assert hits(harness) == [7, 42, 7]


def test_placeholder_event_fields_are_checked_at_load_time() -> None:
    errors = load_errors(
        "  - id: r\n    when: {event: file.created}\n    do: [{log: '{event.combo}'}]\n"
    )
    assert len(errors) == 1
    assert "unknown placeholder {event.combo}" in errors[0]
    assert "file.created events have" in errors[0]


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{event: File.Created}", "not an event type"),
        ('{event: {type: t.a, data: {x: {regex: "("}}}}', "bad regular expression"),
        ("{event: {type: t.a, data: {x: {near: 1}}}}", "unknown key 'near'"),
        ("{sequence: {steps: [{event: t.a}], within: 1s}}", "at least 2"),
        ("{count: {of: {event: t.a}, times: 3}}", "missing 'within'"),
        ("{for: {start: {event: t.a}, duration: 1s}}", "missing 'stop'"),
        ("{sequence: {steps: [{event: t.a}, {nope: 1}], within: 1s}}", "unknown trigger 'nope'"),
    ],
)
def test_trigger_errors(when: str, message: str) -> None:
    errors = load_errors(f"  - id: r\n    when: {when}\n    do: [{{log: x}}]\n")
    assert errors
    assert any(message in e for e in errors), errors


# ------------------------------------------------------------------ schedule


def schedule_trigger(options: str) -> ScheduleTrigger:
    (compiled,) = rules_from(
        f"  - id: r\n    when: {{schedule: {options}}}\n    do: [{{log: x}}]\n"
    )
    trigger = compiled.triggers[0]
    assert isinstance(trigger, ScheduleTrigger)
    return trigger


def test_schedule_every_fires_repeatedly(harness: Harness) -> None:
    (compiled,) = harness.load(
        """
  - id: tick
    mode: queued
    when: {schedule: {every: 200ms}}
    do: [{emit: {type: ticked, data: {job: "{event.job}"}}}]
"""
    )
    trigger = compiled.triggers[0]
    assert isinstance(trigger, ScheduleTrigger)
    job = trigger.job
    assert job == "test.pack/tick/schedule0"
    start = time.monotonic()
    ticks = harness.recorder.wait("ticked", 2)
    assert time.monotonic() - start >= 0.35  # the first after 200 ms, the next 200 ms later
    assert {e.data["job"] for e in ticks} == {job}
    schedule_events = harness.recorder.of("schedule")
    assert schedule_events[0].data["job"] == job
    assert dt.datetime.fromisoformat(schedule_events[0].data["scheduled_time"]).tzinfo
    # Disabling the rule removes its job from the scheduler.
    assert harness.engine.schedules.next_fire_time(job) is not None
    harness.engine.call(harness.engine.set_enabled, "test.pack/tick", False)
    assert harness.engine.schedules.next_fire_time(job) is None


def test_schedule_cron_next_fire_times() -> None:
    trigger = schedule_trigger('{cron: "*/15 9-10 * * mon-fri"}')
    now = dt.datetime(2026, 1, 9, 10, 40).astimezone()  # a Friday
    times = trigger.next_fire_times(4, now=now)
    assert [t.strftime("%a %H:%M") for t in times] == [
        "Fri 10:45",
        "Mon 09:00",
        "Mon 09:15",
        "Mon 09:30",
    ]
    assert trigger.describe() == "cron */15 9-10 * * mon-fri"


def test_schedule_every_next_fire_times_are_evenly_spaced() -> None:
    trigger = schedule_trigger("{every: 10m}")
    times = trigger.next_fire_times(3)
    assert times[0] > dt.datetime.now().astimezone()
    assert [b - a for a, b in itertools.pairwise(times)] == [dt.timedelta(minutes=10)] * 2


def test_schedule_at_with_weekdays() -> None:
    trigger = schedule_trigger('{at: "07:30", weekdays: [mon, wed]}')
    now = dt.datetime(2026, 1, 5, 8, 0).astimezone()  # Monday, after 07:30
    times = trigger.next_fire_times(3, now=now)
    assert [t.strftime("%Y-%m-%d %a %H:%M") for t in times] == [
        "2026-01-07 Wed 07:30",
        "2026-01-12 Mon 07:30",
        "2026-01-14 Wed 07:30",
    ]
    daily = schedule_trigger('{at: "23:59"}')
    assert len(daily.next_fire_times(3, now=now)) == 3
    assert daily.next_fire_times(1, now=now)[0].date() == dt.date(2026, 1, 5)


def test_schedule_at_once() -> None:
    trigger = schedule_trigger('{at: "2030-12-24 18:00"}')
    now = dt.datetime(2030, 1, 1).astimezone()
    (only,) = trigger.next_fire_times(5, now=now)
    assert only.replace(tzinfo=None) == dt.datetime(2030, 12, 24, 18, 0)
    # Once the moment has passed, nothing is coming any more.
    assert trigger.next_fire_times(5, now=dt.datetime(2031, 1, 1).astimezone()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('{cron: "61 * * * *"}', "bad cron expression"),
        ("{every: 50ms}", "at least 100ms"),
        ('{at: "25:00"}', "expected HH:MM"),
        ('{every: 1m, at: "07:00"}', "exactly one of"),
        ("{every: 1m, weekdays: [mon]}", "'weekdays' goes with 'at'"),
        ('{at: "2030-01-01 10:00", weekdays: [mon]}', "daily time"),
        ("{at: '07:00', weekdays: [monday]}", "expected one of"),
    ],
)
def test_schedule_errors(options: str, message: str) -> None:
    errors = load_errors(f"  - id: r\n    when: {{schedule: {options}}}\n    do: [{{log: x}}]\n")
    assert any(message in e for e in errors), errors


# ------------------------------------------------------------------ sequence

SEQUENCE = "{sequence: {steps: [{event: t.a}, {event: t.b}], within: 300ms}}"


def test_sequence_in_order_within_the_window(harness: Harness) -> None:
    harness.load(rule(SEQUENCE) + WITNESS)
    harness.publish("t.a", n=1)
    harness.publish("t.x", n=2)  # other events may come between
    harness.publish("t.b", n=3)
    (hit,) = harness.recorder.wait("hit")
    assert hit.data["n"] == 3  # the run sees the last step's event
    runs = harness.summary("r")
    assert runs["fired"] == 1
    assert runs["triggers"] == ["sequence event t.a then event t.b within 0.3s"]


def test_sequence_order_matters(harness: Harness) -> None:
    harness.load(rule(SEQUENCE) + WITNESS)
    harness.publish("t.b", n=1)
    harness.publish("t.a", n=2)
    harness.publish("t.end", n=0)
    witness(harness, 0)
    assert hits(harness) == []
    # The t.a above started a sequence that a t.b now completes.
    harness.publish("t.b", n=3)
    harness.recorder.wait("hit")
    assert hits(harness) == [3]


def test_sequence_out_of_window_does_not_fire(harness: Harness) -> None:
    harness.load(rule(SEQUENCE) + WITNESS)
    harness.publish("t.a", n=1)
    witness(harness, 1)
    time.sleep(0.4)  # let the 300 ms window pass
    harness.publish("t.b", n=2)
    witness(harness, 2)
    assert hits(harness) == []


def test_sequence_of_the_same_event_twice(harness: Harness) -> None:
    harness.load(
        rule("{sequence: {steps: [{event: t.tap}, {event: t.tap}], within: 400ms}}") + WITNESS
    )
    harness.publish("t.tap", n=1)
    witness(harness, 1)
    assert hits(harness) == []  # one event is not two steps
    harness.publish("t.tap", n=2)
    harness.recorder.wait("hit")
    harness.publish("t.tap", n=3)  # starts afresh after a completed sequence
    witness(harness, 3)
    assert hits(harness) == [2]


def test_sequence_run_trace_lists_the_step_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "nerve.db")
    h = Harness(store=store)
    try:
        h.load(
            """
  - id: r
    when: {sequence: {steps: [{event: t.a}, {event: t.b}, {event: t.c}], within: 1s}}
    do: [{emit: hit}]
"""
        )
        ids = [h.publish(t).id for t in ("t.a", "t.b", "t.c")]
        h.recorder.wait("hit")
        (run,) = wait_until(lambda: store.query_runs(rule_id="test.pack/r"), 5, "the run")
    finally:
        h.close()
        store.close()
    assert run["event_id"] == ids[-1]
    assert run["trace"]["trigger"] == {"sequence": ids}


# --------------------------------------------------------------------- count

COUNT = "{count: {of: {event: t.k}, times: 3, within: 300ms}}"


def test_count_fires_on_the_nth_within_the_window(harness: Harness) -> None:
    harness.load(rule(COUNT) + WITNESS)
    for n in (1, 2):
        harness.publish("t.k", n=n)
    witness(harness, 2)
    assert hits(harness) == []
    harness.publish("t.k", n=3)
    harness.recorder.wait("hit")
    assert hits(harness) == [3]
    # The count starts over: three more are needed for the next run.
    for n in (4, 5):
        harness.publish("t.k", n=n)
    witness(harness, 5)
    assert hits(harness) == [3]


def test_count_forgets_occurrences_older_than_the_window(harness: Harness) -> None:
    harness.load(rule(COUNT) + WITNESS)
    harness.publish("t.k", n=1)
    harness.publish("t.k", n=2)
    witness(harness, 2)
    time.sleep(0.4)  # let the 300 ms window pass
    harness.publish("t.k", n=3)
    harness.publish("t.k", n=4)
    witness(harness, 4)
    assert hits(harness) == []  # only 2 within any 300 ms
    harness.publish("t.k", n=5)
    harness.recorder.wait("hit")
    assert hits(harness) == [5]


def test_count_of_matching_events_only(harness: Harness) -> None:
    harness.load(
        rule("{count: {of: {event: {type: t.k, data: {key: a}}}, times: 2, within: 1s}}") + WITNESS
    )
    harness.publish("t.k", n=1, key="a")
    harness.publish("t.k", n=2, key="b")
    harness.publish("t.k", n=3, key="a")
    harness.recorder.wait("hit")
    assert hits(harness) == [3]


# ----------------------------------------------------------------------- for

FOR = "{for: {start: {event: t.on}, stop: {event: t.off}, duration: 250ms}}"


def test_for_fires_when_the_state_held(harness: Harness) -> None:
    harness.load(rule(FOR) + WITNESS)
    start = time.monotonic()
    harness.publish("t.on", n=1)
    (hit,) = harness.recorder.wait("hit")
    assert time.monotonic() - start >= 0.24
    assert hit.data["n"] == 1  # the run sees the start event


def test_for_is_cancelled_by_the_stop_event(harness: Harness) -> None:
    harness.load(rule(FOR) + WITNESS)
    harness.publish("t.on", n=1)
    harness.publish("t.off", n=2)
    witness(harness, 2)
    # A short look (≤ 0.5 s), past the 250 ms: the held state was cancelled.
    time.sleep(0.4)
    assert hits(harness) == []
    # A new start holds again.
    harness.publish("t.on", n=3)
    harness.recorder.wait("hit")
    assert hits(harness) == [3]


def test_for_repeated_start_does_not_restart_the_clock(harness: Harness) -> None:
    harness.load(rule(FOR) + WITNESS)
    start = time.monotonic()
    harness.publish("t.on", n=1)
    witness(harness, 1)
    harness.publish("t.on", n=2)
    (hit,) = harness.recorder.wait("hit")
    assert hit.data["n"] == 1
    assert time.monotonic() - start < 0.5 + 0.25
    # A short look (≤ 0.5 s): the second start did not schedule a second run.
    time.sleep(0.35)
    assert hits(harness) == [1]


def test_for_disabled_rule_drops_its_timer(harness: Harness) -> None:
    harness.load(rule(FOR) + WITNESS)
    harness.publish("t.on", n=1)
    witness(harness, 1)
    harness.engine.call(harness.engine.set_enabled, "test.pack/r", False)
    harness.engine.call(harness.engine.set_enabled, "test.pack/r", True)
    time.sleep(0.4)  # a short look (≤ 0.5 s) past the 250 ms
    assert hits(harness) == []
