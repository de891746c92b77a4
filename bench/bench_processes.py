"""Process trigger benchmarks: process start -> event seen, per backend, and the
idle cost of a headless Nerve with a process rule and a file rule loaded.

Run by hand, never from the test suite::

    python bench/bench_processes.py                      # everything (~2.5 minutes)
    python bench/bench_processes.py --idle-seconds 10    # shorter idle runs
    python bench/bench_processes.py --only latency --spawns 500

Latency: a copy of /bin/sleep under a unique name is started with
``os.posix_spawn`` (it returns once the child has exec'd) and killed once seen,
``--spawns`` times per backend, one at a time, after a random pause (0-100 ms)
so that starts fall at random points of the polling cycle. The clock starts just before
the spawn and stops at the ``mono_ns`` the bus stamped on the
``process.started`` event (the moment the listener published it). The listener
holds ``--rules`` other exact-name needs besides the one that matches, as a
thousand loaded process rules would make it. The exit is timed the same way,
from just before the kill to ``process.exited``.

Idle: ``nerve run --headless`` in a fresh set of XDG folders, with one
``process.started`` rule (a program that never runs) and one ``file.created``
rule on a temporary folder (left out, and said so, if this version has no
``file.created``), once per backend. CPU is read from /proc over
``--idle-seconds`` after a settling time, as % of one core, with the RSS (and
once without the process rule, for comparison). The
machine's own rate of process creation during the window is printed too: the
proc connector wakes for every exec and exit on the machine, and polling lists
pids only when something was created or ended.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "app") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "app"))

from nerve.bus import Bus  # noqa: E402
from nerve.events import Event  # noqa: E402
from nerve.listeners import processes  # noqa: E402
from nerve.listeners.processes import ProcessListener, ProcessSpec  # noqa: E402
from procstat import thread_counters  # noqa: E402

SECTIONS = ("latency", "idle")
TARGET_CONNECTOR_P50_MS = 5.0
TARGET_POLL_P50_MS = 60.0
TARGET_IDLE_PERCENT = 0.3


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Seen:
    """Subscriber: the bus time of each process event, by (type, pid)."""

    def __init__(self, bus: Bus) -> None:
        self.times: dict[tuple[str, int], int] = {}
        self._cond = threading.Condition()
        self.sub = bus.subscribe("process.*", self._batch, name="bench")

    def _batch(self, batch: list[Event]) -> None:
        with self._cond:
            for event in batch:
                self.times[(event.type, int(event.data["pid"]))] = event.mono_ns
            self._cond.notify_all()

    def wait(self, type_: str, pid: int, timeout: float) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: (type_, pid) in self.times, timeout)
            return self.times.get((type_, pid))


def section_latency(args: argparse.Namespace, results: list[tuple[str, str, str, str]]) -> None:
    problem = None
    try:
        processes.open_connector().close()
    except OSError as exc:
        problem = processes.connector_problem(exc)
    tmp = Path(tempfile.mkdtemp(prefix="nvbp"))
    program = tmp / f"nrvb{uuid.uuid4().hex[:8]}"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    try:
        for backend in ("connector", "poll"):
            if backend == "connector" and problem is not None:
                print(f"\n[latency] connector: not permitted here ({problem}); skipped")
                continue
            latency_run(backend, program, args, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def latency_run(
    backend: str,
    program: Path,
    args: argparse.Namespace,
    results: list[tuple[str, str, str, str]],
) -> None:
    bus = Bus()
    seen = Seen(bus)
    needs: list[Any] = [ProcessSpec.of({"name": f"nrv-other-{i}"}) for i in range(args.rules)]
    needs.append(ProcessSpec.of({"name": program.name}, exits=True))  # started and exited
    listener = ProcessListener(
        bus, lambda _l, exc: print(f"listener failed: {exc}"), backend=backend
    )
    listener.start(needs)
    print(f"\n[latency] {backend}: {listener.detail()}; {args.spawns} spawns", flush=True)
    started_ms: list[float] = []
    exited_ms: list[float] = []
    missed = 0
    try:
        for _ in range(args.spawns):
            t0 = time.monotonic_ns()
            pid = os.posix_spawn(str(program), [str(program), "30"], os.environ)
            at = seen.wait("process.started", pid, 2.0)
            if at is None:
                missed += 1
            else:
                started_ms.append((at - t0) / 1e6)
            time.sleep(random.uniform(0.0, 0.1))  # the same for the end
            t1 = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            gone = seen.wait("process.exited", pid, 2.0)
            if gone is not None:
                exited_ms.append((gone - t1) / 1e6)
            # A random pause: starts land at random moments of the poll cycle, as
            # they do on a desktop (not right after a tick, which would bias polling).
            time.sleep(random.uniform(0.0, 0.1))
    finally:
        listener.stop()
        seen.sub.close()
    target = TARGET_CONNECTOR_P50_MS if backend == "connector" else TARGET_POLL_P50_MS
    p50, p99 = percentile(started_ms, 50), percentile(started_ms, 99)
    print(
        f"  start -> seen: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(started_ms):.2f} ms; "
        f"{len(started_ms)} seen, {missed} missed",
        flush=True,
    )
    print(
        f"  kill -> exited: p50 {percentile(exited_ms, 50):.2f} ms, "
        f"p99 {percentile(exited_ms, 99):.2f} ms ({len(exited_ms)} seen)",
        flush=True,
    )
    ok = "ok" if p50 <= target else "MISSED"
    results.append(
        (
            f"start -> seen, {backend}",
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
            f"p50 <= {target:g} ms",
            ok,
        )
    )
    results.append(
        (
            f"kill -> exited, {backend}",
            f"p50 {percentile(exited_ms, 50):.2f} ms, p99 {percentile(exited_ms, 99):.2f} ms",
            "",
            "",
        )
    )


# ------------------------------------------------------------------- idle


def cpu_ns(pid: int) -> int:
    """ns on a CPU summed over every thread of ``pid``."""
    counters = thread_counters(pid)
    if counters is None:
        raise ProcessLookupError(pid)
    return counters[0]


def forks_so_far() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("processes "):
            return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def nerve_command() -> list[str]:
    script = Path(sys.executable).parent / "nerve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nerve"]


def has_file_trigger() -> bool:
    from nerve.engine.registry import load_builtin_types, triggers

    load_builtin_types()
    return triggers.get("file.created") is not None


def section_idle(args: argparse.Namespace, results: list[tuple[str, str, str, str]]) -> None:
    with_file = has_file_trigger()
    if not with_file:
        print("\n[idle] file.created is not registered in this version: process rule only")
    # "none": the same instance without the process rule, for comparison.
    for backend in ("none", "auto", "poll"):
        idle_run(backend, with_file, args, results)


def idle_run(
    backend: str,
    with_file: bool,
    args: argparse.Namespace,
    results: list[tuple[str, str, str, str]],
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nvi", dir="/tmp"))  # short: socket paths are limited
    env = dict(os.environ)
    for name, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        (tmp / sub).mkdir(mode=0o700)
        env[name] = str(tmp / sub)
    env.pop("DISPLAY", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    if backend in ("auto", "none"):
        env.pop(processes.BACKEND_ENV, None)
    else:
        env[processes.BACKEND_ENV] = backend
    watched = tmp / "inbox"
    watched.mkdir()
    rules = """\
