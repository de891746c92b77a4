"""Where Nerve's log lines go.

The terminal gets one line per message: a traceback never reaches it unless
``--verbose`` asks for it. The desktop app and ``nerve run --headless`` also
keep a rotating log file in the platform's log folder (``add_file``). An
unexpected error anywhere (the command line, a thread, a Qt slot) is written
with its traceback to that file, and the user is told where it is.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import platform
import re
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from nerve import __version__

CONSOLE_FORMAT = "nerve: %(levelname)s: %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"
MAX_BYTES = 2_000_000
BACKUPS = 3

#: ``extra=FILE_ONLY`` keeps a record off the terminal (it still reaches the log file).
FILE_ONLY = {"nerve_file_only": True}

log = logging.getLogger("nerve")

#: Handler names on the root logger.
CONSOLE_HANDLER, FILE_HANDLER = "nerve-console", "nerve-file"


def _file_handler() -> logging.handlers.RotatingFileHandler | None:
    for handler in logging.getLogger().handlers:
        if handler.name == FILE_HANDLER and isinstance(
            handler, logging.handlers.RotatingFileHandler
        ):
            return handler
    return None


def _verbose() -> bool:
    """Whether the terminal gets tracebacks (``--verbose``)."""
    return any(
        h.name == CONSOLE_HANDLER and not isinstance(h.formatter, OneLineFormatter)
        for h in logging.getLogger().handlers
    )


#: Characters that could end a log line or disguise one: C0 and C1 controls
#: (newline, carriage return, escape for ANSI sequences, NUL...), DEL, the
#: Unicode line and paragraph separators, and the bidirectional overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``,
    ``\\x1b``, ``\\u2028``): what a rule name, a ``log`` action's text or an
    event's data holds cannot start a line of its own, forge a record or drive
    the terminal."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape_char, text)


def _indented(text: str) -> str:
    """A traceback or stack under its record: each line escaped and indented, so
    that none of them (an exception's message included) can pass for a record."""
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


class SafeFormatter(logging.Formatter):
    """One record, one line: the message (and every other field) has its control
    characters escaped; a traceback follows on indented lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


class OneLineFormatter(SafeFormatter):
    """A record on one line: an exception shows as ``(Type: message)``, not a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        if exc and exc[1] is not None:
            file = _file_handler()
            where = f"; the traceback is in {file.baseFilename}" if file else ""
            line += escape_controls(f" ({describe(exc[1])}{where})")
        return line


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "nerve_file_only", False)


def describe(exc: BaseException) -> str:
    """``Type: message`` (or just ``Type``) for a one-line report."""
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {text[0]}" if text else name


def setup_console(verbose: bool) -> None:
    """Log to standard error: INFO and up, or everything with tracebacks if ``verbose``.

    Replaces the root logger's handlers, except a log file already added.
    """
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.name == FILE_HANDLER]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # APScheduler reports every job run at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if sys.stderr is None:  # started without a terminal or a standard error at all
        return
    handler = logging.StreamHandler(sys.stderr)
    if verbose:
        handler.setFormatter(SafeFormatter(CONSOLE_FORMAT))
    else:
        handler.setFormatter(OneLineFormatter(CONSOLE_FORMAT))
        handler.addFilter(_not_file_only)
    handler.set_name(CONSOLE_HANDLER)
    root.addHandler(handler)


def add_file(log_file: Path) -> Path | None:
    """Also log to ``log_file`` (rotated at 2 MB, 3 old files kept); its path, or None.

    Idempotent. When the file cannot be opened, says so once on the terminal and
    returns None: Nerve runs on without a log file.
    """
    existing = _file_handler()
    if existing is not None:
        return Path(existing.baseFilename)
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename and Path(exc.filename) != log_file:
            reason = f"{exc.filename}: {reason}"
        log.warning("cannot write the log file %s (%s); logging here only", log_file, reason)
        return None
    handler.setFormatter(SafeFormatter(FILE_FORMAT))
    handler.set_name(FILE_HANDLER)
    logging.getLogger().addHandler(handler)
    log.info(
        "log opened: nerve %s, pid %d, Python %s, %s; %s",
        __version__,
        os.getpid(),
        platform.python_version(),
        platform.platform(),
        " ".join(sys.argv),
        extra=FILE_ONLY,
    )
    return Path(handler.baseFilename)


def log_file() -> Path | None:
    """The log file in use, if any."""
    handler = _file_handler()
    return Path(handler.baseFilename) if handler else None


def close_file() -> None:
    """Stop logging to the file (tests, and a process that is done)."""
    handler = _file_handler()
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _default_log_file() -> Path:
    from nerve.paths import locations

    return locations().log_file


def report_unexpected(exc: BaseException) -> str:
    """Write ``exc`` with its traceback to the log file; the line to show the user.

    The log file in the platform's log folder is opened if none is open yet.
    If it cannot be written, the traceback goes to standard error after all:
    better than losing it.
    """
    path = add_file(_default_log_file())
    log.critical("unexpected error", exc_info=(type(exc), exc, exc.__traceback__), extra=FILE_ONLY)
    if path is not None:
        return (
            f"nerve: unexpected error: {describe(exc)}; the details are in {path} "
            "(please include them when you report it)"
        )
    if sys.stderr is not None and not _verbose():
        traceback.print_exception(exc, file=sys.stderr)
    return f"nerve: unexpected error: {describe(exc)} (no log file could be written)"


def _uncaught(
    kind: type[BaseException], exc: BaseException, tb: TracebackType | None, where: str
) -> None:
    if _file_handler() is None:
        add_file(_default_log_file())
    log.error("unexpected error %s", where, exc_info=(kind, exc, tb))


def install_hooks() -> None:
    """Uncaught exceptions in threads and Qt slots are logged, not printed as tracebacks."""

    def on_exception(
        kind: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        _uncaught(kind, exc, tb, "in the main thread")

    def on_thread_exception(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread else "?"
        _uncaught(args.exc_type, args.exc_value, args.exc_traceback, f"in thread {name}")

    sys.excepthook = on_exception
    threading.excepthook = on_thread_exception
