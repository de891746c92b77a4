"""Hotkey latency against sxhkd, hotkey -> action start in-process, and the idle
cost of the keyboard and mouse listeners. Run by hand; see bench/README.md.

    python bench/bench_hotkeys.py                  # everything (~3 minutes)
    python bench/bench_hotkeys.py --only compare --presses 200
    python bench/bench_hotkeys.py --only inprocess --only idle --idle-seconds 20

1. compare: one Xvfb; Nerve (the real ``nerve run --headless --rules PACK``
   subprocess, XDG folders in a temporary directory) and sxhkd bind the same
   combo to ``sh -c 'date +%s%N >> FILE'``, in alternating blocks (they cannot
   both grab the combo at once). Each press: the modifiers go down, then the
   wall clock is read and the key is pressed through XTEST (with a round trip),
   and the latency is the timestamp the command wrote minus that reading.
2. inprocess: bus, engine and listener manager in this process, a hotkey rule
   whose first action records when it starts; from just before the XTEST
   press to that moment.
3. idle: ``nerve run --headless`` with rules that need the hotkeys, keyboard
   (key events and an abbreviation) and mouse listeners; no input for the
   measured time; CPU from psutil cpu_times() and /proc schedstat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from procstat import thread_counters  # noqa: E402
from xserver import XServer  # noqa: E402

SECTIONS = ("compare", "inprocess", "idle")
COMBO = "ctrl+alt+j"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> str:
    return (
        f"n={len(values)} p50={percentile(values, 50):.2f} ms p95={percentile(values, 95):.2f} ms "
        f"p99={percentile(values, 99):.2f} ms max={max(values):.2f} ms "
        f"mean={statistics.fmean(values):.2f} ms"
    )


def nerve_command() -> list[str]:
    script = Path(sys.executable).parent / "nerve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nerve"]


def xdg_env(tmp: Path, display: str) -> dict[str, str]:
    env = dict(os.environ)
    for name, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        folder = tmp / sub
        folder.mkdir(mode=0o700, exist_ok=True)
        env[name] = str(folder)
    env["DISPLAY"] = display
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


class Presser:
    """Presses the combo through XTEST and times it."""

    def __init__(self, display_name: str) -> None:
        from Xlib import XK, display

        self.conn = display.Display(display_name)
        code = self.conn.keysym_to_keycode
        self.mods = [code(XK.string_to_keysym(n)) for n in ("Control_L", "Alt_L")]
        self.key = code(XK.string_to_keysym("j"))

    def press(self) -> int:
        """Press the combo; return the wall clock (ns) read just before the key went down."""
        from Xlib import X
        from Xlib.ext import xtest

        for mod in self.mods:
            xtest.fake_input(self.conn, X.KeyPress, mod)
        self.conn.sync()
        t0 = time.time_ns()
        xtest.fake_input(self.conn, X.KeyPress, self.key)
        self.conn.sync()
        xtest.fake_input(self.conn, X.KeyRelease, self.key)
        for mod in reversed(self.mods):
            xtest.fake_input(self.conn, X.KeyRelease, mod)
        self.conn.sync()
        return t0

    def close(self) -> None:
        self.conn.close()


def wait_lines(path: Path, count: int, timeout: float) -> list[str]:
    """The file's lines once it has ``count`` (polled every millisecond)."""
    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            lines = path.read_text().split()
            if len(lines) >= count:
                return lines
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} has fewer than {count} lines after {timeout} s")
        time.sleep(0.001)


