"""The active window on a real Xvfb with openbox: window.focused events, the
window.focused trigger and the window condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import psutil
import pytest

from conftest import LiveHarness, wait_until
from nerve.bus import Bus
from nerve.events import Event
from nerve.listeners import manager as manager_module
from nerve.listeners import window as window_module
from nerve.listeners.base import Listener, ListenerUnavailable
from nerve.listeners.window import WindowListener
from xclients import XWindow, kill_connection
from xserver import XServer

pytestmark = pytest.mark.usefixtures("xserver_wm")


@pytest.fixture
def windows() -> Iterator[tuple[XWindow, XWindow]]:
    """Two windows, beta active (before any listener starts, so no event says so)."""
    alpha = XWindow("Alpha one", "Alpha")
    beta = XWindow("Beta two", "Beta")
    beta.activate()
    yield alpha, beta
    alpha.close()
    beta.close()


def focused(live: LiveHarness, win: XWindow, count: int = 1, **data: object) -> list[Event]:
    """Wait for ``count`` window.focused events about ``win`` (with ``data``)."""
    return live.recorder.wait(
        "window.focused",
        count,
        where=lambda e: (
            e.data["window"] == win.id and all(e.data.get(k) == v for k, v in data.items())
        ),
    )


def test_focus_events_and_the_trigger(live: LiveHarness, windows: tuple[XWindow, XWindow]) -> None:
    alpha, beta = windows
    live.load(
        """
  - id: alpha
    mode: queued
    when: {window.focused: {class: Alpha}}
    do: [{emit: {type: test.alpha, data: {title: "{event.title}"}}}]
"""
    )
    live.listener("window")
    # One at a time, as a person would: the listener reads the property when
    # told it changed, so a window active for a microsecond may be skipped.
    for win, count in ((alpha, 1), (beta, 1), (alpha, 2)):
        win.activate()
        focused(live, win, count)
    (event, _) = focused(live, alpha, 2)
    assert event.source == "window"
    assert dict(event.data) == {
        "title": "Alpha one",
        "class": "Alpha",
        "instance": "alpha",
        "pid": alpha.pid,
        "process": psutil.Process(alpha.pid).name(),
        "window": alpha.id,
        "change": "focus",
    }
    assert focused(live, beta)[0].data["class"] == "Beta"
    # Alpha was activated twice: the rule ran twice, never for beta.
    runs = live.recorder.wait("test.alpha", 2)
    assert [e.data["title"] for e in runs] == ["Alpha one", "Alpha one"]
    assert live.summary("alpha")["fired"] == 2


def test_the_window_condition_gates_rules(
    live: LiveHarness, windows: tuple[XWindow, XWindow]
) -> None:
    alpha, beta = windows
    gates = {
        "exact": "{class: Alpha}",
        "glob": '{title: "Beta*"}',
        "regex": r'{title: {regex: "^Alpha\\s+one$"}}',
        "negated": '{class: "!Alpha"}',
        "process": '{process: "python*", class: "B*"}',
    }
    live.load(
        "".join(
            f"""
  - id: {name}
    when: {{event: test.ping}}
    if: [{{window: {gate}}}]
    do: [{{log: ran}}]
"""
            for name, gate in gates.items()
        )
    )
    live.listener("window")

    pings = 0

    def ran_with(win: XWindow, focus_count: int) -> set[str]:
        nonlocal pings
        win.activate()
        focused(live, win, focus_count)
        live.publish("test.ping")
        pings += 1

        def done() -> bool:
            summaries = [live.summary(name) for name in gates]
            return all(s["fired"] == pings and not s["running"] for s in summaries)

        wait_until(done, what="every rule ran")
        return {n for n in gates if live.summary(n)["last_run"]["status"] == "ok"}

    assert ran_with(alpha, 1) == {"exact", "regex"}
    assert ran_with(beta, 1) == {"glob", "negated", "process"}
    assert ran_with(alpha, 2) == {"exact", "regex"}


def test_with_no_active_window_only_negations_hold(
    live: LiveHarness, windows: tuple[XWindow, XWindow]
) -> None:
    live.load(
        """
  - {id: terminal, when: {event: test.ping}, if: [{window: {class: "!*erm*"}}], do: [{log: x}]}
  - {id: alpha, when: {event: test.ping}, if: [{window: {class: Alpha}}], do: [{log: x}]}
