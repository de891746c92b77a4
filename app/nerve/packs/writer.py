"""Edit a pack file and write it back as the user wrote it, except what changed.

The GUI edits one rule at a time; people also edit the same files by hand.
:class:`PackDocument` reads a pack with ruamel.yaml's round-trip loader, so
comments, key order, quoting, flow or block style and blank lines survive a
save. A rule is handed out as plain Python data (what
:func:`nerve.packs.loader.load_pack` sees, YAML 1.1 semantics included) and
put back with :meth:`PackDocument.set_rule`, which *merges*: the nodes of
values that did not change are kept as they are, with their comments.

Decisions:

- **Plain data comes from our own loader** (:func:`~nerve.packs.yamlsource.load_yaml`
  on the current text), not from ruamel's YAML 1.2 reading, so that what the
  editor shows is what the engine will run (``on`` is true, ``20:00`` is text).
- **New values are written so that they read back the same**: a string that
  YAML 1.1 would read as something else (``yes``, ``0755``, ``1:30``) is quoted.
  After every change the document is read back and compared with what was
  asked; a difference is a :class:`PackWriteError`, never a silently wrong file.
- **Styles of new nodes**: a short mapping or list of scalars is written in
  flow style (``{title: Build, body: Done}``, ``[mon, fri]``), anything bigger,
  the rule itself and the items of block lists in block style; the
  indentation is the file's own (guessed from its text).
- **Nodes put back come back as they were**: a value that was replaced or
  removed is remembered, so that setting it again (undo, or
  :meth:`remove_rule` then :meth:`insert_rule`) restores its comments and
  styles, byte for byte.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import math
import re
from collections.abc import Mapping
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    FoldedScalarString,
    LiteralScalarString,
    ScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tokens import CommentToken

from nerve.packs.yamlsource import YamlError, load_yaml
from nerve.paths import atomic_write, read_user_file

__all__ = ["PackDocument", "PackWriteError"]

#: A new mapping or list is written in flow style when its JSON text is at most this long.
FLOW_LIMIT = 72

_SCALARS = (str, int, float, bool, type(None))


class PackWriteError(Exception):
    """A pack file that cannot be read or written as asked; the message names ``file:line``."""


class PackDocument:
    """One pack file held as round-trip YAML, edited a rule at a time."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self._newline = "\r\n" if "\r\n" in text else "\n"
        self._bom = text.startswith("\ufeff")
        text = text.removeprefix("\ufeff").replace("\r\n", "\n")
        # What ruamel.yaml does not keep: comments and directives before `---`, `...` and after.
        self._prefix, text, self._suffix = _split_markers(text)
        offset = self._prefix.count("\n")
        self._yaml = _make_yaml(text)
        try:
            data = self._yaml.load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = (mark.line + 1 if mark is not None else 1) + offset
            problem = exc.problem or exc.context or "unreadable YAML"
            raise PackWriteError(f"{path}:{line}: {problem}") from None
        except YAMLError as exc:
            raise PackWriteError(f"{path}:1: {exc}") from None
        if data is None:
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            raise PackWriteError(
                f"{path}:1: a pack is a mapping with 'nerve', 'pack' and 'rules'; "
                "this file holds something else"
            )
        _keep_anchors(data)
        self._data: CommentedMap = data
        self._plain_cache: dict[str, Any] | None = None
        # JSON text of a value -> a node once written for it (see the module's decisions).
        self._memory: dict[str, Any] = {}
        # JSON text of a rule -> the comments its list entry carried in the rules list.
        self._rule_comments: dict[str, tuple[Any, str | None]] = {}
        # ids of nodes reached more than once (through aliases), while merging.
        self._shared: set[int] = set()

    # -- reading -----------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> PackDocument:
        """Read ``path``; :class:`PackWriteError` names the file and line of a YAML problem."""
        try:
            raw = read_user_file(path, max_bytes=1 << 30)
        except OSError as exc:
            raise PackWriteError(f"{path}:1: cannot read the file: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise PackWriteError(f"{path}:{line}: the file is not UTF-8 text") from None
        return cls(path, text)

    @classmethod
    def new(cls, path: Path, pack_id: str, name: str) -> PackDocument:
        """An empty pack (``nerve: 1``, its ``pack`` header and no rules), not yet saved."""
        doc = cls(path, "nerve: 1\n")
        doc._data["pack"] = _new_node({"id": pack_id, "name": name}, block=True)
        doc._data["rules"] = CommentedSeq()
        doc._data["rules"].fa.set_block_style()
        doc._changed()
        return doc

    def _plain(self) -> dict[str, Any]:
        if self._plain_cache is None:
            text = self._dump_text()
            try:
                data = load_yaml(text, filename=str(self.path), max_bytes=1 << 30).data
            except YamlError:
                data = _to_plain(self._data)
            self._plain_cache = data if isinstance(data, dict) else {}
        return self._plain_cache

    def _rules_plain(self) -> list[Any]:
        rules = self._plain().get("rules")
        return rules if isinstance(rules, list) else []

    def rule_ids(self) -> list[str]:
        """The ids of the pack's rules, in file order (entries without an id are left out)."""
        return [str(r["id"]) for r in self._rules_plain() if isinstance(r, dict) and "id" in r]

    def _index(self, rule_id: str) -> int | None:
        for i, rule in enumerate(self._rules_plain()):
            if isinstance(rule, dict) and "id" in rule and str(rule["id"]) == rule_id:
                return i
        return None

    def rule(self, rule_id: str) -> dict[str, Any]:
        """The rule ``rule_id`` as plain data (a copy); ``KeyError`` when there is none."""
        index = self._index(rule_id)
        if index is None:
            raise KeyError(rule_id)
        data = self._rules_plain()[index]
        assert isinstance(data, dict)
        return copy.deepcopy(data)

    def header(self) -> dict[str, Any]:
        """The ``pack:`` mapping as plain data (empty when the file has none)."""
        header = self._plain().get("pack")
        return copy.deepcopy(header) if isinstance(header, dict) else {}

    def index_of(self, rule_id: str) -> int | None:
        """The position of rule ``rule_id`` in the ``rules`` list, or None."""
        return self._index(rule_id)

    def rule_count(self) -> int:
        """How many entries the ``rules`` list has (rules without an id included)."""
        return len(self._rules_plain())

    def rule_at(self, index: int) -> Any:
        """The entry at ``index`` of the ``rules`` list as plain data (a copy)."""
        return copy.deepcopy(self._rules_plain()[index])

    def rule_text(self, rule_id: str) -> str:
        """The YAML of one rule on its own (a mapping at column 0), comments included."""
        index = self._index(rule_id)
        if index is None:
            raise KeyError(rule_id)
        return self.rule_text_at(index)

    def rule_has_anchors(self, index: int) -> bool:
        """Whether the rule at ``index`` holds an ``&anchor`` or an ``*alias``
        (its text on its own, :meth:`rule_text_at`, shows copies instead)."""
        stack: list[Any] = [self._rules()[index]]
        while stack:
            node = stack.pop()
            anchor = getattr(node, "anchor", None)
            if anchor is not None and getattr(anchor, "value", None):
                return True
            if isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        return False

    def rule_text_at(self, index: int) -> str:
        """The YAML of the rule at ``index`` on its own (see :meth:`rule_text`)."""
        node = copy.deepcopy(self._rules()[index])
        _take_tail(node)
        out = io.StringIO()
        self._yaml.dump(node, out)
        return out.getvalue()

    # -- editing -----------------------------------------------------------------

    def _rules(self) -> CommentedSeq:
        rules = self._data.get("rules")
        if not isinstance(rules, CommentedSeq):
            rules = CommentedSeq()
            rules.fa.set_block_style()
            self._data["rules"] = rules
        if len(rules) == 0 and rules.fa.flow_style():
            rules.fa.set_block_style()
        return rules

    def set_rule(self, rule_id: str, data: Mapping[str, Any]) -> None:
        """Replace rule ``rule_id`` by ``data`` where it is, keeping what did not change.

        Keys whose value is unchanged keep their node and comments; changed
        keys are replaced in place, new keys go at the end, removed keys go.
        An unknown ``rule_id`` appends the rule; ``data['id']`` may rename it.
        """
        index = self._index(rule_id)
        if index is None:
            self.insert_rule(len(self._rules_plain()), data)
            return
        self.set_rule_at(index, data)

    def set_rule_at(self, index: int, data: Mapping[str, Any]) -> None:
        """:meth:`set_rule` for the rule at ``index`` (whatever its id)."""
        new = _plain_copy(data)
        rules = self._rules()
        old_plain = self._rules_plain()[index]
        if _same(old_plain, new):
            return
        before_plain = self._rules_plain()
        self._shared = _shared_nodes(self._data)
        tail = _take_tail(rules[index])
        merged = self._merge(rules[index], old_plain, new, block=True)
        if merged is not rules[index]:
            rules[index] = merged
        _give_tail(merged, tail)
        self._shared = set()
        self._changed()
        self._check_rule(index, new, before_plain)

    def set_rule_text(self, rule_id: str, text: str) -> None:
        """Replace rule ``rule_id`` by the YAML mapping ``text`` (as written, comments included).

        An unknown ``rule_id`` appends the rule. Raises :class:`PackWriteError`
        when ``text`` is not a YAML mapping."""
        index = self._index(rule_id)
        self.set_rule_text_at(len(self._rules()) if index is None else index, text)

    def set_rule_text_at(self, index: int, text: str) -> None:
        """:meth:`set_rule_text` for the rule at ``index``; ``index`` = the count appends."""
        node = self._parse_fragment(text)
        rules = self._rules()
        if index >= len(rules):
            if rules:
                end = _take_tail(rules[-1])
                _give_tail(rules[-1], _rule_separator(rules))
                _give_tail(node, end)
            rules.append(node)
        else:
            _give_tail(node, _take_tail(rules[index]))
            rules[index] = node
        self._changed()

    def _parse_fragment(self, text: str) -> CommentedMap:
        try:
            node = _make_yaml(text).load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise PackWriteError(f"{self.path}:{line}: {exc.problem or exc.context}") from None
        except YAMLError as exc:
            raise PackWriteError(f"{self.path}:1: {exc}") from None
        if not isinstance(node, CommentedMap):
            raise PackWriteError(f"{self.path}:1: a rule is a mapping (id, when, do...)")
        node.fa.set_block_style()
        return node

    def insert_rule(self, index: int, data: Mapping[str, Any]) -> None:
        """Insert the rule ``data`` before position ``index`` (clamped to the list)."""
        new = _plain_copy(data)
        rules = self._rules()
        index = max(0, min(index, len(rules)))
        key = _key(new)
        remembered = self._memory.pop(key, None)
        node = remembered if remembered is not None else _new_node(new, block=True)
        comment, separator = self._rule_comments.pop(key, (None, None))
        if index == len(rules) and rules:
            # The new last rule takes the end of the file; the one before it is separated
            # from it as the file's rules are.
            end = _take_tail(rules[-1])
            _give_tail(rules[-1], _rule_separator(rules) if separator is None else separator)
            _give_tail(node, end)
        _insert_with_comments(rules, index, node, comment)
        self._changed()
        self._check_rule(index, new)

    def remove_rule(self, rule_id: str) -> tuple[int, dict[str, Any]]:
        """Remove rule ``rule_id``: its former index and data (for an undo to insert it back)."""
        index = self._index(rule_id)
        if index is None:
            raise KeyError(rule_id)
        data = copy.deepcopy(self._rules_plain()[index])
        rules = self._rules()
        key = _key(data)
        self._memory[key] = rules[index]
        self._rule_comments[key] = _pop_with_comments(rules, index)
        self._changed()
        return index, data

    def dumps(self) -> str:
        """The document's text as it would be saved."""
        text = self._prefix + self._dump_text() + self._suffix
        if self._newline != "\n":
            text = text.replace("\n", self._newline)
        return ("\ufeff" if self._bom else "") + text

    def save(self) -> None:
        """Write the file atomically, keeping the previous version as ``<file>~``."""
        try:
            atomic_write(self.path, self.dumps().encode("utf-8"), backup=True)
        except OSError as exc:
            raise PackWriteError(
                f"{self.path}:1: cannot write the file: {exc.strerror or exc}"
            ) from None

    # -- internals ---------------------------------------------------------------

    def _dump_text(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self._data, out)
        return out.getvalue()

    def _changed(self) -> None:
        self._plain_cache = None

    def _check_rule(
        self, index: int, expected: dict[str, Any], before: list[Any] | None = None
    ) -> None:
        rules = self._rules_plain()
        got = rules[index] if index < len(rules) else None
        if before is not None:
            others = [i for i in range(len(before)) if i != index]
            changed = [i for i in others if i >= len(rules) or not _same(rules[i], before[i])]
            if changed:
                raise PackWriteError(
                    f"{self.path}: changing rules[{index}] would also change rules{changed} "
                    "(they share YAML anchors); edit the file by hand"
                )
        if not _same(got, expected):
            line = self._rules()[index].lc.line + 1 if index < len(self._rules()) else 1
            raise PackWriteError(
                f"{self.path}:{line}: rules[{index}] would not read back as written "
                f"(wrote {json.dumps(expected, default=str)}, reads "
                f"{json.dumps(got, default=str)})"
            )

    def _remember(self, plain: Any, node: Any) -> None:
        if isinstance(node, (CommentedBase, ScalarString)):
            self._memory[_key(plain)] = node

    def _build(self, value: Any, *, block: bool = False) -> Any:
        remembered = self._memory.get(_key(value))
        if remembered is not None:
            return copy.deepcopy(remembered)
        return _new_node(value, block=block)

    def _merge(self, node: Any, old: Any, new: Any, *, block: bool = False) -> Any:
        """``new`` written over ``node`` (whose plain value is ``old``), reusing what it can."""
        if _same(old, new):
            return node
        if id(node) in self._shared:
            # An anchored node other places refer to (*alias): this place gets its own copy.
            return self._build(new, block=block)
        if isinstance(node, CommentedMap) and isinstance(old, dict) and isinstance(new, dict):
            if _has_merge_keys(node):
                self._remember(old, node)
                return self._build(new, block=block)
            for k in [k for k in node if k not in new]:
                self._remember(old.get(k), node[k])
                del node[k]
            for k, value in new.items():
                if k in node and k in old:
                    merged = self._merge(node[k], old[k], value)
                    if merged is not node[k]:
                        node[k] = merged
                else:
                    node[k] = self._build(value)
            return node
        if isinstance(node, CommentedSeq) and isinstance(old, list) and isinstance(new, list):
            self._merge_list(node, old, new)
            return node
        self._remember(old, node)
        if isinstance(new, str) and isinstance(node, ScalarString):
            remembered = self._memory.get(_key(new))
            if remembered is not None:
                return copy.deepcopy(remembered)
            return _styled_like(node, new)
        return self._build(new, block=block)

    def _merge_list(self, node: CommentedSeq, old: list[Any], new: list[Any]) -> None:
        if len(old) != len(node):
            # Should not happen (aliases are copies in plain data); start the list afresh.
            fresh = [self._build(v, block=not node.fa.flow_style()) for v in new]
            node.clear()
            node.extend(fresh)
            node.ca.items.clear()
            return
        block = not node.fa.flow_style()
        matcher = SequenceMatcher(
            a=[_key(v) for v in old], b=[_key(v) for v in new], autojunk=False
        )
        items: list[Any] = []
        comments: dict[int, Any] = {}
        for op, a0, a1, b0, b1 in matcher.get_opcodes():
            pairs = min(a1 - a0, b1 - b0) if op == "replace" else (a1 - a0 if op == "equal" else 0)
            for i in range(pairs):
                position = len(items)
                if op == "equal":
                    items.append(node[a0 + i])
                else:
                    items.append(self._merge(node[a0 + i], old[a0 + i], new[b0 + i], block=block))
                if a0 + i in node.ca.items:
                    comments[position] = node.ca.items[a0 + i]
            for j in range(b0 + pairs, b1):
                items.append(self._build(new[j], block=block))
            for i in range(a0 + pairs, a1):
                self._remember(old[i], node[i])
        node.clear()
        node.extend(items)
        node.ca.items.clear()
        node.ca.items.update(comments)


# -- YAML setup and node building ---------------------------------------------------


def _make_yaml(text: str) -> YAML:
    mapping, sequence, offset = _guess_indent(text)
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.brace_single_entry_mapping_in_flow_sequence = True
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


_START = re.compile(r"(?:[ \t]*(?:[#%][^\n]*)?\n)*---[ \t]*(?:#[^\n]*)?(?:\n|\Z)")
_END = re.compile(r"^\.\.\.[ \t]*(?:#.*)?$", re.MULTILINE)


def _split_markers(text: str) -> tuple[str, str, str]:
    """(what comes up to ``---``, the document, ``...`` and what follows), kept verbatim."""
    start = _START.match(text)
    prefix = start.group(0) if start else ""
    body = text[len(prefix) :]
    end = _END.search(body)
    if end is None:
        return prefix, body, ""
    return prefix, body[: end.start()], body[end.start() :]


def _shared_nodes(root: Any) -> set[int]:
    """The ids of collections reached more than once from ``root`` (anchored and aliased)."""
    seen: set[int] = set()
    shared: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, (Mapping, list)):
            continue
        if id(node) in seen:
            shared.add(id(node))
            continue
        seen.add(id(node))
        stack.extend(node.values() if isinstance(node, Mapping) else node)
    return shared


