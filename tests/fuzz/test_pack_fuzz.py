"""A mutation fuzzer for the pack loader, with a fixed time budget.

The corpus (``corpus/packs/``) holds the seeds (the shipped pack, the test
packs, hostile ones written by hand) and interesting inputs the fuzzer found.
Every run first loads the whole corpus, then mutates it for the budget:
bytes and lines flipped, cut, doubled and spliced, values swapped for
hostile ones (huge numbers, durations, crons, faked event types, control
characters, aliases, tags). Whatever comes in, the loader must return a pack
whose every error is located (file, line, column, message), never raise and
never hang; the rules it accepts must start on an engine without an error.

- ``NERVE_FUZZ_SECONDS``: the budget (default 20).
- ``NERVE_FUZZ_SEED``: the random seed (default: fixed, so a run is repeatable).
- ``NERVE_FUZZ_SAVE=1``: keep inputs that reach a new kind of outcome in the corpus.

An input that breaks the loader is written to the corpus as ``crash-*.yaml``
before the test fails, so that it is replayed from then on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.engine.model import Rule
from nerve.packs.loader import Pack, PackError, load_pack

CORPUS = Path(__file__).parent / "corpus" / "packs"
BUDGET_S = float(os.environ.get("NERVE_FUZZ_SECONDS", "20"))
SEED = int(os.environ.get("NERVE_FUZZ_SEED", "20261207"))
SAVE = os.environ.get("NERVE_FUZZ_SAVE") == "1"
#: Longer than any load should take (the largest pack loads in well under a second).
PER_INPUT_S = 10.0

#: Values worth putting where a value was.
HOSTILE_VALUES = [
    "9" * 400,
    "-" + "9" * 30,
    "1" + "0" * 30,
    "9007199254740993",
    "1.0e+400",
    "-1.0e+300",
    "1.0e+16",
    '"9999999999d"',
    '"' + "9" * 150 + 'ms"',
    '"366d 1s"',
    '"1e999"',
    '"-5s"',
    '"0.0000001s"',
    "0",
    "-1",
    "0x7fffffffffffffff",
    "0o777777777777",
    "1_000_000",
    ".inf",
    "-.inf",
    ".nan",
    "~",
    "null",
    "yes",
    "2024-02-30",
    "20:00:00",
    '"0 0 31 2 *"',
    '"0 0 30 2 mon"',
    '"*/0 * * * *"',
    '"61 25 32 13 8"',
    '"file.created\\n"',
    '"key.down "',
    '"FILE.CREATED"',
    '"\\uff46ile.created"',
    '"file..created"',
    '"file.x"',
    '"hotkey"',
    '"a\\nb\\r\\u001b[2K\\u2028"',
    '"\\u0000"',
    '"{event.x}"',
    '"{event.}"',
    '"{input.nope}"',
    '"{{"',
    '"(a+)+$"',
    "*a",
    "&a x",
    "!!python/object:os.system x",
    "!!binary aGk=",
    "[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]",
    "{a: {b: {c: {d: {e: {f: 1}}}}}}",
    "[]",
    "{}",
    "'" + "x" * 5000 + "'",
    "'\\u202e'",
]
_VALUE = re.compile(rb"(?<=: )[^\n{}\[\],#]+|(?<=- )[^\n{}\[\],#:]+")
_SPECIAL = [
    *(bytes([c]) for c in b"\n\t:{}[]\"'&*!%#\x00\xff\r\\"),
    b"- ",
    b"\xef\xbb\xbf",
    b"<<: ",
    b"---\n",
    b"...",
]


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    for _ in range(rng.randint(1, 4)):
        data = rng.choice(_MUTATIONS)(data, rng, others)
    return data[: 1 << 20]


def _flip(data: bytes, rng: random.Random, _: list[bytes]) -> bytes:
    if not data:
        return b"x"
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]


def _cut(data: bytes, rng: random.Random, _: list[bytes]) -> bytes:
    if len(data) < 2:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, min(64, len(data) - i)) :]


def _insert(data: bytes, rng: random.Random, _: list[bytes]) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(_SPECIAL) + data[i:]


def _lines(data: bytes, rng: random.Random, _: list[bytes]) -> bytes:
    lines = data.split(b"\n")
    if len(lines) < 2:
        return data
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    how = rng.randrange(4)
    if how == 0:
        lines[i], lines[j] = lines[j], lines[i]
    elif how == 1:
        lines.insert(i, lines[j])
    elif how == 2:
        del lines[i]
    else:
        lines[i] = b" " * rng.choice([0, 1, 2, 3, 4, 6, 8]) + lines[i].lstrip(b" ")
    return b"\n".join(lines)


def _value(data: bytes, rng: random.Random, _: list[bytes]) -> bytes:
    spots = list(_VALUE.finditer(data))
    if not spots:
        return data
    spot = rng.choice(spots)
    new = rng.choice(HOSTILE_VALUES).encode()
    return data[: spot.start()] + new + data[spot.end() :]


def _splice(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    other = rng.choice(others)
    lines, theirs = data.split(b"\n"), other.split(b"\n")
    if not theirs:
        return data
    i = rng.randrange(len(lines) + 1)
    a = rng.randrange(len(theirs))
    return b"\n".join([*lines[:i], *theirs[a : a + rng.randint(1, 8)], *lines[i:]])


_MUTATIONS: list[Callable[[bytes, random.Random, list[bytes]], bytes]] = [
    _flip, _cut, _insert, _lines, _value, _value, _value, _splice,
]  # fmt: skip


# ----------------------------------------------------------------------- checking


def load_bounded(data: bytes) -> Pack:
    """``load_pack(data)`` on a daemon thread: a hang fails instead of blocking for ever."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["pack"] = load_pack(data, filename="fuzz.yaml")
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PER_INPUT_S)
    if thread.is_alive():
        raise AssertionError(f"the loader did not return within {PER_INPUT_S}s")
    if "error" in box:
        raise box["error"]
    pack: Pack = box["pack"]
    return pack


