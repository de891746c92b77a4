"""Nerve core benchmarks: bus and engine throughput, rule-count scaling,
event-to-action latency and headless idle cost.

Run by hand, never from the test suite::

    python bench/bench_core.py            # everything (about 3 minutes)
    python bench/bench_core.py --quick    # shorter runs, noisier numbers
    python bench/bench_core.py --only latency --only idle --idle-seconds 20

Each section prints its lines as it goes; one table with every result, its
ratio and its target is printed at the end. bench/README.md explains what
each number means and how it is measured.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "app") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "app"))

from nerve.bootstrap import settle_memory  # noqa: E402
from nerve.bus import Bus  # noqa: E402
from nerve.engine.engine import Engine  # noqa: E402
from nerve.engine.model import Rule  # noqa: E402
from nerve.events import Event, freeze  # noqa: E402
from nerve.packs.loader import load_pack  # noqa: E402
from procstat import thread_counters  # noqa: E402

SECTIONS = ("throughput", "scaling", "latency", "idle")

Work = tuple[str, dict[str, Any]]

#: The events of every throughput run. Half are ``bench.hit`` with a ``key``
#: that no rule asks for (the engine looks it up in the type's index and
#: misses), half are ``bench.miss``, a type no rule listens to: nothing matches.
#: ``n`` serves the variant whose rules match a number (see ``bench_rules``).
BASE_EVENTS: list[Work] = [
    ("bench.hit" if i % 2 == 0 else "bench.miss", {"key": f"x{i}", "n": -1 - i})
    for i in range(1000)
]
WORKLOAD_TYPES = ("bench.hit", "bench.miss")


def workload(count: int) -> Iterator[Work]:
    """``count`` (type, data) pairs cycling through the 1,000 base events.

    An iterator, not a list: a list of hundreds of thousands of items would be
    traversed by every full garbage collection and inflate the numbers."""
    return itertools.islice(itertools.cycle(BASE_EVENTS), count)


# --------------------------------------------------------------------- timing


@dataclass
class Timing:
    seconds: float
    gc_seconds: float


class Timer:
    """Wall time of a run and the part of it the cyclic garbage collector took.

    Starts from a collected heap; the collector stays on, as in the app."""

    def __init__(self) -> None:
        self.gc_seconds = 0.0
        self._gc_start = 0.0
        self._start = 0.0
        self._timing: Timing | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_seconds += time.perf_counter() - self._gc_start

    def __enter__(self) -> Timer:
        gc.collect()
        gc.callbacks.append(self._on_gc)
        self._start = time.perf_counter()
        return self

    def stop(self) -> Timing:
        """End the timing where the measured work ends (later calls return the same)."""
        if self._timing is None:
            self._timing = Timing(time.perf_counter() - self._start, self.gc_seconds)
        return self._timing

    def __exit__(self, *exc: object) -> None:
        self.stop()
        gc.callbacks.remove(self._on_gc)


class GcPauses:
    """Collections per generation and the longest pause, while in the ``with``."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.longest = 0.0
        self.full = 0
        self.full_seconds = 0.0
        self._start = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        pause = time.perf_counter() - self._start
        self.counts[info["generation"]] += 1
        self.longest = max(self.longest, pause)
        if info["generation"] == 2:
            self.full += 1
            self.full_seconds += pause

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def __str__(self) -> str:
        young, middle, full = self.counts
        return (
            f"{young} young, {middle} middle, {full} full "
            f"({self.full_seconds * 1e3:.1f} ms); longest pause {self.longest * 1e3:.1f} ms"
        )


