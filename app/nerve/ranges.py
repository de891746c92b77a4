"""The ranges of the numbers Nerve reads from packs, settings and events.

Every number has a range. Options that mean something (a coordinate, a count,
a limit of runs) say theirs in their JSON Schema, with the constants below; a
duration's is in :mod:`nerve.durations`. Any other number in a pack (a value
an event field is compared with, an input's default, a number in an argument
list) is a *safe integer* or a finite decimal within the same bounds: at most
``2**53 - 1`` either way, the range in which every JSON tool reads a number
exactly. Past a range the loader reports the value, with its file and line,
and skips the rule; nothing downstream ever sees a number it cannot use.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Final

#: The largest magnitude of a number in a pack: 9,007,199,254,740,991.
MAX_SAFE_INTEGER: Final = 2**53 - 1

#: Screen coordinates (X11 and the other backends take 16-bit signed positions).
MIN_COORDINATE: Final = -32768
MAX_COORDINATE: Final = 32767
COORDINATE: Final[dict[str, Any]] = {
    "type": "integer",
    "minimum": MIN_COORDINATE,
    "maximum": MAX_COORDINATE,
}
#: A width or height in pixels.
SIZE: Final[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": 65535}
#: A mouse button number (1 left, 2 middle, 3 right, 4-7 the wheel, 8 back, 9 forward...).
BUTTON: Final[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": 255}
#: The most runs of one rule at a time (``max`` of modes queued and parallel).
MAX_RUNS: Final = 1000
#: The most events a ``count`` trigger counts.
MAX_COUNT: Final = 10_000


def number_problem(value: Any) -> str | None:
    """Why ``value`` (a number from a pack) is out of range, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number"
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return None
    text = str(value) if isinstance(value, float) else _digits(value)
    return (
        f"the number {text} is out of range: numbers in a pack are between "
        f"-{MAX_SAFE_INTEGER:,} and {MAX_SAFE_INTEGER:,} (2**53 - 1); quote it if it is text"
    )


def _digits(value: int) -> str:
    # str() of a huge int is slow (and refused past 4300 digits): show its size.
    if value.bit_length() > 200:
        return f"with about {int(value.bit_length() * 0.30103)} digits"
    text = str(value)
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"


def number_problems(
    data: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(path, message)`` for every number in ``data`` (nested lists and
    mappings) that is out of range. Walks with an explicit stack."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, data)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(((*where, k), v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(node))))
        else:
            problem = number_problem(node)
            if problem is not None:
                yield where, problem