"""
    )
    live.listener("window")
    for win in windows:
        win.close()
    listener = window_module._shared.listener
    assert listener is not None
    wait_until(lambda: listener.current is None, what="no active window")
    live.publish("test.ping")
    wait_until(lambda: all(live.summary(r)["last_run"] for r in ("terminal", "alpha")))
    assert live.summary("terminal")["last_run"]["status"] == "ok"
    assert live.summary("alpha")["last_run"]["status"] == "condition"


def test_a_title_change_is_a_new_window_for_rules(
    live: LiveHarness, windows: tuple[XWindow, XWindow]
) -> None:
    alpha, beta = windows
    live.load(
        """
  - id: done
    mode: queued
    when: {window.focused: {title: "*done*"}}
    do: [{emit: {type: test.done, data: {title: "{event.title}"}}}]
"""
    )
    live.listener("window")
    alpha.activate()
    focused(live, alpha)
    alpha.set_title("Alpha done")
    (event,) = focused(live, alpha, change="title")
    assert event.data["title"] == "Alpha done"
    assert live.recorder.wait("test.done")[0].data["title"] == "Alpha done"
    # Still matching after another title change: no new run...
    alpha.set_title("Alpha done again")
    focused(live, alpha, 2, change="title")
    assert window_module._shared.listener is not None
    current = window_module._shared.listener.current
    assert current is not None
    assert current.title == "Alpha done again"
    # ...but focusing it again is.
    beta.activate()
    alpha.activate()
    focused(live, alpha, 2, change="focus")
    runs = live.recorder.wait("test.done", 2)
    assert [e.data["title"] for e in runs] == ["Alpha done", "Alpha done again"]
    time.sleep(0.3)  # nothing else may fire: prove the absence
    assert live.summary("done")["fired"] == 2


def test_stop_is_prompt(xserver_wm: XServer) -> None:
    failures: list[BaseException] = []
    listener = WindowListener(Bus(), lambda _l, exc: failures.append(exc))
    listener.start([None])
    thread = listener._thread
    assert thread is not None
    assert thread.is_alive()
    started = time.perf_counter()
    listener.stop()
    assert time.perf_counter() - started < 0.5
    assert not thread.is_alive()
    assert window_module._shared.listener is None
    assert failures == []


def test_a_killed_connection_is_reported_and_survived(
    live: LiveHarness, windows: tuple[XWindow, XWindow], monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha, beta = windows
    monkeypatch.setattr(manager_module, "BACKOFF_FIRST_S", 0.05)
    live.load(
        """
  - id: alpha
    when: {window.focused: {class: Alpha}}
    do: [{emit: test.alpha}]
"""
    )
    live.listener("window")
    first = window_module._shared.listener
    assert first is not None
    kill_connection(first.display)
    status = wait_until(
        lambda: next(
            (s for s in live.listeners.status() if s["restarts"] == 1 and s["state"] == "running"),
            None,
        ),
        what="the window listener restarted",
    )
    assert status["id"] == "window"
    assert window_module._shared.listener is not first
    beta.activate()
    alpha.activate()
    live.recorder.wait("test.alpha")


def test_without_a_window_manager_it_says_so(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = XServer()
    try:
        monkeypatch.setenv("DISPLAY", bare.display)
        with pytest.raises(ListenerUnavailable, match="no EWMH window manager"):
            WindowListener(live.bus, _no_failure).start([None])
        (rule,) = live.load(
            """
  - id: gated
    when: {event: test.ping}
    if: [{window: {class: Alpha}}]
    do: [{log: ran}]
"""
        )
        status = live.listener("window", state="unavailable")
        assert "run a window manager that supports EWMH" in status["error"]
        ok, why = rule.conditions[0].check(SimpleNamespace(at=None))  # a live run, not a replay
        assert not ok
        assert why.startswith("the active window is not known: no EWMH window manager")
    finally:
        bare.stop()


def _no_failure(listener: Listener, exc: BaseException) -> None:
    raise AssertionError(f"unexpected failure: {exc}")


def test_loading_works_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    failed = threading.Event()
    with pytest.raises(ListenerUnavailable, match="DISPLAY is not set"):
        WindowListener(Bus(), lambda _l, _e: failed.set()).start([None])
    assert not failed.is_set()
