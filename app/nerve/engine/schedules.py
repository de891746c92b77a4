"""Schedules: ``schedule`` events onto the bus at the times APScheduler 3's
triggers compute.

The schedules know nothing of rules: a schedule trigger registers a job, the
job publishes ``schedule`` with its job id, and the engine matches that event
like any other (so schedules show up in the event log and the monitor).

Each job is one timer on the engine's event loop, armed for its next fire
time; no scheduler thread, no worker pool. What APScheduler's own scheduler
did with the same job defaults is kept: runs missed while the loop was held
up (or the machine slept) are coalesced into one, and a run more than
``MISFIRE_GRACE_S`` late is skipped. A timer waits ``RECHECK_S`` at most and
then looks at the wall clock again: the loop's clock stops while the machine
sleeps, so a timer armed in the evening for 9:00 would otherwise go off hours
late after a night in suspend.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nerve.bus import Bus

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

log = logging.getLogger(__name__)

#: How late a run may start and still run (APScheduler's misfire_grace_time).
MISFIRE_GRACE_S = 30.0
#: The longest a timer waits before it looks at the wall clock again.
RECHECK_S = 60.0


@dataclass(eq=False)
class _Job:
    trigger: BaseTrigger
    next_time: dt.datetime | None = None
    timer: asyncio.TimerHandle | None = None


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


class Schedules:
    """Jobs by id. ``add`` and ``remove`` run on the engine's loop."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._lock = threading.Lock()  # next_fire_time() is asked from other threads
        self._jobs: dict[str, _Job] = {}

    def add(self, job: str, trigger: BaseTrigger) -> None:
        """Fire ``job`` at each time of ``trigger`` (replacing a job of that id)."""
        self.remove(job)
        entry = _Job(trigger)
        with self._lock:
            self._jobs[job] = entry
        self._arm(job, entry, None, _now())

    def remove(self, job: str) -> None:
        with self._lock:
            entry = self._jobs.pop(job, None)
        if entry is not None and entry.timer is not None:
            entry.timer.cancel()

    def next_fire_time(self, job: str) -> dt.datetime | None:
        with self._lock:
            entry = self._jobs.get(job)
            return entry.next_time if entry is not None else None

    def _arm(self, job: str, entry: _Job, previous: dt.datetime | None, now: dt.datetime) -> None:
        nxt = entry.trigger.get_next_fire_time(previous, now)
        with self._lock:
            if self._jobs.get(job) is not entry:
                return  # removed meanwhile
            if nxt is None:  # a one-off moment that has passed: the job is done
                del self._jobs[job]
                return
            entry.next_time = nxt
        self._wait(job, entry, nxt, now)

    def _wait(self, job: str, entry: _Job, until: dt.datetime, now: dt.datetime) -> None:
        delay = until.timestamp() - now.timestamp()
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(min(max(0.0, delay), RECHECK_S), self._due, job, entry)

    def _due(self, job: str, entry: _Job) -> None:
        now = _now()
        run_time = entry.next_time
        if run_time is None or self._jobs.get(job) is not entry:
            return
        if run_time.timestamp() > now.timestamp():  # a recheck, or the clocks differ a bit
            self._wait(job, entry, run_time, now)
            return
        # Coalesce the runs missed while late into the last one due.
        following = entry.trigger.get_next_fire_time(run_time, now)
        while following is not None and following.timestamp() <= now.timestamp():
            run_time = following
            following = entry.trigger.get_next_fire_time(run_time, now)
        late = (now - run_time).total_seconds()
        if late > MISFIRE_GRACE_S:
            log.warning("schedule %s: skipped the run due %.0fs ago", job, late)
        else:
            self._bus.publish(
                "schedule",
                {"job": job, "scheduled_time": run_time.astimezone().isoformat()},
                source="schedule",
            )
        self._arm(job, entry, run_time, now)

    def stop(self) -> None:
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for entry in jobs:
            if entry.timer is not None:
                entry.timer.cancel()
