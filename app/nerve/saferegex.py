"""Regular expressions and globs that a pack or a user supplies.

They run on RE2 (the ``google-re2`` bindings), whose matching time grows
linearly with the text, whatever the pattern: ``(a+)+$`` cannot stall the
engine the way Python's backtracking ``re`` lets it. The price is RE2's
syntax: no backreferences (``\\1``), no lookahead or lookbehind
(``(?=``, ``(?!``, ``(?<=``, ``(?<!``), no atomic groups, possessive
quantifiers or conditionals, no ``(?x)`` verbose mode, and counted repetition
up to 1000. Such a pattern is an error at load time that says why.
``\\Z`` is read as Python reads it (the end of the text).

Globs (``*.pdf``, ``build.*``) are translated here too, to RE2, never to a
backtracking regex.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import re2

#: The longest pattern accepted (a pack's regexes are short; this bounds memory).
MAX_PATTERN = 4096
#: The most RE2 instructions a pattern may compile to. Matching costs up to
#: (text length x instructions): this and MAX_TEXT bound every match to well
#: under a second even for the worst patterns (``[ab]*a[ab]{500}``).
MAX_PROGRAM = 2000
#: How much of a value a regex or glob looks at (characters).
MAX_TEXT = 16 * 1024

Matcher = Callable[[str], bool]


class RegexError(ValueError):
    """A pattern Nerve cannot use; the message says why, for the user."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # our message reaches the user; no stray stderr lines
    options.max_mem = 8 << 20
    options.never_capture = True  # only "does it match": no submatch work
    return options


_UNSUPPORTED = (
    ("(?=", "lookahead (?=...) is not supported"),
    ("(?!", "negative lookahead (?!...) is not supported"),
    ("(?<=", "lookbehind (?<=...) is not supported"),
    ("(?<!", "negative lookbehind (?<!...) is not supported"),
    ("(?>", "atomic groups (?>...) are not supported"),
    ("(?(", "conditionals (?(...)...) are not supported"),
    ("(?#", "comments (?#...) are not supported"),
)


def _translate(pattern: str) -> str:
    """Python spellings RE2 reads differently: ``\\Z`` is RE2's ``\\z``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\z" if nxt == "Z" else c + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _why(pattern: str, detail: str) -> str:
    for token, message in _UNSUPPORTED:
        if token in pattern:
            return message
    lowered = detail.lower()
    if "invalid escape" in lowered and any(f"\\{d}" in pattern for d in "123456789"):
        return "backreferences (\\1) are not supported"
    if "repetition" in lowered and ("{" in pattern):
        return f"{detail} (counted repetition goes up to {{1000}})"
    if "too large" in lowered or "pattern too" in lowered:
        return "the pattern is too large"
    if "(?x" in pattern or "(?u" in pattern or "(?a" in pattern or "(?L" in pattern:
        return "only the flags i, m, s and U are supported, e.g. (?i)"
    return detail


@lru_cache(maxsize=2048)
def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled for RE2 (``search``/``match``/``fullmatch``), or
    RegexError saying why not. Matching takes time linear in the text."""
    if not isinstance(pattern, str):
        raise RegexError(f"a regular expression is text, got {pattern!r}")
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"the regular expression is longer than {MAX_PATTERN} characters")
    if "\x00" in pattern:
        raise RegexError("a regular expression cannot hold a NUL character")
    return _compile(_translate(pattern), pattern)


