"""``nerve replay``: the event log through rules as a dry run."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import rules_from, wait_until
from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.events import Event, freeze
from nerve.paths import locations
from nerve.replay import replay, stored_event, variables_before
from nerve.storage import EventLogWriter, Store

NERVE = [sys.executable, "-m", "nerve"]


def event(id_: int, type_: str, when: float, **data: object) -> Event:
    return Event(type_, freeze(data) if data else MappingProxyType({}), "test", id_, when, 0)


def at(hour: int, minute: int = 0) -> float:
    """Today at hour:minute, local time, as epoch seconds."""
    return dt.datetime.now().replace(hour=hour, minute=minute, second=0).timestamp()


def test_each_event_is_matched_and_dry_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    rules = rules_from(
        f"""
  - id: build
    when: {{event: {{type: build.done, data: {{project: nerve}}}}}}
    if: [{{event: {{ok: true}}}}]
    do: [{{run: [touch, "{marker}"]}}, {{delay: 1h}}]
  - id: night
    when: {{event: note}}
    if: [{{time: {{after: "22:00", before: "06:00"}}}}]
    do: [{{log: late}}]
  - id: pair
    when: {{sequence: {{steps: [{{event: a}}, {{event: b}}], within: 5s}}}}
    do: [{{log: pair}}]
  - id: idle
    when: {{event: never.seen}}
    do: [{{log: x}}]
"""
    )
    events = [
        event(1, "build.done", at(12), project="nerve", ok=True),
        event(2, "build.done", at(12, 5), project="nerve", ok=False),
        event(3, "build.done", at(12, 6), project="other", ok=True),  # indexed field differs
        event(4, "note", at(23, 30)),  # conditions are checked as at the event's time
        event(5, "note", at(10)),
        event(6, "a", at(12)),
        event(7, "b", at(12)),
    ]
    reports = {r.key: r for r in replay(rules, events)}

    build = reports["test.pack/build"]
    assert (build.matched, build.would_run, build.conditions_false) == (2, 1, 1)
    assert build.first_reason is not None
    assert build.first_reason.startswith("if[0] event:")
    assert [e[0] for e in build.examples] == [1, 2]
    assert not marker.exists()  # a dry run: nothing was done (and the delay was not waited)

    night = reports["test.pack/night"]
    assert (night.matched, night.would_run, night.conditions_false) == (2, 1, 1)
    assert night.first_reason == "if[0] time: it is " + dt.datetime.fromtimestamp(at(10)).strftime(
        "%a %H:%M"
    )

    pair = reports["test.pack/pair"]  # a sequence is replayed on the events' clock
    assert pair.not_replayed is None
    assert (pair.matched, pair.would_run) == (1, 1)
    assert reports["test.pack/idle"].matched == 0


def test_window_conditions_say_they_cannot_know(tmp_path: Path) -> None:
    rules = rules_from(
        """
  - id: in-editor
    when: {event: x.go}
    if: [{window: {class: Code}}]
    do: [{log: hi}]
