"""The desktop app next to a bare PySide6 window: start time, idle RSS and CPU,
and the event-loop lag while the Events view receives 5,000 events/s.
Run by hand; see bench/README.md ("Desktop app").

    python bench/bench_gui.py                 # everything (~2.5 minutes)
    python bench/bench_gui.py --quick         # 3 start runs, 10 s idle, 5 s flood

Everything runs on one Xvfb (``-displayfd``), Qt on its xcb platform.

1. start: from just before ``Popen`` to the moment the X server reports the
   top-level window mapped (a MapNotify seen by this harness, which selects
   SubstructureNotify on the root window and checks the window's name), for
   a bare QApplication + QMainWindow (``python -c``) and the real ``nerve``
   (no arguments, XDG folders in a temporary directory), alternating, median.
   The bare script also prints CLOCK_MONOTONIC at its first paint, reported
   as a cross-check.
2. idle: a bare window and ``nerve`` both shown and left alone for
   ``--idle-seconds``; CPU from psutil cpu_times() deltas (process and its
   children) as % of one core, and RSS at the end.
3. lag: in this process, a real bus, engine and store (as tests/gui do) under
   the MainWindow with its Events tab current; a producer thread publishes
   5,000 events/s, paced, while a 10 ms precise QTimer records how late each
   tick comes (lag = interval - 10 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from xserver import XServer  # noqa: E402

BARE_TITLE = "Bare PySide6"
NERVE_TITLE = "Nerve"

BARE = r"""
import sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

class Window(QMainWindow):
    painted = False

    def paintEvent(self, event):
        super().paintEvent(event)
        if not self.painted:
            self.painted = True
            print(time.monotonic(), flush=True)
            if sys.argv[1] == "exit":
                QTimer.singleShot(0, app.quit)

