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
from nerve.engine.triggers import Cancellable
from nerve.events import PRIVATE_TYPES, Event, TypePattern, freeze, thaw
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

#: Why a rule that was about to run did not (the counts ``nerve status`` and the
#: Rules view show): its conditions did not hold, a rate limit or its mode
#: refused the run, Nerve was paused, its pack is held for approval, or the
#: rule was suspended (a loop or a cascade).
SKIP_REASONS = (
    "condition",
    "cooldown",
    "throttle",
    "debounce",
    "busy",
    "paused",
    "held",
    "suspended",
)
#: The first word of a skip message -> its reason in :data:`SKIP_REASONS`.
_REASON_OF = {
    "throttled": "throttle",
    "debounced": "debounce",
    "queue": "busy",
    "max": "busy",
}
#: Near misses kept per rule for ``nerve why`` (the newest).
NEAR_MISSES = 20
#: Recent events kept per event type that some rule listens for, and how many
#: types (``nerve why`` finds the ones a trigger field did not match in them).
RECENT_PER_TYPE = 20
RECENT_TYPES = 256
#: Event types whose text ``why`` keeps masked (what users type or copy),
#: unless the user keeps such events (``store_private``).
MASKED_TYPES = PRIVATE_TYPES | {"typed"}
#: Characters of a value shown in a near miss.
_SHOWN = 120


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
    debounce: Cancellable | None = None
    #: The event a pending debounce will run for.
    debounced: Event | None = None
    self_fires: deque[int] = field(default_factory=deque)
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    last_skip: str | None = None
    last_run: dict[str, Any] | None = None
    host: RuleHost | None = None
    #: Runs whose conditions held (``fired`` also counts those whose did not).
    ran: int = 0
    #: Skips by reason (:data:`SKIP_REASONS`), conditions that did not hold included.
    skips: Counter[str] = field(default_factory=Counter)
    #: The newest near misses (see :meth:`Engine.why`).
    near: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=NEAR_MISSES))
    #: Why its pack is held (its rule is loaded to count what it missed, never run).
    held: str | None = None

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
            "ran": self.ran,
            "skips": {r: self.skips[r] for r in SKIP_REASONS if self.skips[r]},
            "held": self.held,
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

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Cancellable:
        return self.engine.call_later(seconds, callback)

    def now_ns(self) -> int:
        return self.engine.now_ns()

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
#: Everything that may match one event type: indexed fields, the rest, and
#: the recent events of the type (for ``why``) with whether to mask them.
_TypeEntry = tuple[tuple[_Field, ...], tuple[_Binding, ...], deque[Event], bool]


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
        #: Rules of held packs, loaded only to count what they missed.
        self._held: dict[str, RuleState] = {}
        #: Recent events per type some rule listens for (``why``'s field misses).
        self._recent: dict[str, deque[Event]] = {}
        #: Whether key presses and clipboard text may be kept (in memory, for
        #: ``why``) as they are; otherwise their private fields are masked.
        self.keep_private = bool(getattr(store, "store_private", False))
        #: The id of the last event handled (see ``_drain``).
        self.last_event_id = 0

    # ------------------------------------------------------------------ time

    def now_ns(self) -> int:
        """The clock rate limits and stateful triggers read (a replay runs its own)."""
        return time.monotonic_ns()

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Cancellable:
        """A timer on the engine's clock (a replay runs its own)."""
        assert self.loop is not None
        return self.loop.call_later(seconds, callback)

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

    def set_rules(self, rules: Iterable[Rule], held: Iterable[tuple[Rule, str]] = ()) -> None:
        """Replace the loaded rules (call on the loop, or through ``call``).

        ``held``: rules of packs held for approval, with why: never run, only
        counted (and explained by ``why``) when an event would have started them."""
        self.changed()
        old_held = self._held
        self._held = {}
        for rule, reason in held:
            kept = old_held.get(rule.key)
            state = RuleState(rule, enabled=False, held=reason)
            if kept is not None:
                state.skips, state.near = kept.skips, kept.near
            self._held[rule.key] = state
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
                state.ran, state.skips, state.near = previous.ran, previous.skips, previous.near
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
        for key in [k for k in self._held if k in new]:  # (a rival of a running pack)
            del self._held[key]
        for state in new.values():
            state.host = RuleHost(self, state)
            if state.enabled:
                self._start_rule(state)
        for state in self._held.values():
            state.host = RuleHost(self, state)
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
        # Suspended and held rules stay in the index: an event that would have
        # started one is counted and kept as a near miss, never passed on.
        bindings = [
            _Binding(state, trigger, matcher)
            for state in (*self._states.values(), *self._held.values())
            if state.enabled or state.held is not None
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
        entry: _TypeEntry | None = None
        if candidates:
            recent = self._recent.get(type_)
            if recent is None:
                if len(self._recent) >= RECENT_TYPES:
                    del self._recent[next(iter(self._recent))]
                recent = self._recent[type_] = deque(maxlen=RECENT_PER_TYPE)
            private = type_ in MASKED_TYPES and not self.keep_private
            entry = (fields, tuple(plain), recent, private)
        if len(self._entries) < 4096:
            self._entries[type_] = entry
        return entry

    def rules(self) -> list[dict[str, Any]]:
        return [s.summary() for s in self._states.values()]

    def rule(self, key: str) -> Rule | None:
        state = self._states.get(key)
        return state.rule if state else None

    def find(self, name: str) -> RuleState | None:
        """The rule ``name`` (``pack/rule``, or a rule id only one pack has), held ones too."""
        state = self._states.get(name) or self._held.get(name)
        if state is not None:
            return state
        found = [
            s
            for s in (*self._states.values(), *self._held.values())
            if s.rule.key.rpartition("/")[2] == name
        ]
        return found[0] if len(found) == 1 else None

    def why(self, name: str, limit: int = NEAR_MISSES) -> dict[str, Any] | None:
        """Why the rule ``name`` did not run lately: its state, its counts and its
        near misses, newest first. A near miss is an event that

        - started the rule's trigger, but a condition did not hold, a rate limit
          (cooldown, throttle, debounce) or its mode (busy) refused the run, or
          Nerve was paused, the rule suspended or its pack held; or
        - is of a type one of its triggers listens for (for ``count``,
          ``sequence`` and ``for``: one of their steps), but a field did not
          match (which one, what it was, what the trigger wants); or matched a
          step of a ``count``/``sequence``/``for`` that did not complete.

        Only recent events count (:data:`NEAR_MISSES` per rule,
        :data:`RECENT_PER_TYPE` per event type). Key presses and clipboard text
        show as ``<private>`` unless the user keeps them."""
        state = self.find(name)
        if state is None:
            return None
        rule = state.rule
        misses = list(state.near)
        seen = {(m["event"], m["reason"]) for m in misses}
        for trigger in rule.triggers:
            for leaf, matcher in _leaves(trigger):
                pattern = TypePattern([matcher.type])
                for type_, recent in list(self._recent.items()):
                    if not pattern.matches(type_):
                        continue
                    for event in recent:
                        miss = field_miss(leaf, matcher, event)
                        reason = "trigger"
                        if miss is None:
                            if leaf is trigger:
                                continue  # it matched: a run, or a skip above
                            reason = "incomplete"
                            miss = (
                                f"matched {leaf.describe()}, a part of "
                                f"{trigger.key}; the {trigger.key} did not complete then"
                            )
                        else:
                            miss = f"{leaf.describe()}: {miss}"
                        if (event.id, reason) in seen:
                            continue
                        seen.add((event.id, reason))
                        misses.append(
                            {
                                "time": event.time,
                                "event": event.id,
                                "type": event.type,
                                "data": _shown_data(event),
                                "reason": reason,
                                "detail": masking.mask(miss),
                            }
                        )
        misses.sort(key=lambda m: (m["time"], m["event"]), reverse=True)
        if state.held is not None:
            mode = f"held: {state.held}"
        elif state.suspended is not None:
            mode = f"suspended: {state.suspended}"
        elif not state.enabled:
            mode = "disabled"
        elif self.paused:
            mode = self.pause_reason or "paused"
        else:
            mode = "active"
        return {
            "rule": rule.key,
            "name": rule.name,
            "state": mode,
            "triggers": [t.describe() for t in rule.triggers],
            "fired": state.fired,
            "ran": state.ran,
            "skips": {r: state.skips[r] for r in SKIP_REASONS if state.skips[r]},
            "near": misses[:limit],
        }

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
        if batch:
            # What a run changes from now on, it changes after this event
            # (``variable.changed`` says so: a replay applies it there).
            self.last_event_id = batch[-1].id

    def _handle(self, event: Event) -> None:
        # The hot path: most events match nothing and cost one dict lookup.
        entries = self._entries
        entry = entries[event.type] if event.type in entries else self._entry(event.type)
        if entry is not None:
            fields, plain, recent, private = entry
            # Kept for ``why`` (a field that did not match); what users type masked.
            recent.append(private_masked(event) if private else event)
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
        state = b.state
        if state.held is not None:
            self._skip(state, "held", event, f"its pack is held: {state.held}")
            return
        if state.suspended is not None:
            self._skip(state, "suspended", event, f"suspended: {state.suspended}")
            return
        assert state.host is not None
        b.trigger.on_match(event, b.matcher, state.host)

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

    def _skip(
        self, state: RuleState, reason: str, event: Event | None = None, detail: str | None = None
    ) -> None:
        """``state``'s rule was about to run for ``event`` and did not, for ``reason``
        (its first word names the reason). Counted, and kept as a near miss."""
        self.changed()
        word = reason.split(" ", 1)[0]
        kind = _REASON_OF.get(word, word)
        if kind not in ("condition", "held", "suspended"):
            state.skipped[word] += 1  # (what the rule's own switches refused)
            state.last_skip = reason
        state.skips[kind] += 1
        if event is not None:
            self._near(state, event, kind, detail or reason)

    def _near(self, state: RuleState, event: Event, kind: str, detail: str) -> None:
        if kind == "condition" and event.type in MASKED_TYPES and not self.keep_private:
            # (A condition's verdict may quote what was typed or copied.)
            detail = detail.partition(":")[0] + ": <private>"
        state.near.append(
            {
                "time": event.time,
                "event": event.id,
                "type": event.type,
                "data": _shown_data(event if self.keep_private else private_masked(event)),
                "reason": kind,
                "detail": masking.mask(detail),
            }
        )

    def _fire(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        rule = state.rule
        if not state.enabled:
            return
        if state.suspended:
            self._skip(state, "suspended", event, f"suspended: {state.suspended}")
            return
        if self.paused:
            self._skip(state, "paused", event, self.pause_reason or "paused")
            return
        if event.depth > self.max_depth:
            self._suspend(
                state,
                f"cascade: event {event.type} is {event.depth} rule runs deep "
                f"(limit {self.max_depth})",
                event,
            )
            return
        now = self.now_ns()
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
            since = (now - state.last_fire_ns) / 1e9
            self._skip(
                state,
                f"throttled ({rule.throttle:g}s)",
                event,
                f"throttle {rule.throttle:g}s: the last run started {since:.3g}s before",
            )
            return
        if rule.cooldown and state.last_end_ns and now - state.last_end_ns < rule.cooldown * 1e9:
            since = (now - state.last_end_ns) / 1e9
            self._skip(
                state,
                f"cooldown ({rule.cooldown:g}s)",
                event,
                f"cooldown {rule.cooldown:g}s: the last run ended {since:.3g}s before",
            )
            return
        if rule.debounce:
            if state.debounce is not None:
                state.debounce.cancel()
                previous = state.debounced
                self._skip(
                    state,
                    f"debounced ({rule.debounce:g}s)",
                    previous,
                    f"debounce {rule.debounce:g}s: event {event.id} came before it settled",
                )
            state.debounced = event
            state.debounce = self.call_later(
                rule.debounce, functools.partial(self._debounced, state, event, extra)
            )
            return
        self._admit(state, event, extra)

    def _debounced(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        state.debounce = None
        state.debounced = None
        if self.paused:
            self._skip(state, "paused", event, self.pause_reason or "paused")
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
                self._skip(state, "busy (mode single: a run is in progress)", event)
                return
            if rule.mode == "restart":
                for task in active:
                    task.cancel()
            elif rule.mode == "queued":
                # As in Home Assistant, 'max' counts the running run and the waiting ones.
                if len(active) + len(state.queue) >= rule.max:
                    self._skip(
                        state, f"queue full (max {rule.max} runs, running or waiting)", event
                    )
                else:
                    state.queue.append((event, extra))
                return
            elif rule.mode == "parallel" and len(active) >= rule.max:
                self._skip(state, f"max ({rule.max} runs in parallel)", event)
                return
        self._start_run(state, event, extra)

    def _start_run(self, state: RuleState, event: Event, extra: dict[str, Any] | None) -> None:
        assert self.loop is not None
        self.changed()
        state.fired += 1
        state.last_fire_ns = self.now_ns()
        run_id = os.urandom(8).hex()
        self._run_rules[run_id] = state.rule.key
        if len(self._run_rules) > _RECENT_RUNS:
            self._run_rules.popitem(last=False)
        ctx = RunContext(self, state.rule, event, extra, run_id)
        # The conditions are checked now, with the variables as they are when
        # the event is handled, not a loop turn later, after other runs
        # started by the same batch of events changed them (and a replay of
        # the log, which checks them at this point, agrees).
        try:
            held = self.check_conditions(ctx)
        except Exception:  # the run checks again, and fails with the error
            ctx.trace.conditions.clear()
            held = True
        if not held:
            ctx.ended = time.time()
            state.last_run = {
                "id": ctx.id,
                "status": ctx.status,
                "started": ctx.started,
                "error": None,
            }
            try:
                self._record(ctx)
            except Exception:
                log.exception("after the run of %s", ctx.rule.key)
            self._skip(state, "condition", event, failed_condition(ctx))
            return
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
            state.last_end_ns = self.now_ns()
            state.ran += 1
        else:
            self._skip(state, "condition", ctx.event, failed_condition(ctx))
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
            if not ctx.checked and not self.check_conditions(ctx):
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

    def check_conditions(self, ctx: RunContext) -> bool:
        """Whether the run's conditions hold (traced; ``ctx.status`` is
        ``condition`` when one does not)."""
        for i, cond in enumerate(ctx.rule.conditions):
            ok, why = cond.check(ctx)
            ctx.trace.condition(f"if[{i}]", cond.key, ok, why)
            if not ok:
                ctx.status = "condition"
                ctx.checked = True
                return False
        ctx.checked = True
        return True

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
                state.debounced = None
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
        # In the log: a replay pauses there too.
        self.bus.publish("app.paused", {"reason": reason, "for": seconds}, source="engine")
        return cancelled

    def resume(self) -> None:
        self.paused = False
        self.pause_reason = None
        self.changed()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        log.info("resumed")
        self.bus.publish("app.resumed", {}, source="engine")

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
            # Runs and skips by reason of every rule that ran or missed a run.
            "counts": {
                s.rule.key: {
                    "ran": s.ran,
                    "skips": {r: s.skips[r] for r in SKIP_REASONS if s.skips[r]},
                }
                for s in (*states, *self._held.values())
                if s.ran or s.skips
            },
        }

    async def dry_run(self, rule: Rule, event: Event, *, at: float | None = None) -> RunContext:
        """Run ``rule`` for ``event`` without side effects (the editor's Test button,
        ``nerve replay``); ``at``: check conditions as at that time (epoch seconds)."""
        run_id = "dry-" + uuid.uuid4().hex[:12]
        ctx = RunContext(self, rule, event, None, run_id, dry_run=True, at=at)
        await self.execute(ctx)
        return ctx


# ------------------------------------------------------------------ near misses


def private_masked(event: Event) -> Event:
    """``event`` with what the user types or copies masked (``<private>``)."""
    if event.type not in MASKED_TYPES:
        return event
    data = {k: ("<private>" if k in ("text", "key") else v) for k, v in event.data.items()}
    return event._replace(data=freeze(data))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _shown_data(event: Event) -> dict[str, str]:
    """The event's top-level data, each value shortened, secrets masked."""
    return {str(k): masking.mask(_short(thaw(v))) for k, v in list(event.data.items())[:12]}


def _leaves(trigger: Trigger) -> Iterable[tuple[Trigger, Matcher]]:
    """Each matcher of ``trigger`` with the (innermost) trigger it belongs to."""
    children = getattr(trigger, "children", None)
    if not children:
        for matcher in trigger.matchers():
            yield trigger, matcher
        return
    for child in children:
        yield from _leaves(child)


def field_miss(trigger: Trigger, matcher: Matcher, event: Event) -> str | None:
    """Why ``event`` (of a type ``matcher`` listens for) did not match it, or None
    when it matched: the field, what it was, what the trigger wants."""
    if matcher.index is not None:
        name, want = matcher.index
        value = event.get(name, matching.MISSING)
        if not matching.compile_spec(want)(value):
            shown = "missing" if value is matching.MISSING else f"was {_short(thaw(value))}"
            return f"{name} {shown}, wanted {_short(want)}"
    explain = getattr(trigger, "mismatch", None)
    if explain is not None:  # (a trigger that checks its fields itself: window.focused)
        why: str | None = explain(event)
        if why is not None:
            return why
    if matcher.predicate is not None and not matcher.predicate(event):
        return f"the event did not match its other fields ({trigger.describe()})"
    return None


def failed_condition(ctx: RunContext) -> str:
    """The first condition of a run that did not hold, with its values."""
    for entry in ctx.trace.conditions:
        if not entry.get("ok"):
            return f"{entry.get('path')} {entry.get('condition')}: {entry.get('detail')}"
    return "a condition did not hold"
