"""File created -> command: Nerve against ``inotifywait -m`` running the same command.

Run by hand, never from the test suite::

    python bench/bench_files.py                 # 400 files each, about 40 s
    python bench/bench_files.py --files 1000 --block 50

Both watchers run for the whole benchmark, each on a folder of its own:

- Nerve: a real ``nerve run --headless --rules PACK`` subprocess (XDG_* folders
  in a temporary directory) whose one rule is ``file.created`` in folder A ->
  ``run: [sh, -c, 'date +%s%N >> OUT_A']``;
- inotify-tools: ``inotifywait -m -e create B | while read ...; do date +%s%N
  >> OUT_B; done`` (bash).

Files are created in alternating blocks (a block in A, then a block in B, ...)
so both see the same conditions over the run, one file every ``--gap-ms``, so
no command waits for another. A file's latency is the time from just before it
is created (``time.time_ns()``, the wall clock) to the timestamp its command
writes (``date +%s%N``, the same clock). Lines are matched to files in order.
The result is p50/p99 of each, and Nerve's p50 as a multiple of inotifywait's
(target: at most 1.3x).

``--same-command`` makes the inotifywait loop run exactly Nerve's command,
``sh -c 'date +%s%N >> OUT'``, instead of ``date`` straight from bash: dash
forks before running ``date`` even as its last command, so Nerve's command
costs one process more than the plain loop's.

``--profile`` loads a ``sitecustomize`` into the Nerve process that stamps
each file's way through it (inotify read, published on the bus, matched by
the engine, spawn started, spawn returned) and prints the median of each
stage: where the time goes. ``--no-event-log`` (a what-if, through the same
hook) keeps Nerve's event log writer from starting, to show what its thread
costs the engine's wake-up.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.3


def nerve_command() -> list[str]:
    script = Path(sys.executable).parent / "nerve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "nerve"]


def lines(path: Path) -> list[int]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [int(x) for x in text.split()]


def wait_lines(path: Path, count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        got = lines(path)
        if len(got) >= count:
            return got
        if time.monotonic() > deadline:
            raise SystemExit(f"{path}: waited {timeout:g}s for {count} line(s), got {len(got)}")
        time.sleep(0.01)


PROFILE_HOOK = """\
import os, time
_out = open(os.environ.get("NERVE_BENCH_PROFILE") or os.devnull, "a", buffering=1)
def _mark(stage):
    _out.write(f"{stage} {time.time_ns()}\\n")
def _patch():
    from watchdog.observers import inotify_c
    from nerve.listeners import filesystem
    from nerve.engine.actions import process
    read = inotify_c.InotifyFD.read_events
    def read_events(self, **kw):
        events = read(self, **kw)
        for e in events:
            if e.is_create:
                _mark("1-inotify-read")
        return events
    inotify_c.InotifyFD.read_events = read_events
    publish = filesystem.FilesystemListener._publish
    def _publish(self, type_, path, is_dir):
        if type_ == "file.created":
            _mark("2-published")
        publish(self, type_, path, is_dir)
    filesystem.FilesystemListener._publish = _publish
    on_match = filesystem.FileTrigger.on_match
    def _on_match(self, event, matcher, host):
        _mark("3-engine-matched")
        on_match(self, event, matcher, host)
    filesystem.FileTrigger.on_match = _on_match
    spawn = process.spawn_detached
    def _spawn(*args):
        _mark("4-spawn-start")
        proc = spawn(*args)
        _mark("5-spawn-returned")
        return proc
    process.spawn_detached = _spawn
def _no_event_log():
    from nerve import storage
    storage.EventLogWriter.start = lambda self: None
if os.environ.get("NERVE_BENCH_NO_EVENT_LOG"):
    _no_event_log()
try:
    if os.environ.get("NERVE_BENCH_PROFILE"):
        _patch()
