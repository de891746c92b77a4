"""Cron expressions in words, for people reading rules ("every 5 minutes",
"at 07:30 on Monday to Friday"). Falls back to the expression itself for
shapes it does not know, never to a wrong sentence."""

from __future__ import annotations

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_DAY_NAMES = {d[:3].lower(): i for i, d in enumerate(_DAYS)}
_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _days(field: str) -> str | None:
    """``1-5`` -> Monday to Friday, ``sat,sun`` -> Saturday and Sunday."""
    if field == "*":
        return ""
    parts: list[str] = []
    for item in field.split(","):
        lo, _, hi = item.partition("-")
        a = _day(lo)
        b = _day(hi) if hi else None
        if a is None or (hi and b is None):
            return None
        parts.append(f"{_DAYS[a]} to {_DAYS[b]}" if b is not None else _DAYS[a])
    return " and ".join(parts) if len(parts) <= 2 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _day(text: str) -> int | None:
    text = text.strip().lower()
    if text in _DAY_NAMES:
        return _DAY_NAMES[text]
    value = _int(text)
    return value % 7 if value is not None and value <= 7 else None


def describe_cron(expression: str) -> str:
    """A sentence for a five-field cron expression."""
    fields = expression.split()
    if len(fields) != 5:
        return f"cron {expression}"
    minute, hour, dom, month, dow = fields
    days = _days(dow)
    if days is None:
        return f"cron {expression}"
    tail = ""
    if days:
        tail += f" on {days}"
    if dom != "*":
        n = _int(dom)
        if n is None:
            return f"cron {expression}"
        tail += f" on day {n} of the month"
    if month != "*":
        m = _int(month)
        if m is None or not 1 <= m <= 12:
            return f"cron {expression}"
        tail += f" in {_MONTHS[m - 1]}"
    m_val, h_val = _int(minute), _int(hour)
    if m_val is not None and h_val is not None:
        return f"at {h_val:02d}:{m_val:02d}" + (tail or " every day")
    if minute.startswith("*/") and _int(minute[2:]) and hour == "*":
        step = int(minute[2:])
        what = "every minute" if step == 1 else f"every {step} minutes"
        return what + tail
    if minute == "*" and hour == "*":
        return "every minute" + tail
    if m_val is not None and hour == "*":
        return f"every hour at minute {m_val}" + tail
    if m_val is not None and hour.startswith("*/") and _int(hour[2:]):
        step = int(hour[2:])
        return f"every {step} hours at minute {m_val}" + tail
    return f"cron {expression}"
