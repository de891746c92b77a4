"""Replay speed: recorded events through the rules as ``nerve replay`` runs them,
against the live engine's no-match rate on the same rules, in one run.

Run by hand, never from the test suite::

    python bench/bench_replay.py                 # 100,000 events, 1,000 rules
    python bench/bench_replay.py --events 20000 --repeats 1

The live number is bench_core's "bus + engine, no match, 1,000 rules": the
events are published on a bus and the engine thread handles them. The replay
number is :func:`nerve.replay.replay` over the same events as the log returns
them (ids and times set, one millisecond apart), through the same 1,000 rules:
the same engine index, on the replayed clock. A third line adds reading them
from a real SQLite event log (``Store.raw_events`` and ``logged_events``),
which ``nerve replay`` does first. For reference, the engine's matching
alone (``Engine._handle`` on its thread, no bus: bench_core's ``handle_only``)
is shown too: the replay pays for the same matching plus its clock. Target:
replay ≥ 0.5x the live engine.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "app") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "app"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import EngineRig, bench_rules, workload  # noqa: E402
from nerve.events import Event, freeze  # noqa: E402
from nerve.replay import logged_events, replay  # noqa: E402
from nerve.storage import Store  # noqa: E402


def recorded(n: int) -> list[Event]:
    """The workload as a log would return it: ids from 1, times 1 ms apart."""
    start = time.time() - n / 1000 - 60
    return [
        Event(type_, freeze(data), "bench", i + 1, start + i / 1000)
        for i, (type_, data) in enumerate(workload(n))
    ]


def timed(fn: object) -> float:
    gc.collect()
    begin = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - begin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="recorded events (100,000)")
    parser.add_argument("--rules", type=int, default=1000, help="rules (1,000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median counts (3)")
    args = parser.parse_args(argv)
    n, repeats = args.events, args.repeats
    load = os.getloadavg()[0]
    print(f"{n:,} events, {args.rules:,} rules, median of {repeats} run(s); load {load:.2f}")
    if load > 0.5:
        print("  (the machine is busy: the numbers are noisy)")

    rig = EngineRig(args.rules, capacity=n + 1000)
    try:
        rig.run(min(n, 20_000))  # warm up
        live = statistics.median(rig.run(n).seconds for _ in range(repeats))
        matching = statistics.median(rig.handle_only(n).seconds for _ in range(repeats))
    finally:
        rig.close()

    rules = bench_rules(args.rules)
    events = recorded(n)
    replay(rules, events[:1000], until=events[-1].time)  # warm up
    reports: list[object] = []

    def run_replay() -> None:
        reports[:] = replay(rules, events, until=events[-1].time)

    replayed = statistics.median(timed(run_replay) for _ in range(repeats))

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "nerve.db")
        store.append_events(events)

        def from_log() -> None:
            replay(rules, logged_events(store.raw_events()), until=events[-1].time)

        logged = statistics.median(timed(from_log) for _ in range(repeats))
        store.close()

    rows = [
        ("live engine (bus + engine), no match", live, ""),
        ("live engine matching alone (no bus)", matching, f"{live / matching:.2f}x live"),
        ("replay (nerve.replay.replay)", replayed, f"{live / replayed:.2f}x live"),
        ("replay, read from the SQLite log", logged, f"{live / logged:.2f}x live"),
    ]
    print(f"\n{'':<40}{'events/s':>12}  {'µs/event':>9}  ratio")
    for name, seconds, ratio in rows:
        print(f"{name:<40}{n / seconds:>12,.0f}  {seconds / n * 1e6:>9.2f}  {ratio}")
    ok = live / replayed >= 0.5
    print(f"\ntarget: replay ≥ 0.5x live: {'met' if ok else 'NOT met'} ({live / replayed:.2f}x)")
    print(f"(against the engine's matching alone: {matching / replayed:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
