"""The window actions against real windows under openbox on Xvfb; geometry is
read back from the window manager's frame (the root's child), not through the
code under test."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from Xlib import X, Xatom
from Xlib import display as xdisplay

from conftest import Harness, rules_from, wait_until
from nerve import windowctl
from nerve.events import Event
from nerve.listeners import x11_windows
from nerve.storage import Store
from nerve.windowctl import Rect

pytestmark = pytest.mark.usefixtures("xserver_wm")

_HERE = Path(__file__).resolve().parents[2] / "xclients"
_RULES = itertools.count()
SCREEN = Rect(0, 0, 1280, 800)


class Win:
    """A real top-level window of another process that answers WM_DELETE_WINDOW."""

    def __init__(self, title: str, klass: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(_HERE / "managed_window.py"), "--title", title, "--class", klass],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the test window did not start")
        self.id = int(line, 16)
        self.title = title

    def activate(self) -> None:
        subprocess.run(
            ["xdotool", "windowactivate", "--sync", str(self.id)], check=True, timeout=10
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout,):
            if f is not None:
                f.close()


class WM:
    """What the window manager says, through a connection of the test's own."""

    def __init__(self) -> None:
        self.d = xdisplay.Display()
        self.root = self.d.screen().root

    def _prop(self, window: Any, name: str) -> list[int]:
        prop = window.get_full_property(self.d.intern_atom(name), X.AnyPropertyType)
        return [] if prop is None else list(prop.value)

    def outer(self, wid: int) -> Rect:
        """The frame window's geometry (openbox reparents into it)."""
        window = self.d.create_resource_object("window", wid)
        while True:
            tree = window.query_tree()
            if tree.parent.id == self.root.id:
                break
            window = tree.parent
        g = window.get_geometry()
        return Rect(g.x, g.y, g.width + 2 * g.border_width, g.height + 2 * g.border_width)

    def client_size(self, wid: int) -> tuple[int, int]:
        g = self.d.create_resource_object("window", wid).get_geometry()
        return g.width, g.height

    def extents(self, wid: int) -> list[int]:
        return self._prop(self.d.create_resource_object("window", wid), "_NET_FRAME_EXTENTS")

    def states(self, wid: int) -> set[str]:
        window = self.d.create_resource_object("window", wid)
        return {self.d.get_atom_name(a) for a in self._prop(window, "_NET_WM_STATE")}

    def active(self) -> int:
        return (self._prop(self.root, "_NET_ACTIVE_WINDOW") or [0])[0]

    def wm_state(self, wid: int) -> int:
        window = self.d.create_resource_object("window", wid)
        return (self._prop(window, "WM_STATE") or [0])[0]

    def stacking(self) -> list[int]:
        return self._prop(self.root, "_NET_CLIENT_LIST_STACKING")

    def work_area(self) -> Rect:
        x, y, w, h = self._prop(self.root, "_NET_WORKAREA")[:4]
        return Rect(x, y, w, h)

    def close(self) -> None:
        self.d.close()


@pytest.fixture
def wm() -> Iterator[WM]:
    w = WM()
    yield w
    w.close()


@pytest.fixture(autouse=True)
def _fresh_control() -> Iterator[None]:
    windowctl.reset()
    yield
    windowctl.reset()


@pytest.fixture
def two() -> Iterator[tuple[Win, Win]]:
    alpha, beta = Win("Alpha one", "Alpha"), Win("Beta two", "Beta")
    beta.activate()
    yield alpha, beta
    alpha.close()
    beta.close()


def run(harness: Harness, store: Store, action_yaml: str, **data: Any) -> dict[str, Any]:
    """Run one action in a rule; the stored run (status, error, the action's result)."""
    rule = f"win{next(_RULES)}"
    harness.load(f"""
  - id: {rule}
    when: {{event: test.go}}
    do: [{action_yaml}]
""")
    harness.publish("test.go", **data)

    def finished() -> dict[str, Any] | None:
        last = harness.summary(rule)["last_run"]
        if last is None or last["status"] == "running":
            return None
        return store.get_run(last["id"])

    record: dict[str, Any] = wait_until(finished, 20, f"the run of {rule} recorded")
    actions = record["trace"]["actions"]
    record["result"] = actions[0].get("result") if actions else None
    record["action_error"] = actions[0].get("error") if actions else None
    return record


