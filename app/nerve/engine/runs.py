"""One run of a rule: its context, its trace, and stepping through actions."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from nerve import masking
from nerve.causes import Origin
from nerve.engine.model import Rule
from nerve.engine.registry import Action, ActionError
from nerve.events import PRIVATE_TYPES, Event, JSONValue, reserved_type, valid_type
from nerve.templates import Scope

if TYPE_CHECKING:
    from nerve.engine.engine import Engine
    from nerve.prompts import Prompter

log = logging.getLogger(__name__)
T = TypeVar("T")

_RULE_PREFIX = re.compile(r"^rules\[\d+\]\.?")
#: What ``{clipboard}`` gives in a dry run: the user's clipboard is not read.
DRY_CLIPBOARD = "<clipboard>"


def redacted(event: Event) -> dict[str, JSONValue]:
    """The event for a trace: what users type or copy is not kept."""
    data = event.as_dict()
    if event.type in PRIVATE_TYPES and isinstance(data.get("data"), dict):
        data["data"] = {
            k: ("<private>" if k in ("text", "key") else v) for k, v in data["data"].items()
        }
    return data


@dataclass
class Trace:
    """What happened in a run, step by step, ready to store as JSON."""

    conditions: list[dict[str, JSONValue]] = field(default_factory=list)
    actions: list[dict[str, JSONValue]] = field(default_factory=list)

    def condition(self, path: str, key: str, ok: bool, detail: str) -> None:
        # Paths as the actions' are: "do[3].if[0]" (the rule is the run's).
        path = short_path(path)
        self.conditions.append({"path": path, "condition": key, "ok": ok, "detail": detail})

    def as_dict(self) -> dict[str, JSONValue]:
        return {"conditions": list(self.conditions), "actions": list(self.actions)}


class Stop(Exception):
    """Ends a run early without failing it (a ``wait_for`` that may time out)."""


class Stopped(Stop):
    """The ``stop`` action ended the run: its status is ``stopped``, the reason its error."""


class RunContext:
    """Everything an action or condition needs during one run."""

    def __init__(
        self,
        engine: Engine,
        rule: Rule,
        event: Event,
        extra: Mapping[str, Any] | None,
        run_id: str,
        *,
        dry_run: bool = False,
        at: float | None = None,
    ) -> None:
        self.engine = engine
        self.rule = rule
        self.event = event
        self.extra = dict(extra or {})
        self.id = run_id
        self.dry_run = dry_run
        #: The time conditions are checked at (a replay: the event's), else now.
        self.at = at
        self.started = time.time()
        self.trace = Trace()
        self.status = "running"
        #: Whether the conditions were checked (when the run started).
        self.checked = False
        self.error: str | None = None
        self.ended: float | None = None
        # A dry run works on a scratch copy of the variables.
        self._scratch: dict[str, Any] | None = dict(engine.variables) if dry_run else None
        #: Answers given in this run's dialogs (``{form.*}``): in memory only.
        self.form: dict[str, Any] = {}
        #: The clipboard's text as read for the current action (``{clipboard}``).
        self.clipboard: str | None = None
        #: Clipboard texts this run read: never recorded (see :meth:`mask`).
        self._private: list[str] = []
        #: Outputs of the steps with an ``id`` (``{steps.*}``): in memory only.
        self.steps: dict[str, dict[str, Any]] = {}
        #: The repeats this run is inside, innermost last (``{repeat.*}``).
        self.loops: list[dict[str, Any]] = []
        #: Loop iterations of this run so far (all repeats, nested ones too).
        self.iterations = 0
        self._parent: RunContext | None = None

    def branch(self) -> RunContext:
        """A view of this run for one branch of a ``parallel``: the same trace,
        answers and step outputs, its own stack of repeats."""
        view = copy.copy(self)
        view.loops = list(self.loops)
        view._parent = self
        return view

    def count_iteration(self) -> int:
        """One more loop iteration of this run (shared by its parallel branches)."""
        root = self
        while root._parent is not None:
            root = root._parent
        root.iterations += 1
        return root.iterations

    def now(self) -> dt.datetime:
        """The local time this run's conditions are checked at."""
        return dt.datetime.fromtimestamp(self.at) if self.at is not None else dt.datetime.now()

    @property
    def variables(self) -> Mapping[str, Any]:
        return self._scratch if self._scratch is not None else self.engine.variables

    async def read_clipboard(self) -> None:
        """Read the clipboard's text for ``{clipboard}`` (a dry run does not:
        it shows :data:`DRY_CLIPBOARD`)."""
        if self.dry_run:
            self.clipboard = DRY_CLIPBOARD
            return
        from nerve.listeners import clipboard

        text = await self.blocking(clipboard.read_clipboard)
        masking.register_private(text)
        if text and text not in self._private:
            self._private.append(text)
        self.clipboard = text

    def mask(self, value: Any) -> Any:
        """``value`` (a JSON-like value) with secret values and the clipboard
        texts this run read masked, for anything recorded."""
        value = masking.mask_value(value)
        short = [p for p in self._private if len(p) < masking.MIN_LENGTH]
        return _mask_strings(value, short) if short else value

    def set_variable(self, name: str, value: Any) -> None:
        # Variables are stored (and other packs' rules read them): no secret in them.
        value = self.mask(value)
        if self._scratch is not None:
            if value is None:
                self._scratch.pop(name, None)
            else:
                self._scratch[name] = value
        else:
            old = self.engine.variables.get(name)
            self.engine.set_variable(name, value)
            if old != value:
                # In the log, so that a replay knows the variables of each moment.
                self.engine.bus.publish(
                    "variable.changed",
                    {"name": name, "value": value, "old": old, "after": self.engine.last_event_id},
                    source="engine",
                    cause=self.id,
                    depth=self.event.depth + 1,
                )

    @property
    def scope(self) -> Scope:
        return Scope(
            event=self.event,
            inputs=self.rule.inputs,
            variables=self.variables,
            rule={"id": self.rule.id, "name": self.rule.name, "pack": self.rule.pack},
            run={"id": self.id, "started": self.started},
            form=self.form,
            clipboard=self.clipboard,
            steps=self.steps,
            repeat=self.loops[-1] if self.loops else {},
        )

    @property
    def prompter(self) -> Prompter:
        """Who shows this run's dialogs (the desktop app, or a helper process)."""
        return self.engine.prompter

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (spawning, file copies, HTTP) off the engine loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.engine.executor, fn, *args)

    def emit(self, type_: str, data: Mapping[str, Any]) -> Event:
        """Publish an event caused by this run (depth one more than its trigger's).

        A rule never publishes one of Nerve's own types, in any spelling (the
        ``emit`` action refuses them when it is compiled; this holds for any
        other way an action could get here). Its source names the rule and so
        the pack (``rule:PACK/RULE``); a secret input value in its data is
        masked (the event log, the monitor and other packs' rules see it)."""
        if not valid_type(type_) or reserved_type(type_):
            raise ActionError(f"{type_!r} is not an event type a rule may publish")
        return self.engine.bus.publish(
            type_,
            self.mask(data),
            source=f"rule:{self.rule.key}",
            cause=self.id,
            depth=self.event.depth + 1,
        )

    @property
    def origin(self) -> Origin:
        """This run as the cause of what it does outside."""
        return Origin(self.id, self.event.depth)

    def note_process(self, pid: int) -> None:
        """This run started program ``pid``: a ``nerve emit`` from it (or from its
        descendants) carries this run as its cause."""
        if not self.dry_run:
            self.engine.bus.causes.note_process(pid, self.origin)

    def note_path(self, path: str | os.PathLike[str], *, tree: bool = False) -> None:
        """This run writes or removes ``path`` (``tree``: and what is below): the
        watcher's event for it carries this run as its cause. Any thread."""
        if not self.dry_run:
            self.engine.bus.causes.note_path(os.fspath(path), self.origin, tree=tree)

    def record(self) -> dict[str, JSONValue]:
        """The run as stored: summary and trace (secret input values masked)."""
        record: dict[str, JSONValue] = {
            "id": self.id,
            "rule_id": self.rule.key,
            "pack_id": self.rule.pack,
            "event_id": self.event.id or None,
            "started": self.started,
            "ended": self.ended,
            "status": self.status,
            "error": self.error,
            "trace": {
                "event": redacted(self.event),
                "trigger": self.extra,
                "dry_run": self.dry_run,
                **self.trace.as_dict(),
            },
        }
        return masking.mask_value(record) if masking.active() else record


