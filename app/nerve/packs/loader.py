"""Pack files in, validated rules out, with every error of a file at once.

A YAML problem ends the file; a broken rule is reported and skipped while the
pack's other rules load; a broken pack header (``nerve``, ``pack``) keeps the
whole pack from loading but its rules are still checked so that every error
is listed in one go.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerve.durations import parse_duration
from nerve.engine import validation
from nerve.engine.compiler import compile_actions, compile_conditions, compile_triggers
from nerve.engine.model import DEFAULT_MAX, Rule
from nerve.engine.registry import CompileContext, ConfigPath, load_builtin_types
from nerve.packs.schema import RATE_KEYS, envelope_schema, rule_schema
from nerve.packs.yamlsource import Located, YamlError, format_path, load_yaml
from nerve.ranges import number_problem, number_problems
from nerve.templates import Names

log = logging.getLogger(__name__)

#: How capabilities are shown to people deciding whether to trust a pack.
CAPABILITY_TEXT = {
    "reads-keyboard": "read what you type (hotkeys, abbreviations)",
    "reads-clipboard": "read the clipboard",
    "reads-mouse": "see your mouse clicks and scrolling",
    "injects-input": "type and press keys for you (in any window, a terminal included)",
    "writes-clipboard": "change the clipboard",
    "runs-programs": "start programs and open files or web addresses",
    "runs-shell": "run shell command lines",
    "writes-files": "move, copy and trash files",
    "network": "send requests over the network",
    "controls-nerve": "pause Nerve or switch rules on and off",
    "writes-variables": "change variables (other rules may use them)",
    "emits-events": "emit events that other packs' rules may react to",
    "watches-files": "see files change in folders",
    "asks-user": "show dialogs that ask you for text, passwords or choices",
    "controls-windows": "focus, move, resize, minimise and close windows",
}


@dataclass(frozen=True)
class PackError:
    """One problem, where it is: ``file:line:col: path: message``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


@dataclass
class Pack:
    """A loaded pack: its header, the rules that compiled, and every error."""

    file: str
    id: str = ""
    name: str = ""
    version: str = ""
    author: str = ""
    #: Where newer versions of the pack are published (``nerve pack outdated``).
    source_url: str = ""
    description: str = ""
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    #: Inputs whose value was given (at import, ``--set``), not the pack's default.
    given: frozenset[str] = frozenset()
    rules: list[Rule] = field(default_factory=list)
    errors: list[PackError] = field(default_factory=list)
    rule_count: int = 0
    header_ok: bool = False
    #: Where ``pack.id`` is written (line, column), for errors about the id.
    id_position: tuple[int, int] = (1, 1)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def usable(self) -> bool:
        """True when the pack may run (its header is sound); broken rules are left out."""
        return self.header_ok

    def secret_values(self) -> list[Any]:
        """The values the user gave the inputs the pack marks ``secret: true``."""
        return [
            self.values[name]
            for name, spec in self.inputs.items()
            if spec.get("secret") is True and name in self.given and name in self.values
        ]

    def is_secret(self, name: str) -> bool:
        spec = self.inputs.get(name)
        return isinstance(spec, dict) and spec.get("secret") is True

    @property
    def capabilities(self) -> frozenset[str]:
        caps: set[str] = set()
        for rule in self.rules:
            caps |= rule.capabilities
        return frozenset(caps)


def load_pack(
    source: str | os.PathLike[str] | bytes,
    *,
    filename: str | None = None,
    overrides: Mapping[str, str] | None = None,
    strict_overrides: bool = True,
) -> Pack:
    """Load one pack file (or text). Never raises for bad content: see ``Pack.errors``.

    ``overrides`` are ``--set`` values for the pack's inputs; with
    ``strict_overrides`` one the pack does not declare is an error (when
    several packs load together, a value is for whichever declares it)."""
    load_builtin_types()
    name = filename or (str(source) if isinstance(source, (str, os.PathLike)) else "<pack>")
    pack = Pack(file=name)
    try:
        src: Any = Path(source) if isinstance(source, (str, os.PathLike)) else source
        doc = load_yaml(src, filename=name)
    except YamlError as exc:
        pack.errors.append(PackError(exc.file, exc.line, exc.column, "", exc.message))
        return pack
    try:
        _Loader(doc, pack, dict(overrides or {}), strict_overrides).run()
    except Exception as exc:  # a bug of ours must not take the other packs down
        log.debug("loading %s failed", name, exc_info=True)
        pack.errors.append(PackError(name, 1, 1, "", f"cannot load this pack: {_plain(exc)}"))
        pack.rules = []
        pack.header_ok = False
    pack.errors.sort(key=lambda e: (e.line, e.column))
    return pack


def _plain(exc: BaseException) -> str:
    """An unexpected exception in words (its type, for lack of better, and message)."""
    text = str(exc) or type(exc).__name__
    if len(text) > 200:
        text = text[:197] + "..."
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


