"""``nerve replay`` against reality: a real instance records a session, the
replay of its log must give the verdicts the instance really reached.

The session uses a variable condition (the variable changes between events),
``count``, ``sequence``, a cooldown, a throttle, a debounce, mode single (a
run in progress), and a rule that re-fires itself until it is suspended.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import wait_until
from nerve.ipc import request
from test_cli import StartNerve, cli_ok, socket_file, start_nerve  # noqa: F401

PACK = """
nerve: 1
pack: {id: rec, name: Recorded, version: 1.0.0}
rules:
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
    do: [{delay: 1500ms}]
  - id: deb
    when: {event: r.deb}
    debounce: 2s
    do: [{log: deb}]
  - id: loop
    when: {event: r.loop}
    do: [{emit: r.loop}]
"""


def test_replay_gives_the_verdicts_of_the_recorded_session(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    pack = short_tmp / "rec.yaml"
    pack.write_text(PACK)
    instance = start_nerve("--rules", pack)
    sock = socket_file(nerve_env)

    def emit(type_: str, **data: Any) -> None:
        request("emit", {"type": type_, "data": data}, path=sock)

    def rules() -> dict[str, dict[str, Any]]:
        return {r["key"].split("/")[1]: r for r in request("rules", path=sock)}

    def ran(rule: str, count: int) -> None:
        wait_until(lambda: rules()[rule]["ran"] >= count, 10, f"{rule} ran {count}x")

    emit("r.job")  # no mode yet: its condition fails
    wait_until(lambda: rules()["work"]["skips"].get("condition") == 1, 10, "first job")
    emit("r.mode", value="work")
    ran("setmode", 1)
    emit("r.job")  # runs
    ran("work", 1)
    emit("r.mode", value="home")
    ran("setmode", 2)
    emit("r.job")
    emit("r.job")  # these two fail: "home" now, as at replay time
    for _ in range(7):
        emit("r.tap")  # count: fires at the 3rd and the 6th
    for step in "abbaab":
        emit(f"r.{step}")  # sequence: a b, then (a) a b
    for rule in ("cool", "thr", "busy", "deb"):
        emit(f"r.{rule}")
        if rule in ("cool", "thr"):
            ran(rule, 1)
        emit(f"r.{rule}")
        emit(f"r.{rule}")
    emit("r.loop")
    wait_until(lambda: rules()["loop"]["suspended"], 10, "the loop rule suspended")
    emit("r.loop")  # refused: suspended
    ran("deb", 1)
    wait_until(lambda: not rules()["busy"]["running"], 10, "the busy run ended")
    wait_until(lambda: rules()["loop"]["skips"].get("suspended"), 10, "counted")
    live = rules()
    assert instance.stop() == 0

    recorded: dict[str, Counter[str]] = {}
    for line in cli_ok(nerve_env, "runs", "--json", "--limit", "1000").splitlines():
        run = json.loads(line)
        recorded.setdefault(run["rule_id"].split("/")[1], Counter())[run["status"]] += 1
    out = cli_ok(nerve_env, "replay", "--since", "1h", "--rules", pack, "--json")
    replayed = {r["rule"].split("/")[1]: r for r in map(json.loads, out.splitlines())}

    expected_runs = {
        "setmode": 2, "work": 1, "triple": 2, "pair": 2, "cool": 1, "thr": 1,
        "busy": 1, "deb": 1, "loop": 6,
    }  # fmt: skip
    for rule, report in replayed.items():
        statuses = recorded.get(rule, Counter())
        assert report["not_replayed"] is None, rule
        assert report["would_run"] + report["failed"] == statuses["ok"] + statuses["failed"], rule
        assert report["would_run"] == expected_runs[rule], rule
        assert report["conditions_false"] == statuses["condition"], rule
        live_skips = dict(live[rule]["skips"])
        live_skips.pop("condition", None)
        assert report["skipped"] == live_skips, rule
        assert bool(report["suspended"]) == bool(live[rule]["suspended"]), rule
    # The case reported: 1 ran, 3 did not (the variable then, not the variable now).
    assert (replayed["work"]["would_run"], replayed["work"]["conditions_false"]) == (1, 3)
    assert replayed["cool"]["skipped"] == {"cooldown": 2}
    assert replayed["thr"]["skipped"] == {"throttle": 2}
    assert replayed["busy"]["skipped"] == {"busy": 2}
    assert replayed["deb"]["skipped"] == {"debounce": 2}
    assert replayed["loop"]["skipped"] == {"suspended": 1}
    assert replayed["loop"]["suspended"].startswith("loop:")