"""
    )
    (report,) = replay(rules, [event(1, "x.go", at(12))])
    assert report.conditions_false == 1
    assert report.first_reason == "if[0] window: which window was active then is not known (replay)"


def test_the_command_replays_the_stored_log(nerve_env: dict[str, str], tmp_path: Path) -> None:
    where = locations()
    where.data.mkdir(parents=True)
    with Store(where.database) as store:
        store.append_events(
            [
                event(1, "build.done", at(12), project="nerve", ok=True),
                event(2, "build.done", at(12, 5), project="nerve", ok=False),
            ]
        )
    pack = tmp_path / "mine.yaml"
    pack.write_text(
        "nerve: 1\npack: {id: me.p}\nrules:\n"
        "  - id: build\n"
        "    when: {event: build.done}\n"
        "    if: [{event: {ok: true}}]\n"
        "    do: [{shell: 'echo built'}]\n"
    )
    args = [*NERVE, "replay", "--since", "2d", "--rules", str(pack)]
    proc = subprocess.run(
        args, check=False, env=nerve_env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert "Replayed 2 event(s)" in proc.stdout
    assert "Dry run: nothing was done." in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("me.p/build"))
    assert row.split() == ["me.p/build", "2", "1", "1", "0"]

    proc = subprocess.run(
        [*args, "--json"], check=False, env=nerve_env, capture_output=True, text=True
    )
    (report,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert report["rule"] == "me.p/build"
    assert report["would_run"] == 1
    assert [e["status"] for e in report["examples"]] == ["ok", "condition"]


def test_without_an_event_log_it_says_so(nerve_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [*NERVE, "replay"], check=False, env=nerve_env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert "no event log yet" in proc.stderr


# ------------------------------------------- replay equals the live engine

_LIVE_RULES = """
  - id: setmode
    when: {event: r.mode}
    do: [{set: {mode: "{event.value}"}}]
  - id: work
    when: {event: r.job}
    if: [{var: {mode: work}}]
    do: [{log: working}]
  - id: triple
    when: {count: {of: {event: r.tap}, times: 3, within: 1m}}
    do: [{log: triple}]
  - id: pair
    when: {sequence: {steps: [{event: r.a}, {event: r.b}], within: 1m}}
    do: [{log: pair}]
  - id: cool
    when: {event: r.cool}
    cooldown: 1h
    do: [{log: cool}]
  - id: thr
    when: {event: r.thr}
    throttle: 1h
    do: [{log: thr}]
  - id: busy
    when: {event: r.busy}
    mode: single
    do: [{delay: 1s}]
  - id: loop
    when: {event: r.loop}
    do: [{emit: r.loop}]
  - id: held
    when: {for: {start: {event: r.s}, stop: {event: r.e}, duration: 300ms}}
    do: [{log: held}]
  - id: deb
    when: {event: r.deb}
    debounce: 300ms
    do: [{log: deb}]
  - id: code
    when: {window.focused: {class: Code}}
    do: [{log: code}]
"""

_STEPS = [
    "job", "mode:work", "mode:home", "tap", "a", "b", "cool", "thr", "busy", "loop",
    "s", "e", "deb", "win:1:Code:focus", "win:1:Code:title", "win:2:Term:focus",
    "win:1:Term:title", "pause", "resume",
]  # fmt: skip


def _publish(bus: Bus, step: str, engine: Engine) -> None:
    kind, _, value = step.partition(":")
    if kind == "pause":
        engine.call(engine.pause, "test")
    elif kind == "resume":
        engine.call(engine.resume)
    elif kind == "win":
        window, class_, change = value.split(":")
        data = {"window": int(window), "class": class_, "change": change, "title": "t"}
        bus.publish("window.focused", data, source="test")
    else:
        bus.publish(f"r.{kind}", {"value": value} if value else {}, source="test")


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(_STEPS), min_size=1, max_size=30))
def test_replay_gives_what_the_live_engine_did(steps: list[str]) -> None:
    """Any burst of events through a live engine that logs to a real store; the
    replay of that log gives each rule's runs, condition failures and skips."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "nerve.db")
        bus = Bus()
        writer = EventLogWriter(bus, store)
        writer.start()
        engine = Engine(bus, store=store)
        engine.start()
        try:
            rules = rules_from(_LIVE_RULES)
            engine.call(engine.set_rules, rules)
            start = time.time()
            for step in steps:
                _publish(bus, step, engine)
            states = list(engine._states.values())
            (held,) = [s.rule.triggers[0] for s in states if s.rule.key.endswith("/held")]

            def snapshot() -> tuple[bool, int]:
                """(nothing left to happen, runs started), read at one moment."""
                quiet = (
                    not engine._running
                    and engine.handled == bus.stats()["published"]
                    and all(s.debounce is None for s in states)  # no timer pending
                    and getattr(held, "_timer", None) is None
                )
                return quiet, sum(s.fired for s in states)

            def settled() -> bool:
                quiet, fired = engine.call(snapshot)
                return quiet and len(store.run_times()) == fired

            wait_until(settled, 20, "every run ended and recorded")
            live = {r["key"]: r for r in engine.call(engine.rules)}
        finally:
            engine.stop()
            writer.stop()
        events = [stored_event(row) for row in store.query_events(since=start - 1, limit=None)]
        recorded = store.run_times()
        variables = variables_before(store.load_variables(), events)
        store.close()
    reports = replay(
        rules,
        events,
        variables=variables,
        recorded=recorded,
    )
    for report in reports:
        state = live[report.key]
        skips = dict(state["skips"])
        assert report.would_run + report.failed == state["ran"], (report.key, steps)
        assert report.conditions_false == skips.pop("condition", 0), (report.key, steps)
        assert report.skipped == skips, (report.key, steps)
        assert bool(report.suspended) == bool(state["suspended"]), (report.key, steps)