class _Loader:
    def __init__(
        self, doc: Located, pack: Pack, overrides: dict[str, str], strict: bool = True
    ) -> None:
        self.doc = doc
        self.pack = pack
        self.overrides = overrides
        self.strict = strict
        self.error_paths: list[ConfigPath] = []

    def error(self, path: ConfigPath, message: str) -> None:
        self.error_paths.append(path)
        line, column = self.doc.position(path)
        self.pack.errors.append(PackError(self.pack.file, line, column, format_path(path), message))

    def run(self) -> None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.error(
                (),
                f"a pack is a mapping with 'nerve', 'pack' and 'rules', "
                f"not {validation.describe_value(data)}",
            )
            return
        header_errors = len(self.pack.errors)
        for path, message in validation.check(envelope_schema(), data):
            self.error(path, message)
        for path, message in number_problems(data.get("pack"), ("pack",)):
            self.error(path, message)
        info = data.get("pack") if isinstance(data.get("pack"), dict) else {}
        assert isinstance(info, dict)
        self.pack.id = str(info.get("id", ""))
        self.pack.id_position = self.doc.position(("pack", "id"))
        self.pack.name = str(info.get("name", self.pack.id))
        self.pack.version = str(info.get("version", ""))
        self.pack.author = str(info.get("author", ""))
        self.pack.source_url = str(info.get("source_url", ""))
        self.pack.description = str(info.get("description", ""))
        inputs = info.get("inputs") if isinstance(info.get("inputs"), dict) else {}
        assert isinstance(inputs, dict)
        self.pack.inputs = {k: v for k, v in inputs.items() if isinstance(v, dict)}
        self.resolve_inputs()
        self.pack.header_ok = len(self.pack.errors) == header_errors and bool(self.pack.id)
        rules = data.get("rules")
        if not isinstance(rules, list):
            return
        self.pack.rule_count = len(rules)
        seen: dict[str, int] = {}
        for i, node in enumerate(rules):
            rule = self.guarded_rule(node, ("rules", i))
            if rule is None:
                continue
            if rule.id in seen:
                line, _ = self.doc.position(("rules", seen[rule.id], "id"))
                self.error(
                    ("rules", i, "id"),
                    f"duplicate rule id {rule.id!r} (first at line {line}); "
                    "give each rule of a pack its own id",
                )
                continue
            seen[rule.id] = i
            self.pack.rules.append(rule)

    def resolve_inputs(self) -> None:
        values: dict[str, Any] = {}
        self.pack.given = frozenset(k for k in self.overrides if k in self.pack.inputs)
        for key in self.overrides if self.strict else ():
            if key not in self.pack.inputs:
                known = ", ".join(sorted(self.pack.inputs)) or "none"
                self.error(
                    ("pack", "inputs"), f"--set {key}: the pack has no such input (inputs: {known})"
                )
        for name, spec in self.pack.inputs.items():
            path: ConfigPath = ("pack", "inputs", name)
            kind = spec.get("type", "text")
            if name in self.overrides:
                raw: Any = self.overrides[name]
                try:
                    value = _convert(raw, kind)
                except ValueError as exc:
                    self.error(path, f"--set {name}={raw}: {exc}")
                    continue
            elif "default" in spec:
                value = spec["default"]
            else:
                self.error(path, f"input {name!r} has no default; give it with --set {name}=VALUE")
                continue
            choices = spec.get("choices")
            if isinstance(choices, list) and choices and value not in choices:
                # At the default when that is where the value came from.
                where = path if name in self.overrides else (*path, "default")
                self.error(where, f"input {name!r} must be one of {choices}, got {value!r}")
                continue
            if kind == "path" and isinstance(value, str):
                value = os.path.expanduser(value)
            values[name] = value
        self.pack.values = values

    def guarded_rule(self, node: Any, path: ConfigPath) -> Rule | None:
        """:meth:`rule`, with numbers out of range reported (see :mod:`nerve.ranges`)
        and anything unexpected reported at the rule (which is skipped) instead
        of ending the pack, the reload or the daemon."""
        before = len(self.error_paths)
        numbers = [((*path, *sub), message) for sub, message in number_problems(node)]
        rule: Rule | None = None
        try:
            rule = self.rule(node, path)
        except Exception as exc:
            log.debug("compiling %s of %s failed", format_path(path), self.pack.file, exc_info=True)
            if not numbers and len(self.error_paths) == before:
                self.error(path, f"this rule cannot be loaded: {_plain(exc)}")
        # A number no option gives a range of (a match value, an argument) is
        # reported unless an error about that value (or inside it) already is.
        reported = self.error_paths[before:]
        for where, message in numbers:
            if not any(r[: len(where)] == where for r in reported):
                self.error(where, message)
        return rule if len(self.error_paths) == before else None

    def rule(self, node: Any, path: ConfigPath) -> Rule | None:
        before = len(self.pack.errors)
        problems = validation.check(rule_schema(loose=True), node)
        for sub, message in problems:
            self.error((*path, *sub), message)
        if not isinstance(node, dict):
            return None
        rule_id = str(node.get("id", f"#{path[-1]}"))
        ctx = CompileContext(
            inputs=self.pack.values,
            names=Names(None, frozenset(self.pack.inputs)),
            rule_key=f"{self.pack.id}/{rule_id}",
            secrets=frozenset(n for n in self.pack.inputs if self.pack.is_secret(n)),
        )
        triggers = compile_triggers(node["when"], ctx, (*path, "when")) if "when" in node else []
        ctx.names = _names_for(triggers, frozenset(self.pack.inputs))
        conditions = compile_conditions(node["if"], ctx, (*path, "if")) if "if" in node else []
        for trigger in triggers:
            trigger.scope(conditions)
        actions = compile_actions(node["do"], ctx, (*path, "do")) if "do" in node else []
        for trigger in triggers:
            trigger.sees_actions(actions)
        for sub_path, message in ctx.errors:
            self.error(sub_path, message)
        mode = node.get("mode", "single")
        if "max" in node and mode in ("single", "restart"):
            self.error(
                (*path, "max"),
                f"'max' limits runs of mode queued or parallel, and this rule's mode is "
                f"{mode}; set 'mode: queued' or 'mode: parallel', or remove 'max'",
            )
        if len(self.pack.errors) > before:
            return None
        rates = {k: parse_duration(node[k]) if k in node else None for k in RATE_KEYS}
        line, _ = self.doc.position(path)
        return Rule(
            id=rule_id,
            pack=self.pack.id,
            name=str(node.get("name", rule_id)),
            triggers=triggers,
            conditions=conditions,
            actions=actions,
            mode=mode,
            max=int(node.get("max", DEFAULT_MAX)),
            debounce=rates["debounce"],
            throttle=rates["throttle"],
            cooldown=rates["cooldown"],
            enabled=bool(node.get("enabled", True)),
            description=str(node.get("description", "")),
            source=f"{self.pack.file}:{line}",
            inputs=self.pack.values,
        )


