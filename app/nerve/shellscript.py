"""Placeholders in a ``shell`` command, passed as data, never as script text.

A value is never spliced into the script. Each placeholder becomes a quoted
reference to an environment variable (``NERVE_ARG_1``, ``NERVE_ARG_2``...)
that holds its value when the shell starts, so whatever the value holds
(quotes, backquotes, ``$(...)``, ``;``, line breaks, ``#``, globs) it reaches
the command as one literal string. The script author's quoting decides the
spelling of the reference, so that it means what the author meant:

- unquoted, in ``$(...)`` or in backquotes: ``"${NERVE_ARG_1}"``;
- inside ``"..."`` or an unquoted here-document: ``${NERVE_ARG_1}``;
- inside ``'...'``: ``'"${NERVE_ARG_1}"'`` (the quotes are closed and reopened);
- in arithmetic (``$((...))``, ``((...))``, ``$[...]``, ``${x:N}``, ``${a[N]}``,
  ``let``, ``[[ ... -eq ... ]]``): ``${NERVE_ARG_1}``, and the value must be an
  integer (bash evaluates ``a[$(cmd)]`` there);
- after ``#`` (a comment): ``"${NERVE_ARG_1}"``, which the shell ignores.

Environment variables rather than ``$1``: positional parameters are replaced
inside shell functions and by ``set --``/``shift``. Some places are errors at
load time, because no reference can be written there: after a backslash,
inside ``$'...'``, in a quoted here-document (``<<'EOF'``) or its delimiter.
A command the script itself asks to evaluate its text (``eval``,
``sh -c "$1"``) still does what it says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

ENV_PREFIX = "NERVE_ARG_"

WORD, QUOTED, SINGLE, ARITH, COMMENT = "word", "quoted", "single", "arith", "comment"

_MARK = "\x00"
_BREAKS = frozenset(" \t\n;&|()<>")
_ARITH_TEST = re.compile(r"(?:^|\s)-(?:eq|ne|lt|le|gt|ge)(?:\s|\Z)")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class ShellScriptError(ValueError):
    """A placeholder where no safe reference can be written; for the user."""


@dataclass(frozen=True)
class Script:
    """A rewritten command: its text, and per placeholder (in order) the
    environment variable holding the value and whether it must be an integer."""

    text: str
    names: tuple[str, ...]
    integer: tuple[bool, ...]

    def environment(self, values: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
        """The variables that carry ``values`` (one per placeholder, in order);
        ValueError naming ``labels[i]`` for a value the shell cannot take here."""
        out: dict[str, str] = {}
        for name, value, integer, label in zip(
            self.names, values, self.integer, labels, strict=True
        ):
            if "\x00" in value:
                raise ValueError(
                    f"the value of {label} holds a NUL character, which a command cannot receive"
                )
            if integer and not check_integer(value):
                raise ValueError(
                    f"{label} is used in arithmetic in the shell command, so it must be an "
                    f"integer; it is {value[:80]!r}"
                )
            out[name] = value
        return out


def reference(index: int, kind: str) -> str:
    name = "${" + ENV_PREFIX + str(index) + "}"
    if kind in (QUOTED, ARITH):
        return name
    if kind == SINGLE:
        return "'\"" + name + "\"'"
    return '"' + name + '"'


def rewrite(pieces: Sequence[str | None]) -> Script:
    """Literal text with None at each placeholder, as a script whose
    placeholders are references to ``NERVE_ARG_<n>``."""
    for piece in pieces:
        if piece is not None and _MARK in piece:
            raise ShellScriptError("a shell command cannot hold a NUL character")
    source = "".join(_MARK if p is None else p for p in pieces)
    parser = _Parser(source)
    try:
        parser.run()
    except RecursionError:
        raise ShellScriptError(
            "the shell command nests $(...), ${...} or quotes too deeply to check"
        ) from None
    kinds = parser.kinds
    if len(kinds) != pieces.count(None):  # never expected: refuse rather than guess
        raise ShellScriptError("cannot tell how a placeholder is quoted in this shell command")
    out: list[str] = []
    names: list[str] = []
    k = 0
    for piece in pieces:
        if piece is None:
            k += 1
            out.append(reference(k, kinds[k - 1]))
            names.append(ENV_PREFIX + str(k))
        else:
            out.append(piece)
    integer = tuple(kind == ARITH or k in parser.integer for k, kind in enumerate(kinds))
    return Script("".join(out), tuple(names), integer)


def check_integer(value: str) -> bool:
    return _INTEGER.fullmatch(value) is not None


class _Parser:
    """Enough of the POSIX shell grammar (and bash's additions) to tell, for
    each placeholder, which quoting it sits in."""

    def __init__(self, source: str) -> None:
        self.s = source
        self.kinds: list[str] = []
        self.integer: set[int] = set()
        self.pending: list[tuple[str, bool, bool]] = []  # heredocs: (delimiter, quoted, -)
        #: Variables the script declares integer (declare -i n): assigning one is arithmetic.
        self.integer_names: set[str] = set()
        for command in _COMMANDS.split(source):
            self.integer_names.update(_declared_integers(command) or ())

    def _integer_assignment(self, i: int) -> bool:
        """Is the placeholder at ``i`` assigned to an integer variable, or an
        array subscript (``a[N]=``, ``n=`` after ``declare -i n``)?"""
        head = self.s[max(0, i - 200) : i]
        m = _ASSIGNED.search(head)
        if m is None:
            return False
        return m.group(2) == "[" or m.group(1) in self.integer_names

    # -- placeholders

    def mark(self, kind: str) -> None:
        self.kinds.append(kind)

    def run(self) -> None:
        end = self.unquoted(0, len(self.s), None)
        if end < len(self.s):  # an unbalanced ')': the shell will complain
            self.unquoted(end + 1, len(self.s), None)

    # -- contexts; each returns the index just after what it read

    def unquoted(self, i: int, end: int, stop: str | None, arith: bool = False) -> int:
        s = self.s
        depth = 0
        word_start = True
        command_start = True
        let_command = False
        first_mark = len(self.kinds)  # of the current command

        def end_command() -> None:
            nonlocal let_command, first_mark
            if let_command:  # let / declare -i: every value in the command is arithmetic
                self.integer.update(range(first_mark, len(self.kinds)))
            let_command = False
            first_mark = len(self.kinds)

        while i < end:
            c = s[i]
            if c == _MARK:
                if self._integer_assignment(i):
                    self.integer.add(len(self.kinds))
                self.mark(ARITH if arith else WORD)
                word_start = command_start = False
                i += 1
                continue
            if c == "\\":
                if i + 1 < end and s[i + 1] == _MARK:
                    raise ShellScriptError(
                        "a placeholder cannot follow a backslash in a shell command"
                    )
                i += 2
                word_start = command_start = False
                continue
            if c == "'":
                i = self.single(i + 1, end)
                word_start = command_start = False
                continue
            if c == '"':
                i = self.double(i + 1, end, arith=arith)
                word_start = command_start = False
                continue
            if c == "`":
                i = self.backquote(i + 1, end, in_double=False, arith=arith)
                word_start = command_start = False
                continue
            if c == "$":
                i = self.dollar(i, end, in_double=False, arith=arith)
                word_start = command_start = False
                continue
            if c == "#" and word_start and not arith:
                while i < end and s[i] != "\n":
                    if s[i] == _MARK:
                        self.mark(COMMENT)
                    i += 1
                continue
            if c == "(":
                if not arith and s.startswith("((", i) and command_start:
                    i = self.arith_until(i + 2, end, "))")
                    word_start = command_start = False
                    continue
                depth += 1
                word_start = command_start = True
                i += 1
                continue
            if c == ")":
                if depth == 0 and stop == ")":
                    end_command()
                    return i + 1
                depth -= 1
                word_start = True
                i += 1
                continue
            if c == "[" and s.startswith("[[", i) and word_start and not arith:
                i = self.double_bracket(i + 2, end)
                word_start = command_start = False
                continue
            if c == "<" and s.startswith("<<", i) and not s.startswith("<<<", i):
                i = self.heredoc_start(i + 2, end)
                word_start = True
                continue
            if c == "\n":
                end_command()
                i = self.heredoc_bodies(i + 1, end)
                word_start = command_start = True
                continue
            if c in _BREAKS:
                word_start = True
                if c in ";&|":
                    end_command()
                    command_start = True
                i += 1
                continue
            if command_start and word_start:
                if s.startswith("let", i) and s[i + 3 : i + 4] in ("", " ", "\t"):
                    let_command = True
                if s.startswith(_DECLARERS, i):
                    names = _declared_integers(s[i : _line_end(s, i)])
                    if names is not None:
                        let_command = True
                        self.integer_names.update(names)
            word_start = command_start = False
            i += 1
        end_command()
        if stop is not None:
            return end
        return i

    def single(self, i: int, end: int) -> int:
        while i < end and self.s[i] != "'":
            if self.s[i] == _MARK:
                if self._integer_assignment(i):
                    self.integer.add(len(self.kinds))
                self.mark(SINGLE)
            i += 1
        return i + 1

    def double(self, i: int, end: int, *, arith: bool = False, heredoc: bool = False) -> int:
        """Inside "...", or (``heredoc``) the body of an unquoted here-document."""
        s = self.s
        while i < end:
            c = s[i]
            if c == '"' and not heredoc:
                return i + 1
            if c == "\\":
                if i + 1 < end and s[i + 1] == _MARK:
                    raise ShellScriptError(
                        "a placeholder cannot follow a backslash in a shell command"
                    )
                i += 2
                continue
            if c == _MARK:
                if not heredoc and self._integer_assignment(i):
                    self.integer.add(len(self.kinds))
                self.mark(ARITH if arith else QUOTED)
                i += 1
                continue
            if c == "$":
                i = self.dollar(i, end, in_double=True, arith=arith)
                continue
            if c == "`":
                i = self.backquote(i + 1, end, in_double=not heredoc, arith=arith)
                continue
            i += 1
        return i

    def dollar(self, i: int, end: int, *, in_double: bool, arith: bool) -> int:
        s = self.s
        if s.startswith("$((", i):
            return self.arith_until(i + 3, end, "))")
        if s.startswith("$(", i):
            return self.unquoted(i + 2, end, ")", arith=arith)
        if s.startswith("$[", i):
            return self.arith_until(i + 2, end, "]")
        if s.startswith("${", i):
            return self.parameter(i + 2, end, in_double=in_double, arith=arith)
        if s.startswith("$'", i) and not in_double:
            j = i + 2
            while j < end and s[j] != "'":
                if s[j] == _MARK:
                    raise ShellScriptError(
                        "a placeholder cannot go inside $'...': "
                        'close the quotes before it or use "..."'
                    )
                if s[j] == "\\" and j + 1 < end and s[j + 1] == _MARK:
                    raise ShellScriptError(
                        "a placeholder cannot go inside $'...': "
                        'close the quotes before it or use "..."'
                    )
                j += 2 if s[j] == "\\" else 1
            return j + 1
        if s.startswith('$"', i) and not in_double:
            return self.double(i + 2, end, arith=arith)
        return i + 1

    def parameter(self, i: int, end: int, *, in_double: bool, arith: bool) -> int:
        """``${...}`` up to its ``}``; the offset of ``${x:N}`` and the subscript of
        ``${a[N]}`` are arithmetic."""
        s = self.s
        start = i
        depth = 0
        while i < end:
            c = s[i]
            if c == "}" and depth == 0:
                return i + 1
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if c == _MARK:
                head = s[start:i]
                arithmetic = arith or _PARAM_ARITH.match(head) is not None
                self.mark(ARITH if arithmetic else (QUOTED if in_double else WORD))
                i += 1
                continue
            if c == "\\":
                if i + 1 < end and s[i + 1] == _MARK:
                    raise ShellScriptError(
                        "a placeholder cannot follow a backslash in a shell command"
                    )
                i += 2
                continue
            if c == "'" and not in_double:
                i = self.single(i + 1, end)
                continue
            if c == '"':
                i = self.double(i + 1, end, arith=arith)
                continue
            if c == "$":
                i = self.dollar(i, end, in_double=in_double, arith=arith)
                continue
            if c == "`":
                i = self.backquote(i + 1, end, in_double=in_double, arith=arith)
                continue
            i += 1
        return i

    def arith_until(self, i: int, end: int, close: str) -> int:
        """An arithmetic expression up to ``close`` (``))`` or ``]``) at depth 0."""
        s = self.s
        depth = 0
        while i < end:
            if depth == 0 and s.startswith(close, i):
                return i + len(close)
            c = s[i]
            if c == _MARK:
                self.mark(ARITH)
                i += 1
            elif c in "([":
                depth += 1
                i += 1
            elif c in ")]":
                depth -= 1
                i += 1
            elif c == "$":
                i = self.dollar(i, end, in_double=False, arith=True)
            elif c == '"':
                i = self.double(i + 1, end, arith=True)
            elif c == "'":
                i = self.single(i + 1, end)
            elif c == "`":
                i = self.backquote(i + 1, end, in_double=False, arith=True)
            elif c == "\\":
                if i + 1 < end and s[i + 1] == _MARK:
                    raise ShellScriptError(
                        "a placeholder cannot follow a backslash in a shell command"
                    )
                i += 2
            else:
                i += 1
        return i

    def double_bracket(self, i: int, end: int) -> int:
        """bash's ``[[ ... ]]``: with -eq and the like, the operands are arithmetic."""
        s = self.s
        close = s.find("]]", i, end)
        if close < 0:
            close = end
        first = len(self.kinds)
        self.unquoted(i, close, None)
        if _ARITH_TEST.search(s[i:close]):
            self.integer.update(range(first, len(self.kinds)))
        return min(close + 2, end)

    def backquote(self, i: int, end: int, *, in_double: bool, arith: bool) -> int:
        """`...`: the body, its backslash escapes undone, is a script of its own."""
        s = self.s
        body: list[str] = []
        while i < end and s[i] != "`":
            c = s[i]
            if c == "\\" and i + 1 < end:
                nxt = s[i + 1]
                if nxt in "$`\\" or (in_double and nxt == '"'):
                    body.append(nxt)
                else:
                    body.extend((c, nxt))
                i += 2
                continue
            body.append(c)
            i += 1
        inner = _Parser("".join(body))
        inner.unquoted(0, len(inner.s), None, arith=arith)
        offset = len(self.kinds)
        self.kinds.extend(inner.kinds)
        self.integer.update(offset + k for k in inner.integer)
        return i + 1

    def heredoc_start(self, i: int, end: int) -> int:
        s = self.s
        strip = i < end and s[i] == "-"
        if strip:
            i += 1
        while i < end and s[i] in " \t":
            i += 1
        word: list[str] = []
        quoted = False
        while i < end and s[i] not in _BREAKS:
            c = s[i]
            if c == _MARK:
                raise ShellScriptError("a placeholder cannot be a here-document's delimiter")
            if c in "'\"":
                quoted = True
                close = s.find(c, i + 1, end)
                close = end if close < 0 else close
                if _MARK in s[i + 1 : close]:
                    raise ShellScriptError("a placeholder cannot be a here-document's delimiter")
                word.append(s[i + 1 : close])
                i = close + 1
                continue
            if c == "\\":
                if s[i + 1 : i + 2] == _MARK:
                    raise ShellScriptError("a placeholder cannot be a here-document's delimiter")
                quoted = True
                word.append(s[i + 1 : i + 2])
                i += 2
                continue
            word.append(c)
            i += 1
        self.pending.append(("".join(word), quoted, strip))
        return i

    def heredoc_bodies(self, i: int, end: int) -> int:
        s = self.s
        pending, self.pending = self.pending, []
        for delimiter, quoted, strip in pending:
            start = i
            while i < end:
                nl = s.find("\n", i, end)
                line_end = end if nl < 0 else nl
                line = s[i:line_end]
                if (line.lstrip("\t") if strip else line) == delimiter:
                    self.heredoc_body(start, i, quoted)
                    i = line_end + 1
                    break
                i = line_end + 1
            else:
                self.heredoc_body(start, end, quoted)
                i = end
        return i

    def heredoc_body(self, start: int, stop: int, quoted: bool) -> None:
        if quoted:
            if _MARK in self.s[start:stop]:
                raise ShellScriptError(
                    "a placeholder cannot go into a quoted here-document (<<'EOF'), "
                    "where nothing expands: write <<EOF"
                )
            return
        self.double(start, stop, heredoc=True)


_DECLARERS = ("declare", "typeset", "local", "export", "readonly", "integer")
_COMMANDS = re.compile(r"[;&|\n]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNED = re.compile(r"(?:^|[\s;&|(])([A-Za-z_][A-Za-z0-9_]*)(?:(\[)|\+?=)[\"']?\Z")


def _declared_integers(command: str) -> list[str] | None:
    """The names ``declare -i a b=1`` (or typeset, local, ``integer``...) makes
    integer, or None when ``command`` declares no integers."""
    words = command.split()
    if not words or words[0] not in _DECLARERS:
        return None
    flags = [w for w in words[1:] if w.startswith("-")]
    if words[0] != "integer" and not any("i" in f for f in flags):
        return None
    names = [w.split("=", 1)[0].split("+", 1)[0] for w in words[1:] if not w.startswith("-")]
    return [n for n in names if _NAME.fullmatch(n)]


def _line_end(s: str, i: int) -> int:
    found = _COMMANDS.search(s, i)
    return found.start() if found else len(s)


_PARAM_ARITH = re.compile(r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*])(?:\[|:(?![-=?+]))")
