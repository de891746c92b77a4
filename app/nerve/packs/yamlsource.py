"""Read a rule pack's YAML into plain data plus the position of every node.

:func:`load_yaml` returns a :class:`Located`: the document as JSON-like Python
values (dicts in file order, lists, str, int, float, bool, None) and a map from
each node's path, e.g. ``("rules", 0, "do", 0, "file.move")``, to its 1-based
``(line, column)``, so that validation can report
``screens.yaml:14:9: rules[0].do[0].file.move: missing 'dest'``.
Every problem is a :class:`YamlError` carrying file, line, column and message.

How it works: the file is parsed into YAML *events* (libyaml when available,
else PyYAML's pure-Python parser; both are iterative, so no input can exhaust
the Python stack; when libyaml's own 1000-level nesting limit fires first,
the text is parsed again in Python to report ours). The events are composed
into a node graph here, not by PyYAML's recursive composer, checking every
limit as each event arrives: depth, node count and alias expansion all fail
before anything large is built. Python values are then built from the graph with an explicit stack.
Nothing is ever constructed through a tag, so no YAML input can make an
object of an arbitrary type.

Decisions:

- **Files**: regular files only; a named pipe, a device or a folder (or a
  symlink to one) is refused before it is opened, and nothing is ever waited
  for (:func:`nerve.paths.read_user_file`).
- **Limits**: the file size (``max_bytes``, checked with ``os.stat`` before a
  file is opened, and again while reading), nodes written in the file
  (``max_nodes``), nodes added by aliases, each alias counting the full
  expanded size of what it refers to (``max_alias_expansion``), and nesting
  (``max_depth`` levels of lists/mappings, aliases counted as expanded).
- **Encoding**: UTF-8 only; a UTF-8 byte order mark is skipped. Control
  characters that YAML forbids are reported with their position.
- **One document** per file; an empty file (or only comments, or only
  ``---``) is an error.
- **Tags**: none. Types come from implicit resolution only (YAML 1.1 core:
  str, int, float, bool, null, plus lists and mappings). The one exception is
  ``!!str``, on a scalar: it can only turn a value into text, which is
  harmless and is the usual way to write ``version: !!str 1.10``. Every other
  tag, standard or not (``!!python/...``, ``!!binary``, ``!!set``, ``!!int``,
  ``!local``, the non-specific ``!``), is an error at the tagged node.
- **Keys** must be text. A key that YAML 1.1 reads as a boolean (``on``,
  ``yes``, ``no``, ``off``, ``true``...) gets its own message telling the
  author to quote it; number, null, list and mapping keys are errors too
  (a date key such as ``2024-01-01:`` is kept as its text, like date values).
  Duplicate keys are errors at the second one (PyYAML silently keeps the
  last). Duplicate anchors are errors, as in PyYAML.
- **Merge keys** (``<<: *base`` or ``<<: [*a, *b]``) are supported with the
  usual semantics: keys written in the mapping win over merged ones, and an
  earlier merge source wins over a later one. Merged entries keep the
  positions of where they are written (in the anchored mapping), and so do
  all nodes reached through an alias; the alias itself is positioned where
  the ``*name`` appears. Aliases are expanded into independent copies, so
  mutating one part of ``data`` never changes another.
- **Non-JSON scalars stay text**: YAML 1.1 timestamps (``2024-01-01``),
  sexagesimal numbers (``20:00``, which YAML 1.1 reads as 1200), ``.inf`` /
  ``.nan`` and floats that overflow are returned as the text written, so
  that ``data`` is always JSON-compatible. ``yes``/``no``/``on``/``off`` as
  *values* stay booleans, and ``0755`` stays octal, as YAML 1.1 says.
- Errors that are not about the YAML (the file is missing or unreadable) are
  also :class:`YamlError`, at line 1, column 1.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeAlias

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from nerve.paths import FileTooLarge, NotRegularFile, read_user_file

__all__ = ["Located", "Path_", "YamlError", "format_path", "load_yaml"]

Path_: TypeAlias = tuple[str | int, ...]
"""Where a node is in the document: mapping keys and list indexes, outermost first."""

_Pos: TypeAlias = tuple[int, int]

DEFAULT_MAX_DEPTH: Final = 100

_BOM: Final = b"\xef\xbb\xbf"
_YAML_PREFIX: Final = "tag:yaml.org,2002:"
_STR: Final = _YAML_PREFIX + "str"
_INT: Final = _YAML_PREFIX + "int"
_FLOAT: Final = _YAML_PREFIX + "float"
_BOOL: Final = _YAML_PREFIX + "bool"
_NULL: Final = _YAML_PREFIX + "null"
_TIMESTAMP: Final = _YAML_PREFIX + "timestamp"
_MERGE: Final = _YAML_PREFIX + "merge"
_VALUE: Final = _YAML_PREFIX + "value"
_TEXT_KEY_TAGS: Final = frozenset({_STR, _TIMESTAMP, _VALUE})

# Characters YAML does not allow in a stream (the same set PyYAML and libyaml reject).
_NON_PRINTABLE: Final = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
# Line breaks as YAML counts them.
_LINE_BREAK: Final = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_PLAIN_PATH_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")

# PyYAML's token names, as they appear in its syntax error messages.
_TOKEN_WORDS: Final = {
    "<stream end>": "the end of the file",
    "<stream start>": "the start of the file",
    "<document start>": "'---'",
    "<document end>": "'...'",
    "<block mapping start>": "a mapping",
    "<block sequence start>": "a list",
    "<block end>": "the end of the block",
    "<block entry>": "'-'",
    "<flow sequence start>": "'['",
    "<flow sequence end>": "']'",
    "<flow mapping start>": "'{'",
    "<flow mapping end>": "'}'",
    "<flow entry>": "','",
    "<key>": "'?'",
    "<value>": "':'",
    "<scalar>": "a value",
    "<alias>": "an alias",
    "<anchor>": "an anchor",
    "<tag>": "a tag",
    "<directive>": "a directive",
}


class YamlError(Exception):
    """A problem with a YAML file, at a 1-based line and column.

    ``str()`` gives ``file:line:column: message``.
    """

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        super().__init__(file, line, column, message)
        self.file = file
        self.line = line
        self.column = column
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


def format_path(path: Path_) -> str:
    """Write a path the way error messages show it: ``rules[0].do[0].file.move``.

    Keys that are not simple names are quoted: ``inputs["my input"]``.
    The empty path (the whole document) gives ``""``.
    """
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _PLAIN_PATH_KEY.fullmatch(part):
            parts.append(f".{part}" if parts else part)
        else:
            parts.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(parts)


@dataclass(frozen=True)
class Located:
    """A loaded document and where each of its nodes is written.

    ``marks`` holds a 1-based ``(line, column)`` for every path in ``data``;
    ``()`` is the whole document. For a mapping entry it is the position of the
    entry's *key*; for a list item, the item's own position. ``keys`` holds the
    same key positions for mapping entries only, and ``values`` the position
    of the value node of every path (for a list item or the root, the same as
    ``marks``).
    """

    data: Any
    marks: Mapping[Path_, tuple[int, int]]
    keys: Mapping[Path_, tuple[int, int]] = field(default_factory=dict)
    values: Mapping[Path_, tuple[int, int]] = field(default_factory=dict)
    file: str = "<string>"

    def position(self, path: Path_) -> tuple[int, int]:
        """Position of ``path``, or of its deepest prefix that exists.

        An error about a missing key therefore points at the mapping that
        lacks it (at that mapping's own key).
        """
        return _deepest(self.marks, path)

    def value_position(self, path: Path_) -> tuple[int, int]:
        """Like :meth:`position`, but for a mapping entry the position of its value."""
        return _deepest(self.values, path)

    def error(self, path: Path_, message: str, *, at_value: bool = False) -> YamlError:
        """A :class:`YamlError` at ``path``: ``file:line:col: rules[0].id: message``."""
        line, column = self.value_position(path) if at_value else self.position(path)
        where = format_path(path)
        return YamlError(self.file, line, column, f"{where}: {message}" if where else message)


def _deepest(marks: Mapping[Path_, tuple[int, int]], path: Path_) -> tuple[int, int]:
    for end in range(len(path), -1, -1):
        found = marks.get(path[:end])
        if found is not None:
            return found
    return (1, 1)


class _EventParser(Protocol):
    def check_event(self, *choices: type[yaml.Event]) -> bool: ...

    def get_event(self) -> Any: ...

    def dispose(self) -> None: ...


# libyaml when PyYAML was built with it, else the pure-Python parser. Only the
# parser part of these loaders is used; tests swap in yaml.SafeLoader.
_make_parser: Callable[[str], _EventParser] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(
    source: bytes | str | os.PathLike[str],
    *,
    filename: str | None = None,
    max_bytes: int = 1 << 20,
    max_nodes: int = 100_000,
    max_alias_expansion: int = 10_000,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Located:
    """Load one YAML document safely, with the position of every node.

    ``source`` is a path (read here), or the file's content as ``bytes`` or
    ``str``. ``filename`` is the name errors show; it defaults to the path,
    or ``<string>``. Raises :class:`YamlError` for every problem, with the
    best line and column known.
    """
    if isinstance(source, os.PathLike):
        name = filename if filename is not None else os.fspath(source)
        text = _decode(_read_file(source, name, max_bytes), name)
    elif isinstance(source, bytes):
        name = filename if filename is not None else "<string>"
        if len(source) > max_bytes:
            raise _too_big(name, len(source), max_bytes)
        text = _decode(source, name)
    else:
        name = filename if filename is not None else "<string>"
        text = source.removeprefix("\ufeff")
        if len(text) > max_bytes:
            raise _too_big(name, len(text), max_bytes)
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise _too_big(name, size, max_bytes)
    _check_characters(text, name)
    composer = _Composer(
        name,
        text,
        max_nodes=max_nodes,
        max_alias_expansion=max_alias_expansion,
        max_depth=max_depth,
        make_parser=_make_parser,
    )
    root, root_pos = composer.run()
    data, marks, keys, values = _build(root, root_pos)
    return Located(
        data=data,
        marks=MappingProxyType(marks),
        keys=MappingProxyType(keys),
        values=MappingProxyType(values),
        file=name,
    )


# --- reading and decoding -------------------------------------------------------------


def _human_size(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):.1f} KB"
    return f"{size} bytes"


def _too_big(name: str, size: int, limit: int) -> YamlError:
    return YamlError(
        name,
        1,
        1,
        f"file is {_human_size(size)}; rule packs are limited to {_human_size(limit)}",
    )


def _read_file(path: os.PathLike[str], name: str, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes``, refusing larger ones before
    reading them, and anything else (a named pipe, a device, a folder) before
    opening it: see :func:`nerve.paths.read_user_file`."""
    try:
        return read_user_file(path, max_bytes=max_bytes)
    except FileTooLarge as exc:
        if exc.grew:
            limit = _human_size(max_bytes)
            message = f"file is over {limit}; rule packs are limited to {limit}"
            raise YamlError(name, 1, 1, message) from exc
        raise _too_big(name, exc.size, max_bytes) from exc
    except NotRegularFile as exc:
        message = f"cannot read the file: it is {exc.kind}, and Nerve reads regular files only"
        raise YamlError(name, 1, 1, message) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise YamlError(name, 1, 1, f"cannot read the file: {reason}") from exc


def _line_col(text: str, index: int) -> _Pos:
    """1-based line and column of ``text[index]``, counting breaks as YAML does."""
    line = 1
    line_start = 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line += 1
        line_start = match.end()
    return line, index - line_start + 1


def _decode(raw: bytes, name: str) -> str:
    body = raw.removeprefix(_BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = body[: exc.start].decode("utf-8")
        line, column = _line_col(prefix, len(prefix))
        message = f"invalid UTF-8 byte 0x{body[exc.start]:02x}"
        if exc.start == 0 and body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            message += " (the file looks like UTF-16; save it as UTF-8)"
        else:
            message += " (rule packs must be saved as UTF-8)"
        raise YamlError(name, line, column, message) from None


def _check_characters(text: str, name: str) -> None:
    bad = _NON_PRINTABLE.search(text)
    if bad is None:
        return
    line, column = _line_col(text, bad.start())
    code = ord(bad.group())
    message = f"control character U+{code:04X} is not allowed"
    if 0xD800 <= code <= 0xDFFF:
        message = f"character U+{code:04X} (a lone surrogate) is not allowed"
    elif code == 0:
        message += " (is the file saved as UTF-16? rule packs must be UTF-8)"
    else:
        message += '; write it as an escape in a double-quoted string ("\\t", "\\u0007")'
    raise YamlError(name, line, column, message)


# --- composing events into a checked node graph ---------------------------------------

_SCALAR: Final = 0
_SEQ: Final = 1
_MAP: Final = 2
_KIND_WORDS: Final = {_SCALAR: "a value", _SEQ: "a list", _MAP: "a mapping"}


class _Node:
    """A composed node. Aliases are not nodes: they refer to the anchored node."""

    __slots__ = (
        "complete",
        "entries",
        "height",
        "items",
        "kind",
        "pos",
        "size",
        "tag",
        "text",
        "value",
    )

    def __init__(self, kind: int, pos: _Pos) -> None:
        self.kind = kind
        self.pos = pos
        self.tag = ""
        self.text = ""
        self.value: object = None
        # Sequence items and mapping entries, each with where it is written.
        self.items: list[tuple[_Node, _Pos]] = []
        self.entries: dict[str, tuple[_Pos, _Node, _Pos]] = {}
        self.size = 1  # nodes it stands for, aliases inside it expanded (capped)
        self.height = 0  # 0 for scalars, 1 + the tallest child for collections
        self.complete = False


class _MapFrame:
    """A mapping being composed."""

    __slots__ = ("explicit", "is_merge", "key", "key_pos", "merge_line", "merges", "node")

    def __init__(self, node: _Node) -> None:
        self.node = node
        self.explicit: dict[str, tuple[_Pos, _Node, _Pos]] = {}
        self.merges: list[_Node] = []
        self.key: str | None = None  # None: the next node is a key
        self.key_pos: _Pos = (1, 1)
        self.is_merge = False
        self.merge_line: int | None = None  # line of this mapping's '<<', if any


class _Composer:
    """Turns parser events into a graph of :class:`_Node`, enforcing every rule."""

    def __init__(
        self,
        name: str,
        text: str,
        *,
        max_nodes: int,
        max_alias_expansion: int,
        max_depth: int,
        make_parser: Callable[[str], _EventParser],
    ) -> None:
        self.make_parser = make_parser
        self.name = name
        self.text = text
        self.max_nodes = max_nodes
        self.max_alias_expansion = max_alias_expansion
        self.max_depth = max_depth
        # Resolver.resolve is untyped in the stubs.
        self.resolve: Callable[[type[yaml.Node], str, tuple[bool, bool]], str]
        self.resolve = Resolver().resolve
        self.constructor = SafeConstructor()
        self.anchors: dict[str, _Node] = {}
        self.stack: list[_Node] = []
        self.map_frames: dict[int, _MapFrame] = {}
        self.nodes = 0
        self.expanded = 0
        self.documents = 0
        self.root: tuple[_Node, _Pos] | None = None

    def error(self, pos: _Pos, message: str) -> YamlError:
        return YamlError(self.name, pos[0], pos[1], message)

    def run(self) -> tuple[_Node, _Pos]:
        parser = self.make_parser(self.text)
        try:
            while parser.check_event():
                self.handle(parser.get_event())
        except yaml.MarkedYAMLError as exc:
            if "maximum nesting depth" in str(exc.problem) and self.make_parser is not (
                yaml.SafeLoader
            ):
                # libyaml's own limit (1000 levels) fired before ours, because it
                # scans ahead: parse again with PyYAML's parser to report ours.
                return _Composer(
                    self.name,
                    self.text,
                    max_nodes=self.max_nodes,
                    max_alias_expansion=self.max_alias_expansion,
                    max_depth=self.max_depth,
                    make_parser=yaml.SafeLoader,
                ).run()
            raise self.syntax_error(exc) from exc
        except yaml.YAMLError as exc:  # a reader error; _check_characters should prevent it
            position = getattr(exc, "position", None)
            line, column = _line_col(self.text, position) if isinstance(position, int) else (1, 1)
            raise self.error((line, column), str(exc)) from exc
        finally:
            parser.dispose()
        root = self.root
        if root is None or (
            root[0].tag == _NULL and root[0].text == "" and root[0].kind == _SCALAR
        ):
            raise self.error((1, 1), "the file is empty")
        return root

    # Events.

    def handle(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            node = self.scalar(event)
            self.deliver(node, node.pos)
        elif isinstance(event, yaml.AliasEvent):
            self.alias(event)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self.start(event)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            self.end()
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.error(
                    _pos(event), "a rule pack is one YAML document; a second one starts here"
                )

    def count(self, pos: _Pos) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise self.error(pos, f"too many nodes (more than {self.max_nodes:,})")

    def check_tag(self, tag: str | None, pos: _Pos, *, scalar: bool) -> None:
        if tag is None or (scalar and tag == _STR):
            return
        shown = "!!" + tag.removeprefix(_YAML_PREFIX) if tag.startswith(_YAML_PREFIX) else tag
        raise self.error(pos, f"tags are not allowed (found {shown!r})")

    def anchor(self, anchor: str | None, node: _Node) -> None:
        if anchor is None:
            return
        first = self.anchors.get(anchor)
        if first is not None:
            raise self.error(
                node.pos, f"duplicate anchor '&{anchor}' (first at line {first.pos[0]})"
            )
        self.anchors[anchor] = node

    def scalar(self, event: yaml.ScalarEvent) -> _Node:
        pos = _pos(event)
        self.count(pos)
        self.check_tag(event.tag, pos, scalar=True)
        node = _Node(_SCALAR, pos)
        text = event.value
        tag = _STR if event.tag == _STR else self.resolve(yaml.ScalarNode, text, event.implicit)
        node.tag = tag
        node.text = text
        node.value = self.scalar_value(tag, text, pos)
        node.complete = True
        self.anchor(event.anchor, node)
        return node

    def scalar_value(self, tag: str, text: str, pos: _Pos) -> object:
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        node = yaml.ScalarNode(tag, text)
        try:
            if tag == _BOOL:
                return self.constructor.construct_yaml_bool(node)
            if tag == _INT and ":" not in text:
                return self.constructor.construct_yaml_int(node)
            if tag == _FLOAT and ":" not in text:
                number = self.constructor.construct_yaml_float(node)
                return number if math.isfinite(number) else text
        except (ValueError, OverflowError) as exc:  # over int()'s 4300-digit limit
            shown = text if len(text) <= 20 else f"{text[:17]}... ({len(text)} characters)"
            raise self.error(
                pos, f"cannot read the number {shown}; quote it if it is text"
            ) from exc
        # Timestamps, sexagesimal numbers, infinities, NaN, '<<' and '=' as values.
        return text

    def alias(self, event: yaml.AliasEvent) -> None:
        pos = _pos(event)
        self.count(pos)
        name = event.anchor
        target = self.anchors.get(name) if name is not None else None
        if target is None:
            raise self.error(pos, f"unknown alias '*{name}' (no anchor '&{name}' before it)")
        if not target.complete:
            raise self.error(pos, f"recursive alias '*{name}': it is inside the node it refers to")
        self.expanded += target.size
        if self.expanded > self.max_alias_expansion:
            raise self.error(
                pos,
                "too many alias expansions (aliases would add more than "
                f"{self.max_alias_expansion:,} nodes)",
            )
        if len(self.stack) + target.height > self.max_depth:
            raise self.error(pos, f"nested too deeply (more than {self.max_depth} levels)")
        self.deliver(target, pos)

    def start(self, event: yaml.SequenceStartEvent | yaml.MappingStartEvent) -> None:
        pos = _pos(event)
        self.count(pos)
        if len(self.stack) >= self.max_depth:
            raise self.error(pos, f"nested too deeply (more than {self.max_depth} levels)")
        self.check_tag(event.tag, pos, scalar=False)
        node = _Node(_MAP if isinstance(event, yaml.MappingStartEvent) else _SEQ, pos)
        self.anchor(event.anchor, node)
        self.stack.append(node)
        if node.kind == _MAP:
            self.map_frames[id(node)] = _MapFrame(node)

    def end(self) -> None:
        node = self.stack.pop()
        size = 1
        height = 0
        if node.kind == _SEQ:
            for child, _ in node.items:
                size += child.size
                height = max(height, child.height)
        else:
            frame = self.map_frames.pop(id(node))
            if frame.merges:
                entries: dict[str, tuple[_Pos, _Node, _Pos]] = {}
                for source in frame.merges:
                    for key, entry in source.entries.items():
                        entries.setdefault(key, entry)
                entries.update(frame.explicit)
                node.entries = entries
            else:
                node.entries = frame.explicit
            for _, child, _ in node.entries.values():
                size += 1 + child.size
                height = max(height, child.height)
        # Capped: only comparisons with the limits matter, and a billion laughs
        # must not turn into arithmetic on huge integers.
        node.size = min(size, self.max_alias_expansion + self.max_nodes + 1)
        node.height = height + 1
        node.complete = True
        self.deliver(node, node.pos)

    # Placing a finished node into its parent.

    def deliver(self, node: _Node, pos: _Pos) -> None:
        if not self.stack:
            self.root = (node, pos)
            return
        parent = self.stack[-1]
        if parent.kind == _SEQ:
            parent.items.append((node, pos))
            return
        frame = self.map_frames[id(parent)]
        if frame.key is None:
            self.key(frame, node, pos)
        else:
            self.value(frame, node, pos)

    def key(self, frame: _MapFrame, node: _Node, pos: _Pos) -> None:
        if node.kind != _SCALAR:
            raise self.error(pos, f"keys must be text (found {_KIND_WORDS[node.kind]})")
        tag = node.tag
        if tag == _BOOL:
            raise self.error(pos, f"key {node.text!r} is read as a boolean by YAML 1.1; quote it")
        if tag == _NULL:
            if node.text == "":
                raise self.error(pos, "a key is empty")
            raise self.error(pos, f"key {node.text!r} is read as null by YAML; quote it")
        if tag in (_INT, _FLOAT):
            kind = "int" if tag == _INT else "float"
            raise self.error(
                pos, f"keys must be text (found {kind} {node.text}); quote it: '{node.text}'"
            )
        if tag != _MERGE and tag not in _TEXT_KEY_TAGS:  # pragma: no cover - no such resolver
            raise self.error(pos, f"keys must be text (found {node.text!r})")
        key = node.text
        if tag == _MERGE:
            first_line = frame.merge_line
            frame.merge_line = pos[0]
        else:
            first = frame.explicit.get(key)
            first_line = None if first is None else first[0][0]
        if first_line is not None:
            raise self.error(pos, f"duplicate key {key!r} (first at line {first_line})")
        frame.key = key
        frame.key_pos = pos
        frame.is_merge = tag == _MERGE

    def value(self, frame: _MapFrame, node: _Node, pos: _Pos) -> None:
        key = frame.key
        assert key is not None
        frame.key = None
        if not frame.is_merge:
            frame.explicit[key] = (frame.key_pos, node, pos)
            return
        if node.kind == _MAP:
            frame.merges.append(node)
        elif node.kind == _SEQ and all(child.kind == _MAP for child, _ in node.items):
            frame.merges.extend(child for child, _ in node.items)
        else:
            raise self.error(
                pos, "the merge key '<<' needs a mapping or a list of mappings, like '<<: *base'"
            )

    def syntax_error(self, exc: yaml.MarkedYAMLError) -> YamlError:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = _readable(exc.problem or "invalid YAML")
        if "cannot start any token" in message and self.char_at(line, column) == "\t":
            return self.error((line, column), "a tab cannot start a token; indent with spaces")
        if exc.context and exc.context != "while scanning for the next token":
            context = _readable(exc.context)
            where = exc.context_mark
            if where is not None and (where.line + 1, where.column + 1) != (line, column):
                context += f" starting at line {where.line + 1}, column {where.column + 1}"
            message += f" ({context})"
        return self.error((line, column), message)

    def char_at(self, line: int, column: int) -> str:
        lines = self.text.splitlines()
        if 0 < line <= len(lines) and 0 < column <= len(lines[line - 1]):
            return lines[line - 1][column - 1]
        return ""


def _pos(event: yaml.Event) -> _Pos:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _readable(text: str) -> str:
    for token, words in _TOKEN_WORDS.items():
        text = text.replace(f"'{token}'", words).replace(token, words)
    return text


# --- building plain values --------------------------------------------------------------


def _build(
    root: _Node, root_pos: _Pos
) -> tuple[Any, dict[Path_, _Pos], dict[Path_, _Pos], dict[Path_, _Pos]]:
    """Plain Python values from the node graph, and the position of every path.

    Aliases are expanded into copies; the composer has already bounded how much
    that produces. Uses an explicit stack, not recursion.
    """
    marks: dict[Path_, _Pos] = {(): root_pos}
    keys: dict[Path_, _Pos] = {}
    values: dict[Path_, _Pos] = {(): root_pos}
    holder: list[Any] = [None]
    stack: list[tuple[_Node, Path_, Any, Any]] = [(root, (), holder, 0)]
    while stack:
        node, path, parent, slot = stack.pop()
        if node.kind == _SCALAR:
            parent[slot] = node.value
        elif node.kind == _SEQ:
            items: list[Any] = [None] * len(node.items)
            parent[slot] = items
            for index, (child, pos) in enumerate(node.items):
                child_path = (*path, index)
                marks[child_path] = pos
                values[child_path] = pos
                stack.append((child, child_path, items, index))
        else:
            mapping: dict[str, Any] = {}
            parent[slot] = mapping
            for key, (key_pos, child, pos) in node.entries.items():
                child_path = (*path, key)
                marks[child_path] = key_pos
                keys[child_path] = key_pos
                values[child_path] = pos
                mapping[key] = None  # keeps file order; filled when popped
                stack.append((child, child_path, mapping, key))
    return holder[0], marks, keys, values
