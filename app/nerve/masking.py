"""Secret input values never leave a run in anything Nerve records.

A pack marks an input ``secret: true`` (a token, a password). The values the
user gave such inputs (at import, with ``--set``) are registered here when the
packs load, and from then on they are replaced by :data:`MASK` wherever
rendered text is recorded: log lines (every logger, through the log record
factory), run traces and errors (``nerve runs``, ``nerve status``), events
that rules emit and every event written to the event log, and variables.
The action that uses the value (an ``http`` header, a program's argument)
gets the real one.

Values shorter than :data:`MIN_LENGTH` characters are not masked: masking
them would blank ordinary words out of every log line. A pack's own default
is not a secret of the user's and is not registered (a pack could otherwise
declare a "secret" to blank its own traces out of the log).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_LENGTH = 4
#: At most this many values are remembered (the newest win).
LIMIT = 1000


#: At most this many private values (clipboard texts) are remembered.
PRIVATE_LIMIT = 64


class _Registry:
    """The values to mask, and the pattern that finds them (one per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, None] = {}
        #: Private values (clipboard text a rule read): the newest only.
        self.private: dict[str, None] = {}
        self.pattern: re.Pattern[str] | None = None
        self.log_installed = False


_registry = _Registry()


def register(values: Iterable[Any]) -> None:
    """Remember secret values to mask from now on (for the life of the process:
    a run started before a reload may still hold an older value)."""
    new = [
        spelling
        for v in values
        if v is not None and len(str(v)) >= MIN_LENGTH
        for spelling in spellings(str(v))
    ]
    if not new:
        return
    _add(_registry.values, new, LIMIT)


def register_private(value: str) -> None:
    """Mask ``value`` (text a rule read from the clipboard) from now on, as a
    secret; only the newest :data:`PRIVATE_LIMIT` such values are kept (they
    are masked where they enter anything recorded, which happens at once)."""
    if len(value) >= MIN_LENGTH:
        # A long text is masked as it is only (its other spellings would
        # multiply the memory kept).
        forms = spellings(value) if len(value) <= 64 * 1024 else [value]
        _add(_registry.private, forms, PRIVATE_LIMIT)


def _add(into: dict[str, None], new: list[str], limit: int) -> None:
    reg = _registry
    with reg.lock:
        for value in new:
            into.pop(value, None)
            into[value] = None
        while len(into) > limit:
            into.pop(next(iter(into)))
        # Longest first: a value that contains another is masked whole.
        ordered = sorted({**reg.values, **reg.private}, key=len, reverse=True)
        reg.pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None


def spellings(value: str) -> list[str]:
    """``value`` as it may appear in recorded text: as it is, escaped in JSON
    and in a Python repr, URL-encoded, quoted for a shell."""
    import json
    import shlex
    from urllib.parse import quote, quote_plus

    forms = [
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        value.replace("'", "'\\''"),
        shlex.quote(value),
    ]
    return list(dict.fromkeys(f for f in forms if len(f) >= MIN_LENGTH))


def clear() -> None:
    """Forget every value (tests)."""
    with _registry.lock:
        _registry.values.clear()
        _registry.private.clear()
        _registry.pattern = None


def active() -> bool:
    return _registry.pattern is not None


def mask(text: str) -> str:
    """``text`` with every registered secret value replaced by :data:`MASK`."""
    pattern = _registry.pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def mask_value(value: Any) -> Any:
    """A JSON-like value with every string (keys too) masked; other values as they are."""
    if _registry.pattern is None:
        return value
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {mask(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v) for v in value]
    return value


def holds_secret(value: Any) -> bool:
    """Whether a JSON-like value holds a registered secret anywhere."""
    pattern = _registry.pattern
    if pattern is None:
        return False
    if isinstance(value, str):
        return pattern.search(value) is not None
    if isinstance(value, Mapping):
        return any(holds_secret(str(k)) or holds_secret(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(holds_secret(v) for v in value)
    return False


# ------------------------------------------------------------------ logging


def install_log_masking() -> None:
    """Mask secrets in every log record, whichever logger and handler (idempotent).

    The message is rendered and masked when the record is made, and so is the
    text of an exception it carries."""
    with _registry.lock:
        if _registry.log_installed:
            return
        _registry.log_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _registry.pattern is None:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
