"""The engine: matches events against rules and runs their actions.

It owns one thread with an asyncio loop. Events arrive in batches from the bus
(one wake-up per batch); timers (debounce, windows, ``for``, delays) are loop
timers; a run is a task, so restart, pause and shutdown are cancellations.
Blocking work in actions goes to a thread pool. Other threads talk to the
engine only through :meth:`Engine.call`, which runs a function on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from apscheduler.triggers.base import BaseTrigger

from nerve import desktop, masking, matching, prompts
from nerve.bus import Bus, Subscription
from nerve.engine.model import Rule
from nerve.engine.registry import ActionError, Matcher, Trigger
from nerve.engine.runs import RunContext, Stop, Stopped, run_actions
from nerve.engine.schedules import Schedules
from nerve.events import Event, TypePattern
from nerve.prompts import Prompter
from nerve.spawn import Child
from nerve.templates import EVENT_ATTRS

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_MAX_DEPTH = 8
#: A rule re-fired by its own events more often than this within a second is suspended.
SELF_FIRE_LIMIT = 5
#: Loop iterations one run may make, all its repeats together (nested ones multiply):
#: past it the run fails. Each repeat has its own ``max`` too (see ``actions.flow``).
DEFAULT_MAX_ITERATIONS = 100_000
_RECENT_RUNS = 10_000


@dataclass(eq=False)
class RuleState:
    """The engine's bookkeeping for one loaded rule."""

    rule: Rule
    enabled: bool = True
    suspended: str | None = None
    active: set[asyncio.Task[None]] = field(default_factory=set)
    queue: deque[tuple[Event, dict[str, Any] | None]] = field(default_factory=deque)
    last_fire_ns: int = 0
    last_end_ns: int = 0
    debounce: asyncio.TimerHandle | None = None
    self_fires: deque[int] = field(default_factory=deque)
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    last_skip: str | None = None
    last_run: dict[str, Any] | None = None
    host: RuleHost | None = None

    def summary(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "key": rule.key,
            "name": rule.name,
            "enabled": self.enabled,
            "suspended": self.suspended,
            "running": len(self.active),
            "queued": len(self.queue),
            "fired": self.fired,
            "skipped": dict(self.skipped),
            "last_skip": self.last_skip,
            "last_run": self.last_run,
            "triggers": [t.describe() for t in rule.triggers],
            "source": rule.source,
        }


class RuleHost:
    """What a rule's triggers see of the engine (see ``triggers.TriggerHost``)."""

    def __init__(self, engine: Engine, state: RuleState) -> None:
        self.engine = engine
        self.state = state
        self.rule_key = state.rule.key

    def fire(self, event: Event, extra: dict[str, Any] | None = None) -> None:
        self.engine._fire(self.state, event, extra)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        assert self.engine.loop is not None
        return self.engine.loop.call_later(seconds, callback)

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def add_schedule(self, job: str, trigger: BaseTrigger) -> None:
        self.engine.schedules.add(job, trigger)

    def remove_schedule(self, job: str) -> None:
        self.engine.schedules.remove(job)


@dataclass(eq=False)
class _Binding:
    state: RuleState
    trigger: Trigger
    matcher: Matcher


#: One indexed field of an event type: (name, is a top-level data field,
#: bindings by exact text, bindings by exact number).
_Field = tuple[str, bool, dict[str, list[_Binding]], dict[float, list[_Binding]]]
#: Everything that may match one event type: indexed fields and the rest.
_TypeEntry = tuple[tuple[_Field, ...], tuple[_Binding, ...]]