except Exception as exc:  # the benchmark must say so rather than measure nothing
    _mark(f"patch-failed:{exc!r}")
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Watchers:
    """The two watchers, their folders and output files."""

    def __init__(self, tmp: Path, *, same_command: bool, profile: bool, no_event_log: bool) -> None:
        self.tmp = tmp
        self.same_command = same_command
        self.env = dict(os.environ)
        self.profile: Path | None = None
        if profile or no_event_log:
            hook = tmp / "hook"
            hook.mkdir()
            (hook / "sitecustomize.py").write_text(PROFILE_HOOK)
            self.env["PYTHONPATH"] = os.pathsep.join(
                [str(hook), *filter(None, [self.env.get("PYTHONPATH")])]
            )
        if profile:
            self.profile = tmp / "profile.txt"
            self.env["NERVE_BENCH_PROFILE"] = str(self.profile)
        if no_event_log:
            self.env["NERVE_BENCH_NO_EVENT_LOG"] = "1"
        for name, sub in (
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_RUNTIME_DIR", "run"),
        ):
            folder = tmp / sub
            folder.mkdir(mode=0o700)
            self.env[name] = str(folder)
        self.env.pop("DISPLAY", None)
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        self.dirs = {"nerve": tmp / "a", "inotifywait": tmp / "b"}
        self.outs = {"nerve": tmp / "out-a", "inotifywait": tmp / "out-b"}
        for d in self.dirs.values():
            d.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        pack = self.tmp / "bench.yaml"
        pack.write_text(
            f"""\
nerve: 1
pack:
  id: bench.files
rules:
  - id: created
    when:
      file.created: {{path: "{self.dirs["nerve"]}"}}
    do:
      - run: [sh, -c, "date +%s%N >> {self.outs["nerve"]}"]
    mode: parallel
    max: 100
"""
        )
        err = (self.tmp / "nerve-stderr.txt").open("wb")
        cmd = [*nerve_command(), "run", "--headless", "--rules", str(pack)]
        self.procs.append(
            subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=err)
        )
        out = self.outs["inotifywait"]
        command = f"sh -c 'date +%s%N >> {out}'" if self.same_command else f'date +%s%N >> "{out}"'
        script = (
            f'inotifywait -m -q -e create "{self.dirs["inotifywait"]}" | '
            f"while read -r dir events name; do {command}; done"
        )
        self.procs.append(
            subprocess.Popen(["bash", "-c", script], start_new_session=True, env=self.env)
        )

    def warm_up(self, timeout: float = 30.0) -> None:
        """Create files until each watcher has answered twice (it is watching)."""
        for name, folder in self.dirs.items():
            out = self.outs[name]
            deadline = time.monotonic() + timeout
            i = 0
            while len(lines(out)) < 2:
                if time.monotonic() > deadline:
                    log = (self.tmp / "nerve-stderr.txt").read_text(errors="replace")
                    raise SystemExit(f"{name} did not answer within {timeout:g}s\n{log}")
                (folder / f"warm-{i}").touch()
                i += 1
                time.sleep(0.2)
            time.sleep(0.3)  # answers to the last warm-up files still on their way

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM) if proc is self.procs[1] else proc.terminate()
                proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()


