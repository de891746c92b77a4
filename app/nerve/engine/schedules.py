"""Schedules: APScheduler 3 fires ``schedule`` events onto the bus.

The scheduler knows nothing of rules: a schedule trigger registers a job, the
job publishes ``schedule`` with its job id, and the engine matches that event
like any other (so schedules show up in the event log and the monitor).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading

from apscheduler.executors.pool import ThreadPoolExecutor as ApsThreadPool
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from nerve.bus import Bus

log = logging.getLogger(__name__)


class Schedules:
    """Jobs by id; started lazily on the first job."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None

    def _ensure(self) -> BackgroundScheduler:
        if self._scheduler is None:
            self._scheduler = BackgroundScheduler(
                executors={"default": ApsThreadPool(2)},
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            )
            self._scheduler.start()
        return self._scheduler

    def add(self, job: str, trigger: BaseTrigger) -> None:
        with self._lock:
            self._ensure().add_job(
                self._fire, trigger, args=[job], id=job, replace_existing=True, name=job
            )

    def remove(self, job: str) -> None:
        with self._lock:
            if self._scheduler is None:
                return
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(job)

    def next_fire_time(self, job: str) -> dt.datetime | None:
        with self._lock:
            if self._scheduler is None:
                return None
            found = self._scheduler.get_job(job)
            return found.next_run_time if found else None

    def _fire(self, job: str) -> None:
        self._bus.publish(
            "schedule",
            {"job": job, "scheduled_time": dt.datetime.now().astimezone().isoformat()},
            source="schedule",
        )

    def stop(self) -> None:
        with self._lock:
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)
                self._scheduler = None