def median_timing(runs: Sequence[Timing]) -> Timing:
    """The run with the median wall time (and its own GC time)."""
    ordered = sorted(runs, key=lambda t: t.seconds)
    return ordered[len(ordered) // 2]


# --------------------------------------------------------------------- results


@dataclass
class Row:
    section: str
    name: str
    value: str
    per_event: str = ""
    gc: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        verdict = {True: "  [met]", False: "  [MISSED]", None: ""}[row.ok]
        extra = ", ".join(x for x in (row.per_event, row.gc and f"GC {row.gc}", row.ratio) if x)
        print(f"  {row.name}: {row.value}{f'  ({extra})' if extra else ''}{verdict}", flush=True)

    def table(self) -> str:
        head = ("section", "measurement", "result", "per event", "of it GC", "ratio", "target")
        lines = [
            (
                r.section,
                r.name,
                r.value,
                r.per_event,
                r.gc,
                r.ratio,
                r.target + {True: " met", False: " MISSED", None: ""}[r.ok],
            )
            for r in self.rows
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]

        def fmt(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        rule = "|-" + "-|-".join("-" * w for w in widths) + "-|"
        return "\n".join([fmt(head), rule, *(fmt(cells) for cells in lines)])


def per_event_row(section: str, name: str, timing: Timing, n: int, *, ratio: str = "") -> Row:
    per = timing.seconds / n
    return Row(
        section,
        name,
        f"{n / timing.seconds:,.0f} ev/s",
        f"{per * 1e6:.2f} µs",
        f"{timing.gc_seconds / n * 1e6:.2f} µs",
        ratio,
    )


def freeze_heap() -> None:
    """What the app does once its rules are loaded (``bootstrap.settle_memory``):
    move every object alive now out of the collector's sight, so full
    collections traverse only what was made since, not the compiled rules."""
    settle_memory()


# ---------------------------------------------------------------------- rules


PACK_HEAD = "nerve: 1\npack:\n  id: bench.p{pack}\nrules:\n"
RULES_PER_PACK = 1000  # a pack file is limited to 100,000 YAML nodes


def bench_rules(count: int, extra: str = "", numeric: bool = False) -> list[Rule]:
    """``count`` rules: one sentinel (``bench.end`` -> emit ``bench.done``),
    then alternately ``event: bench.rule.N`` (a type of its own per rule) and
    ``event: {type: bench.hit, data: {key: kN}}`` (one type, indexed on
    ``key``). With ``numeric`` the second kind is ``data: {n: N}``, which the
    engine does not index (numbers compare loosely: 5 equals "5").
    ``extra`` is more rules (YAML) for the first pack."""
    texts = ["  - id: end\n    when: {event: bench.end}\n    do: [{emit: bench.done}]\n" + extra]
    for i in range(1, count):
        if i % 2:
            match = f"n: {i}" if numeric else f"key: k{i}"
            when = f"{{event: {{type: bench.hit, data: {{{match}}}}}}}"
        else:
            when = f"{{event: bench.rule.{i}}}"
        texts.append(f"  - id: r{i}\n    when: {when}\n    do: [{{log: hit {i}}}]\n")
    rules: list[Rule] = []
    for p, start in enumerate(range(0, len(texts), RULES_PER_PACK)):
        body = "".join(texts[start : start + RULES_PER_PACK])
        pack = load_pack((PACK_HEAD.format(pack=p) + body).encode(), filename=f"bench{p}.yaml")
        if pack.errors:
            raise SystemExit("\n".join(map(str, pack.errors)))
        rules += pack.rules
    return rules


class EngineRig:
    """A bus and a started engine with ``rule_count`` rules, and a subscriber
    that sets ``done`` when the sentinel rule answers ``bench.end``.

    The bus is bounded well above the events of a run: the producer outruns
    the engine in bursts, and this measures throughput, not the drop policy
    (a run that drops anything is rejected)."""

    def __init__(
        self,
        rule_count: int,
        capacity: int,
        *,
        extra: str = "",
        numeric: bool = False,
        gc_freeze: bool = True,
        engine_class: type[Engine] = Engine,
    ) -> None:
        self.bus = Bus(capacity=capacity)
        self.engine = engine_class(self.bus, notifier=lambda title, body, urgency: "bench")
        self.engine.start()
        rules = bench_rules(rule_count, extra, numeric)
        self.engine.call(self.engine.set_rules, rules, timeout=120)
        self.done = threading.Event()
        self._done_sub = self.bus.subscribe(
            "bench.done", lambda batch: self.done.set(), name="bench-done"
        )
        if gc_freeze:  # as the app does once its rules are loaded
            freeze_heap()

    def dropped(self) -> int:
        return sum(self.bus.stats()["dropped"].values())

    def run(self, n: int) -> Timing:
        """From the producer's start until the engine has handled ``n`` events
        and the sentinel (its answer reaches ``done``)."""
        self.done.clear()
        bus = self.bus
        handled_before = self.engine.handled

        def produce() -> None:
            publish = bus.publish
            for type_, data in workload(n):
                publish(type_, data)
            publish("bench.end")

        with Timer() as timer:
            producer = threading.Thread(target=produce, name="bench-producer")
            producer.start()
            if not self.done.wait(600):
                raise SystemExit("the engine did not answer bench.end within 600 s")
            timing = timer.stop()
            producer.join()
        handled = self.engine.handled - handled_before
        if handled < n + 1:
            raise SystemExit(f"the engine handled {handled} of {n + 1} events")
        return timing

    def handle_only(self, n: int) -> Timing:
        """The engine's matching alone: ``Engine._handle`` called on the engine
        thread for ``n`` ready-made events (no bus, no allocation)."""
        events = [Event(t, freeze(d), "bench", i + 1) for i, (t, d) in enumerate(BASE_EVENTS)]

        def run() -> Timing:
            handle = self.engine._handle
            with Timer() as timer:
                for event in itertools.islice(itertools.cycle(events), n):
                    handle(event)
            return timer.stop()

        return self.engine.call(run, timeout=600)

    def close(self) -> None:
        self.engine.stop()
        self._done_sub.close()


# ------------------------------------------------------------ 1. throughput


def bench_blinker(n: int) -> Timing:
    """blinker: one Signal per event type, one receiver, send() on this thread."""
    from blinker import Signal

    received = 0

    def receiver(sender: Any, **kwargs: Any) -> None:
        nonlocal received
        received += 1

    sends: dict[str, Callable[..., Any]] = {}
    for type_ in WORKLOAD_TYPES:
        sig = Signal(type_)
        sig.connect(receiver, weak=False)
        sends[type_] = sig.send
    with Timer() as timer:
        for type_, data in workload(n):
            sends[type_](type_, data=data)
    assert received == n
    return timer.stop()


def bench_pyee(n: int) -> Timing:
    """pyee: one EventEmitter, one listener per event type, emit() on this thread."""
    from pyee import EventEmitter

    received = 0

    def listener(data: Any) -> None:
        nonlocal received
        received += 1

    emitter = EventEmitter()
    for type_ in WORKLOAD_TYPES:
        emitter.on(type_, listener)
    emit = emitter.emit
    with Timer() as timer:
        for type_, data in workload(n):
            emit(type_, data)
    assert received == n
    return timer.stop()


def bench_publish_drain(n: int) -> Timing:
    """Nerve on one thread: publish() to one subscriber, which drains its queue
    after every 1,000 events (as a consumer woken once per batch would)."""
    bus = Bus()
    sub = bus.subscribe("*", wake=lambda: None, name="bench-sink")
    publish = bus.publish
    drain = sub.drain
    received = 0
    with Timer() as timer:
        for i, (type_, data) in enumerate(workload(n), 1):
            publish(type_, data)
            if not i % 1000:
                received += len(drain())
        received += len(drain())
    assert received == n
    assert not sub.dropped
    return timer.stop()


def bench_cross_thread(n: int) -> Timing:
    """Nerve across threads: a producer thread publishes, the subscription's
    own thread gets every event (in batches) in its callback. Until the last
    event reached the callback."""
    bus = Bus(capacity=n + 10)
    received = 0
    done = threading.Event()

    def on_batch(batch: list[Event]) -> None:
        nonlocal received
        for _event in batch:
            received += 1
        if received >= n:
            done.set()

    sub = bus.subscribe("*", on_batch, name="bench-receiver")

    def produce() -> None:
        publish = bus.publish
        for type_, data in workload(n):
            publish(type_, data)

    with Timer() as timer:
        producer = threading.Thread(target=produce, name="bench-producer")
        producer.start()
        if not done.wait(600):
            raise SystemExit("cross-thread delivery did not finish")
        timing = timer.stop()
        producer.join()
    sub.close()
    assert not sub.dropped, sub.dropped
    return timing


def section_throughput(args: argparse.Namespace, report: Report) -> None:
    n = args.events
    print(f"\n[throughput] {n:,} events per run, median of {args.repeats} runs", flush=True)
    results: dict[str, Timing] = {}
    for name, fn in (
        ("blinker send, same thread", bench_blinker),
        ("pyee emit, same thread", bench_pyee),
        ("nerve publish + drain, same thread", bench_publish_drain),
        ("nerve bus, producer -> subscriber thread", bench_cross_thread),
    ):
        fn(20_000)  # warm up
        results[name] = median_timing([fn(n) for _ in range(args.repeats)])

    rig = EngineRig(1000, capacity=n + 1000, gc_freeze=args.gc_freeze)
    try:
        rig.run(20_000)
        engine = median_timing([rig.run(n) for _ in range(args.repeats)])
        dropped = rig.dropped()
    finally:
        rig.close()
    if dropped:
        raise SystemExit(f"{dropped} events were dropped: the measurement is invalid")
    results["nerve bus + engine, no match, 1,000 rules"] = engine

    pyee = results["pyee emit, same thread"].seconds
    for name, timing in results.items():
        ratio = f"{pyee / timing.seconds:.2f}x pyee"
        row = per_event_row("1 throughput", name, timing, n, ratio=ratio)
        if name.startswith("nerve bus, producer"):
            row.target, row.ok = "≥ pyee emit", timing.seconds <= pyee
        elif name.startswith("nerve bus + engine"):
            row.target, row.ok = "≥ 300,000 ev/s", n / timing.seconds >= 300_000
        report.add(row)


# --------------------------------------------------------------- 2. scaling


def section_scaling(args: argparse.Namespace, report: Report) -> None:
    n = args.events
    print(f"\n[scaling] {n:,} events at 10 / 1,000 / 10,000 rules", flush=True)
    end_to_end: dict[int, Timing] = {}
    handle: dict[int, Timing] = {}
    for count in (10, 1000, 10_000):
        t0 = time.perf_counter()
        rig = EngineRig(count, capacity=n + 1000, gc_freeze=args.gc_freeze)
        load_s = time.perf_counter() - t0
        try:
            rig.run(20_000)
            end_to_end[count] = median_timing([rig.run(n) for _ in range(args.repeats)])
            handle[count] = median_timing([rig.handle_only(n) for _ in range(args.repeats)])
            dropped = rig.dropped()
        finally:
            rig.close()
        if dropped:
            raise SystemExit(f"{dropped} events were dropped: the measurement is invalid")
        print(f"  ({count:,} rules compiled and indexed in {load_s:.1f} s)", flush=True)

    for label, results in (("end to end", end_to_end), ("engine _handle only", handle)):
        base = results[10].seconds
        for count, timing in results.items():
            row = per_event_row(
                "2 scaling",
                f"{count:,} rules: {label}",
                timing,
                n,
                ratio=f"{timing.seconds / base:.2f}x 10 rules",
            )
            if count == 10_000 and label == "end to end":
                row.target, row.ok = "≤ 1.2x 10 rules", timing.seconds / base <= 1.2
            report.add(row)

    # For comparison: the same rules matching a number instead of text.
    rig = EngineRig(1000, capacity=1000, numeric=True)
    try:
        m = max(n // 20, 1000)
        numeric = median_timing([rig.handle_only(m) for _ in range(args.repeats)])
    finally:
        rig.close()
    report.add(
        per_event_row(
            "2 scaling",
            "1,000 rules, numeric data: {n: N}: engine _handle only",
            numeric,
            m,
            ratio=f"{numeric.seconds / m / (handle[1000].seconds / n):.0f}x text-indexed",
        )
    )


# --------------------------------------------------------------- 3. latency

LATENCY_RULE = """\
  - id: lat
    when: {event: bench.lat}
    mode: parallel
    max: 1000
    do: [{emit: {type: bench.lat.done, data: {of: "{event.id}"}}}]
"""


def section_latency(args: argparse.Namespace, report: Report) -> None:
    rate = 1000
    count = int(args.latency_seconds * rate)
    print(
        f"\n[latency] {count:,} bench.lat events paced at {rate:,}/s, 1,000 rules loaded",
        flush=True,
    )
    rig = EngineRig(1000, capacity=10_000, extra=LATENCY_RULE, gc_freeze=args.gc_freeze)
    pauses = GcPauses()
    published: dict[int, int] = {}
    started: dict[int, int] = {}
    lock = threading.Lock()

    def on_done(batch: list[Event]) -> None:
        with lock:
            for event in batch:
                started[int(event.data["of"])] = event.mono_ns

    sub = rig.bus.subscribe("bench.lat.done", on_done, name="bench-latency")
    late = 0

    def produce() -> None:
        nonlocal late
        publish = rig.bus.publish
        period = 1_000_000_000 // rate
        t0 = time.monotonic_ns()
        for i in range(count):
            wait = t0 + i * period - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            elif wait < -period:
                late += 1
            event = publish("bench.lat", None, source="bench")
            published[event.id] = event.mono_ns

    try:
        rig.bus.publish("bench.lat")  # warm up: the first run fills caches and routes
        time.sleep(0.2)
        gc.collect()
        with lock:
            started.clear()
        producer = threading.Thread(target=produce, name="bench-producer")
        with pauses:
            producer.start()
            producer.join()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if len(started) >= len(published):
                    break
            time.sleep(0.01)
    finally:
        sub.close()
        rig.close()
    with lock:
        lat = sorted((started[i] - t) / 1e3 for i, t in published.items() if i in started)
    if not lat:
        raise SystemExit("no latency samples")

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]

    print(
        f"  {len(lat):,} samples ({count - len(lat)} missing; producer more than one period "
        f"late {late} times); p99.9 {pct(99.9):.0f} µs",
        flush=True,
    )
    print(f"  garbage collections meanwhile: {pauses}", flush=True)
    for p in (50, 90, 99):
        row = Row("3 latency", f"event -> action start p{p}", f"{pct(p):.0f} µs")
        if p == 99:
            row.target, row.ok = "< 1 ms", pct(p) < 1000
        report.add(row)
    report.add(
        Row(
            "3 latency",
            "event -> action start max",
            f"{lat[-1]:.0f} µs",
            gc=f"max pause {pauses.longest * 1e6:.0f} µs",
            ratio=f"{pauses.full} full GCs, {pauses.full_seconds * 1e3:.0f} ms",
        )
    )


# ------------------------------------------------------------------ 4. idle


def nerve_command() -> list[str]:
    script = Path(sys.executable).parent / "nerve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nerve"]


def section_idle(args: argparse.Namespace, report: Report) -> None:
    import psutil

    seconds = args.idle_seconds
    settle = 5.0
    print(f"\n[idle] nerve run --headless: settle {settle:g} s, measure {seconds:g} s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="nvb", dir="/tmp"))  # short: socket paths are limited
    env = dict(os.environ)
    for name, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        folder = tmp / sub
        folder.mkdir(mode=0o700)
        env[name] = str(folder)
    env.pop("DISPLAY", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    cmd = [*nerve_command(), "run", "--headless", "--rules", str(ROOT / "rules" / "starter.yaml")]
    log_path = tmp / "stderr.txt"
    with log_path.open("wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            raise SystemExit(
                f"nerve exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        p = psutil.Process(proc.pid)
        before, counters_before = p.cpu_times(), thread_counters(proc.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        after, counters_after = p.cpu_times(), thread_counters(proc.pid)
        rss_mb = p.memory_info().rss / 1e6
        threads = p.num_threads()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    cpu = after.user - before.user + after.system - before.system
    percent = cpu / wall * 100
    detail = ""
    if counters_before and counters_after:
        run_ms = (counters_after[0] - counters_before[0]) / 1e6
        switches = counters_after[1] - counters_before[1]
        detail = f"{switches / wall:.1f} wake-ups/s, {run_ms / wall / 10:.4f} % by schedstat"
        print(
            f"  schedstat: {run_ms:.1f} ms on a CPU in {wall:.1f} s; "
            f"{switches} context switches over all threads",
            flush=True,
        )
    print(f"  cpu_times: {cpu * 1000:.0f} ms of CPU in {wall:.1f} s; {threads} threads", flush=True)
    report.add(
        Row(
            "4 idle",
            f"CPU over {wall:.0f} s, % of one core",
            f"{percent:.3f} %",
            ratio=detail,
            target="≤ 0.3 %",
            ok=percent <= 0.3,
        )
    )
    report.add(
        Row(
            "4 idle",
            "RSS",
            f"{rss_mb:.1f} MB",
            ratio=f"{threads} threads",
            target="≤ 60 MB",
            ok=rss_mb <= 60,
        )
    )


# ------------------------------------------------------------------- main


def machine() -> str:
    try:
        import psutil

        freq = psutil.cpu_freq()
        mhz = f", {freq.max or freq.current:.0f} MHz" if freq else ""
    except Exception:
        mhz = ""
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs{mhz}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier numbers)")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        metavar="NAME",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    parser.add_argument("--events", type=int, help="events per throughput run (300,000)")
    parser.add_argument("--repeats", type=int, help="runs per measurement; the median counts (3)")
    parser.add_argument("--latency-seconds", type=float, help="length of the paced run (5)")
    parser.add_argument("--idle-seconds", type=float, help="length of the idle measurement (60)")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="what-if: skip the gc.freeze() the app does once its rules are loaded",
    )
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = 50_000 if args.quick else 300_000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.latency_seconds is None:
        args.latency_seconds = 2.0 if args.quick else 5.0
    if args.idle_seconds is None:
        args.idle_seconds = 10.0 if args.quick else 60.0

    print(f"Nerve core benchmarks on {machine()}", flush=True)
    if args.gc_freeze:
        freeze_heap()
    else:
        print("what-if: without the gc.freeze() the app does after loading rules", flush=True)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f} before starting: numbers will be noisy")
    report = Report()
    steps: dict[str, Callable[[argparse.Namespace, Report], None]] = {
        "throughput": section_throughput,
        "scaling": section_scaling,
        "latency": section_latency,
        "idle": section_idle,
    }
    for name in SECTIONS:
        if args.only is None or name in args.only:
            steps[name](args, report)
    print(f"\n{report.table()}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    print(f"command: python bench/bench_core.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
