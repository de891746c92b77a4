"""Conditions: time windows (also over midnight) and weekdays, event fields,
variables, and all/any/not, with the verdicts a run records."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from conftest import PACK_HEAD, Harness, rules_from, wait_until
from nerve.engine.conditions import TimeCondition
from nerve.packs.loader import load_pack
from nerve.storage import Store

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def time_condition(options: str) -> TimeCondition:
    (rule,) = rules_from(
        f"  - id: r\n    when: {{event: t.go}}\n"
        f"    if: [{{time: {options}}}]\n    do: [{{log: x}}]\n"
    )
    cond = rule.conditions[0]
    assert isinstance(cond, TimeCondition)
    return cond


def at(day: str, clock: str) -> dt.datetime:
    """A moment in the week of Monday 2026-01-05."""
    hour, minute = map(int, clock.split(":"))
    return dt.datetime(2026, 1, 5 + DAYS.index(day), hour, minute)


# ---------------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("clock", "holds"),
    [
        ("07:59", False),
        ("08:00", True),  # after is inclusive
        ("12:00", True),
        ("19:59", True),
        ("20:00", False),  # before is exclusive
        ("23:30", False),
    ],
)
def test_daytime_window(clock: str, holds: bool) -> None:
    cond = time_condition('{after: "08:00", before: "20:00"}')
    assert cond.holds_at(at("wed", clock)) is holds


@pytest.mark.parametrize(
    ("clock", "holds"),
    [
        ("21:59", False),
        ("22:00", True),
        ("23:59", True),
        ("00:00", True),
        ("05:59", True),
        ("06:00", False),
        ("12:00", False),
    ],
)
def test_window_over_midnight(clock: str, holds: bool) -> None:
    cond = time_condition('{after: "22:00", before: "06:00"}')
    assert cond.holds_at(at("wed", clock)) is holds


def test_only_after_or_only_before() -> None:
    after = time_condition('{after: "18:30"}')
    assert not after.holds_at(at("mon", "18:29"))
    assert after.holds_at(at("mon", "18:30"))
    assert after.holds_at(at("mon", "23:59"))
    before = time_condition('{before: "09:00"}')
    assert before.holds_at(at("mon", "00:00"))
    assert not before.holds_at(at("mon", "09:00"))


def test_seconds_in_the_time() -> None:
    cond = time_condition('{after: "08:00:30"}')
    assert not cond.holds_at(dt.datetime(2026, 1, 5, 8, 0, 29))
    assert cond.holds_at(dt.datetime(2026, 1, 5, 8, 0, 30))


@pytest.mark.parametrize(
    ("day", "holds"), [(d, d in ("mon", "tue", "wed", "thu", "fri")) for d in DAYS]
)
def test_weekdays(day: str, holds: bool) -> None:
    cond = time_condition("{weekdays: [mon, tue, wed, thu, fri]}")
    assert cond.holds_at(at(day, "12:00")) is holds


@pytest.mark.parametrize(
    ("day", "clock", "holds"),
    [
        ("fri", "21:00", False),
        ("fri", "23:00", True),  # Friday night...
        ("sat", "01:00", True),  # ...still Friday night after midnight
        ("sat", "23:00", False),  # Saturday night is not
        ("sun", "01:00", False),
        ("thu", "23:00", False),
        ("fri", "01:00", False),  # that is Thursday night
    ],
)
def test_weekdays_over_midnight_count_the_day_the_window_started(
    day: str, clock: str, holds: bool
) -> None:
    cond = time_condition('{after: "22:00", before: "04:00", weekdays: [fri]}')
    assert cond.holds_at(at(day, clock)) is holds


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('{after: "25:00"}', "expected a time of day"),
        ('{after: "8am"}', "expected a time of day"),
        ("{weekdays: [funday]}", "expected one of"),
        ("{weekdays: []}", "time.weekdays"),
        ("{}", "must not be empty"),
        ('{after: "08:00", until: "09:00"}', "unknown key 'until'"),
    ],
)
def test_time_errors(options: str, message: str) -> None:
    pack = load_pack(
        (
            PACK_HEAD + f"  - id: r\n    when: {{event: t.go}}\n    if: [{{time: {options}}}]\n"
            "    do: [{log: x}]\n"
        ).encode(),
        filename="test.yaml",
    )
    errors = [str(e) for e in pack.errors]
    assert any(message in e for e in errors), errors


# --------------------------------------------------------- conditions in runs


def verdicts(
    h: Harness, store: Store, conditions: str, variables: dict[str, Any] | None = None, **data: Any
) -> tuple[bool, list[dict[str, Any]]]:
    """Run a rule with ``conditions`` for one event: did it pass, and the recorded verdicts."""
    for name, value in (variables or {}).items():
        h.engine.call(h.engine.set_variable, name, value)
    h.load(
        f"  - id: r\n    when: {{event: t.go}}\n    if: {conditions}\n    do: [{{emit: passed}}]\n"
    )
    event = h.publish("t.go", **data)

    def recorded() -> dict[str, Any] | None:
        runs = [r for r in store.query_runs(rule_id="test.pack/r") if r["event_id"] == event.id]
        return runs[0] if runs else None

    run = wait_until(recorded, 5, "the run record")
    assert run["status"] in ("ok", "condition")
    return run["status"] == "ok", run["trace"]["conditions"]


def test_event_condition(stored: Harness, store: Store) -> None:
    ok, conds = verdicts(
        stored, store, '[{event: {name: "*.png", size: {gt: 10}}}]', name="a.png", size=11
    )
    assert ok
    assert conds == [
        {
            "path": "if[0]",
            "condition": "event",
            "ok": True,
            "detail": 'event has {"name": "a.png", "size": 11}',
        }
    ]
    ok, conds = verdicts(
        stored, store, '[{event: {name: "*.png", size: {gt: 10}}}]', name="a.png", size=5
    )
    assert not ok
    assert conds[0]["ok"] is False


def test_event_condition_on_the_type_and_source(stored: Harness, store: Store) -> None:
    ok, _ = verdicts(stored, store, "[{event: {type: t.go, source: test}}]")
    assert ok
    ok, _ = verdicts(stored, store, '[{event: {type: "!t.*"}}]')
    assert not ok


def test_var_condition(stored: Harness, store: Store) -> None:
    ok, conds = verdicts(
        stored, store, "[{var: {mode: work, level: {ge: 2}}}]", {"mode": "work", "level": 3}
    )
    assert ok
    assert conds[0]["detail"] == 'variables are {"mode": "work", "level": 3}'
    ok, _ = verdicts(stored, store, "[{var: {mode: work, level: {ge: 2}}}]", {"level": 1})
    assert not ok
    ok, _ = verdicts(stored, store, "[{var: {unset: {exists: false}}}]")
    assert ok


def test_conditions_are_checked_in_order_and_stop_at_the_first_failure(
    stored: Harness, store: Store
) -> None:
    ok, conds = verdicts(
        stored, store, "[{event: {a: 1}}, {event: {b: 1}}, {event: {c: 1}}]", a=1, b=2, c=1
    )
    assert not ok
    assert [(c["path"], c["ok"]) for c in conds] == [("if[0]", True), ("if[1]", False)]


GROUPS = [
    ("[{all: [{event: {a: 1}}, {event: {b: 1}}]}]", {"a": 1, "b": 1}, True, "all hold"),
    ("[{all: [{event: {a: 1}}, {event: {b: 1}}]}]", {"a": 1, "b": 0}, False, "[1] event:"),
    ("[{any: [{event: {a: 1}}, {event: {b: 1}}]}]", {"a": 0, "b": 1}, True, "[1] event:"),
    ("[{any: [{event: {a: 1}}, {event: {b: 1}}]}]", {"a": 0, "b": 0}, False, "none holds:"),
    ("[{not: [{event: {a: 1}}]}]", {"a": 0}, True, "none holds"),
    ("[{not: [{event: {a: 1}}, {event: {b: 1}}]}]", {"a": 0, "b": 1}, False, "[1] event holds"),
    # a single condition instead of a list, and nesting
    ("[{not: {event: {a: 1}}}]", {"a": 1}, False, "[0] event holds"),
    (
        "[{any: [{all: [{event: {a: 1}}, {not: {event: {b: 1}}}]}, {event: {c: 1}}]}]",
        {"a": 1, "b": 0, "c": 0},
        True,
        "[0] all: all hold",
    ),
    (
        "[{any: [{all: [{event: {a: 1}}, {not: {event: {b: 1}}}]}, {event: {c: 1}}]}]",
        {"a": 1, "b": 1, "c": 0},
        False,
        "none holds",
    ),
]


@pytest.mark.parametrize("case", GROUPS, ids=[str(i) for i in range(len(GROUPS))])
def test_groups(stored: Harness, store: Store, case: tuple[str, dict[str, Any], bool, str]) -> None:
    conditions, data, passes, detail = case
    ok, conds = verdicts(stored, store, conditions, **data)
    assert ok is passes
    assert conds[0]["ok"] is passes
    assert detail in conds[0]["detail"]


def test_time_condition_in_a_run(stored: Harness, store: Store) -> None:
    today = DAYS[dt.datetime.now().weekday()]
    others = [d for d in DAYS if d != today]
    ok, conds = verdicts(stored, store, f"[{{time: {{weekdays: [{', '.join(others)}]}}}}]")
    if DAYS[dt.datetime.now().weekday()] == today:  # unless midnight just passed
        assert not ok
        assert conds[0]["detail"].startswith("it is ")
    ok, _ = verdicts(stored, store, '[{time: {after: "00:00"}}]')
    assert ok


def test_failed_condition_runs_no_action(stored: Harness, store: Store) -> None:
    verdicts(stored, store, "[{event: {a: 1}}]", a=2)
    verdicts(stored, store, "[{event: {a: 1}}]", a=1)
    assert len(stored.recorder.wait("passed")) == 1
    assert stored.summary("r")["skipped"] == {}