def test_rules_that_cannot_be_replayed_say_why() -> None:
    rules = rules_from(
        """
  - id: keys
    when: {event: {type: key.down, data: {key: a}}}
    do: [{log: a}]
  - id: clip
    when: {count: {of: {event: clipboard.changed}, times: 2, within: 5s}}
    do: [{log: twice}]
  - id: settled
    when: {file.created: {path: /tmp, settle: 1s}}
    do: [{log: settled}]
  - id: plain
    when: {event: x.go}
    if: [{process.running: {name: firefox}}]
    do: [{log: plain}]
"""
    )
    reports = {r.key.split("/")[1]: r for r in replay(rules, [event(1, "x.go", at(12))])}
    assert reports["keys"].not_replayed == (
        "event: key presses and clipboard text are not in the event log (store_private is off)"
    )
    assert reports["clip"].not_replayed is not None
    assert "not in the event log" in reports["clip"].not_replayed
    assert reports["settled"].not_replayed == (
        "file.created: 'settle' looks at the file on disk, now"
    )
    plain = reports["plain"]
    assert plain.not_replayed is None
    assert plain.conditions_false == 1
    assert plain.caveat is not None
    assert plain.caveat.startswith("condition process.running:")
    # With key presses in the log (store_private), they are replayed.
    (keys,) = replay(rules[:1], [event(1, "key.down", at(12), key="a")], private_logged=True)
    assert (keys.not_replayed, keys.would_run) == (None, 1)


def test_variables_apply_where_they_changed_whatever_the_type_filter() -> None:
    rules = rules_from(
        """
  - id: work
    when: {event: job}
    if: [{var: {mode: work}}]
    do: [{log: working}]
"""
    )
    changes = [
        event(2, "variable.changed", at(12), name="mode", value="work", old="home", after=1),
        event(4, "variable.changed", at(12, 2), name="mode", value="home", old="work", after=3),
    ]
    jobs = [event(1, "job", at(11)), event(3, "job", at(12, 1)), event(5, "job", at(12, 3))]
    log = sorted([*changes, *jobs], key=lambda e: e.id)
    variables = variables_before({"mode": "home"}, log)
    assert variables == {"mode": "home"}
    for pattern in (None, "job", "jo*"):
        (report,) = replay(rules, log, variables=variables, type_pattern=pattern)
        assert (report.would_run, report.conditions_false) == (1, 2), pattern
    # A change applies after the event the engine had handled then, even when
    # its own event comes later in the log (it raced with event 3).
    late = [
        event(1, "job", at(11)),
        event(2, "job", at(11, 1)),
        event(3, "job", at(11, 2)),
        event(4, "variable.changed", at(11, 3), name="mode", value="work", old=None, after=2),
    ]
    (report,) = replay(rules, late, variables=variables_before({"mode": "work"}, late))
    assert (report.would_run, report.conditions_false) == (1, 2)
