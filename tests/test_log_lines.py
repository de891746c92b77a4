"""One record, one line: what a rule name, a ``log``/``note`` text or an event's
data holds (newlines, carriage returns, ANSI escapes, NUL, Unicode line
separators) cannot forge a record in the log file or drive the terminal."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Harness, rules_from
from nerve.logs import CONSOLE_FORMAT, FILE_FORMAT, OneLineFormatter, SafeFormatter

FORGED = "2026-01-01 00:00:00,000 ERROR nerve [MainThread]: FORGED"
BREAKERS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
HIDERS = ["\x1b[2K", "\x1b[1A", "\x00", "\x08" * 10, "\x7f", "\u202e", "\x9b"]


def record(message: str, *args: object, name: str = "nerve") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    "formatter", [SafeFormatter(FILE_FORMAT), OneLineFormatter(CONSOLE_FORMAT)]
)
@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=80), thread=st.text(max_size=10))
def test_any_text_makes_one_line(formatter: logging.Formatter, text: str, thread: str) -> None:
    rec = record("[%s] %s", thread, text)
    rec.threadName = thread
    line = formatter.format(rec)
    assert len(line.splitlines()) <= 1, repr(line)
    assert "\x1b" not in line
    assert "\x00" not in line


@pytest.mark.parametrize("sep", BREAKERS + HIDERS)
def test_a_forged_record_stays_inside_the_real_one(sep: str) -> None:
    line = SafeFormatter(FILE_FORMAT).format(record("note: %s", f"real{sep}{FORGED}"))
    assert line.splitlines() == [line]
    assert line.count("FORGED") == 1
    assert "note: real" in line
    assert not line.startswith("2026-01-01")


def test_a_traceback_follows_on_indented_lines() -> None:
    try:
        raise ValueError(f"bad\n{FORGED}\r\x1b[2K")
    except ValueError:
        rec = logging.LogRecord("nerve", logging.ERROR, __file__, 1, "failed", (), None)
        rec.exc_info = sys.exc_info()
    text = SafeFormatter(FILE_FORMAT).format(rec)
    first, *rest = text.split("\n")
    assert first.endswith("failed")
    assert rest
    assert all(line.startswith("    ") for line in rest), rest
    assert "\x1b" not in text
    assert "\r" not in text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter(FILE_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.mark.parametrize("sep", ["\n", "\r\n", "\u2028", "\x1b[2K\r"])
def test_log_actions_rule_names_and_event_data_cannot_forge_lines(
    harness: Harness, captured: io.StringIO, sep: str
) -> None:
    [rule] = rules_from(
        f"  - id: note\n    name: {_quoted('Note' + sep + FORGED)}\n"
        "    when: {event: x.note}\n"
        f"    do: [{{log: {_quoted('note' + sep + FORGED + ' {event.text}')}}}, "
        "{emit: x.logged}]\n"
    )
    harness.engine.call(harness.engine.set_rules, [rule])
    harness.publish("x.note", text=f"data{sep}{FORGED}")
    harness.recorder.wait("x.logged")
    text = captured.getvalue()
    lines = text.splitlines()
    assert lines, text
    for line in lines:
        assert not line.startswith("2026-01-01"), line
    assert any("note" in line and "FORGED" in line for line in lines), text


def _quoted(text: str) -> str:
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text) + '"'


def test_the_console_line_of_an_error_is_escaped_too() -> None:
    try:
        raise OSError(f"disk\r{FORGED}\x1b[2K")
    except OSError:
        rec = logging.LogRecord("nerve", logging.ERROR, __file__, 1, "failed", (), None)
        rec.exc_info = sys.exc_info()
    line = OneLineFormatter(CONSOLE_FORMAT).format(rec)
    assert line.splitlines() == [line]
    assert "\x1b" not in line
    assert "\r" not in line