class Engine:
    """Rules in, runs out. Start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(
        self,
        bus: Bus,
        *,
        store: Any = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        notifier: Callable[[str, str, str], str] | None = None,
        workers: int = 8,
    ) -> None:
        masking.install_log_masking()
        self.bus = bus
        self.store = store
        self.max_depth = max_depth
        #: The cascade guard's bound on one run's loops (see ``DEFAULT_MAX_ITERATIONS``).
        self.max_iterations = max_iterations
        self.notifier: Callable[[str, str, str], str] = notifier or (
            lambda title, body, urgency: desktop.notify(title, body, urgency=urgency)
        )
        #: Shows the dialogs of ask/choose/confirm/form (the desktop app sets its own).
        self.prompter: Prompter = prompts.default_prompter()
        self.schedules = Schedules(bus)
        self.executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="action")
        self._store_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store")
        self.variables: dict[str, Any] = dict(store.load_variables()) if store else {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.paused = False
        self.pause_reason: str | None = None
        self._resume_handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._sub: Subscription | None = None
        self._states: dict[str, RuleState] = {}
        self._bindings: list[_Binding] = []
        self._exact: dict[str, list[_Binding]] = {}
        self._globs: list[tuple[TypePattern, _Binding]] = []
        # Per event type seen: what may match it (None: nothing, the common case).
        self._entries: dict[str, _TypeEntry | None] = {}
        self._waiters: list[tuple[Callable[[Event], bool], TypePattern, asyncio.Future[Event]]] = []
        self._run_rules: OrderedDict[str, str] = OrderedDict()
        self._children: set[Child] = set()
        self._reaper: asyncio.TimerHandle | None = None
        #: Detached children the loop watches through a pidfd: fd -> process.
        self._pidfds: dict[int, Child] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Every run not yet ended, with its context (for ``status``).
        self._running: dict[asyncio.Task[None], RunContext] = {}
        self._stopping = False
        self.handled = 0
        #: Bumped whenever what a window shows changes: the rules, their switches,
        #: a run starting or ending (once stored), the pause. Read it from any
        #: thread to know whether to ask for more (asking wakes the engine).
        self.changes = 0
        #: Called (from any thread) when ``changes`` moves, at most once until
        #: the consumer calls :meth:`change_seen`: a window wakes only then.
        self.on_change: Callable[[], None] | None = None
        self._change_pending = False
        self.started_at = time.time()
        #: Called (on the engine loop) when what the rules need of listeners changes.
        self.on_needs: Callable[[dict[str, list[Hashable]]], None] | None = None
        self.needs: dict[str, list[Hashable]] = {}

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Start the engine thread and subscribe to the bus."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="engine", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)

        def wake() -> None:
            loop.call_soon_threadsafe(self._drain)

        self._sub = self.bus.subscribe("*", wake=wake, name="engine")
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel runs, stop triggers and the loop, wait for the thread."""
        if self._thread is None or self.loop is None:
            return
        if self._sub is not None:
            self._sub.close()
        try:
            # Cancelled runs still record themselves (and kill programs they wait for).
            asyncio.run_coroutine_threadsafe(self._shutdown(timeout / 2), self.loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("engine did not shut down cleanly within %.0fs", timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self.schedules.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._store_executor.shutdown(wait=True)

    async def _shutdown(self, grace: float) -> None:
        self._stopping = True
        tasks: list[asyncio.Task[Any]] = list(self._running)
        for state in self._states.values():
            self._stop_rule(state)
            state.queue.clear()
            tasks.extend(state.active)
        tasks.extend(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
            await asyncio.sleep(0)  # their done callbacks
        stuck = list(self._running.items())
        for task, ctx in stuck:  # did not end within the grace: no longer ours to count
            log.warning("run %s of %s did not stop within %.1fs", ctx.id, ctx.rule.key, grace)
            self._run_done(self._states.get(ctx.rule.key) or RuleState(ctx.rule), ctx, task)
        for fd in list(self._pidfds):  # children that outlive Nerve are theirs now
            self._pidfds.pop(fd)
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float | None = 5.0) -> T:
        """Run ``fn(*args)`` on the engine loop and return its result (thread-safe)."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        if self.loop is None or self.loop.is_closed():
            raise RuntimeError("the engine is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)

    # ----------------------------------------------------------------- rules

    def changed(self) -> None:
        """What a window shows changed (see ``changes``, ``on_change``)."""
        self.changes += 1
        notify = self.on_change
        if notify is not None and not self._change_pending:
            self._change_pending = True
            try:
                notify()
            except Exception:
                log.exception("a change watcher failed")

    def change_seen(self) -> None:
        """The watcher looked: the next change calls ``on_change`` again."""
        self._change_pending = False

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the loaded rules (call on the loop, or through ``call``)."""
        self.changed()
        old = self._states
        new: dict[str, RuleState] = {}
        for rule in rules:
            previous = old.get(rule.key)
            state = RuleState(rule, enabled=rule.enabled)
            if previous is not None:
                # Counters and runtime switches survive a reload of the same rule.
                state.fired = previous.fired
                state.skipped = previous.skipped
                state.last_run = previous.last_run
            new[rule.key] = state
        for key, state in old.items():
            self._stop_rule(state)
            if key not in new or not new[key].enabled:
                for task in list(state.active):
                    task.cancel()
                state.queue.clear()
            else:
                # Runs of a rule that stays go on; they and its waiting runs move over.
                new[key].active = state.active
                new[key].queue = state.queue
        self._states = new
        for state in new.values():
            state.host = RuleHost(self, state)
            if state.enabled:
                self._start_rule(state)
        self._reindex()

    def _start_rule(self, state: RuleState) -> None:
        assert state.host is not None
        for trigger in state.rule.triggers:
            try:
                trigger.start(state.host)
            except Exception:
                log.exception(
                    "trigger %s of %s failed to start", trigger.describe(), state.rule.key
                )

    def _stop_rule(self, state: RuleState) -> None:
        if state.debounce is not None:
            state.debounce.cancel()
            state.debounce = None
        for trigger in state.rule.triggers:
            try:
                trigger.stop()
            except Exception:
                log.exception("trigger %s of %s failed to stop", trigger.describe(), state.rule.key)

    def _reindex(self) -> None:
        bindings = [
            _Binding(state, trigger, matcher)
            for state in self._states.values()
            if state.enabled and state.suspended is None
            for trigger in state.rule.triggers
            for matcher in trigger.matchers()
        ]
        exact: dict[str, list[_Binding]] = {}
        globs: list[tuple[TypePattern, _Binding]] = []
        for b in bindings:
            if any(c in b.matcher.type for c in "*?["):
                globs.append((TypePattern([b.matcher.type]), b))
            else:
                exact.setdefault(b.matcher.type, []).append(b)
        self._bindings = bindings
        self._exact = exact
        self._globs = globs
        self._entries = {}
        needs: dict[str, list[Hashable]] = {}
        for state in self._states.values():
            if state.enabled and state.suspended is None:
                for lid, need in state.rule.needs():
                    needs.setdefault(lid, []).append(need)
        if needs != self.needs:
            self.needs = needs
            if self.on_needs is not None:
                try:
                    self.on_needs(needs)
                except Exception:
                    log.exception("could not hand the listener needs on")

    def _entry(self, type_: str) -> _TypeEntry | None:
        candidates = list(self._exact.get(type_, ()))
        candidates += [b for pattern, b in self._globs if pattern.matches(type_)]
        plain: list[_Binding] = []
        texts: dict[str, dict[str, list[_Binding]]] = {}
        numbers: dict[str, dict[float, list[_Binding]]] = {}
        for b in candidates:
            if b.matcher.index is None:
                plain.append(b)
                continue
            name, value = b.matcher.index
            if isinstance(value, str):
                texts.setdefault(name, {}).setdefault(value, []).append(b)
            else:
                numbers.setdefault(name, {}).setdefault(float(value), []).append(b)
        fields = tuple(
            (
                name,
                "." not in name and name not in EVENT_ATTRS,
                texts.get(name, {}),
                numbers.get(name, {}),
            )
            for name in dict.fromkeys([*texts, *numbers])
        )
        entry: _TypeEntry | None = (fields, tuple(plain)) if candidates else None
        if len(self._entries) < 4096:
            self._entries[type_] = entry
        return entry

    def rules(self) -> list[dict[str, Any]]:
        return [s.summary() for s in self._states.values()]

    def rule(self, key: str) -> Rule | None:
        state = self._states.get(key)
        return state.rule if state else None

    def set_enabled(self, key: str, enabled: bool) -> bool:
        """Switch a rule on or off at run time (a suspended rule is revived by enabling)."""
        state = self._states.get(key)
        if state is None:
            return False
        self.changed()
        if enabled and (not state.enabled or state.suspended):
            state.enabled = True
            state.suspended = None
            state.self_fires.clear()
            self._start_rule(state)
        elif not enabled and state.enabled:
            state.enabled = False
            self._stop_rule(state)
            for task in list(state.active):
                task.cancel()
            state.queue.clear()
        self._reindex()
        return True

    # ---------------------------------------------------------------- events

    def _drain(self) -> None:
        assert self._sub is not None
        batch = self._sub.drain()
        handle = self._handle
        for event in batch:
            try:
                handle(event)
            except Exception:
                log.exception("engine failed on event %s (%s)", event.id, event.type)
        self.handled += len(batch)

    def _handle(self, event: Event) -> None:
        # The hot path: most events match nothing and cost one dict lookup.
        entries = self._entries
        entry = entries[event.type] if event.type in entries else self._entry(event.type)
        if entry is not None:
            fields, plain = entry
            data = event.data
            for name, top, texts, numbers in fields:
                value = data.get(name) if top else event.get(name)
                if value is None:
                    continue
                if texts:
                    key = value if type(value) is str else matching.text_key(value)
                    hits = texts.get(key) if key is not None else None
                    if hits:
                        for b in hits:
                            self._try(b, event)
                if numbers:
                    number = matching.number_key(value)
                    hits = numbers.get(number) if number is not None else None
                    if hits:
                        for b in hits:
                            self._try(b, event)
            for b in plain:
                self._try(b, event)
        if self._waiters:
            self._wake_waiters(event)

    def _try(self, b: _Binding, event: Event) -> None:
        predicate = b.matcher.predicate
        if predicate is not None and not predicate(event):
            return
        assert b.state.host is not None
        b.trigger.on_match(event, b.matcher, b.state.host)

    def _wake_waiters(self, event: Event) -> None:
        for accepts, pattern, future in list(self._waiters):
            if not future.done() and pattern.matches(event.type) and accepts(event):
                future.set_result(event)

    async def wait_for(self, matcher: Matcher, timeout: float) -> Event:
        """The next event that ``matcher`` accepts; TimeoutError after ``timeout``."""
        assert self.loop is not None
        future: asyncio.Future[Event] = self.loop.create_future()
        index_ok: Callable[[Event], bool] = lambda event: True  # noqa: E731
        if matcher.index is not None:
            name, spec = matcher.index
            equal = matching.compile_spec(spec)
            index_ok = lambda event: equal(event.get(name, matching.MISSING))  # noqa: E731
        predicate = matcher.predicate

        def accepts(event: Event) -> bool:
            return index_ok(event) and (predicate is None or predicate(event))

        waiter = (accepts, TypePattern([matcher.type]), future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.remove(waiter)

    # ---------------------------------------------------------------- firing

    def _skip(self, state: RuleState, reason: str) -> None:
        self.changed()
        state.skipped[reason.split(" ", 1)[0]] += 1
        state.last_skip = reason

    def _fire(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        rule = state.rule
        if not state.enabled or state.suspended:
            return
        if self.paused:
            self._skip(state, "paused")
            return
        if event.depth > self.max_depth:
            self._suspend(
                state,
                f"cascade: event {event.type} is {event.depth} rule runs deep "
                f"(limit {self.max_depth})",
                event,
            )
            return
        now = time.monotonic_ns()
        if event.cause is not None and self._run_rules.get(event.cause) == rule.key:
            fires = state.self_fires
            fires.append(now)
            while fires and now - fires[0] > 1_000_000_000:
                fires.popleft()
            if len(fires) > SELF_FIRE_LIMIT:
                self._suspend(
                    state,
                    f"loop: re-fired by its own events {len(fires)} times within 1s",
                    event,
                )
                return
        if rule.throttle and state.last_fire_ns and now - state.last_fire_ns < rule.throttle * 1e9:
            self._skip(state, f"throttled ({rule.throttle:g}s)")
            return
        if rule.cooldown and state.last_end_ns and now - state.last_end_ns < rule.cooldown * 1e9:
            self._skip(state, f"cooldown ({rule.cooldown:g}s)")
            return
        if rule.debounce:
            if state.debounce is not None:
                state.debounce.cancel()
                self._skip(state, f"debounced ({rule.debounce:g}s)")
            assert self.loop is not None
            state.debounce = self.loop.call_later(
                rule.debounce, self._debounced, state, event, extra
            )
            return
        self._admit(state, event, extra)

    def _debounced(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        state.debounce = None
        if self.paused:
            self._skip(state, "paused")
            return
        self._admit(state, event, extra)

    def _admit(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        if self._stopping:
            return
        rule = state.rule
        # Runs being cancelled (a restart, a pause just lifted) are on their way
        # out: they hold no place, or a burst right after would be refused.
        active = [t for t in state.active if not t.cancelling()]
        if active:
            if rule.mode == "single":
                if extra and extra.get("wait_if_busy") and not state.queue:
                    state.queue.append((event, extra))  # the trigger asks it to wait
                    return
                self._skip(state, "busy (mode single: a run is in progress)")
                return
            if rule.mode == "restart":
                for task in active:
                    task.cancel()
            elif rule.mode == "queued":
                # As in Home Assistant, 'max' counts the running run and the waiting ones.
                if len(active) + len(state.queue) >= rule.max:
                    self._skip(state, f"queue full (max {rule.max} runs, running or waiting)")
                else:
                    state.queue.append((event, extra))
                return
            elif rule.mode == "parallel" and len(active) >= rule.max:
                self._skip(state, f"max ({rule.max} runs in parallel)")
                return
        self._start_run(state, event, extra)

    def _start_run(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        assert self.loop is not None
        self.changed()
        state.fired += 1
        state.last_fire_ns = time.monotonic_ns()
        run_id = os.urandom(8).hex()
        self._run_rules[run_id] = state.rule.key
        if len(self._run_rules) > _RECENT_RUNS:
            self._run_rules.popitem(last=False)
        ctx = RunContext(self, state.rule, event, extra, run_id)
        task = self.loop.create_task(self._run(state, ctx), name=f"run {state.rule.key}")
        state.active.add(task)
        self._running[task] = ctx
        # Also a done callback: a task cancelled before its first step never
        # runs its coroutine at all, not even a ``finally`` (a pause racing a
        # burst of events), and its place must be released all the same.
        task.add_done_callback(functools.partial(self._run_done, state, ctx))

    async def _run(self, state: RuleState, ctx: RunContext) -> None:
        try:
            await self.execute(ctx)
        finally:
            # At once, in the run's last step (the done callback comes a turn
            # later, when an event that follows the run's last one may be in).
            task = asyncio.current_task()
            if task is not None:
                self._run_done(state, ctx, task)

    def _run_done(self, state: RuleState, ctx: RunContext, task: asyncio.Task[None]) -> None:
        """A run ended, however it ended: release its place first, then report it."""
        if self._running.pop(task, None) is None:
            return  # (released already)
        state.active.discard(task)
        current = self._states.get(ctx.rule.key)
        if current is not None:
            current.active.discard(task)  # (after a reload the set is shared; harmless)
        if ctx.ended is None:  # cancelled before it began, or the coroutine was killed
            ctx.status = "cancelled" if task.cancelled() else "failed"
            ctx.error = self.pause_reason if self.paused else ctx.status
            ctx.ended = time.time()
        if ctx.status != "condition":
            state.last_end_ns = time.monotonic_ns()
        state.last_run = {
            "id": ctx.id,
            "status": ctx.status,
            "started": ctx.started,
            "error": ctx.error,
        }
        hooks = [self._record]
        if ctx.status == "failed":
            hooks.append(self._report_failure)
        for hook in hooks:
            try:
                hook(ctx)
            except Exception:
                log.exception("after the run of %s", ctx.rule.key)
        self.changed()
        # The next queued run, of the rule as it is loaded now (a reload may
        # have replaced the state this run started with).
        live = current if current is not None else state
        if (
            live.queue
            and not self.paused
            and live.enabled
            and not live.suspended
            and live is self._states.get(ctx.rule.key)
            and not self._stopping
        ):
            event, extra = live.queue.popleft()
            try:
                self._start_run(live, event, extra)
            except Exception:
                log.exception("could not start the next queued run of %s", ctx.rule.key)

    async def execute(self, ctx: RunContext) -> None:
        """Check the conditions and step through the actions, filling the trace."""
        rule = ctx.rule
        try:
            for i, cond in enumerate(rule.conditions):
                ok, why = cond.check(ctx)
                ctx.trace.condition(f"if[{i}]", cond.key, ok, why)
                if not ok:
                    ctx.status = "condition"
                    return
            await run_actions(rule.actions, ctx)
            ctx.status = "ok"
        except asyncio.CancelledError:
            ctx.status = "cancelled"
            ctx.error = self.pause_reason if self.paused else "cancelled"
        except Stop as exc:
            ctx.status = "stopped" if isinstance(exc, Stopped) else "ok"
            ctx.error = str(exc) or None
        except ActionError as exc:
            ctx.status = "failed"
            ctx.error = str(exc)
        except Exception as exc:
            log.exception("run of %s crashed", rule.key)
            ctx.status = "failed"
            ctx.error = f"internal error: {exc!r}"
        finally:
            ctx.ended = time.time()
            if ctx.error:  # shown by `nerve status`, the window and rule.failed
                ctx.error = masking.mask(ctx.error)

    def _record(self, ctx: RunContext) -> None:
        if self.store is None:
            return
        record = ctx.record()
        self._store_executor.submit(self._store_run, record)

    def _store_run(self, record: dict[str, Any]) -> None:
        # (A database that cannot take it holds the record and reports that
        # once, through its health; nothing to log per run here.)
        try:
            self.store.record_run(record)
            self.changed()  # (on the store thread: a lost increment still changes it)
        except Exception:
            log.exception("could not record run %s", record.get("id"))

    def _report_failure(self, ctx: RunContext) -> None:
        log.warning("rule %s failed: %s", ctx.rule.key, ctx.error)
        self.bus.publish(
            "rule.failed",
            {"rule": ctx.rule.key, "pack": ctx.rule.pack, "run": ctx.id, "error": ctx.error},
            source="engine",
            cause=ctx.id,
            depth=ctx.event.depth + 1,
        )

    def _suspend(self, state: RuleState, reason: str, event: Event) -> None:
        self.changed()
        state.suspended = reason
        self._stop_rule(state)
        for task in list(state.active):
            task.cancel()
        state.queue.clear()
        self._reindex()
        log.warning("rule %s suspended: %s", state.rule.key, reason)
        self.bus.publish(
            "rule.suspended",
            {"rule": state.rule.key, "pack": state.rule.pack, "reason": reason},
            source="engine",
        )

    # ------------------------------------------------------------------ pause

    def pause(self, reason: str = "paused", seconds: float | None = None) -> int:
        """Stop new runs and cancel running ones; return how many were cancelled."""
        self.paused = True
        self.pause_reason = f"paused by {reason}"
        self.changed()
        cancelled = 0
        for state in self._states.values():
            if state.debounce is not None:
                state.debounce.cancel()
                state.debounce = None
            state.queue.clear()
            for task in list(state.active):
                task.cancel()
                cancelled += 1
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if seconds and self.loop is not None:
            self._resume_handle = self.loop.call_later(seconds, self.resume)
        log.info("paused by %s (%d run(s) cancelled)", reason, cancelled)
        return cancelled

    def resume(self) -> None:
        self.paused = False
        self.pause_reason = None
        self.changed()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        log.info("resumed")

    # -------------------------------------------------------------- services

    def set_variable(self, name: str, value: Any) -> None:
        if value is None:
            self.variables.pop(name, None)
        else:
            self.variables[name] = value
        if self.store is not None:
            self._store_executor.submit(self.store.set_variable, name, value)

    def reap_later(self, proc: Child) -> None:
        """Collect a detached child when it ends, so it does not linger as a zombie.

        On the loop. Where the kernel has pidfds (Linux 5.3+) the loop is told
        when the child ends, so a long-lived program started by a rule (a
        terminal) costs no wake-ups; elsewhere the children are polled every 2 s."""
        if self.loop is not None and hasattr(os, "pidfd_open"):
            try:
                fd = os.pidfd_open(proc.pid)
            except OSError:
                pass
            else:
                self._pidfds[fd] = proc
                self.loop.add_reader(fd, self._child_ended, fd)
                return
        self._children.add(proc)
        if self._reaper is None and self.loop is not None:
            self._reaper = self.loop.call_later(2.0, self._reap)

    def _child_ended(self, fd: int) -> None:
        proc = self._pidfds.pop(fd, None)
        if self.loop is not None:
            self.loop.remove_reader(fd)
        os.close(fd)
        if proc is not None:
            proc.poll()
            self.bus.causes.process_ended(proc.pid)

    def _reap(self) -> None:
        self._reaper = None
        alive = set()
        for child in self._children:
            if child.poll() is None:
                alive.add(child)
            else:
                self.bus.causes.process_ended(child.pid)
        self._children = alive
        if self._children and self.loop is not None:
            self._reaper = self.loop.call_later(2.0, self._reap)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Keep a reference to a background task of the engine's."""
        assert self.loop is not None
        task: asyncio.Task[Any] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def running_runs(self) -> list[dict[str, Any]]:
        """Every run not yet ended: its rule, id and age, oldest first."""
        now = time.time()
        oldest_first = sorted(self._running.items(), key=lambda item: item[1].started)
        return [
            {
                "rule": ctx.rule.key,
                "id": ctx.id,
                "started": ctx.started,
                "age": round(now - ctx.started, 3),
                "cancelling": task.cancelling() > 0,
            }
            for task, ctx in oldest_first
        ]

    def status(self) -> dict[str, Any]:
        states = list(self._states.values())
        return {
            "paused": self.paused,
            "pause_reason": self.pause_reason,
            "rules": len(states),
            "enabled": sum(1 for s in states if s.enabled and not s.suspended),
            "suspended": {s.rule.key: s.suspended for s in states if s.suspended},
            "running": len(self._running),
            "runs": self.running_runs()[:50],
            "handled": self.handled,
            "variables": len(self.variables),
        }

    async def dry_run(self, rule: Rule, event: Event, *, at: float | None = None) -> RunContext:
        """Run ``rule`` for ``event`` without side effects (the editor's Test button,
        ``nerve replay``); ``at``: check conditions as at that time (epoch seconds)."""
        run_id = "dry-" + uuid.uuid4().hex[:12]
        ctx = RunContext(self, rule, event, None, run_id, dry_run=True, at=at)
        await self.execute(ctx)
        return ctx
