"""What the rule editor asks of the pack loader and the engine's types, without Qt.

- :func:`check_rule_text`: the YAML tab's text validated exactly as the pack
  loader validates a rule (it *is* the loader, on a one-rule pack made of
  the real pack's header and this rule), errors mapped back to the lines of
  the text.
- :func:`trigger_info`: what the rule's triggers produce (event type, fields)
  for placeholders and for the Test button's synthetic event.
- :func:`cron_preview`: a cron expression in words and its next fire times.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from nerve import saferegex
from nerve.engine.model import Rule
from nerve.engine.registry import CompileContext, ConfigError, Trigger, load_builtin_types
from nerve.engine.validation import pattern_holds
from nerve.events import KNOWN_FIELDS
from nerve.packs.loader import load_pack
from nerve.packs.schema import PACK_ID_PATTERN
from nerve.packs.yamlsource import YamlError, load_yaml

#: Lines before the rule in the one-rule pack (``nerve``, ``pack``, ``rules``).
_HEADER_LINES = 3
#: The rule's lines are indented this much in the one-rule pack (``  - `` / ``    ``).
_INDENT = 4


@dataclass(frozen=True)
class Problem:
    """One error in the YAML tab's text: 1-based line and column, path in the rule, message."""

    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"line {self.line}: {where}{self.message}"


@dataclass
class RuleCheck:
    """The outcome of checking one rule's text."""

    data: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    rule: Rule | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None and not self.problems and self.rule is not None


def pack_header_for_check(header: dict[str, Any]) -> dict[str, Any]:
    """The parts of a pack's header a rule depends on (its id and inputs)."""
    pack_id = str(header.get("id", ""))
    if not pattern_holds(PACK_ID_PATTERN, pack_id):
        pack_id = "editor.check"
    out: dict[str, Any] = {"id": pack_id}
    inputs = header.get("inputs")
    if isinstance(inputs, dict):
        out["inputs"] = inputs
    return out


def one_rule_pack(text: str, header: dict[str, Any]) -> str:
    """A pack holding ``header`` and the rule written in ``text`` (a mapping at column 0)."""
    lines = text.split("\n")
    body = [("  - " if i == 0 else "    ") + line if line else "" for i, line in enumerate(lines)]
    head = json.dumps(pack_header_for_check(header), ensure_ascii=False)
    return f"nerve: 1\npack: {head}\nrules:\n" + "\n".join(body)


def check_rule_text(
    text: str,
    header: dict[str, Any],
    *,
    filename: str = "rule.yaml",
    other_ids: frozenset[str] = frozenset(),
) -> RuleCheck:
    """Validate ``text`` (one rule as a YAML mapping) as the loader would in its pack.

    ``other_ids`` are the ids of the pack's other rules (a rule id must be unique)."""
    result = RuleCheck()
    try:
        data = load_yaml(text, filename=filename).data
    except YamlError as exc:
        result.problems.append(Problem(exc.line, exc.column, "", exc.message))
        return result
    if not isinstance(data, dict):
        result.problems.append(
            Problem(1, 1, "", "a rule is a mapping with id, when and do (and more)")
        )
        return result
    result.data = data
    inputs = header.get("inputs") if isinstance(header.get("inputs"), dict) else {}
    assert isinstance(inputs, dict)
    needed = {
        k: "x" for k, spec in inputs.items() if isinstance(spec, dict) and "default" not in spec
    }
    pack = load_pack(
        one_rule_pack(text, header).encode("utf-8"), filename=filename, overrides=needed
    )
    for error in pack.errors:
        if error.line <= _HEADER_LINES:
            continue  # the header's own problems are not this rule's
        path = re.sub(r"^rules\[0\]\.?", "", error.path)
        result.problems.append(
            Problem(error.line - _HEADER_LINES, max(1, error.column - _INDENT), path, error.message)
        )
    rule_id = data.get("id")
    if isinstance(rule_id, str) and rule_id in other_ids:
        result.problems.append(
            Problem(
                _line_of_key(text, "id"),
                1,
                "id",
                f"the pack already has a rule with id {rule_id!r}; give this one its own id",
            )
        )
    if pack.rules and not result.problems:
        result.rule = pack.rules[0]
    result.problems.sort(key=lambda p: (p.line, p.column))
    return result


def _line_of_key(text: str, key: str) -> int:
    for i, line in enumerate(text.split("\n"), 1):
        if re.match(rf"^{re.escape(key)}\s*:", line):
            return i
    return 1


# ---------------------------------------------------------------------------
# Triggers: event types and fields


@dataclass(frozen=True)
class TriggerInfo:
    """What the rule's first trigger produces, for the Test event and placeholders."""

    event_type: str = "test.event"
    #: Field values the trigger itself fixes (the combo of a hotkey, a schedule's job).
    fixed: dict[str, Any] = field(default_factory=dict)
    #: Fields every trigger's event has (None: any field, e.g. custom events).
    fields: frozenset[str] | None = None


def compile_triggers(when: Any, header: dict[str, Any]) -> list[Trigger]:
    """The compiled triggers of a rule's ``when`` (empty when they do not compile)."""
    rule = {"id": "probe", "when": when, "do": [{"log": "probe"}]}
    text = json.dumps(rule, ensure_ascii=False)
    pack = load_pack(one_rule_pack(text, header).encode("utf-8"), filename="probe.yaml")
    return list(pack.rules[0].triggers) if pack.rules else []


