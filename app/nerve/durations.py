"""Durations as people write them: ``500ms``, ``2s``, ``10m``, ``1h``, ``1h30m``."""

from __future__ import annotations

import math
import re
from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+$")


def parse_duration(value: object) -> float:
    """Seconds for ``value``: a number (seconds) or text such as ``1h30m``.

    Raises ValueError with a message fit for the user.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 500ms, 2s, 10m or 1h, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number (got {value})")
        if value < 0:
            raise ValueError(f"a duration cannot be negative (got {value})")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if _WHOLE.match(text):
            return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        try:
            seconds = float(text)
        except ValueError:
            pass
        else:
            if seconds >= 0 and math.isfinite(seconds):  # not "inf", "1e999" or "nan"
                return seconds
    raise ValueError(f"expected a duration such as 500ms, 2s, 10m or 1h, got {value!r}")


def format_duration(seconds: float) -> str:
    """The short form of ``seconds`` (``1.5s``, ``10m``, ``250ms``)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


DURATION_SCHEMA: dict[str, Any] = {
    "description": "A duration: 500ms, 2s, 10m, 1h (a bare number is seconds)",
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$"},
    ],
}