def _compile(regex: str, pattern: str, limit: bool = True) -> Any:
    try:
        compiled = re2.compile(regex, _options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise RegexError(
            f"{_why(pattern, str(detail))} (Nerve's regular expressions use RE2, "
            "which runs in linear time: no backreferences, lookaround or atomic groups)"
        ) from None
    if limit and compiled.programsize > MAX_PROGRAM:
        raise RegexError(
            f"the pattern is too complex ({compiled.programsize} steps; at most {MAX_PROGRAM}): "
            "use fewer or smaller counted repetitions ({n}) and Unicode classes"
        )
    return compiled


def _subject(text: str) -> str:
    """``text`` as RE2 can take it: lone surrogates (undecodable file names) as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _matcher(method: Callable[[str], Any]) -> Matcher:
    """``method`` (a compiled pattern's search or fullmatch) as a Matcher over
    the first MAX_TEXT characters of a text, undecodable ones included."""

    def matches(text: str) -> bool:
        text = text[:MAX_TEXT]
        try:
            return method(text) is not None
        except UnicodeEncodeError:
            return method(_subject(text)) is not None

    return matches


def searcher(pattern: str) -> Matcher:
    """Whether ``pattern`` occurs in a text (``re.search``), in linear time."""
    return _matcher(compile_regex(pattern).search)


def full_matcher(pattern: str) -> Matcher:
    """Whether a whole text matches ``pattern``, in linear time."""
    return _matcher(compile_regex(pattern).fullmatch)


# ---------------------------------------------------------------- globs

_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def _escape(c: str) -> str:
    return "\\" + c if c in _SPECIAL else c


def _class(body: str) -> str:
    """A glob's ``[...]`` body as an RE2 class (``!`` negates; ``a-z`` is a
    range and a reversed one matches nothing, as in fnmatch; all else literal)."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    items: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = body[i], body[i + 2]
            if lo <= hi:
                items.append(_in_class(lo) + "-" + _in_class(hi))
            i += 3
        else:
            items.append(_in_class(body[i]))
            i += 1
    if not items:
        return "[^\\x00-\\x{10FFFF}]" if not negate else "(?s:.)"
    return "[" + ("^" if negate else "") + "".join(items) + "]"


def _in_class(c: str) -> str:
    return "\\" + c if c in "\\[]^-" else c


def glob_to_regex(pattern: str, *, star: str = ".*", one: str = ".") -> str:
    """A glob in fnmatch's syntax (``*``, ``?``, ``[abc]``, ``[!abc]``) as RE2
    syntax, without anchors. ``star``/``one`` say what ``*`` and ``?`` match (a
    path glob passes ``[^/]*`` and ``[^/]``)."""
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"the glob is longer than {MAX_PATTERN} characters")
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*" and star == ".*":
                i += 1
            out.append(star)
        elif c == "?":
            out.append(one)
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            end = pattern.find("]", j)
            if end < 0:
                out.append("\\[")
            else:
                body = pattern[i + 1 : end]
                if body in ("", "!"):
                    out.append("\\[")
                else:
                    out.append(_class(body))
                    i = end
        else:
            out.append(_escape(c))
        i += 1
    return "".join(out)


def regex_matcher(regex: str, *, limit: bool = True) -> Matcher:
    """Whether a whole text (its first MAX_TEXT characters) matches ``regex``, one
    Nerve built itself (from globs); ``limit``: refuse a program over MAX_PROGRAM."""
    return _matcher(_compile(regex, regex, limit).fullmatch)


@lru_cache(maxsize=2048)
def glob_matcher(pattern: str) -> Matcher:
    """Whether a whole text matches the glob ``pattern`` (as ``fnmatchcase``:
    ``*`` matches any text, line breaks and ``/`` included), in linear time."""
    return star_matcher(pattern) or regex_matcher("(?s)" + glob_to_regex(pattern))


def star_matcher(pattern: str) -> Matcher | None:
    """For a glob whose only wildcard is ``*`` (``*.pdf``, ``Screenshot*.png``,
    ``build.*``), a matcher made of string operations, or None for any other
    glob. Each call into RE2 costs some 20 µs of binding overhead, which a
    storm of file events cannot afford; these globs need no regex at all:
    the literal pieces are placed leftmost in order (linear in the text)."""
    if "?" in pattern or "[" in pattern or len(pattern) > MAX_PATTERN:
        return None
    if "*" not in pattern:
        return lambda text: text[:MAX_TEXT] == pattern
    head, *middle, tail = pattern.split("*")
    pieces = [m for m in middle if m]
    least = len(head) + len(tail) + sum(map(len, pieces))

    def whole(text: str) -> bool:
        text = text[:MAX_TEXT]
        if len(text) < least or not text.startswith(head) or not text.endswith(tail):
            return False
        pos, end = len(head), len(text) - len(tail)
        for piece in pieces:
            found = text.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return whole
