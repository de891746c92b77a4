"""Schedule jobs on an event loop: coalescing, misfires, and the wall clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from nerve.bus import Bus
from nerve.engine import schedules
from nerve.engine.schedules import Schedules
from nerve.events import Event

pytestmark = pytest.mark.timeout(30)


class Fired:
    """The ``schedule`` events published on a bus (by the jobs, on the loop)."""

    def __init__(self, bus: Bus) -> None:
        self._arrived = asyncio.Event()
        self._sub = bus.subscribe("schedule", wake=self._arrived.set, name="fired")
        self.events: list[Event] = []

    def take(self) -> list[Event]:
        self.events += self._sub.drain()
        return self.events

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` events have come."""
        async with asyncio.timeout(timeout):
            while len(self.take()) < count:
                self._arrived.clear()
                if len(self.take()) < count:
                    await self._arrived.wait()


def test_runs_missed_while_the_loop_was_held_up_fire_once() -> None:
    bus = Bus()
    fired = Fired(bus)
    jobs = Schedules(bus)

    async def main() -> None:
        jobs.add("j", IntervalTrigger(seconds=0.1))
        await fired.wait(1)
        time.sleep(0.55)  # the loop is blocked: about five runs are missed
        await fired.wait(2)
        assert len(fired.take()) == 2  # one for all the missed runs, not five
        upcoming = jobs.next_fire_time("j")
        assert upcoming is not None
        assert upcoming > dt.datetime.now().astimezone() - dt.timedelta(seconds=0.01)
        jobs.stop()

    asyncio.run(main())
    first, coalesced = fired.take()
    assert first.data["job"] == "j"
    assert dt.datetime.fromisoformat(str(coalesced.data["scheduled_time"])).tzinfo is not None


def test_a_run_long_past_is_skipped_and_a_one_off_job_ends() -> None:
    bus = Bus()
    fired = Fired(bus)
    jobs = Schedules(bus)
    past = dt.datetime.now().astimezone() - dt.timedelta(seconds=schedules.MISFIRE_GRACE_S + 10)
    soon = dt.datetime.now().astimezone() + dt.timedelta(seconds=0.1)

    async def main() -> None:
        jobs.add("past", DateTrigger(past))
        jobs.add("soon", DateTrigger(soon))
        await fired.wait(1)
        assert jobs.next_fire_time("soon") is None  # done
        assert jobs.next_fire_time("past") is None

    asyncio.run(main())
    (event,) = fired.take()
    assert event.data["job"] == "soon"
    assert dt.datetime.fromisoformat(str(event.data["scheduled_time"])) == soon


def test_after_a_sleep_the_wall_clock_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's clock stops while the machine sleeps; the wall clock does
    not. A job due two hours from now fires at the next look at the wall
    clock once that says it is due, not two hours of loop time later."""
    monkeypatch.setattr(schedules, "RECHECK_S", 0.05)
    bus = Bus()
    fired = Fired(bus)
    jobs = Schedules(bus)
    due = dt.datetime.now().astimezone() + dt.timedelta(hours=2)
    looks = 0
    looked_thrice = asyncio.Event()
    look = Schedules._due

    def counted(self: Schedules, job: str, entry: object) -> None:
        nonlocal looks
        looks += 1
        if looks == 3:
            looked_thrice.set()
        look(self, job, entry)  # type: ignore[arg-type]

    monkeypatch.setattr(Schedules, "_due", counted)

    async def main() -> None:
        jobs.add("morning", DateTrigger(due))
        await asyncio.wait_for(looked_thrice.wait(), 5)
        assert fired.take() == []  # rechecked three times: not due yet
        woke_up = due + dt.timedelta(seconds=1)
        monkeypatch.setattr(schedules, "_now", lambda: woke_up)  # two hours asleep
        await fired.wait(1)

    asyncio.run(main())
    (event,) = fired.take()
    assert event.data["job"] == "morning"


def test_removed_and_replaced_jobs() -> None:
    bus = Bus()
    fired = Fired(bus)
    jobs = Schedules(bus)

    async def main() -> None:
        jobs.add("j", IntervalTrigger(seconds=0.05))
        jobs.remove("j")
        jobs.remove("j")  # twice is fine
        jobs.add("k", IntervalTrigger(hours=1))
        jobs.add("k", IntervalTrigger(seconds=0.05))  # replaces
        await fired.wait(1)
        jobs.stop()
        assert jobs.next_fire_time("k") is None

    asyncio.run(main())
    assert {e.data["job"] for e in fired.take()} == {"k"}