def _keep_anchors(root: Any) -> None:
    """Anchors nothing refers to are written back too (ruamel.yaml drops them otherwise)."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        anchor = getattr(node, "anchor", None)
        name = getattr(anchor, "value", None)
        if name and hasattr(node, "yaml_set_anchor"):
            node.yaml_set_anchor(name, always_dump=True)
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


_KEY_LINE = re.compile(r"^( *)(?:[^\s#-]|-[^\s])[^#]*:\s*(?:#.*)?\Z")
_ITEM_LINE = re.compile(r"^( *)(- +)")


def _guess_indent(text: str) -> tuple[int, int, int]:
    """The file's indentation as ruamel's ``indent()`` takes it: (mapping, sequence, offset)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    for here, nxt in itertools.pairwise(lines):
        key = _KEY_LINE.match(here)
        if key is None:
            continue
        base = len(key.group(1))
        item = _ITEM_LINE.match(nxt)
        if item is not None:
            dash = len(item.group(1)) - base
            if sequence is None and dash >= 0:
                sequence = (dash + len(item.group(2)), dash)
        else:
            step = len(nxt) - len(nxt.lstrip(" ")) - base
            if mapping is None and step > 0:
                mapping = step
        if mapping is not None and sequence is not None:
            break
    mapping = mapping or 2
    seq, offset = sequence or (mapping + 2, mapping)
    return mapping, max(seq, offset + 2), offset