nerve: 1
pack:
  id: bench.idle
rules:
"""
    if backend != "none":
        rules += """\
  - id: process
    when: {process.started: {name: nrv-never-runs}}
    do: [{log: "started {event.pid}"}]
"""
    if with_file:
        rules += f"""\
  - id: file
    when: {{file.created: {{path: "{watched}"}}}}
    do: [{{log: "created {{event.path}}"}}]
"""
    pack = tmp / "idle.yaml"
    pack.write_text(rules)
    what = " + ".join(
        (["process rule"] if backend != "none" else []) + (["file rule"] if with_file else [])
    )
    print(
        f"\n[idle] nerve run --headless, {processes.BACKEND_ENV}={backend}, "
        f"{what or 'no rule'}: "
        f"settle {args.settle:g} s, measure {args.idle_seconds:g} s",
        flush=True,
    )
    log_path = tmp / "stderr.txt"
    with log_path.open("wb") as err:
        proc = subprocess.Popen(
            [*nerve_command(), "run", "--headless", "--rules", str(pack)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        time.sleep(args.settle)
        if proc.poll() is not None:
            raise SystemExit(
                f"nerve exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        status = subprocess.run(
            [*nerve_command(), "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
        for line in status.splitlines():
            if "listener" in line:
                print(f"  {line.strip()}", flush=True)
        time.sleep(1.0)  # let the status request's own work pass
        forks0, cpu0, t0 = forks_so_far(), cpu_ns(proc.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        wall = time.monotonic() - t0
        cpu1, forks1 = cpu_ns(proc.pid), forks_so_far()
        rss = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    percent = (cpu1 - cpu0) / 1e9 / wall * 100
    rate = (forks1 - forks0) / wall
    print(
        f"  CPU {percent:.3f} % of one core over {wall:.0f} s; RSS {rss:.1f} MB; "
        f"the machine created {rate:.0f} processes/s meanwhile",
        flush=True,
    )
    label = "idle CPU, no process rule" if backend == "none" else f"idle CPU, backend {backend}"
    results.append(
        (
            label,
            f"{percent:.3f} % of a core, RSS {rss:.1f} MB ({rate:.0f} forks/s on the machine)",
            f"<= {TARGET_IDLE_PERCENT} %",
            "ok" if percent <= TARGET_IDLE_PERCENT else "MISSED",
        )
    )


# ------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="NAME")
    parser.add_argument("--spawns", type=int, default=300, help="processes per backend (300)")
    parser.add_argument("--rules", type=int, default=1000, help="other exact-name needs (1000)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle window (60)")
    parser.add_argument("--settle", type=float, default=5.0, help="wait before measuring (5)")
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    print(
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: list[tuple[str, str, str, str]] = []
    if "latency" in sections:
        section_latency(args, results)
    if "idle" in sections:
        section_idle(args, results)
    print()
    width = max(len(r[0]) for r in results) if results else 0
    for name, value, target, ok in results:
        print(f"{name:<{width}}  {value}  {target}  {ok}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
