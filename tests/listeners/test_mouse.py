"""The mouse listener on a real Xvfb: clicks with modifiers and regions,
scrolling, movement on demand, and Nerve's own clicks."""

from __future__ import annotations

import pytest

from conftest import LiveHarness, rules_from, wait_until
from nerve.listeners import manager as manager_module
from xclients.input_helpers import (  # noqa: F401  (fixtures)
    User,
    kill_and_wait_for_restart,
    listener_instance,
    run_status,
    user_fixture,
)

pytestmark = pytest.mark.usefixtures("xserver")


def fired(live: LiveHarness, rule_id: str) -> int:
    return int(live.summary(rule_id)["fired"])


def test_a_click_rule_with_a_modifier_and_a_region(live: LiveHarness, user: User) -> None:
    live.load("""
  - id: corner
    when:
      mouse.click:
        button: left
        modifiers: [ctrl]
        region: {x: 100, y: 100, width: 50, height: 40}
    do: [{log: "clicked at {event.x},{event.y}"}]
""")
    live.listener("mouse")
    user.click(1, 120, 120)  # no Ctrl
    user.click(1, 160, 120, modifiers=["ctrl"])  # right of the region
    user.click(1, 120, 140, modifiers=["ctrl"])  # just below it
    user.click(3, 120, 120, modifiers=["ctrl"])  # another button
    user.click(1, 120, 120, modifiers=["ctrl", "shift"])  # another modifier too
    user.click(1, 149, 139, modifiers=["ctrl"])  # inside
    wait_until(lambda: fired(live, "corner") == 1)
    clicks = live.recorder.wait("mouse.click", 12)
    presses = [(e.get("button"), e.get("x"), e.get("y"), e.get("modifiers")) for e in clicks]
    assert presses[::2] == [
        ("left", 120, 120, ()),
        ("left", 160, 120, ("ctrl",)),
        ("left", 120, 140, ("ctrl",)),
        ("right", 120, 120, ("ctrl",)),
        ("left", 120, 120, ("ctrl", "shift")),
        ("left", 149, 139, ("ctrl",)),
    ]
    assert [e.get("pressed") for e in clicks[:2]] == [True, False]
    wait_until(lambda: run_status(live, "corner") == "ok")
    assert fired(live, "corner") == 1


def test_scrolling(live: LiveHarness, user: User) -> None:
    live.load("""
  - id: down
    when: {mouse.scroll: down}
    do: [{log: down}]
  - id: any
    when: {mouse.scroll: {modifiers: [shift]}}
    do: [{log: shifted}]
""")
    live.listener("mouse")
    user.click(4, 10, 10)
    user.click(5, 10, 10)
    user.click(7, 10, 10, modifiers=["shift"])
    scrolls = live.recorder.wait("mouse.scroll", 3)
    assert [(e.get("dx"), e.get("dy")) for e in scrolls] == [(0, -1), (0, 1), (1, 0)]
    wait_until(lambda: fired(live, "down") == 1 and fired(live, "any") == 1)
    assert live.recorder.of("mouse.click") == []  # scroll buttons are not clicks


def test_movement_only_on_demand_and_throttled(live: LiveHarness, user: User) -> None:
    live.load("""
  - id: click
    when: {mouse.click: left}
    do: [{log: click}]
""")
    live.listener("mouse")
    user.move(5, 5)
    user.move(6, 6)
    user.click(1)
    live.recorder.wait("mouse.click", 2)
    assert live.recorder.of("mouse.move") == []  # not recorded at all
    live.load("""
  - id: hover
    when: {mouse.move: {region: {x: 300, y: 300, width: 10, height: 10}}}
    do: [{log: "hover {event.x}"}]
    mode: parallel
""")
    wait_until(lambda: "move" in live.listener("mouse")["detail"])
    for x in [*range(250, 290), 305]:
        user.move(x, 305)
    # Samples at most every 50 ms, and where the pointer came to rest always.
    live.recorder.wait("mouse.move", where=lambda e: e.get("x") == 305)
    assert len(live.recorder.of("mouse.move")) < 41
    wait_until(lambda: fired(live, "hover") == 1)


def test_nerves_own_clicks_do_not_trigger_click_rules(live: LiveHarness, user: User) -> None:
    live.load("""
  - id: echo
    when: {mouse.click: right}
    do: [{click: right}]
""")
    live.listener("mouse")
    user.click(3, 50, 50)
    wait_until(lambda: run_status(live, "echo") == "ok")
    user.click(3, 60, 50)
    clicks = live.recorder.wait("mouse.click", 4)
    assert [e.get("x") for e in clicks] == [50, 50, 60, 60]
    wait_until(lambda: fired(live, "echo") == 2 and run_status(live, "echo") == "ok")


def test_killing_the_connection_is_survived(
    live: LiveHarness, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "BACKOFF_FIRST_S", 0.05)
    live.load("""
  - id: c
    when: {mouse.click: middle}
    do: [{log: middle}]
""")
    first = listener_instance(live, "mouse")
    status = kill_and_wait_for_restart(live, "mouse", first.context_id)
    assert status["restarts"] == 1
    live.listener("mouse")
    user.click(2, 10, 10)
    wait_until(lambda: fired(live, "c") == 1)


def test_options() -> None:
    rules = rules_from("""
  - id: a
    when: {mouse.click: {button: back, release: true}}
    do: [{log: x}]
  - id: b
    when: {mouse.click: null}
    do: [{log: x}]
""")
    assert rules[0].triggers[0].describe() == "back click"
    assert rules[1].capabilities == {"reads-mouse"}
    assert list(rules[1].needs()) == [("mouse", "click")]