def _names_for(triggers: list[Any], inputs: frozenset[str]) -> Names:
    """Which ``{event.*}`` fields the rule's actions may use: those every trigger's event has."""
    fields: set[str] | None = None
    hints = []
    for trigger in triggers:
        own = trigger.event_fields()
        if own is None:
            return Names(None, inputs)
        fields = set(own) if fields is None else fields & own
        hints.append(trigger.event_hint())
    if fields is None:
        return Names(None, inputs)
    return Names(frozenset(fields), inputs, " and ".join(h for h in hints if h))


def _convert(raw: str, kind: str) -> Any:
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        problem = number_problem(number)
        if problem is not None:
            raise ValueError(problem)
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    return raw


def is_pack_file(name: str) -> bool:
    """A pack file name: ``*.yaml``/``*.yml``, not hidden.

    Hidden files (``.name.yaml``: editors' swap and backup files, our own
    temporary files, and anything meant to stay out of sight) and ``#name#``
    autosaves are never loaded from a folder: a pack the user cannot see in
    a file manager must not run, nor take the id of one they can see."""
    return name.endswith(PACK_SUFFIXES) and not name.startswith((".", "#"))


PACK_SUFFIXES = (".yaml", ".yml")


def folder_pack_files(folder: Path) -> list[Path]:
    """The pack files of a folder, sorted by name (hidden ones left out)."""
    return sorted(p for p in folder.iterdir() if is_pack_file(p.name))


def load_paths(paths: list[Path], overrides: Mapping[str, str] | None = None) -> list[Pack]:
    """Every pack in ``paths`` (files, or folders of ``*.yaml``/``*.yml``), sorted by name.

    In a folder, hidden files are left out (:func:`is_pack_file`)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(folder_pack_files(path))
        else:
            files.append(path)
    if len(files) == 1:
        return [load_pack(files[0], overrides=overrides)]
    packs = [load_pack(f, overrides=overrides, strict_overrides=False) for f in files]
    for key in overrides or {}:
        if not any(key in pack.inputs for pack in packs):
            raise UnknownInput(f"--set {key}: none of the packs has an input named {key!r}")
    return packs


class UnknownInput(ValueError):
    """A ``--set`` value that no pack being loaded declares."""


def duplicate_pack_errors(packs: list[Pack]) -> None:
    """Two usable packs with one id: the later one is reported and not run."""
    seen: dict[str, Pack] = {}
    for pack in packs:
        if not pack.usable:
            continue
        first = seen.get(pack.id)
        if first is not None:
            line, column = pack.id_position
            pack.errors.append(
                PackError(
                    pack.file,
                    line,
                    column,
                    "pack.id",
                    f"pack id {pack.id!r} is also used by {first.file}; packs need different ids",
                )
            )
            pack.header_ok = False
        else:
            seen[pack.id] = pack
