"""Durations as people write them: ``500ms``, ``2s``, ``10m``, ``1h``, ``1h30m``.

Every duration Nerve takes from a pack, from event data (a ``delay`` of
``{event.in}``) or from the command line has a range: from 0 to
:data:`MAX_DURATION_S` (366 days) unless the caller gives another limit.
Past it the value is refused with a message for the user, never turned into
an endless timer or an arithmetic overflow.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# ASCII digits only (re.ASCII): float() would also read other scripts' digits.
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.ASCII)
_WHOLE = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+", re.ASCII)
_BARE = re.compile(r"\s*\d+(?:\.\d*)?(?:e[+-]?\d+)?\s*", re.ASCII)
#: Longer than any text a duration is written in (a bound on the work to read one).
MAX_DURATION_TEXT: Final = 200

#: The longest duration Nerve takes anywhere in a pack: 366 days.
MAX_DURATION_S: Final = 366 * 86400
MAX_DURATION_TEXT_FORM: Final = "366d"


class DurationTooLong(ValueError):
    """A duration past its limit (a well-formed one: its text was understood)."""


_HELP = "expected a duration such as 500ms, 2s, 10m or 1h"


def parse_duration(value: object, *, maximum: float = MAX_DURATION_S) -> float:
    """Seconds for ``value``: a number (seconds) or text such as ``1h30m``.

    Raises ValueError with a message fit for the user, also for a duration
    over ``maximum`` seconds (366 days unless said otherwise).
    """
    if isinstance(value, bool):
        raise ValueError(f"{_HELP}, got {value!r}")
    if isinstance(value, (int, float)):
        # Compared as they are: a huge int is never turned into a float.
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number (got {value})")
        if value < 0:
            raise ValueError(f"a duration cannot be negative (got {_short(value)})")
        if value > maximum:
            raise DurationTooLong(_too_long(value, maximum))
        return float(value)
    if isinstance(value, str):
        if len(value) > MAX_DURATION_TEXT:
            raise ValueError(f"{_HELP}, got text of {len(value)} characters")
        text = value.strip().lower()
        seconds: float | None = None
        if _WHOLE.fullmatch(text):
            seconds = math.fsum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        elif _BARE.fullmatch(text):
            seconds = float(text)
        if seconds is not None:
            if not math.isfinite(seconds) or seconds > maximum:  # "1e999", "9999999999d"
                raise DurationTooLong(_too_long(value, maximum))
            return seconds
    raise ValueError(f"{_HELP}, got {_short(value)}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _too_long(value: object, maximum: float) -> str:
    limit = MAX_DURATION_TEXT_FORM if maximum == MAX_DURATION_S else format_duration(float(maximum))
    return f"a duration is at most {limit}, got {_short(value)}"


def format_duration(seconds: float) -> str:
    """The short form of ``seconds`` (``1.5s``, ``10m``, ``250ms``)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


#: A duration in a schema. The number branch carries the range; for text the
#: pattern checks the form and ``maxDuration`` (a keyword of Nerve's validator,
#: an annotation to other JSON Schema tools) the length.
DURATION_SCHEMA: dict[str, Any] = {
    "description": (
        f"A duration: 500ms, 2s, 10m, 1h (a bare number is seconds); "
        f"from 0 to {MAX_DURATION_TEXT_FORM}"
    ),
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
        {
            "type": "string",
            "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$",
            "maxLength": MAX_DURATION_TEXT,
            "maxDuration": MAX_DURATION_S,
        },
    ],
}