def trigger_info(when: Any, header: dict[str, Any]) -> TriggerInfo:
    """Event type, fixed fields and known fields of the rule whose ``when`` is given."""
    triggers = compile_triggers(when, header) if when is not None else []
    if not triggers:
        return TriggerInfo()
    fields: set[str] | None = None
    for trigger in triggers:
        own = trigger.event_fields()
        if own is None:
            fields = None
            break
        fields = set(own) if fields is None else fields & own
    first = triggers[0]
    matchers = first.matchers()
    event_type = "test.event"
    fixed: dict[str, Any] = {}
    if matchers:
        matcher = matchers[0]
        event_type = _concrete_type(matcher.type)
        if matcher.index is not None:
            fixed[str(matcher.index[0])] = matcher.index[1]
    if event_type.startswith("file.") and isinstance(fixed.get("path"), str):
        # A file trigger's index is the watched folder: the event is about a file in it.
        folder = fixed.pop("path").rstrip("/") or "/"
        name = str(SAMPLE_VALUES["name"])
        fixed.update(dir=folder, path=f"{folder.rstrip('/')}/{name}", name=name)
    fixed.update(_exact_data(when))
    return TriggerInfo(event_type, fixed, frozenset(fields) if fields is not None else None)


def _concrete_type(pattern: str) -> str:
    """An event type matching ``pattern`` (``build.*`` -> ``build.example``)."""
    if not any(c in pattern for c in "*?["):
        return pattern
    try:
        match = saferegex.glob_matcher(pattern)
    except saferegex.RegexError:
        return "test.event"
    known = [t for t in KNOWN_FIELDS if match(t)]
    if known:
        return sorted(known)[0]
    text = re.sub(r"\[[^\]]*\]", "x", pattern).replace("*", "example").replace("?", "x")
    return text.strip(".") or "test.event"


def _exact_data(when: Any) -> dict[str, Any]:
    """Exact values an ``event`` trigger asks of the data, so the test event matches."""
    first = when[0] if isinstance(when, list) and when else when
    if not isinstance(first, dict):
        return {}
    spec = first.get("event")
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict):
        return {}
    out: dict[str, Any] = {}
    for name, value in spec["data"].items():
        if isinstance(value, (int, float, bool)) or (
            isinstance(value, str) and not value.startswith("!") and not set("*?[") & set(value)
        ):
            out[str(name)] = value
    return out


#: Plausible values for the fields of a synthetic event.
SAMPLE_VALUES: dict[str, Any] = {
    "path": "/tmp/nerve-test/example.txt",
    "dest_path": "/tmp/nerve-test/moved.txt",
    "src_path": "/tmp/nerve-test/example.txt",
    "src_dir": "/tmp/nerve-test",
    "name": "example.txt",
    "dir": "/tmp/nerve-test",
    "is_dir": False,
    "combo": "ctrl+alt+t",
    "key": "a",
    "modifiers": [],
    "injected": False,
    "text": "sample text",
    "button": "left",
    "pressed": True,
    "x": 100,
    "y": 100,
    "dx": 0,
    "dy": -1,
    "pid": 4242,
    "exe": "/usr/bin/example",
    "cmdline": ["example", "--flag"],
    "user": "me",
    "exit_code": 0,
    "title": "Example window",
    "class": "example",
    "instance": "example",
    "process": "example",
    "window": 1,
    "change": "focus",
    "job": "example",
    "scheduled_time": "2030-01-01T09:00:00+00:00",
    "selection": "clipboard",
    "mime": "text/plain",
    "truncated": False,
    "idle_seconds": 600,
    "threshold": 600,
    "percent": 50,
    "plugged": False,
    "secsleft": 3600,
    "below": 20,
    "interface": "eth0",
    "rule": "example/rule",
    "pack": "example",
    "run": "run-1",
    "error": "example error",
    "reason": "example",
    "version": "1.0",
}


def sample_event(info: TriggerInfo) -> tuple[str, dict[str, Any]]:
    """The type and data of a synthetic event that the trigger described by ``info`` fires on."""
    names = set(KNOWN_FIELDS.get(info.event_type, frozenset()))
    if info.fields is not None:
        names |= info.fields
    data: dict[str, Any] = {name: SAMPLE_VALUES.get(name, "example") for name in sorted(names)}
    data.update(info.fixed)
    return info.event_type, data


def placeholders(info: TriggerInfo, header: dict[str, Any], variables: list[str]) -> list[str]:
    """Placeholders a rule's actions may use, most useful first."""
    fields = sorted(info.fields) if info.fields is not None else []
    if info.fields is None:
        fields = sorted(KNOWN_FIELDS.get(info.event_type, frozenset()))
    out = [f"{{event.{f}}}" for f in fields]
    out += ["{event.type}", "{event.source}", "{event.time}"]
    inputs = header.get("inputs")
    if isinstance(inputs, dict):
        out += [f"{{input.{name}}}" for name in inputs]
    out += [f"{{var.{name}}}" for name in sorted(variables)]
    out += ["{rule.id}", "{rule.name}", "{run.id}", "{now}", "{now:%Y-%m-%d}", "{now:%H:%M}"]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------
# Cron


@dataclass(frozen=True)
class CronPreview:
    """A cron expression in words and when it fires next, or why it is wrong."""

    text: str = ""
    times: list[dt.datetime] = field(default_factory=list)
    error: str = ""


def cron_preview(expression: str, count: int = 5, now: dt.datetime | None = None) -> CronPreview:
    """``expression`` compiled as a ``schedule`` trigger: its description and next fire times."""
    load_builtin_types()
    from nerve.engine.triggers import ScheduleTrigger

    if not expression.strip():
        return CronPreview(error="empty")
    try:
        trigger = ScheduleTrigger.compile({"cron": expression}, CompileContext(rule_key="editor"))
    except ConfigError as exc:
        return CronPreview(error=exc.message)
    except ValueError as exc:
        return CronPreview(error=str(exc))
    return CronPreview(trigger.describe(), trigger.next_fire_times(count, now))
