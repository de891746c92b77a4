"""``window.tile`` on the active window against ``wmctrl``, under openbox on Xvfb.
Run by hand; see bench/README.md.

    python bench/bench_window.py                 # 200 moves each (~1 minute)
    python bench/bench_window.py --moves 50

One Xvfb with openbox and one test window (active). Nerve's side is the real
engine in this process: a rule ``when: {event: bench.left}, do: [{window.tile:
left}]`` (and one for right); a move is timed from just before the event is
published. wmctrl's side is ``wmctrl -r :ACTIVE: -e 0,X,Y,W,H`` giving the same
frame (its size is the client's, so the frame extents are taken off), timed
from just before the process is started. Either way the move ends when an
observer connection of the benchmark's own receives the ConfigureNotify of the
window's frame (the window manager's window) with the target geometry. The
two take turns (Nerve left, wmctrl right, wmctrl left, Nerve right, ...), so
both move in both directions and drift in the machine's load hits both.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from xserver import XServer  # noqa: E402

TARGET = 1.2


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Observer:
    """Waits for the frame window's ConfigureNotify with a given geometry."""

    def __init__(self, display: str, client: int) -> None:
        from Xlib import X
        from Xlib import display as xdisplay

        self.d = xdisplay.Display(display)
        root = self.d.screen().root
        window = self.d.create_resource_object("window", client)
        while True:
            tree = window.query_tree()
            if tree.parent.id == root.id:
                break
            window = tree.parent
        self.frame = window
        window.change_attributes(event_mask=X.StructureNotifyMask)
        self.d.sync()

    def geometry(self) -> tuple[int, int, int, int]:
        g = self.frame.get_geometry()
        return g.x, g.y, g.width + 2 * g.border_width, g.height + 2 * g.border_width

    def wait(self, target: tuple[int, int, int, int], timeout: float = 5.0) -> None:
        from Xlib import X

        d = self.d
        deadline = time.monotonic() + timeout
        while True:
            while d.pending_events():
                e = d.next_event()
                if e.type == X.ConfigureNotify and e.window.id == self.frame.id:
                    got = (e.x, e.y, e.width + 2 * e.border_width, e.height + 2 * e.border_width)
                    if got == target:
                        return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the frame never reached {target}: {self.geometry()}")
            select.select([d.fileno()], [], [], left)
            d.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=200, help="moves per tool (default 200)")
    args = parser.parse_args()
    if shutil.which("wmctrl") is None:
        raise SystemExit("wmctrl is not installed (Debian package wmctrl)")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f}: numbers will be noisy", flush=True)

    server = XServer()
    os.environ["DISPLAY"] = server.display
    with tempfile.TemporaryDirectory() as tmp:
        server.start_window_manager(Path(tmp))
        client = str(ROOT / "tests/xclients/managed_window.py")
        win = subprocess.Popen(
            [sys.executable, client, "--title", "Bench", "--class", "Bench"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert win.stdout is not None
        wid = int(win.stdout.readline(), 16)
        subprocess.run(["xdotool", "windowactivate", "--sync", str(wid)], check=True)
        try:
            run(server.display, wid, args.moves)
        finally:
            assert win.stdin is not None
            win.stdin.close()
            win.wait(5)
            server.stop()


def run(display: str, wid: int, moves: int) -> None:
    from Xlib import X

    from nerve.bus import Bus
    from nerve.engine.engine import Engine
    from nerve.packs.loader import load_pack

    pack = load_pack(
        b"""nerve: 1
pack: {id: bench.window}
rules:
  - {id: left, mode: queued, when: {event: bench.left}, do: [{window.tile: left}]}
  - {id: right, mode: queued, when: {event: bench.right}, do: [{window.tile: right}]}
""",
        filename="bench.yaml",
    )
    assert not pack.errors, pack.errors
    bus = Bus()
    engine = Engine(bus, notifier=lambda *a: "")
    engine.start()
    engine.call(engine.set_rules, pack.rules)

    observer = Observer(display, wid)
    root = observer.d.screen().root
    screen = root.get_geometry()
    width, height = screen.width, screen.height
    half = width // 2
    targets = {"left": (0, 0, half, height), "right": (half, 0, width - half, height)}
    client = observer.d.create_resource_object("window", wid)

    def extents() -> list[int]:
        atom = observer.d.intern_atom("_NET_FRAME_EXTENTS")
        prop = client.get_full_property(atom, X.AnyPropertyType)
        return list(prop.value) if prop is not None else [0, 0, 0, 0]

    def nerve(side: str) -> float:
        t0 = time.perf_counter()
        bus.publish(f"bench.{side}", {}, source="bench")
        observer.wait(targets[side])
        return (time.perf_counter() - t0) * 1000

    def wmctrl(side: str) -> float:
        x, y, w, h = targets[side]
        left, right, top, bottom = extents()
        spec = f"0,{x},{y},{w - left - right},{h - top - bottom}"
        t0 = time.perf_counter()
        proc = subprocess.Popen(["wmctrl", "-r", ":ACTIVE:", "-e", spec])
        observer.wait(targets[side])
        elapsed = (time.perf_counter() - t0) * 1000
        proc.wait()  # (not timed: the window has moved)
        return elapsed

    # Warm up both (the first tile connects; the first wmctrl loads its libraries).
    for side in ("right", "left"):
        nerve(side)
    for side in ("right", "left"):
        wmctrl(side)
    times: dict[str, list[float]] = {"nerve": [], "wmctrl": []}
    order = [("nerve", "right"), ("wmctrl", "left"), ("wmctrl", "right"), ("nerve", "left")]
    for i in range(moves * 2):
        tool, side = order[i % 4]
        times[tool].append((nerve if tool == "nerve" else wmctrl)(side))
    engine.stop()
    observer.d.close()

    print(f"{'':8} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for tool, values in times.items():
        print(
            f"{tool:8} {len(values):>4} {percentile(values, 50):>8.2f} "
            f"{percentile(values, 99):>8.2f} {statistics.fmean(values):>8.2f}"
        )
    for p in (50, 99):
        ratio = percentile(times["nerve"], p) / percentile(times["wmctrl"], p)
        verdict = "ok" if ratio <= TARGET else "over target"
        print(f"p{p} ratio nerve/wmctrl: {ratio:.2f}x (target <= {TARGET}x): {verdict}")


if __name__ == "__main__":
    main()