def run(args: argparse.Namespace) -> int:
    if shutil.which("inotifywait") is None:
        raise SystemExit("inotifywait not found: apt-get install inotify-tools")
    tmp = Path(tempfile.mkdtemp(prefix="nvf", dir="/tmp"))
    watchers = Watchers(
        tmp, same_command=args.same_command, profile=args.profile, no_event_log=args.no_event_log
    )
    print(f"[files] {args.files} files each, blocks of {args.block}, one every {args.gap_ms} ms")
    loop = "sh -c 'date ...'" if args.same_command else "date straight from bash"
    print(f"  inotifywait loop runs: {loop}")
    print(f"  folders in {tmp}", flush=True)
    watchers.start()
    try:
        watchers.warm_up()
        if watchers.profile is not None:
            watchers.profile.write_text("")  # the warm-up files do not count
        created: dict[str, list[int]] = {"nerve": [], "inotifywait": []}
        base = {name: len(lines(out)) for name, out in watchers.outs.items()}
        order = ["nerve", "inotifywait"]
        n = 0
        while n < args.files:
            for name in order:
                folder = watchers.dirs[name]
                for i in range(n, min(n + args.block, args.files)):
                    path = folder / f"f{i:06d}"
                    t0 = time.time_ns()
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    os.close(fd)
                    created[name].append(t0)
                    # Jitter keeps the creations from locking into a rhythm with anything.
                    time.sleep(args.gap_ms / 1000 * random.uniform(0.8, 1.2))
            n += args.block
            order.reverse()  # who goes first alternates too
        results: dict[str, list[float]] = {}
        for name, out in watchers.outs.items():
            stamps = wait_lines(out, base[name] + len(created[name]), 30)[base[name] :]
            results[name] = [(s - t) / 1000 for s, t in zip(stamps, created[name], strict=True)]
        if watchers.profile is not None:
            stages = profile_stages(watchers.profile, created["nerve"], stamps_of(watchers))
    finally:
        watchers.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n  {'watcher':<12} {'files':>6} {'p50':>10} {'p90':>10} {'p99':>10} {'max':>10}")
    for name, lat in results.items():
        print(
            f"  {name:<12} {len(lat):>6} {percentile(lat, 50):>8.0f}µs"
            f" {percentile(lat, 90):>8.0f}µs {percentile(lat, 99):>8.0f}µs {max(lat):>8.0f}µs"
        )
    if args.profile:
        print("\n  where Nerve's time goes (median per file, from the previous stage):")
        for stage, value in stages:
            print(f"    {stage:<22} {value:>8.0f}µs")
    ratio = statistics.median(results["nerve"]) / statistics.median(results["inotifywait"])
    ok = ratio <= TARGET_RATIO
    print(
        f"\n  Nerve p50 / inotifywait p50 = {ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x): {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


def stamps_of(watchers: Watchers) -> list[int]:
    return lines(watchers.outs["nerve"])[-1_000_000:]


def profile_stages(
    profile: Path, created: list[int], written: list[int]
) -> list[tuple[str, float]]:
    """Median time of each stage since the one before, per file (stages are
    matched to files in order: one file at a time is on its way)."""
    marks: dict[str, list[int]] = {}
    for line in profile.read_text().splitlines():
        stage, _, ns = line.rpartition(" ")
        if stage.startswith("patch-failed"):
            raise SystemExit(f"the profiling hook failed: {stage}")
        marks.setdefault(stage, []).append(int(ns))
    written = written[-len(created) :]
    series = [("0-file-created", created), *sorted(marks.items()), ("6-command-wrote", written)]
    out = []
    for (_, before), (stage, after) in itertools.pairwise(series):
        n = min(len(before), len(after), len(created))
        if n:
            out.append(
                (
                    stage,
                    statistics.median(
                        (a - b) / 1000 for a, b in zip(after[:n], before[:n], strict=True)
                    ),
                )
            )
    total = statistics.median((w - c) / 1000 for w, c in zip(written, created, strict=False))
    out.append(("total", total))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=400, help="files per watcher (>= 300)")
    parser.add_argument("--block", type=int, default=25, help="files per block")
    parser.add_argument("--gap-ms", type=float, default=40.0, help="time between files")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--same-command",
        action="store_true",
        help="the inotifywait loop runs sh -c 'date ...' as Nerve does",
    )
    parser.add_argument(
        "--profile", action="store_true", help="stamp each stage inside Nerve (adds a little)"
    )
    parser.add_argument(
        "--no-event-log",
        action="store_true",
        help="what-if: Nerve without its event log writer (SQLite), which Nerve does not offer",
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
