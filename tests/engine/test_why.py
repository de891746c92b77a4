"""``Engine.why`` and the per-rule counts, in process: held rules, debounce,
composite triggers, masking of what users type, bounds."""

from __future__ import annotations

import json

from conftest import Harness, rules_from, wait_until
from nerve.engine.engine import NEAR_MISSES, RECENT_PER_TYPE


def why(h: Harness, rule: str) -> dict:  # type: ignore[type-arg]
    answer = h.engine.call(h.engine.why, rule)
    assert answer is not None
    return answer


def test_a_held_rule_counts_what_it_missed(harness: Harness) -> None:
    (rule,) = rules_from("  - id: h\n    when: {event: x.held}\n    do: [{log: hi}]\n")
    engine = harness.engine
    engine.call(engine.set_rules, [], [(rule, "it can run programs (not approved)")])
    harness.publish("x.held")
    wait_until(lambda: why(harness, "h")["skips"] == {"held": 1}, 5, "held skip")
    answer = why(harness, "test.pack/h")
    assert answer["state"] == "held: it can run programs (not approved)"
    assert answer["near"][0]["reason"] == "held"
    assert answer["ran"] == 0
    assert engine.call(engine.status)["counts"] == {"test.pack/h": {"ran": 0, "skips": {"held": 1}}}
    assert engine.call(engine.rules) == []  # not one of the running rules


def test_debounce_keeps_the_events_it_dropped(harness: Harness) -> None:
    harness.load("  - id: d\n    when: {event: x.d}\n    debounce: 300ms\n    do: [{log: hi}]\n")
    first = harness.publish("x.d", n=1)
    harness.publish("x.d", n=2)
    wait_until(lambda: why(harness, "d")["ran"] == 1, 5, "one run")
    answer = why(harness, "d")
    assert answer["skips"] == {"debounce": 1}
    (miss,) = answer["near"]
    assert miss["event"] == first.id  # the dropped one, not the one that ran
    assert miss["reason"] == "debounce"


def test_a_count_that_did_not_complete_is_explained(harness: Harness) -> None:
    harness.load(
        "  - id: c\n    when: {count: {of: {event: {type: x.t, data: {k: 1}}}, times: 3,"
        " within: 1m}}\n    do: [{log: hi}]\n"
    )
    harness.publish("x.t", k=1)
    harness.publish("x.t", k=2)
    wait_until(lambda: len(why(harness, "c")["near"]) == 2, 5, "two near misses")
    newest, oldest = why(harness, "c")["near"]
    assert newest["reason"] == "trigger"
    assert "k was 2, wanted 1" in newest["detail"]
    assert oldest["reason"] == "incomplete"
    assert "count did not complete" in oldest["detail"]


def test_key_presses_and_clipboard_text_are_masked(harness: Harness) -> None:
    harness.load(
        "  - id: k\n    when: {event: {type: key.down, data: {key: q}}}\n    do: [{log: hi}]\n"
        "  - id: clip\n    when: {event: clipboard.changed}\n"
        "    if: [{event: {text: wanted}}]\n    do: [{log: hi}]\n"
        "  - id: typed\n    when: {event: {type: typed, data: {text: btw}}}\n    do: []\n"
    )
    harness.publish("key.down", key="secretkey")
    harness.publish("clipboard.changed", text="secret clipboard text")
    harness.publish("typed", text="secret typing")
    wait_until(lambda: why(harness, "clip")["skips"] == {"condition": 1}, 5, "condition")
    wait_until(lambda: why(harness, "k")["near"], 5, "a key near miss")
    wait_until(lambda: why(harness, "typed")["near"], 5, "a typed near miss")
    text = json.dumps([why(harness, "k"), why(harness, "clip"), why(harness, "typed")])
    assert "secret" not in text
    assert "<private>" in text
    assert "key was '<private>', wanted 'q'" in why(harness, "k")["near"][0]["detail"]


def test_kept_private_events_show_their_values(harness: Harness) -> None:
    harness.engine.keep_private = True
    harness.load("  - id: k\n    when: {event: {type: key.down, data: {key: q}}}\n    do: []\n")
    harness.publish("key.down", key="w")
    wait_until(lambda: why(harness, "k")["near"], 5, "a key near miss")
    assert "key was 'w', wanted 'q'" in why(harness, "k")["near"][0]["detail"]


def test_near_misses_are_bounded(harness: Harness) -> None:
    harness.load(
        "  - id: b\n    when: {event: {type: x.b, data: {k: 1}}}\n"
        "    if: [{event: {ok: true}}]\n    do: []\n"
    )
    for n in range(3 * NEAR_MISSES):
        harness.publish("x.b", k=1 if n % 2 else 2, ok=False)
    wait_until(lambda: why(harness, "b")["skips"].get("condition") == 3 * NEAR_MISSES // 2, 5)
    answer = why(harness, "b")
    assert len(answer["near"]) == NEAR_MISSES
    assert len(harness.engine._states["test.pack/b"].near) == NEAR_MISSES
    assert all(len(r) <= RECENT_PER_TYPE for r in harness.engine._recent.values())


def test_an_unknown_or_ambiguous_rule_is_none(harness: Harness) -> None:
    harness.load("  - id: a\n    when: {event: x.a}\n    do: []\n")
    assert harness.engine.call(harness.engine.why, "nope") is None
    assert harness.engine.call(harness.engine.why, "a") is not None