def _mask_strings(value: Any, texts: list[str]) -> Any:
    """``value`` with ``texts`` masked in its strings (not in mapping keys)."""
    if isinstance(value, str):
        for text in texts:
            value = value.replace(text, masking.MASK)
        return value
    if isinstance(value, Mapping):
        return {k: _mask_strings(v, texts) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_strings(v, texts) for v in value]
    return value


def short_path(path: str) -> str:
    return _RULE_PREFIX.sub("", path)


async def run_actions(actions: list[Action], run: RunContext) -> None:
    """Step through ``actions`` in order, tracing each one."""
    for action in actions:
        entry: dict[str, JSONValue] = {"path": short_path(action.path), "action": action.key}
        run.trace.actions.append(entry)
        start = time.perf_counter()
        entry["started"] = time.time()
        try:
            if run.dry_run and action.key not in _SAFE_IN_DRY_RUN:
                entry["result"] = "skipped (dry run)"
                if action.children():
                    await _dry_children(action, run)
                continue
            if action.reads_clipboard:
                await run.read_clipboard()
            result = _jsonable(await action.execute(run))
            entry["result"] = run.mask(result) if action.reads_clipboard else result
        except asyncio.CancelledError:
            entry["error"] = "cancelled"
            raise
        except Stopped as exc:
            entry["result"] = {"stopped": str(exc) or None}
            raise
        except (ActionError, Stop) as exc:
            entry["error"] = str(exc)
            if isinstance(exc, Stop):
                raise
            if action.reads_clipboard:
                # What failed may quote the clipboard's text: it is not recorded.
                entry["error"] = run.mask(str(exc))
                if entry["error"] != str(exc) and not action.continue_on_error:
                    raise ActionError(entry["error"]) from None
            if not action.continue_on_error:
                raise
        except (ValueError, OverflowError) as exc:
            # Data the action could not use (a NUL, a line break in a header, a
            # number out of range, text that cannot be encoded): the run fails
            # with what was wrong, not with an "internal error".
            message = f"{action.key}: cannot use this value: {exc}"
            entry["error"] = message
            if not action.continue_on_error:
                raise ActionError(message) from None
        except Exception as exc:
            log.exception("action %s of %s crashed", action.path, run.rule.key)
            entry["error"] = f"internal error: {exc!r}"
            if not action.continue_on_error:
                raise ActionError(f"{action.key}: internal error: {exc}") from exc
        finally:
            entry["ms"] = round((time.perf_counter() - start) * 1000, 3)


#: Actions that change nothing outside the run, so a dry run performs them.
_SAFE_IN_DRY_RUN = frozenset({"if", "log", "delay", "set"})
#: Dialogs show nothing in a dry run: their defaults stand in for the answers.
_SAFE_IN_DRY_RUN |= {"form", "ask", "choose", "confirm"}
#: Flow: what they run is dry in its turn (a repeat only a few times).
_SAFE_IN_DRY_RUN |= {"repeat", "parallel", "stop"}


async def _dry_children(action: Action, run: RunContext) -> None:
    for child in action.children():
        run.trace.actions.append(
            {"path": short_path(child.path), "action": child.key, "result": "skipped (dry run)"}
        )


def _jsonable(value: Any) -> JSONValue:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)
