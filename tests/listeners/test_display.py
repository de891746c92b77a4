"""Monitors on a real Xvfb: display.changed events from RandR, and the
display.changed trigger.

Monitors are added, moved and removed with ``xrandr --setmonitor`` and
``--delmonitor`` (RandR 1.5). Xvfb takes them at once but tells clients only
at its next RandR change (a real server tells them as a monitor is plugged
in), so after each one the test makes that change itself: it unsets and sets
the primary output again in one burst, which changes nothing in the end.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from Xlib import display as xdisplay

from conftest import LiveHarness, rules_from, wait_until
from nerve.events import Event
from nerve.listeners import display as display_module
from nerve.listeners.display import Monitor, diff, event_data
from xserver import XServer

pytestmark = pytest.mark.usefixtures("xserver")


class RandR:
    """xrandr, and a connection to make the server tell what changed."""

    def __init__(self, server: XServer) -> None:
        self.env = server.env()
        self.d = xdisplay.Display(server.display)
        self.root = self.d.screen().root
        self.output = self.root.xrandr_get_screen_resources().outputs[0]
        self.root.xrandr_set_output_primary(self.output)
        self.d.sync()

    def xrandr(self, *args: str) -> None:
        subprocess.run(["xrandr", *args], env=self.env, check=True, timeout=10)

    def tell(self) -> None:
        """A RandR change that changes nothing in the end: the server notifies."""
        self.root.xrandr_set_output_primary(0)
        self.root.xrandr_set_output_primary(self.output)
        self.d.sync()

    def monitors(self) -> list[str]:
        reply = self.root.xrandr_get_monitors(is_active=True)
        return sorted(self.d.get_atom_name(m.name) for m in reply.monitors)

    def close(self) -> None:
        for name in self.monitors():
            if name != "screen":
                self.xrandr("--delmonitor", name)
        self.tell()
        self.d.close()


@pytest.fixture
def randr(xserver: XServer) -> Iterator[RandR]:
    r = RandR(xserver)
    yield r
    r.close()


def changed(live: LiveHarness, count: int = 1) -> list[Event]:
    return live.recorder.wait("display.changed", count)


def test_monitors_added_moved_and_removed(live: LiveHarness, randr: RandR) -> None:
    live.load("""
  - {id: any, mode: queued, when: {display.changed: null}, do: [{log: x}]}
""")
    live.listener("display")
    randr.xrandr("--setmonitor", "SIDE", "640/170x800/212+640+0", "none")
    randr.tell()
    (event,) = changed(live)
    assert event.source == "display"
    data = dict(event.data)
    assert data["change"] == "added"
    assert list(data["added"]) == ["SIDE"]
    assert list(data["removed"]) == []
    assert list(data["rearranged"]) == []
    assert data["count"] == 2
    assert data["primary"] == "screen"
    assert (data["width"], data["height"]) == (1280, 800)
    assert [dict(m) for m in data["monitors"]] == [
        {
            "name": "screen",
            "x": 0,
            "y": 0,
            "width": 1280,
            "height": 800,
            "primary": True,
            "width_mm": 339,
            "height_mm": 212,
        },
        {
            "name": "SIDE",
            "x": 640,
            "y": 0,
            "width": 640,
            "height": 800,
            "primary": False,
            "width_mm": 170,
            "height_mm": 212,
        },
    ]

    # Made smaller and moved down: rearranged (Xvfb takes a monitor's new
    # geometry as a new monitor of the same name).
    randr.xrandr("--delmonitor", "SIDE")
    randr.xrandr("--setmonitor", "SIDE", "640/170x400/106+640+400", "none")
    randr.tell()
    event = changed(live, 2)[-1]
    assert event.data["change"] == "rearranged"
    assert list(event.data["rearranged"]) == ["SIDE"]
    side = next(m for m in event.data["monitors"] if m["name"] == "SIDE")
    assert (side["x"], side["y"], side["width"], side["height"]) == (640, 400, 640, 400)

    randr.xrandr("--delmonitor", "SIDE")
    randr.tell()
    event = changed(live, 3)[-1]
    assert event.data["change"] == "removed"
    assert list(event.data["removed"]) == ["SIDE"]
    assert event.data["count"] == 1
    assert live.summary("any")["fired"] == 3


def test_a_change_of_the_real_output_is_seen(live: LiveHarness, randr: RandR) -> None:
    """No nudge here: unsetting the primary output is itself a RandR change."""
    live.load("- {id: any, when: {display.changed: null}, do: [{log: x}]}".join(["\n  ", "\n"]))
    live.listener("display")
    randr.xrandr("--output", "screen", "--noprimary")
    (event,) = changed(live)
    assert event.data["change"] == "rearranged"
    assert list(event.data["rearranged"]) == ["screen"]
    assert event.data["primary"] is None
    randr.xrandr("--output", "screen", "--primary")
    assert changed(live, 2)[-1].data["primary"] == "screen"


def test_a_burst_of_notifications_is_one_event(live: LiveHarness, randr: RandR) -> None:
    live.load("\n  - {id: any, when: {display.changed: null}, do: [{log: x}]}\n")
    live.listener("display")
    for name, x in (("A", 0), ("B", 320), ("C", 640)):
        randr.xrandr("--setmonitor", name, f"320/85x800/212+{x}+0", "none")
    randr.tell()
    randr.tell()
    (event,) = changed(live)
    assert sorted(event.data["added"]) == ["A", "B", "C"]
    # Nothing changed since: telling again publishes nothing.
    randr.tell()
    randr.xrandr("--setmonitor", "D", "10/1x10/1+0+0", "none")
    randr.tell()
    events = changed(live, 2)
    assert list(events[-1].data["added"]) == ["D"]


def test_the_trigger_filters_by_change_name_and_count(live: LiveHarness, randr: RandR) -> None:
    live.load("""
  - {id: added, mode: queued, when: {display.changed: {change: added}}, do: [{log: x}]}
  - {id: removed, mode: queued, when: {display.changed: {change: [removed]}}, do: [{log: x}]}
  - id: tv
    mode: queued
    when: {display.changed: {change: [added, rearranged], monitor: "TV*"}}
    do: [{emit: {type: test.tv, data: {n: "{event.count}", added: "{event.added}"}}}]
  - {id: three, mode: queued, when: {display.changed: {count: 3}}, do: [{log: x}]}
