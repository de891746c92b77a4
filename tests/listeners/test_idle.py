"""Idle time on a real Xvfb: thresholds passing with no input, input injected
through XTEST (xdotool) ending them, and the listener's life."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from conftest import PACK_HEAD, LiveHarness
from nerve.bus import Bus
from nerve.events import Event
from nerve.listeners.idle import IdleListener
from nerve.packs.loader import load_pack
from xserver import XServer

pytestmark = pytest.mark.usefixtures("xserver")


def xdotool(*args: str) -> float:
    """Inject input; return the monotonic time just before."""
    before = time.monotonic()
    subprocess.run(["xdotool", *args], check=True, timeout=10)
    return before


def test_idle_then_input_then_idle_again(live: LiveHarness) -> None:
    live.load(
        """
  - id: away
    mode: queued
    when: {idle: 1s}
    do: [{emit: test.away}]
  - id: back
    mode: queued
    when: {active: 1s}
    do: [{emit: {type: test.back, data: {idle: "{event.idle_seconds}"}}}]
"""
    )
    live.listener("idle")
    touched = xdotool("mousemove_relative", "1", "1")
    (idle,) = live.recorder.wait("system.idle", where=lambda e: e.mono_ns / 1e9 > touched + 0.9)
    assert idle.data["threshold"] == 1.0
    assert idle.data["idle_seconds"] >= 1.0
    assert idle.mono_ns / 1e9 - touched >= 1.0
    live.recorder.wait("test.away", where=lambda e: e.time >= idle.time)

    # A key (a raw XInput event) ends it at once.
    pressed = xdotool("key", "shift")
    (active,) = live.recorder.wait("system.active", where=lambda e: e.time >= idle.time)
    assert active.mono_ns / 1e9 - pressed < 0.5
    assert active.data["idle_seconds"] >= 1.0
    (back,) = live.recorder.wait("test.back", where=lambda e: e.time >= active.time)
    assert float(back.data["idle"]) >= 1.0

    # Idle again: it fires again...
    (again,) = live.recorder.wait("system.idle", where=lambda e: e.time > active.time)
    assert again.mono_ns / 1e9 - pressed >= 1.0
    live.recorder.wait("test.away", where=lambda e: e.time >= again.time)
    # ...and absolute pointer motion, which makes no raw event, ends it too.
    xdotool("mousemove", "200", "300")
    live.recorder.wait("system.active", where=lambda e: e.time > again.time)
    live.recorder.wait("test.back", where=lambda e: e.time > again.time)


def test_each_threshold_once_per_idle_period(live: LiveHarness) -> None:
    one = "  - {id: one, when: {idle: 1s}, do: [{emit: test.one}]}\n"
    two = "  - {id: two, when: {idle: 1500ms}, do: [{emit: test.two}]}\n"
    live.load(one)
    live.listener("idle")
    touched = xdotool("key", "shift")

    def after_touch(threshold: float) -> Callable[[Event], bool]:
        # Of the idle period the key began (an earlier one may end meanwhile).
        return lambda e: (
            e.data["threshold"] == threshold
            and e.mono_ns / 1e9 - float(e.data["idle_seconds"]) >= touched - 0.1
        )

    live.recorder.wait("system.idle", where=after_touch(1.0))
    # A rule added meanwhile: the listener takes the new threshold without a
    # restart, and the threshold that passed does not pass again.
    live.load(one + two)
    (passed,) = live.recorder.wait("system.idle", where=after_touch(1.5))
    assert passed.data["idle_seconds"] >= 1.5
    live.recorder.wait("test.two")
    assert live.listener("idle")["restarts"] == 0
    assert len([e for e in live.recorder.of("system.idle") if after_touch(1.0)(e)]) == 1
    assert "thresholds 1s, 1.5s" in live.listener("idle")["detail"]


def test_idle_times_are_checked_when_loading() -> None:
    pack = load_pack(
        (PACK_HEAD + "  - {id: r, when: {idle: 100ms}, do: [{log: x}]}\n").encode(),
        filename="test.yaml",
    )
    assert [str(e) for e in pack.errors] == [
        "test.yaml:5:20: rules[0].when.idle: an idle time must be at least 1s"
    ]


def test_stop_is_prompt(xserver: XServer) -> None:
    failures: list[BaseException] = []
    listener = IdleListener(Bus(), lambda _l, exc: failures.append(exc))
    listener.start([600.0])
    thread = listener._thread
    assert thread is not None
    started = time.perf_counter()
    listener.stop()
    assert time.perf_counter() - started < 0.5
    assert not thread.is_alive()
    assert failures == []


def test_the_x_server_going_away_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    own = XServer()
    failed = threading.Event()
    reasons: list[BaseException] = []

    def on_failure(_listener: object, exc: BaseException) -> None:
        reasons.append(exc)
        failed.set()

    try:
        monkeypatch.setenv("DISPLAY", own.display)
        listener = IdleListener(Bus(), on_failure)
        listener.start([600.0])
        own.stop()
        assert failed.wait(10), "the listener did not notice"
        listener.stop()
        assert listener._thread is None
        assert len(reasons) == 1
    finally:
        own.stop()