app = QApplication(sys.argv[:1])
window = Window()
window.setWindowTitle(TITLE)
window.resize(1000, 640)
window.show()
app.exec()
""".replace("TITLE", repr(BARE_TITLE))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --------------------------------------------------------------------- results


@dataclass
class Row:
    section: str
    name: str
    value: str
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        verdict = {True: "  [met]", False: "  [MISSED]", None: ""}[row.ok]
        ratio = f"  ({row.ratio})" if row.ratio else ""
        print(f"  {row.name}: {row.value}{ratio}{verdict}", flush=True)

    def table(self) -> str:
        head = ("section", "measurement", "result", "ratio", "target")
        lines = [
            (
                r.section,
                r.name,
                r.value,
                r.ratio,
                r.target + {True: " met", False: " MISSED", None: ""}[r.ok],
            )
            for r in self.rows
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]

        def fmt(cells: tuple[str, ...]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|-" + "-|-".join("-" * w for w in widths) + "-|"
        return "\n".join([fmt(head), rule, *(fmt(cells) for cells in lines)])


# --------------------------------------------------------------------- processes


def nerve_command() -> list[str]:
    script = Path(sys.executable).parent / "nerve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nerve"]


def bare_command(mode: str) -> list[str]:
    return [sys.executable, "-c", BARE, mode]


def app_env(tmp: Path, display: str) -> dict[str, str]:
    env = dict(os.environ)
    for name, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        folder = tmp / sub
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        env[name] = str(folder)
    env["DISPLAY"] = display
    env["QT_QPA_PLATFORM"] = "xcb"
    # As installed from a wheel: pip compiles the bytecode at install time
    # (see compile_bytecode); without it every start compiles Nerve's sources.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def compile_bytecode() -> None:
    """Write Nerve's .pyc files, as ``pip install`` does for an installed wheel
    (an editable install has none until the first import writes them)."""
    import compileall

    import nerve

    compileall.compile_dir(Path(nerve.__file__).parent, quiet=1)


class MapWatcher:
    """Sees top-level windows being mapped (MapNotify through SubstructureNotify)."""

    def __init__(self, display_name: str) -> None:
        from Xlib import X, display

        self.conn = display.Display(display_name)
        self.root = self.conn.screen().root
        self.root.change_attributes(event_mask=X.SubstructureNotifyMask)
        self.net_wm_name = self.conn.intern_atom("_NET_WM_NAME")
        self.conn.sync()

    def drain(self) -> None:
        while self.conn.pending_events():
            self.conn.next_event()

    def _name(self, window: Any) -> str:
        try:
            prop = window.get_full_property(self.net_wm_name, 0)
            if prop is not None and prop.value:
                value = prop.value
                return value.decode() if isinstance(value, bytes) else str(value)
            name = window.get_wm_name()
            return name.decode() if isinstance(name, bytes) else str(name or "")
        except Exception:  # the window went away
            return ""

    def wait_mapped(self, title: str, timeout: float = 60.0) -> float:
        """time.monotonic() when a window named ``title`` was mapped."""
        from Xlib import X

        deadline = time.monotonic() + timeout
        fd = self.conn.fileno()
        import select

        while time.monotonic() < deadline:
            if not self.conn.pending_events():
                select.select([fd], [], [], 0.05)
                if not self.conn.pending_events():
                    continue
            event = self.conn.next_event()
            seen = time.monotonic()
            if (
                event.type == X.MapNotify
                and not event.override
                and self._name(event.window) == title
            ):
                return seen
        raise TimeoutError(f"no window named {title!r} mapped in {timeout} s")

    def close(self) -> None:
        self.conn.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


# --------------------------------------------------------------------- sections


def bench_start(xs: XServer, tmp: Path, runs: int, report: Report) -> None:
    print(f"\n[start] process start -> window mapped, {runs} runs each, alternating", flush=True)
    watcher = MapWatcher(xs.display)
    bare: list[float] = []
    bare_paint: list[float] = []
    nerve: list[float] = []
    try:
        for i in range(runs):
            for kind in ("bare", "nerve"):
                env = app_env(tmp / f"start-{kind}-{i}", xs.display)
                cmd = bare_command("exit") if kind == "bare" else nerve_command()
                title = BARE_TITLE if kind == "bare" else NERVE_TITLE
                watcher.drain()
                t0 = time.monotonic()
                proc = subprocess.Popen(
                    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
                )
                try:
                    mapped = watcher.wait_mapped(title)
                    if kind == "bare":
                        out, _ = proc.communicate(timeout=30)
                        bare.append((mapped - t0) * 1000)
                        bare_paint.append((float(out.split()[0]) - t0) * 1000)
                    else:
                        nerve.append((mapped - t0) * 1000)
                finally:
                    stop(proc)
                latest = bare[-1] if kind == "bare" else nerve[-1]
                print(f"  run {i + 1} {kind}: {latest:.0f} ms", flush=True)
    finally:
        watcher.close()
    b, n = statistics.median(bare), statistics.median(nerve)
    report.add(Row("start", "bare PySide6 window mapped", f"{b:.0f} ms"))
    report.add(
        Row(
            "start",
            "bare window first paint (cross-check)",
            f"{statistics.median(bare_paint):.0f} ms",
        )
    )
    ratio = n / b
    report.add(
        Row(
            "start",
            "nerve window mapped",
            f"{n:.0f} ms",
            f"{ratio:.2f}x bare",
            "≤ 1.5x",
            ratio <= 1.5,
        )
    )


def bench_idle(xs: XServer, tmp: Path, seconds: float, report: Report) -> None:
    print(f"\n[idle] both windows shown, then {seconds:g} s without input", flush=True)
    watcher = MapWatcher(xs.display)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for kind, cmd, title in (
            ("bare", bare_command("stay"), BARE_TITLE),
            ("nerve", nerve_command(), NERVE_TITLE),
        ):
            watcher.drain()
            procs[kind] = subprocess.Popen(
                cmd,
                env=app_env(tmp / f"idle-{kind}", xs.display),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            watcher.wait_mapped(title)
        time.sleep(1.0)  # let the first status refresh and paints finish
        ps = {k: psutil.Process(p.pid) for k, p in procs.items()}
        cpu0 = {k: tree_cpu(p) for k, p in ps.items()}
        w0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - w0
        cpu = {k: (tree_cpu(p) - cpu0[k]) / wall * 100 for k, p in ps.items()}
        rss = {k: tree_rss(p) / 2**20 for k, p in ps.items()}
        threads = ps["nerve"].num_threads()
    finally:
        for proc in procs.values():
            stop(proc)
        watcher.close()
    ratio = rss["nerve"] / rss["bare"]
    report.add(Row("idle", f"bare window RSS after {seconds:g} s", f"{rss['bare']:.1f} MB"))
    report.add(
        Row(
            "idle",
            f"nerve RSS after {seconds:g} s ({threads} threads)",
            f"{rss['nerve']:.1f} MB",
            f"{ratio:.2f}x bare",
            "≤ 1.5x",
            ratio <= 1.5,
        )
    )
    report.add(Row("idle", "bare window CPU", f"{cpu['bare']:.3f} %"))
    report.add(
        Row(
            "idle",
            "nerve CPU (% of one core)",
            f"{cpu['nerve']:.3f} %",
            "",
            "≤ 0.3 %",
            cpu["nerve"] <= 0.3,
        )
    )


def bench_lag(xs: XServer, tmp: Path, seconds: float, rate: int, report: Report) -> None:
    print(
        f"\n[lag] Events view visible, {rate:,} events/s for {seconds:g} s, 10 ms timer", flush=True
    )
    os.environ["DISPLAY"] = xs.display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.support import compile_pack
    from nerve.bus import Bus
    from nerve.engine.engine import Engine
    from nerve.gui.core import Core
    from nerve.gui.main_window import MainWindow
    from nerve.storage import Store

    app = QApplication.instance() or QApplication(sys.argv[:1])
    store = Store(tmp / "lag.db")
    bus = Bus()
    engine = Engine(bus, store=store, notifier=lambda t, b, u: "bench")
    engine.start()
    engine.call(engine.set_rules, compile_pack())
    core = Core(bus=bus, engine=engine, store=store, pack_names=lambda: {"gui.test": "GUI tests"})
    window = MainWindow(core)
    window.show()
    window.tabs.setCurrentWidget(window.events)

    def spin(until: float) -> None:
        while time.monotonic() < until:
            app.processEvents()
            time.sleep(0.002)

    deadline = time.monotonic() + 10
    while not (window.windowHandle() and window.windowHandle().isExposed()):
        if time.monotonic() > deadline:
            raise TimeoutError("the main window was not exposed")
        spin(time.monotonic() + 0.01)
    spin(time.monotonic() + 1.0)

    lags: list[float] = []
    clock = QElapsedTimer()
    last = [0]
    timer = QTimer(interval=10)
    timer.setTimerType(Qt.TimerType.PreciseTimer)

    def tick() -> None:
        now = clock.nsecsElapsed()
        lags.append(max(0.0, (now - last[0]) / 1e6 - 10.0))
        last[0] = now

    timer.timeout.connect(tick)
    total = int(rate * seconds)
    published = [0]

    def produce() -> None:
        t0 = time.monotonic()
        for i in range(total):
            due = t0 + i / rate
            ahead = due - time.monotonic()
            if ahead > 0.0005:
                time.sleep(ahead)
            bus.publish("x.flood", {"n": i, "text": "bench event"}, source="bench")
            published[0] += 1

    producer = threading.Thread(target=produce, name="bench-producer")
    clock.start()
    last[0] = clock.nsecsElapsed()
    timer.start()
    started = time.monotonic()
    producer.start()
    ended = [0.0]

    def check() -> None:  # the real event loop runs until the producer is done
        if not producer.is_alive() and not ended[0]:
            ended[0] = time.monotonic()
            # Let the last batches drain; then quit as the app does, window hidden
            # first (closing a visible main window asks the app to quit instead).
            QTimer.singleShot(500, lambda: (window.hide(), app.quit()))

    watch = QTimer(interval=50)
    watch.timeout.connect(check)
    watch.start()
    app.exec()
    watch.stop()
    timer.stop()
    elapsed = ended[0] - started
    drained, drops = window.events.drained, core.drops()
    window.shutdown()
    window.close()
    engine.stop()
    store.close()

    print(
        f"  published {published[0]:,} in {elapsed:.1f} s ({published[0] / elapsed:,.0f}/s); "
        f"monitor drained {drained:,}; bus drops {drops}; {len(lags)} ticks",
        flush=True,
    )
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    report.add(Row("lag", f"p50 at {rate:,} ev/s", f"{p50:.2f} ms"))
    report.add(Row("lag", f"p99 at {rate:,} ev/s", f"{p99:.2f} ms", "", "≤ 50 ms", p99 <= 50))
    report.add(Row("lag", "max", f"{max(lags):.2f} ms"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 start runs, 10 s idle, 5 s flood")
    parser.add_argument("--runs", type=int, default=None, help="start runs of each (default 5)")
    parser.add_argument("--idle-seconds", type=float, default=None, help="default 60 (quick: 10)")
    parser.add_argument("--flood-seconds", type=float, default=None, help="default 10 (quick: 5)")
    parser.add_argument("--rate", type=int, default=5000, help="events per second (default 5000)")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    idle = args.idle_seconds or (10.0 if args.quick else 60.0)
    flood = args.flood_seconds or (5.0 if args.quick else 10.0)

    print(f"Nerve desktop app benchmark; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    compile_bytecode()
    report = Report()
    xs = XServer()
    print(f"Xvfb on {xs.display}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="nerve-bench-gui-") as name:
            tmp = Path(name)
            bench_start(xs, tmp, runs, report)
            bench_idle(xs, tmp, idle, report)
            bench_lag(xs, tmp, flood, args.rate, report)
    finally:
        xs.stop()
    print(f"\n{report.table()}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    print(f"command: python bench/bench_gui.py {' '.join(sys.argv[1:])}".rstrip())
    sys.stdout.flush()
    # Skip interpreter teardown: PySide6 can crash deallocating Qt objects at exit.
    os._exit(0)


if __name__ == "__main__":
    main()