""")
    live.listener("display")
    steps: list[tuple[tuple[str, ...], int | None]] = [
        (("--setmonitor", "DESK", "640/170x800/212+640+0", "none"), 1),
        (("--setmonitor", "TV-1", "640/170x800/212+0+0", "none"), 2),
        (("--delmonitor", "TV-1"), None),
        (("--setmonitor", "TV-1", "640/170x400/106+0+0", "none"), 3),
        (("--delmonitor", "DESK"), 4),
        (("--delmonitor", "TV-1"), 5),
    ]
    for args, count in steps:
        randr.xrandr(*args)
        if count is not None:
            randr.tell()
            changed(live, count)
    live.recorder.wait("test.tv", 2)
    fired = {name: live.summary(name)["fired"] for name in ("added", "removed", "tv", "three")}
    assert fired == {"added": 2, "removed": 2, "tv": 2, "three": 2}
    (first, second) = live.recorder.of("test.tv")
    assert first.data["n"] == 3
    assert list(first.data["added"]) == ["TV-1"]
    assert second.data["n"] == 3


def test_the_listener_runs_only_while_a_rule_needs_it(live: LiveHarness) -> None:
    live.load("\n  - {id: other, when: {event: x}, do: [{log: x}]}\n")
    assert not any(s["id"] == "display" for s in live.listeners.status())
    live.load("\n  - {id: any, when: {display.changed: null}, do: [{log: x}]}\n")
    status = live.listener("display")
    assert "monitor" in status["detail"]
    live.load("\n  - {id: other, when: {event: x}, do: [{log: x}]}\n")
    wait_until(
        lambda: not any(s["id"] == "display" for s in live.listeners.status()),
        what="the display listener stopped",
    )
    wait_until(
        lambda: not any(t.name == "display" for t in threading.enumerate()),
        what="its thread ended",
    )


def test_bad_trigger_options_are_load_errors() -> None:
    from nerve.packs.loader import load_pack

    for options, where in (
        ("{change: plugged}", "change"),
        ("{monitor: {regex: '('}}", "monitor"),
        ("{count: -1}", "count"),
        ("{screen: 1}", "screen"),
    ):
        text = (
            "nerve: 1\npack: {id: t}\nrules:\n  - id: r\n"
            f"    when: {{display.changed: {options}}}\n    do: [{{log: x}}]\n"
        )
        errors = [str(e) for e in load_pack(text.encode(), filename="p.yaml").errors]
        assert errors, options
        assert errors[0].startswith("p.yaml:5:"), errors
        assert where in errors[0], errors
    (rule,) = rules_from(
        "\n  - {id: r, when: {display.changed: null},"
        " do: [{log: '{event.count} {event.primary}'}]}\n"
    )
    assert rule.capabilities == frozenset()


# ---------------------------------------------------------------------------
# The layout arithmetic


monitors = st.lists(
    st.builds(
        Monitor,
        st.sampled_from(["A", "B", "C", "DP-1", "HDMI-1", "screen"]),
        st.integers(-4000, 4000),
        st.integers(-4000, 4000),
        st.integers(1, 8000),
        st.integers(1, 8000),
        st.booleans(),
    ),
    max_size=5,
    unique_by=lambda m: m.name,
)


@settings(max_examples=400, deadline=None)
@given(monitors, monitors)
def test_diff_names_every_change(before: list[Monitor], after: list[Monitor]) -> None:
    changes = diff(before, after)
    old, new = {m.name for m in before}, {m.name for m in after}
    assert set(changes["added"]) == new - old
    assert set(changes["removed"]) == old - new
    for name in changes["rearranged"]:
        assert name in old & new
    unchanged = (old & new) - set(changes["rearranged"])
    for name in unchanged:
        assert next(m for m in before if m.name == name) == next(m for m in after if m.name == name)
    data = event_data(before, after)
    if sorted(before, key=lambda m: m.name) == sorted(after, key=lambda m: m.name):
        assert data is None
    else:
        assert data is not None
        assert data[str(data["change"])]  # the change named has names
        assert data["count"] == len(after)


def test_settle_time_is_short() -> None:
    assert display_module.SETTLE_S <= 0.25