def ok(record: dict[str, Any]) -> dict[str, Any]:
    assert record["status"] == "ok", record
    result: dict[str, Any] = record["result"]
    return result


# ---------------------------------------------------------------------------
# Tiling


TILE_EXPECTED = {
    "left": Rect(0, 0, 640, 800),
    "right": Rect(640, 0, 640, 800),
    "top": Rect(0, 0, 1280, 400),
    "bottom": Rect(0, 400, 1280, 400),
    "top-left": Rect(0, 0, 640, 400),
    "top-right": Rect(640, 0, 640, 400),
    "bottom-left": Rect(0, 400, 640, 400),
    "bottom-right": Rect(640, 400, 640, 400),
    "center": Rect(320, 200, 640, 400),
}


def test_tile_puts_the_active_window_frame_exactly(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    _, beta = two
    assert wm.work_area() == SCREEN
    extents = wm.extents(beta.id)
    assert sum(extents) > 0, "openbox decorates the window: the frame differs from the client"
    for tile, expected in TILE_EXPECTED.items():
        result = ok(run(stored, store, f"{{window.tile: {tile}}}"))
        assert result["window"] == beta.id
        assert wm.outer(beta.id) == expected, tile
        assert result["geometry"] == expected.as_dict()
        left, right, top, bottom = extents
        assert wm.client_size(beta.id) == (
            expected.width - left - right,
            expected.height - top - bottom,
        )


def test_maximise_restore_and_restore_after_tiling(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    _, beta = two
    start = wm.outer(beta.id)
    ok(run(stored, store, "{window.tile: maximize}"))
    assert {"_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ"} <= wm.states(beta.id)
    assert wm.outer(beta.id).width == SCREEN.width
    ok(run(stored, store, "{window.tile: restore}"))
    assert not {"_NET_WM_STATE_MAXIMIZED_VERT"} & wm.states(beta.id)
    assert wm.outer(beta.id) == start
    ok(run(stored, store, "{window.tile: bottom-right}"))
    ok(run(stored, store, "{window.tile: left}"))
    assert wm.outer(beta.id) == TILE_EXPECTED["left"]
    result = ok(run(stored, store, "{window.tile: {to: restore}}"))
    assert wm.outer(beta.id) == start  # where it was before the first tile
    assert result["geometry"] == start.as_dict()


def test_a_maximised_window_is_unmaximised_before_it_moves(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    _, beta = two
    ok(run(stored, store, "{window.tile: maximise}"))
    assert "_NET_WM_STATE_MAXIMIZED_HORZ" in wm.states(beta.id)
    ok(run(stored, store, "{window.move: {x: 100, y: 50, width: 400, height: 300}}"))
    assert not {"_NET_WM_STATE_MAXIMIZED_HORZ", "_NET_WM_STATE_MAXIMIZED_VERT"} & wm.states(beta.id)
    assert wm.outer(beta.id) == Rect(100, 50, 400, 300)
    ok(run(stored, store, "{window.tile: maximize}"))
    ok(run(stored, store, "{window.tile: right}"))
    assert wm.outer(beta.id) == TILE_EXPECTED["right"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("{x: 0.5, width: 0.5}", Rect(640, 100, 640, 300)),
        ('{x: "25%", y: "10%", width: 0.25, height: "50%"}', Rect(320, 80, 320, 400)),
        ("{x: 10, y: 20}", Rect(10, 20, 500, 300)),
        ("{x: 0.0, y: 1.0}", Rect(0, 800, 500, 300)),
        ('{x: "{event.x}", y: "{event.y}"}', Rect(33, 44, 500, 300)),
        ('{x: "{event.fx}", width: "{event.fw}"}', Rect(128, 100, 640, 300)),
    ],
)
def test_move_in_pixels_and_fractions_of_the_work_area(  # noqa: PLR0917
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win], options: str, expected: Rect
) -> None:
    _, beta = two
    ok(run(stored, store, "{window.move: {x: 100, y: 100, width: 500, height: 300}}"))
    assert wm.outer(beta.id) == Rect(100, 100, 500, 300)
    data = {"x": 33, "y": 44, "fx": "0.1", "fw": "50%"}
    result = ok(run(stored, store, f"{{window.move: {options}}}", **data))
    # y = 1.0 puts the top edge at the bottom of the work area: the window
    # manager keeps some of the window on screen, so compare what it reports.
    got = wm.outer(beta.id)
    assert result["geometry"] == got.as_dict()
    if expected.y == 800:
        assert (got.x, got.width, got.height) == (0, 500, 300)
    else:
        assert got == expected


def test_resize_keeps_the_corner(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    _, beta = two
    ok(run(stored, store, "{window.move: {x: 200, y: 100, width: 500, height: 300}}"))
    ok(run(stored, store, "{window.resize: {width: 0.5, height: 123}}"))
    assert wm.outer(beta.id) == Rect(200, 100, 640, 123)
    ok(run(stored, store, '{window.resize: {height: "100%"}}'))
    assert wm.outer(beta.id).height == 800


def test_the_work_area_leaves_room_for_a_panel(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    """A dock with a 40-pixel strut at the top: tiles start below it."""
    _, beta = two
    d = wm.d
    dock = wm.root.create_window(0, 0, 1280, 40, 0, X.CopyFromParent, X.InputOutput)
    dock.change_property(
        d.intern_atom("_NET_WM_WINDOW_TYPE"),
        Xatom.ATOM,
        32,
        [d.intern_atom("_NET_WM_WINDOW_TYPE_DOCK")],
    )
    dock.change_property(
        d.intern_atom("_NET_WM_STRUT_PARTIAL"),
        Xatom.CARDINAL,
        32,
        [0, 0, 40, 0, 0, 0, 0, 0, 0, 1279, 0, 0],
    )
    dock.map()
    d.sync()
    try:
        wait_until(lambda: wm.work_area() == Rect(0, 40, 1280, 760), what="openbox's work area")
        ok(run(stored, store, "{window.tile: top-right}"))
        assert wm.outer(beta.id) == Rect(640, 40, 640, 380)
        ok(run(stored, store, "{window.move: {y: 0.5, height: 0.5}}"))
        assert wm.outer(beta.id) == Rect(640, 420, 640, 380)
        # The dock is no window to act on: a match on every window skips it.
        result = ok(run(stored, store, '{window.raise: {title: "*"}}'))
        assert result["window"] != dock.id
    finally:
        dock.destroy()
        d.sync()
    wait_until(lambda: wm.work_area() == SCREEN, what="the work area back")


# ---------------------------------------------------------------------------
# Aiming at a window


@pytest.mark.parametrize(
    "match",
    [
        "{class: Alpha}",
        '{title: "Alpha*"}',
        '{title: {regex: "(?i)^alpha\\\\s+ONE\\\\Z"}}',
        '{class: "!Beta", process: "python*"}',
        "{instance: alpha}",
        '{process: "python*", title: "*one"}',
    ],
)
def test_a_match_picks_the_window_like_the_window_condition(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win], match: str
) -> None:
    alpha, beta = two
    beta_before = wm.outer(beta.id)
    result = ok(run(stored, store, f"{{window.tile: {{to: left, window: {match}}}}}"))
    assert result["window"] == alpha.id
    assert result["title"] == "Alpha one"
    assert wm.outer(alpha.id) == TILE_EXPECTED["left"]
    assert wm.outer(beta.id) == beta_before
    assert wm.active() == beta.id  # tiling does not take the focus


def test_the_active_window_wins_when_several_match(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    alpha, beta = two
    result = ok(run(stored, store, '{window.tile: {to: top, window: {process: "python*"}}}'))
    assert result["window"] == beta.id
    alpha.activate()
    result = ok(run(stored, store, '{window.tile: {to: top, window: {process: "python*"}}}'))
    assert result["window"] == alpha.id


def test_nothing_matching_is_a_clear_failure(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    for action in (
        "{window.focus: {class: Nope}}",
        "{window.close: {title: 'Gone*'}}",
        "{window.tile: {to: left, window: {class: Nope}}}",
        "{window.move: {x: 1, window: {process: no-such-program}}}",
    ):
        record = run(stored, store, action)
        assert record["status"] == "failed"
        assert "no window matches" in record["error"], record
        assert "windows open" in record["error"]
    assert two[0].proc.poll() is None
    assert two[1].proc.poll() is None


# ---------------------------------------------------------------------------
# Focus, raise, minimise, close


def test_focus_raise_minimise_and_close(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    alpha, beta = two
    assert wm.active() == beta.id
    ok(run(stored, store, "{window.focus: {class: Alpha}}"))
    assert wm.active() == alpha.id
    assert wm.stacking()[-1] == alpha.id

    ok(run(stored, store, "{window.raise: {class: Beta}}"))
    assert wm.stacking()[-1] == beta.id
    assert wm.active() == alpha.id  # raising does not focus

    ok(run(stored, store, "{window.minimize: null}"))  # the active one: alpha
    assert wm.wm_state(alpha.id) == 3  # IconicState
    assert "_NET_WM_STATE_HIDDEN" in wm.states(alpha.id)

    ok(run(stored, store, "{window.focus: {title: 'Alpha one'}}"))  # unminimises it
    assert wm.wm_state(alpha.id) == 1
    assert wm.active() == alpha.id

    result = ok(run(stored, store, "{window.close: {class: Beta}}"))
    assert result["window"] == beta.id
    assert beta.proc.stdout is not None
    assert beta.proc.stdout.readline().strip() == "deleted"  # WM_DELETE_WINDOW, politely
    assert beta.proc.wait(5) == 0
    assert alpha.proc.poll() is None
    ok(run(stored, store, "{window.close: null}"))
    assert alpha.proc.stdout is not None
    assert alpha.proc.stdout.readline().strip() == "deleted"


def test_no_active_window_is_a_clear_failure(stored: Harness, store: Store, wm: WM) -> None:
    win = Win("Lonely", "Lonely")
    win.activate()
    win.close()
    # openbox leaves _NET_ACTIVE_WINDOW naming the window that is gone.
    assert wm.active() in (0, win.id)
    record = run(stored, store, "{window.tile: left}")
    assert record["status"] == "failed"
    assert record["error"].endswith("no window is active"), record


# ---------------------------------------------------------------------------
# Monitors


def test_next_monitor_with_one_monitor_says_so(
    stored: Harness, store: Store, two: tuple[Win, Win]
) -> None:
    record = run(stored, store, "{window.tile: next-monitor}")
    assert record["status"] == "failed"
    assert "only one monitor" in record["error"]


def test_next_and_previous_monitor(
    stored: Harness,
    store: Store,
    wm: WM,
    two: tuple[Win, Win],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Xvfb has one RandR monitor and cannot add one: the control is told of two
    side by side; the moves themselves go through openbox."""
    halves = [Rect(0, 0, 640, 800), Rect(640, 0, 640, 800)]
    monkeypatch.setattr(x11_windows.X11WindowControl, "_monitors", lambda self: halves)
    _, beta = two
    ok(run(stored, store, "{window.move: {x: 64, y: 80, width: 320, height: 400}}"))
    result = ok(run(stored, store, "{window.tile: next-monitor}"))
    assert result["monitor"] == 1
    assert wm.outer(beta.id) == Rect(704, 80, 320, 400)
    ok(run(stored, store, "{window.tile: next-monitor}"))  # wraps around
    assert wm.outer(beta.id) == Rect(64, 80, 320, 400)
    ok(run(stored, store, "{window.tile: previous-monitor}"))
    assert wm.outer(beta.id) == Rect(704, 80, 320, 400)
    ok(run(stored, store, "{window.tile: left}"))  # the left half of monitor 2
    assert wm.outer(beta.id) == Rect(640, 0, 320, 800)
    # A maximised window stays maximised, on the other monitor.
    ok(run(stored, store, "{window.tile: maximize}"))
    ok(run(stored, store, "{window.tile: previous-monitor}"))
    assert "_NET_WM_STATE_MAXIMIZED_VERT" in wm.states(beta.id)
    assert wm.outer(beta.id).x < 640


# ---------------------------------------------------------------------------
# Dry run, capabilities, one connection


def test_a_dry_run_moves_nothing(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    _, beta = two
    before = wm.outer(beta.id)
    (rule,) = rules_from("""
  - id: dry
    when: {event: test.go}
    do: [{window.tile: left}, {window.close: null}, {window.minimize: null}]
""")
    engine = stored.engine
    assert engine.loop is not None
    event = Event(id=0, type="test.go", time=0.0, mono_ns=0, source="test", data={})
    ctx = asyncio.run_coroutine_threadsafe(engine.dry_run(rule, event), engine.loop).result(10)
    assert [a["result"] for a in ctx.trace.actions] == ["skipped (dry run)"] * 3
    assert wm.outer(beta.id) == before
    assert beta.proc.poll() is None
    assert rule.capabilities == {"controls-windows"}


def test_one_connection_serves_every_action(
    stored: Harness, store: Store, two: tuple[Win, Win]
) -> None:
    ok(run(stored, store, "{window.tile: left}"))
    first = windowctl.control()
    for tile in ("right", "top", "bottom"):
        ok(run(stored, store, f"{{window.tile: {tile}}}"))
    assert windowctl.control() is first


def test_what_others_change_between_actions_is_seen(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win]
) -> None:
    """The control caches what it read; changes made by other programs reach it."""
    alpha, beta = two
    ok(run(stored, store, "{window.move: {x: 100, y: 100, width: 400, height: 300}}"))
    # Another program moves it: resize keeps the corner where it is now.
    subprocess.run(["xdotool", "windowmove", "--sync", str(beta.id), "300", "200"], check=True)
    corner = wm.outer(beta.id)
    ok(run(stored, store, "{window.resize: {width: 500}}"))
    assert wm.outer(beta.id) == Rect(corner.x, corner.y, 500, 300)
    # Another program maximises it: a move still unmaximises it first.
    subprocess.run(
        ["wmctrl", "-i", "-r", str(beta.id), "-b", "add,maximized_vert,maximized_horz"],
        check=True,
    )
    wait_until(lambda: "_NET_WM_STATE_MAXIMIZED_HORZ" in wm.states(beta.id), what="maximised")
    ok(run(stored, store, "{window.move: {x: 10, y: 10, width: 300, height: 200}}"))
    assert not {"_NET_WM_STATE_MAXIMIZED_HORZ"} & wm.states(beta.id)
    assert wm.outer(beta.id) == Rect(10, 10, 300, 200)
    # Another program renames it: the new title matches, the old one does not.
    subprocess.run(["xdotool", "set_window", "--name", "Renamed beta", str(beta.id)], check=True)
    wait_until(lambda: "Renamed" in _title(wm, beta.id), what="the new title")
    result = ok(run(stored, store, "{window.tile: {to: right, window: {title: 'Renamed*'}}}"))
    assert result["window"] == beta.id
    assert result["title"] == "Renamed beta"
    # The user activates another window: the next action follows.
    alpha.activate()
    assert ok(run(stored, store, "{window.tile: left}"))["window"] == alpha.id


def _title(wm: WM, wid: int) -> str:
    window = wm.d.create_resource_object("window", wid)
    prop = window.get_full_property(wm.d.intern_atom("_NET_WM_NAME"), X.AnyPropertyType)
    if prop is None:
        prop = window.get_full_property(Xatom.WM_NAME, X.AnyPropertyType)
    value = prop.value if prop is not None else b""
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"x": "wide"}, "neither pixels"),
        ({"x": "1.5"}, "not a fraction"),
        ({"x": "99999"}, "out of range"),
        ({"x": "-1%"}, "not a fraction"),
    ],
)
def test_a_bad_placeholder_value_fails_the_run_clearly(  # noqa: PLR0917
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win], data: dict[str, str], says: str
) -> None:
    _, beta = two
    before = wm.outer(beta.id)
    record = run(stored, store, '{window.move: {x: "{event.x}"}}', **data)
    assert record["status"] == "failed"
    assert record["error"].startswith("x: ")
    assert says in record["error"], record["error"]
    assert wm.outer(beta.id) == before


def test_next_monitor_on_two_randr_monitors(
    stored: Harness, store: Store, wm: WM, two: tuple[Win, Win], xserver_wm: Any
) -> None:
    """Two RandR monitors side by side (xrandr --setmonitor); openbox and the
    control both learn of them from RandR's notification (Xvfb sends it at
    its next RandR change, made here by setting the primary output again)."""
    env = xserver_wm.env()
    root = wm.root
    output = root.xrandr_get_screen_resources().outputs[0]

    def xrandr(*args: str) -> None:
        subprocess.run(["xrandr", *args], env=env, check=True, timeout=10)

    def tell() -> None:
        root.xrandr_set_output_primary(0)
        root.xrandr_set_output_primary(output)
        wm.d.sync()

    _, beta = two
    ok(run(stored, store, "{window.move: {x: 64, y: 80, width: 320, height: 400}}"))
    xrandr("--setmonitor", "LEFT", "640/170x800/212+0+0", "screen")
    xrandr("--setmonitor", "RIGHT", "640/170x800/212+640+0", "none")
    tell()
    try:
        wait_until(lambda: len(wm.d.xinerama_query_screens().screens) == 2, what="two heads")
        result = ok(run(stored, store, "{window.tile: next-monitor}"))
        assert result["monitor"] == 1
        assert wm.outer(beta.id) == Rect(704, 80, 320, 400)
        ok(run(stored, store, "{window.tile: left}"))  # the left half of the right monitor
        assert wm.outer(beta.id) == Rect(640, 0, 320, 800)
        ok(run(stored, store, "{window.tile: maximize}"))  # openbox: within its monitor
        assert wm.outer(beta.id) == Rect(640, 0, 640, 800)
        ok(run(stored, store, "{window.tile: previous-monitor}"))
        assert "_NET_WM_STATE_MAXIMIZED_VERT" in wm.states(beta.id)
        assert wm.outer(beta.id) == Rect(0, 0, 640, 800)
    finally:
        xrandr("--delmonitor", "RIGHT")
        xrandr("--delmonitor", "LEFT")
        tell()
    wait_until(lambda: len(wm.d.xinerama_query_screens().screens) == 1, what="one head again")
    ok(run(stored, store, "{window.tile: restore}"))
    record = run(stored, store, "{window.tile: next-monitor}")
    assert "only one monitor" in record["error"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, "Wayland session"),
        ({"DISPLAY": ""}, "DISPLAY is not set"),
        ({"DISPLAY": ":4242"}, "cannot connect to X display :4242"),
    ],
)
def test_where_windows_cannot_be_controlled_the_run_says_why(
    stored: Harness, store: Store, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], says: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    windowctl.reset()
    record = run(stored, store, "{window.tile: left}")
    assert record["status"] == "failed"
    assert says in record["error"], record["error"]
    assert "internal" not in record["error"]


def test_without_an_ewmh_window_manager_the_run_says_so(
    stored: Harness, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xserver import XServer

    bare = XServer()  # no window manager
    try:
        monkeypatch.setenv("DISPLAY", bare.display)
        windowctl.reset()
        record = run(stored, store, "{window.focus: {class: X}}")
        assert record["status"] == "failed"
        assert "no EWMH window manager" in record["error"], record["error"]
    finally:
        windowctl.reset()
        bare.stop()
