"""What the benchmarks read from /proc about a process they measure (Linux)."""

from __future__ import annotations

from pathlib import Path


def thread_counters(pid: int) -> tuple[int, int] | None:
    """(ns on a CPU, context switches) summed over every thread of ``pid``, from
    /proc: finer than the clock ticks of cpu_times(), and counting the threads
    that psutil's num_ctx_switches() (the main thread's) leaves out. None when
    the process is gone."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return None
    run_ns = switches = 0
    for task in tasks.iterdir():
        try:
            run_ns += int((task / "schedstat").read_text().split()[0])
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    switches += int(line.split(":")[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return run_ns, switches