def check(pack: Pack) -> None:
    assert isinstance(pack, Pack)
    for error in pack.errors:
        assert isinstance(error, PackError)
        assert error.file == "fuzz.yaml"
        assert error.line >= 1
        assert error.column >= 1
        assert isinstance(error.message, str)
        assert error.message.strip()
        assert "Traceback" not in error.message
    for rule in pack.rules:
        assert isinstance(rule, Rule)
    assert len(pack.rules) <= max(pack.rule_count, 0)


def signature(pack: Pack) -> str:
    """A coarse kind of outcome: the first error's words (numbers and quoted bits dropped)."""
    if not pack.errors:
        return f"ok:{len(pack.rules) > 0}"
    message = pack.errors[0].message
    message = re.sub(r"'[^']*'|\"[^\"]*\"|\d+", "_", message)
    return f"{pack.errors[0].path.split('[')[0]}:{message[:60]}"


class StartErrors(logging.Handler):
    """Errors the engine logs while starting rules (a trigger that failed to start)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def engine() -> Iterator[tuple[Engine, StartErrors]]:
    errors = StartErrors()
    logger = logging.getLogger("nerve.engine")
    logger.addHandler(errors)
    eng = Engine(Bus())
    eng.start()
    yield eng, errors
    eng.call(eng.set_rules, [])
    eng.stop()
    logger.removeHandler(errors)


def run_one(data: bytes, engine: tuple[Engine, StartErrors]) -> Pack:
    try:
        pack = load_bounded(data)
        check(pack)
        if pack.rules:
            eng, errors = engine
            eng.call(eng.set_rules, pack.rules, timeout=PER_INPUT_S)
            assert not errors.messages, errors.messages
    except BaseException:
        name = f"crash-{hashlib.sha256(data).hexdigest()[:16]}.yaml"
        (CORPUS / name).write_bytes(data)
        raise
    return pack


# -------------------------------------------------------------------------- tests


def test_the_corpus_has_its_seeds() -> None:
    names = [p.name for p in corpus_files()]
    assert "seed-starter.yaml" in names
    assert sum(n.startswith("seed-hostile") for n in names) >= 3
    assert len(names) >= 50


@pytest.mark.timeout(120)
def test_every_corpus_input_loads_to_a_pack_or_located_errors(
    engine: tuple[Engine, StartErrors],
) -> None:
    for path in corpus_files():
        run_one(path.read_bytes(), engine)


@pytest.mark.timeout(BUDGET_S + 90)
def test_mutated_packs_load_to_a_pack_or_located_errors(
    engine: tuple[Engine, StartErrors],
) -> None:
    rng = random.Random(SEED)
    pool = [p.read_bytes() for p in corpus_files()]
    seen: set[str] = set()
    tried = 0
    deadline = time.monotonic() + BUDGET_S
    while time.monotonic() < deadline:
        data = mutate(rng.choice(pool), rng, pool)
        pack = run_one(data, engine)
        tried += 1
        kind = signature(pack)
        if kind not in seen:
            seen.add(kind)
            pool.append(data)  # an input that got somewhere new is mutated further
            if SAVE:
                name = f"found-{hashlib.sha256(data).hexdigest()[:16]}.yaml"
                (CORPUS / name).write_bytes(data)
    print(f"pack fuzz: {tried} inputs, {len(seen)} kinds of outcome, seed {SEED}")
    assert tried > 100
