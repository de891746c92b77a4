"""``nerve why RULE`` and the per-rule counts of ``nerve status``, on a real instance.

Each rule of the pack below misses a run in its own way; ``nerve why`` must
name the way (and the values), ``nerve status`` must count it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import wait_until
from test_cli import Instance, StartNerve, cli, cli_ok, start_nerve  # noqa: F401

PACK = """
nerve: 1
pack: {id: why, name: Why tests, version: 1.0.0}
rules:
  - id: field
    when: {event: {type: w.field, data: {color: red, size: {">": 3}}}}
    do: [{log: field}]
  - id: cond
    when: {event: w.cond}
    if: [{var: {mode: work}}]
    do: [{log: cond}]
  - id: cool
    when: {event: w.cool}
    cooldown: 1h
    do: [{log: cool}]
  - id: thr
    when: {event: w.thr}
    throttle: 1h
    do: [{log: thr}]
  - id: busy
    when: {event: w.busy}
    mode: single
    do: [{delay: 20s}]
  - id: pause
    when: {event: w.pause}
    do: [{log: pause}]
  - id: loop
    when: {event: w.loop}
    do: [{emit: {type: w.loop, data: {again: true}}}]
"""


def why(env: dict[str, str], rule: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(cli_ok(env, "why", rule, "--json"))
    return answer


def reasons(env: dict[str, str], rule: str) -> list[str]:
    return [m["reason"] for m in why(env, rule)["near"]]


def started(env: dict[str, str], rule: str, count: int) -> None:
    wait_until(lambda: why(env, rule)["fired"] >= count, 10, f"{rule} started {count}x")


def test_why_names_each_way_a_rule_missed_a_run(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    pack = short_tmp / "why.yaml"
    pack.write_text(PACK)
    start_nerve("--rules", pack)
    env = nerve_env

    # A trigger field that did not match: which one, what it was, what was wanted.
    cli_ok(env, "emit", "w.field", "color=blue", "size=5")
    cli_ok(env, "emit", "w.field", "color=red", "size=2")
    wait_until(lambda: len(why(env, "why/field")["near"]) == 2, 10, "two field misses")
    near = why(env, "why/field")["near"]
    assert near[1]["reason"] == near[0]["reason"] == "trigger"
    assert "color was 'blue', wanted 'red'" in near[1]["detail"]
    assert "size was 5" not in near[0]["detail"]
    assert "size was 2" in near[0]["detail"]

    # A condition that did not hold, with the values it saw.
    cli_ok(env, "emit", "w.cond")
    wait_until(lambda: reasons(env, "cond") == ["condition"], 10, "a condition miss")
    detail = why(env, "cond")["near"][0]["detail"]
    assert detail.startswith("if[0] var:")
    assert '"mode": null' in detail

    # Rate limits: the second event of each is refused.
    for rule in ("cool", "thr"):
        cli_ok(env, "emit", f"w.{rule}")
        started(env, rule, 1)
        cli_ok(env, "emit", f"w.{rule}")
    wait_until(lambda: reasons(env, "cool") == ["cooldown"], 10, "a cooldown miss")
    assert (
        "cooldown 1h" in why(env, "cool")["near"][0]["detail"]
        or "cooldown 3600s" in (why(env, "cool")["near"][0]["detail"])
    )
    wait_until(lambda: reasons(env, "thr") == ["throttle"], 10, "a throttle miss")

    # Busy: mode single while a run is in progress.
    cli_ok(env, "emit", "w.busy")
    started(env, "busy", 1)
    cli_ok(env, "emit", "w.busy")
    wait_until(lambda: reasons(env, "busy") == ["busy"], 10, "a busy miss")
    assert "mode single" in why(env, "busy")["near"][0]["detail"]

    # Suspended: the loop rule re-fires itself until the engine suspends it.
    cli_ok(env, "emit", "w.loop")
    wait_until(lambda: why(env, "loop")["state"].startswith("suspended"), 10, "suspended")
    cli_ok(env, "emit", "w.loop")
    wait_until(lambda: "suspended" in reasons(env, "loop"), 10, "a suspended miss")

    # Paused (the busy rule's run is cancelled by the pause).
    cli_ok(env, "pause")
    cli_ok(env, "emit", "w.pause")
    wait_until(lambda: reasons(env, "pause") == ["paused"], 10, "a paused miss")
    assert "paused by nerve pause" in why(env, "pause")["near"][0]["detail"]
    cli_ok(env, "resume")

    # The counts, in `nerve status` and in `nerve why`'s words.
    status = cli_ok(env, "status")
    assert "rule why/field" not in status  # a field miss is no skip: the rule never started
    assert "rule why/cond: ran 0, skipped 1 (condition 1)" in status
    assert "rule why/cool: ran 1, skipped 1 (cooldown 1)" in status
    assert "rule why/thr: ran 1, skipped 1 (throttle 1)" in status
    assert "rule why/busy: ran 1, skipped 1 (busy 1)" in status
    assert "rule why/pause: ran 0, skipped 1 (paused 1)" in status
    assert "suspended 1)" in status.split("rule why/loop:")[1].splitlines()[0]
    text = cli_ok(env, "why", "why/cool")
    assert "why/cool" in text
    assert "cooldown" in text
    assert "ran 1, skipped 1 (cooldown 1)" in text

    # An unknown rule: a clear error, no traceback.
    proc = cli(env, "why", "nope")
    assert proc.returncode != 0
    assert "no rule 'nope' is loaded" in proc.stderr
