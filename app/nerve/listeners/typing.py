"""What the focused application was typed, abbreviations in it, and their expansions.

The key stream shows, in the server's order, every key the focused
application receives: the user's and Nerve's own. :class:`Typing` follows it
to keep a model of the text before the caret since the caret last moved
(a click, a focus change, an arrow key or a shortcut forget it), finds
abbreviations in what the user typed, and lets an injector expand one exactly
while the user goes on typing:

- An abbreviation opens an :class:`Expansion`: where it starts in the text,
  and the characters the user typed after it (``tail``). The user keeps
  typing while Nerve prepares and sends the replacement; those characters
  reach the application first, or between Nerve's own keys.
- The injector asks for a :meth:`Typing.step`: what stands after the
  abbreviation's start now, against what should stand there (the
  replacement, then the tail). It erases back to the first difference and
  types the rest, marks the stream, waits until the mark came back (so
  everything the server processed before it is in the model) and asks
  again, until the two agree. Usually that is one step; a key of the user's
  that landed inside Nerve's burst costs one more.
- While an expansion is open, the user's characters go to its tail and do not
  complete another abbreviation; when it closes, the tail is read again as if
  typed after the replacement, so an abbreviation typed meanwhile still fires,
  once, in order.

Everything is in memory only and forgotten on a reset; nothing here is written
anywhere.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from nerve.injection import ExpansionLost

#: Characters of text before the caret kept in the model.
TEXT_LIMIT = 4096
#: Characters of the user's own typing matched against abbreviations.
BUFFER = 64
#: An expansion nothing claimed after this long is closed (its rule typed
#: nothing, or its conditions did not hold).
CLAIM_TIMEOUT_S = 2.0

_BOUNDARY_EXTRA = "_"


def is_word_char(char: str) -> bool:
    return char.isalnum() or char in _BOUNDARY_EXTRA


def typed_case(typed: str) -> str:
    """How an abbreviation was typed: ``upper`` (;SIG), ``capital`` (;Sig) or
    ``as-is`` (;sig, or no letters to tell)."""
    letters = [c for c in typed if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return "upper"
    if letters and letters[0].isupper():
        return "capital"
    return "as-is"


def follow_case(text: str, case: str) -> str:
    """``text`` in the case an abbreviation was typed in (see :func:`typed_case`)."""
    if case == "upper":
        return text.upper()
    if case == "capital":
        for i, char in enumerate(text):
            if char.isalpha():
                return text[:i] + char.upper() + text[i + 1 :]
    return text


class Abbreviation(NamedTuple):
    """An abbreviation to watch for (``expands``: its rule types a replacement)."""

    text: str
    word: bool = False
    case_sensitive: bool = True
    expands: bool = True


@dataclass
class Expansion:
    id: int
    #: Index in the model's text of the abbreviation's first character.
    start: int
    #: Characters of the abbreviation (without a word rule's boundary).
    size: int
    #: What the user typed after it (a word rule's boundary first).
    tail: list[str] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)
    claimed: bool = False
    #: The abbreviation as the user typed it.
    typed: str = ""
    #: Whether a BackSpace right after it puts the abbreviation back (not for
    #: the expansion that did just that).
    undoable: bool = True


class _Undo(NamedTuple):
    """An expansion just done: a BackSpace now puts ``abbreviation`` back."""

    start: int
    replacement: str
    abbreviation: str


class Typing:
    """The model, fed from the key stream's thread; read by injectors.

    ``publish(data)`` is called (under the model's lock; it must not block)
    for each abbreviation found, with the ``typed`` event's data."""

    def __init__(self, publish: Callable[[dict[str, object]], None]) -> None:
        self._publish = publish
        self._cond = threading.Condition()
        self._abbreviations: list[Abbreviation] = []
        self._text: list[str] = []
        self._buffer: list[str] = []
        self._at_start = True  # the buffer begins at a word boundary
        self._open: Expansion | None = None
        self._ids = itertools.count(1)
        self._mark = 0
        self._marks = itertools.count(1)
        #: Why the last expansion lost was lost (for its injector to say).
        self._lost: dict[int, str] = {}
        #: Characters Nerve mapped on spare keycodes (the stream's keymap may lag).
        self.own_chars: dict[int, str] = {}
        #: Called when an expansion opens, so that :meth:`tick` runs in time.
        self.wake: Callable[[], None] = lambda: None
        #: ``on_undo(expansion, abbreviation)``: the user pressed BackSpace right
        #: after an expansion; expansion ``expansion`` (open and claimed) is to
        #: bring ``abbreviation`` back. Called under the lock: it must not block.
        self.on_undo: Callable[[int, str], None] | None = None
        self._undo: _Undo | None = None
        #: (keycode, text): Nerve's next press of this key pastes ``text``.
        self._paste: tuple[int, str] | None = None

    # ------------------------------------------------------------ settings

    def configure(self, abbreviations: Sequence[Abbreviation]) -> None:
        with self._cond:
            self._abbreviations = list(abbreviations)
            self._reset_locked("the abbreviations changed")

    @property
    def watching(self) -> bool:
        return bool(self._abbreviations)

    @property
    def abbreviations(self) -> list[Abbreviation]:
        return list(self._abbreviations)

    # ------------------------------------------------- from the key stream

    def char(self, char: str, own: bool) -> None:
        """The application received a key that types ``char``."""
        with self._cond:
            self._expire_locked()
            self._undo = None
            self._append(char)
            current = self._open
            if own:
                if current is None:
                    # Text Nerve typed for another reason: not the user's abbreviation.
                    self._buffer.clear()
                    self._at_start = False
                return
            if current is not None:
                current.tail.append(char)
                return
            self._feed(char, len(self._text) - 1)

    def pasted(self, keycode: int) -> bool:
        """Nerve pressed ``keycode``: if it is the paste key of :meth:`expect_paste`,
        the pasted text is in the application now (True), else False."""
        with self._cond:
            paste = self._paste
            if paste is None or paste[0] != keycode:
                return False
            self._paste = None
            self._expire_locked()
            self._undo = None
            for char in paste[1]:
                self._append(char)
            if self._open is None:
                self._buffer.clear()
                self._at_start = False
            return True

    def backspace(self, own: bool) -> None:
        with self._cond:
            self._expire_locked()
            undo, self._undo = self._undo, None
            if not own and undo is not None and self._undo_locked(undo):
                return
            if not self._text:
                self._reset_locked("text before the caret was erased")
                return
            self._text.pop()
            current = self._open
            if current is not None and len(self._text) < current.start:
                self._lose(current, "the abbreviation was erased")
            if own:
                return
            if current is not None:
                if current.tail:
                    current.tail.pop()
                else:
                    self._lose(current, "the abbreviation was edited")
            elif self._buffer:
                self._buffer.pop()
            else:
                self._at_start = False

    def reset(self, why: str) -> None:
        """The caret moved or the text changed in a way keys do not tell."""
        with self._cond:
            self._reset_locked(why)

    def marked(self, token: int) -> None:
        """A mark came back: everything processed before it is in the model."""
        with self._cond:
            self._mark = max(self._mark, token)
            self._cond.notify_all()

    def tick(self) -> float | None:
        """Close an expansion nobody claimed; seconds until this should run again."""
        with self._cond:
            self._expire_locked()
            current = self._open
            if current is None or current.claimed:
                return None
            return max(0.01, current.opened + CLAIM_TIMEOUT_S - time.monotonic())

    # ------------------------------------------------------ for injectors

    def next_mark(self) -> int:
        with self._cond:
            return next(self._marks)

    def wait_mark(self, token: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._mark >= token, timeout)

    def claim(self, expansion: int) -> bool:
        """Take expansion ``expansion`` over; False if it is gone (closed or lost)."""
        with self._cond:
            current = self._open
            if current is None or current.id != expansion:
                return False
            current.claimed = True
            return True

    def step(self, expansion: int, replacement: str) -> tuple[int, str] | None:
        """(characters to erase, text to type) to bring the text after the
        abbreviation's start to ``replacement`` + the tail; None once it is.

        Raises ExpansionLost if the model cannot follow it any more."""
        with self._cond:
            current = self._open
            if current is None or current.id != expansion:
                raise ExpansionLost(self._lost.get(expansion, "the expansion was closed"))
            now = self._text[current.start :]
            wanted = [*replacement, *current.tail]
            if now == wanted:
                return None
            same = 0
            for a, b in zip(now, wanted, strict=False):
                if a != b:
                    break
                same += 1
            return len(now) - same, "".join(wanted[same:])

    def expect_paste(self, keycode: int, text: str) -> None:
        """Nerve is about to press ``keycode`` (with modifiers) to paste ``text``."""
        with self._cond:
            self._paste = (keycode, text)

    def tail(self, expansion: int) -> str:
        with self._cond:
            current = self._open
            return "".join(current.tail) if current is not None and current.id == expansion else ""

    def close(self, expansion: int, typed: str | None) -> None:
        """Expansion done (``typed``: the replacement now in the text, None if
        nothing was typed); the user's tail is read again for abbreviations."""
        with self._cond:
            current = self._open
            if current is None or current.id != expansion:
                return
            self._close_locked(current, typed)

    # ------------------------------------------------------------ inside

    def _append(self, char: str) -> None:
        self._text.append(char)
        if len(self._text) > TEXT_LIMIT:
            drop = len(self._text) - TEXT_LIMIT // 2
            del self._text[:drop]
            current = self._open
            if current is not None:
                current.start -= drop
                if current.start < 0:
                    self._lose(current, "too much was typed after it")

    def _lose(self, current: Expansion, why: str) -> None:
        self._lost = {current.id: why}
        self._open = None
        self._buffer.clear()
        self._at_start = False
        self._cond.notify_all()

    def _undo_locked(self, undo: _Undo) -> bool:
        """The user's BackSpace right after an expansion: open one that brings
        the abbreviation back (what the BackSpace erased included)."""
        if self.on_undo is None or self._open is not None:
            return False
        if "".join(self._text[undo.start :]) != undo.replacement or not undo.replacement:
            return False
        self._text.pop()
        expansion = Expansion(
            next(self._ids), undo.start, len(undo.replacement) - 1, claimed=True, undoable=False
        )
        self._open = expansion
        self.on_undo(expansion.id, undo.abbreviation)
        return True

    def _reset_locked(self, why: str) -> None:
        self._undo = None
        if self._open is not None:
            self._lose(self._open, why)
        self._text.clear()
        self._buffer.clear()
        self._at_start = True

    def _expire_locked(self) -> None:
        current = self._open
        if (
            current is not None
            and not current.claimed
            and time.monotonic() - current.opened > CLAIM_TIMEOUT_S
        ):
            self._close_locked(current, None)

    def _close_locked(self, current: Expansion, typed: str | None) -> None:
        self._open = None
        self._buffer.clear()
        if typed is None:
            # Nothing replaced it: the abbreviation is text like any other.
            self._buffer = list(self._text[current.start : current.start + current.size])
            self._at_start = current.start == 0
        else:
            self._at_start = not typed or not is_word_char(typed[-1])
            if typed and not current.tail and current.undoable and current.typed:
                self._undo = _Undo(current.start, typed, current.typed)
        tail = current.tail
        first = len(self._text) - len(tail)
        for i, char in enumerate(tail):
            opened = self._feed(char, first + i)
            if opened is not None:
                # Typed meanwhile: its expansion follows, with the rest as its tail.
                opened.tail.extend(tail[i + 1 :])
                break
        self._cond.notify_all()

    def _feed(self, char: str, index: int) -> Expansion | None:
        """Match the user's ``char`` (at ``index`` in the text); the expansion
        it opened by completing an abbreviation whose rule types one."""
        if len(self._buffer) >= BUFFER:
            del self._buffer[0]
            self._at_start = False
        self._buffer.append(char)
        text = "".join(self._buffer)
        for need in self._abbreviations:
            size = len(need.text)
            if need.word:
                # Whole words only: a boundary (or the start) before, one after.
                if len(text) < size + 1 or is_word_char(text[-1]):
                    continue
                typed = text[-size - 1 :]
                body = typed[:-1]
                if len(text) > size + 1:
                    if is_word_char(text[-size - 2]):
                        continue
                elif not self._at_start:
                    continue
            else:
                if len(text) < size:
                    continue
                typed = body = text[-size:]
            if need.case_sensitive:
                same = body == need.text
            else:
                same = body.casefold() == need.text.casefold()
            if not same:
                continue
            self._buffer.clear()
            self._at_start = False
            data: dict[str, object] = {"text": typed}
            expansion = None
            if need.expands:
                start = index + 1 - len(typed)
                expansion = Expansion(next(self._ids), start, size, typed=body)
                if need.word:
                    expansion.tail.append(typed[-1])
                self._open = expansion
                data["expansion"] = expansion.id
                self.wake()
            self._publish(data)
            return expansion
        return None