def _key(value: Any) -> str:
    """A text that equal plain values (types included: ``1`` is not ``true``) share."""
    return json.dumps(_tagged(value), sort_keys=False, ensure_ascii=False)


def _tagged(value: Any) -> Any:
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, dict):
        return {"m": [[str(k), _tagged(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return {"l": [_tagged(v) for v in value]}
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal as the engine sees it, types included (``1 != True``), key order ignored."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b)


def _plain_copy(data: Any) -> Any:
    """``data`` as JSON-like plain values (str keys), checking it holds nothing else."""
    if isinstance(data, Mapping):
        return {str(k): _plain_copy(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain_copy(v) for v in data]
    if isinstance(data, bool) or data is None:
        return data
    if isinstance(data, int):
        return int(data)
    if isinstance(data, float):
        return float(data)
    if isinstance(data, str):
        return str(data)
    raise PackWriteError(f"cannot write a {type(data).__name__} into a pack: {data!r}")


def _to_plain(node: Any) -> Any:
    """ruamel.yaml's values as plain data (only when our own loader cannot read the text)."""
    if isinstance(node, Mapping):
        return {str(k): _to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return str(node)


_RESOLVER = pyyaml.resolver.Resolver()


def _needs_quotes(text: str) -> bool:
    """True when ``text`` is better quoted: YAML 1.1 (what our loader reads) would not
    read it plain as text, or it holds placeholders (``{event.path}``), which read
    more clearly quoted and must be quoted in flow style anyway."""
    if "{" in text or "}" in text or text != text.strip():
        return True
    tag = _RESOLVER.resolve(pyyaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return bool(tag != "tag:yaml.org,2002:str")


def _new_string(text: str) -> Any:
    if "\n" in text and _literal_ok(text):
        return LiteralScalarString(text)
    if _needs_quotes(text):
        return DoubleQuotedScalarString(text)
    return text


def _literal_ok(text: str) -> bool:
    lines = text.split("\n")
    return all(line == line.rstrip() for line in lines) and not any(
        ord(c) < 32 and c not in "\n\t" for c in text
    )


def _styled_like(node: ScalarString, text: str) -> Any:
    """``text`` in the quoting style of ``node`` (the value it replaces), where that style fits."""
    if isinstance(node, DoubleQuotedScalarString):
        return DoubleQuotedScalarString(text)
    if isinstance(node, SingleQuotedScalarString) and "\n" not in text:
        return SingleQuotedScalarString(text)
    block_style = isinstance(node, (LiteralScalarString, FoldedScalarString))
    if block_style and "\n" in text and _literal_ok(text):
        return LiteralScalarString(text)
    return _new_string(text)


def _flowable(value: Any) -> bool:
    def simple(v: Any, depth: int) -> bool:
        if isinstance(v, str):
            return "\n" not in v
        if isinstance(v, _SCALARS):
            return True
        if depth > 2:
            return False
        if isinstance(v, dict):
            return all(simple(x, depth + 1) for x in v.values())
        if isinstance(v, list):
            # Lists of mappings (actions, conditions, triggers) read better one per line.
            return all(simple(x, depth + 1) and not isinstance(x, dict) for x in v)
        return False

    return simple(value, 0) and len(json.dumps(value, ensure_ascii=False)) <= FLOW_LIMIT


def _new_node(value: Any, *, block: bool = False, flow: bool = False) -> Any:
    """A fresh ruamel node for the plain ``value``.

    ``block`` forces block style for this collection (a rule, an item of a
    block list); ``flow`` is set inside a flow collection, where everything
    must be flow."""
    if isinstance(value, dict):
        node = CommentedMap()
        as_flow = flow or (not block and _flowable(value))
        for k, v in value.items():
            node[k] = _new_node(v, block=False, flow=as_flow)
        if as_flow:
            node.fa.set_flow_style()
        else:
            node.fa.set_block_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq()
        as_flow = flow or (not block and _flowable(value))
        for v in value:
            # The items of a block list are themselves block mappings: `- notify: {...}`.
            seq.append(_new_node(v, block=not as_flow and isinstance(v, dict), flow=as_flow))
        if as_flow:
            seq.fa.set_flow_style()
        else:
            seq.fa.set_block_style()
        return seq
    if isinstance(value, str):
        if flow and "\n" in value:
            return DoubleQuotedScalarString(value)
        return _new_string(value)
    return value


def _has_merge_keys(node: CommentedMap) -> bool:
    return bool(getattr(node, "merge", None))


def _insert_with_comments(seq: CommentedSeq, index: int, node: Any, comment: Any) -> None:
    shifted = {(i + 1 if i >= index else i): c for i, c in seq.ca.items.items()}
    seq.insert(index, node)
    seq.ca.items.clear()
    seq.ca.items.update(shifted)
    if comment is not None:
        seq.ca.items[index] = comment


def _pop_with_comments(seq: CommentedSeq, index: int) -> tuple[Any, str | None]:
    """Remove ``seq[index]``: its comment entry in ``seq`` and, when it was the last
    entry, the separation the entry before it had (both for putting it back)."""
    comment = seq.ca.items.get(index)
    removed = seq[index]
    rest = {(i - 1 if i > index else i): c for i, c in seq.ca.items.items() if i != index}
    del seq[index]
    seq.ca.items.clear()
    seq.ca.items.update(rest)
    separator = None
    if index == len(seq) and index > 0:
        separator = _take_tail(seq[index - 1])
        _give_tail(seq[index - 1], _take_tail(removed))
    return comment, separator


def _rule_separator(rules: CommentedSeq) -> str:
    """What follows a rule that is not the last (blank lines), as the file's first rule has it."""
    if len(rules) < 2:
        return ""
    tail = _take_tail(copy.deepcopy(rules[0]))
    return tail if not tail.strip() else ""


def _tail_chain(node: Any) -> tuple[list[Any], tuple[Any, Any] | None]:
    """The block collections along ``node``'s last line, outermost first, and its last entry.

    The entry is ``(collection, key or index)``: ruamel.yaml keeps the comment
    at the end of that entry's line (and the lines after it) in
    ``collection.ca.items``."""
    chain: list[Any] = []
    while isinstance(node, (CommentedMap, CommentedSeq)) and len(node) and not node.fa.flow_style():
        chain.append(node)
        last: Any = next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1
        child = node[last]
        if (
            isinstance(child, (CommentedMap, CommentedSeq))
            and len(child)
            and not child.fa.flow_style()
        ):
            node = child
            continue
        return chain, (node, last)
    return chain, None


def _eol(container: Any) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _take_tail(node: Any) -> str:
    """Remove and return the blank lines and comment lines that follow the last line of ``node``.

    ruamel.yaml attaches what follows a node (a blank line, the next
    section's comment) to the deepest last entry before it, or to the end of
    a list; when that entry changes or goes, the separation must stay at the
    end."""
    chain, slot = _tail_chain(node)
    pieces: list[str] = []
    if slot is not None:
        container, key = slot
        entry = container.ca.items.get(key)
        at = _eol(container)
        token = entry[at] if entry and len(entry) > at else None
        if token is not None and "\n" in token.value:
            head, tail = token.value.split("\n", 1)
            if tail:
                pieces.append(tail)
                if head.strip():
                    token.value = head + "\n"
                else:
                    entry[at] = None
    for collection in reversed(chain):
        end = getattr(collection.ca, "end", None)
        if end:
            pieces.extend(str(t.value) for t in end if t is not None)
            collection.ca.end = []
    return "".join(pieces)


def _give_tail(node: Any, tail: str) -> None:
    """Put ``tail`` (from :func:`_take_tail`) after the last line of ``node``."""
    if not tail:
        return
    _chain, slot = _tail_chain(node)
    if slot is None:
        return
    container, key = slot
    at = _eol(container)
    entry = container.ca.items.get(key)
    token = entry[at] if entry and len(entry) > at else None
    if token is not None:
        if not token.value.endswith("\n"):
            token.value += "\n"
        token.value += tail
        return
    token = CommentToken("\n" + tail, CommentMark(0), None)
    if entry is None:
        entry = [None, None, None, None]
        container.ca.items[key] = entry
    while len(entry) <= at:
        entry.append(None)
    entry[at] = token