@contextmanager
def running(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def block(presser: Presser, out: Path, presses: int, gap: float) -> list[float]:
    """Warm up (until the tool answers), then time ``presses`` presses."""
    out.unlink(missing_ok=True)
    deadline = time.monotonic() + 20
    while True:  # the tool has grabbed the combo once a press writes a line
        presser.press()
        try:
            wait_lines(out, 1, 0.5)
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
    time.sleep(0.2)
    done = len(out.read_text().split())
    latencies = []
    for _ in range(presses):
        t0 = presser.press()
        lines = wait_lines(out, done + 1, 10)
        done = len(lines)
        latencies.append((int(lines[-1]) - t0) / 1e6)
        time.sleep(gap)
    return latencies


def section_compare(args: argparse.Namespace, xs: XServer, tmp: Path) -> list[str]:
    if shutil.which("sxhkd") is None:
        raise SystemExit("sxhkd is not installed (Debian package sxhkd)")
    out = tmp / "stamps.txt"
    command = f"date +%s%N >> {out}"
    pack = tmp / "hotkey.yaml"
    pack.write_text(
        "nerve: 1\npack: {id: bench.hotkey}\nrules:\n"
        f"  - id: stamp\n    when: {{hotkey: {COMBO}}}\n    mode: parallel\n"
        f"    do: [{{run: [sh, -c, {command!r}]}}]\n".replace("'", '"')
    )
    sxhkdrc = tmp / "sxhkdrc"
    sxhkdrc.write_text(f"ctrl + alt + j\n    {command}\n")
    env = xdg_env(tmp, xs.display)
    env["SHELL"] = "/bin/sh"
    env["SXHKD_SHELL"] = "/bin/sh"
    tools: dict[str, list[str]] = {
        "nerve": [*nerve_command(), "run", "--headless", "--rules", str(pack)],
        "sxhkd": ["sxhkd", "-c", str(sxhkdrc)],
    }
    results: dict[str, list[float]] = {name: [] for name in tools}
    presser = Presser(xs.display)
    blocks = max(1, args.presses // args.block)
    print(f"\n[compare] {blocks} blocks of {args.block} presses per tool, alternating", flush=True)
    try:
        for i in range(blocks):
            order = list(tools) if i % 2 == 0 else list(reversed(tools))
            for name in order:
                with running(tools[name], env, tmp / f"{name}.log"):
                    got = block(presser, out, args.block, args.gap)
                results[name] += got
                print(f"  block {i + 1} {name}: p50 {percentile(got, 50):.2f} ms", flush=True)
    finally:
        presser.close()
    lines = []
    for name, values in results.items():
        lines.append(f"{name:6} press -> command timestamp: {summary(values)}")
    ratio50 = percentile(results["nerve"], 50) / percentile(results["sxhkd"], 50)
    ratio99 = percentile(results["nerve"], 99) / percentile(results["sxhkd"], 99)
    ratio95 = percentile(results["nerve"], 95) / percentile(results["sxhkd"], 95)
    lines.append(
        f"nerve/sxhkd: p50 {ratio50:.2f}x (target <= 1.1x: {'met' if ratio50 <= 1.1 else 'MISSED'})"
        f", p95 {ratio95:.2f}x, p99 {ratio99:.2f}x "
        f"(target <= 1.3x: {'met' if ratio99 <= 1.3 else 'MISSED'})"
    )
    return lines


def section_inprocess(args: argparse.Namespace, xs: XServer) -> list[str]:
    os.environ["DISPLAY"] = xs.display
    from nerve.bus import Bus
    from nerve.engine.engine import Engine
    from nerve.engine.registry import Action, actions, load_builtin_types
    from nerve.listeners.manager import ListenerManager
    from nerve.packs.loader import load_pack

    load_builtin_types()
    starts: list[int] = []
    arrived = threading.Event()

    class Mark(Action):
        key = "bench.mark"
        schema: dict[str, Any] = {"type": "null"}

        @classmethod
        def compile(cls, options: Any, ctx: Any, siblings: Any) -> Mark:
            return cls()

        async def execute(self, run: Any) -> Any:
            starts.append(time.perf_counter_ns())
            arrived.set()

    if "bench.mark" not in actions:
        actions.register(Mark)
    pack = load_pack(
        f"""nerve: 1
pack: {{id: bench.inprocess}}
rules:
  - id: mark
    when: {{hotkey: {COMBO}}}
    mode: parallel
    do: [{{bench.mark: null}}]
""".encode(),
        filename="bench.yaml",
    )
    assert not pack.errors, pack.errors
    bus = Bus()
    engine = Engine(bus, notifier=lambda *a: "")
    manager = ListenerManager(bus)
    manager.start()
    engine.on_needs = manager.update
    engine.start()
    engine.call(engine.set_rules, pack.rules)
    deadline = time.monotonic() + 10
    while not any(s["id"] == "hotkeys" and s["state"] == "running" for s in manager.status()):
        if time.monotonic() > deadline:
            raise SystemExit(f"the hotkeys listener did not start: {manager.status()}")
        time.sleep(0.01)
    presser = Presser(xs.display)
    latencies: list[float] = []
    print(f"\n[inprocess] {args.inprocess} presses", flush=True)
    try:
        from Xlib import X
        from Xlib.ext import xtest

        for i in range(args.inprocess + 10):
            arrived.clear()
            for mod in presser.mods:
                xtest.fake_input(presser.conn, X.KeyPress, mod)
            presser.conn.sync()
            t0 = time.perf_counter_ns()
            xtest.fake_input(presser.conn, X.KeyPress, presser.key)
            presser.conn.sync()
            if not arrived.wait(5):
                raise SystemExit("the rule did not run within 5 s")
            xtest.fake_input(presser.conn, X.KeyRelease, presser.key)
            for mod in reversed(presser.mods):
                xtest.fake_input(presser.conn, X.KeyRelease, mod)
            presser.conn.sync()
            if i >= 10:  # the first presses warm caches up
                latencies.append((starts[-1] - t0) / 1e6)
            time.sleep(args.gap)
    finally:
        presser.close()
        engine.stop()
        manager.stop()
    p50 = percentile(latencies, 50)
    return [
        f"hotkey -> action start (in-process): {summary(latencies)}",
        f"  target p50 <= 1 ms: {'met' if p50 <= 1.0 else 'MISSED'}",
    ]


def section_idle(args: argparse.Namespace, xs: XServer, tmp: Path) -> list[str]:
    import psutil

    pack = tmp / "idle.yaml"
    pack.write_text("""nerve: 1
pack: {id: bench.idle}
rules:
  - {id: hotkey, when: {hotkey: ctrl+alt+j}, do: [{log: hotkey}]}
  - {id: key, when: {key: F8}, do: [{log: key}]}
  - {id: typed, when: {typed: ";sig"}, do: [{type: signature}]}
  - {id: click, when: {mouse.click: {button: left, modifiers: [ctrl]}}, do: [{log: click}]}
  - {id: scroll, when: {mouse.scroll: down}, do: [{log: scroll}]}
""")
    (tmp / "idle").mkdir()
    env = xdg_env(tmp / "idle", xs.display)
    cmd = [*nerve_command(), "run", "--headless", "--rules", str(pack)]
    print(f"\n[idle] settle 5 s, measure {args.idle_seconds:g} s", flush=True)
    with running(cmd, env, tmp / "idle.log") as proc:
        wanted = {"hotkeys", "keyboard", "mouse"}
        deadline = time.monotonic() + 20
        status = ""
        while True:
            result = subprocess.run(
                [*nerve_command(), "status"], env=env, capture_output=True, text=True, check=False
            )
            status = result.stdout
            running_now = {lid for lid in wanted if f"listener {lid}: running" in status}
            if running_now == wanted:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"listeners did not all start:\n{status}")
            time.sleep(0.2)
        print("  " + "\n  ".join(line for line in status.splitlines() if "listener" in line))
        time.sleep(5)
        p = psutil.Process(proc.pid)
        before, counters_before = p.cpu_times(), thread_counters(proc.pid)
        t0 = time.monotonic()
        time.sleep(args.idle_seconds)
        wall = time.monotonic() - t0
        after, counters_after = p.cpu_times(), thread_counters(proc.pid)
        threads = p.num_threads()
        rss = p.memory_info().rss / 1e6
    cpu = after.user - before.user + after.system - before.system
    percent = cpu / wall * 100
    extra = ""
    if counters_before and counters_after:
        run_ms = (counters_after[0] - counters_before[0]) / 1e6
        switches = counters_after[1] - counters_before[1]
        extra = f"; schedstat {run_ms / wall / 10:.4f} %, {switches / wall:.2f} wake-ups/s"
    return [
        f"idle with hotkeys+keyboard+mouse listeners: {percent:.3f} % of a core over "
        f"{wall:.0f} s{extra}; {threads} threads, RSS {rss:.1f} MB",
        f"  target <= 0.2 %: {'met' if percent <= 0.2 else 'MISSED'}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=SECTIONS)
    parser.add_argument("--presses", type=int, default=250, help="per tool (default 250)")
    parser.add_argument("--block", type=int, default=50, help="presses per block (default 50)")
    parser.add_argument("--gap", type=float, default=0.03, help="seconds between presses")
    parser.add_argument("--inprocess", type=int, default=300, help="in-process presses")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.2f}; Python {sys.version.split()[0]}")
    if load > 0.5:
        print("warning: the machine is busy; latency tails will show it", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="nvh", dir="/tmp"))
    xs = XServer()
    results: list[str] = []
    runners: dict[str, Callable[[], list[str]]] = {
        "compare": lambda: section_compare(args, xs, tmp),
        "inprocess": lambda: section_inprocess(args, xs),
        "idle": lambda: section_idle(args, xs, tmp),
    }
    try:
        for name in SECTIONS:
            if name in sections:
                results += runners[name]()
    finally:
        xs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nResults")
    for line in results:
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
