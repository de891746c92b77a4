"""Fuzz the control socket of a real instance: mutated, garbage, oversized and
partial JSON lines, within a fixed time budget and from a fixed seed. The
instance must keep answering ``status`` correctly and never log a traceback.

The corpus (``corpus/ipc/``) holds the seeds and the inputs found interesting
(each gave a reply the corpus had not produced before). Run with
``NERVE_FUZZ_SAVE=1`` to add newly interesting inputs to it;
``NERVE_FUZZ_BUDGET`` (seconds) and ``NERVE_FUZZ_SEED`` change the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import time
from pathlib import Path

import pytest

from nerve import ipc
from test_cli import PACK, StartNerve, socket_file, start_nerve  # noqa: F401

CORPUS = Path(__file__).parent / "corpus" / "ipc"
BUDGET_S = float(os.environ.get("NERVE_FUZZ_BUDGET", "25"))
SEED = int(os.environ.get("NERVE_FUZZ_SEED", "20261207"))
SAVE = os.environ.get("NERVE_FUZZ_SAVE") == "1"
#: An answer to ``status`` is checked after this many inputs.
CHECK_EVERY = 25

TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'"',
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"NaN",
    b"-Infinity",
    b'"cmd"',
    b'"args"',
    b'"v"',
    b'"id"',
    b'"status"',
    b'"emit"',
    b'"pause"',
    b'"reload"',
    b'"type"',
    b'"data"',
    b'"for"',
    b"\n",
    b"\r",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xf0\x9f\x98",
    b"9" * 400,
]


def seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.is_file()]


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(11)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert a token
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and buf:  # delete a run
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 3:  # truncate (a partial line)
            del buf[pos:]
        elif op == 4 and buf:  # duplicate a slice
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 50)
        elif op == 5:  # splice with another input
            other = rng.choice(pool)
            cut = rng.randint(0, len(other))
            buf[pos:] = other[cut:]
        elif op == 6:  # random bytes
            buf[pos:pos] = rng.randbytes(rng.randint(1, 32))
        elif op == 7:  # deep nesting
            depth = rng.choice([10, 1000, 100_000])
            buf[pos:pos] = b"[" * depth + b"]" * rng.choice([0, depth])
        elif op == 8:  # oversized (over the 1 MiB limit, or just under)
            size = rng.choice([(1 << 20) - 64, (1 << 20) + 1, 3 << 20])
            buf[pos:pos] = b'"' + b"a" * size + b'"'
        elif op == 9:  # a newline in the middle: two (broken) requests
            buf[pos:pos] = b"\n"
        else:  # replace a number or a string with something odd
            text = bytes(buf)
            m = list(re.finditer(rb'-?\d+(\.\d+)?|"[^"]*"', text))
            if m:
                hit = rng.choice(m)
                buf[hit.start() : hit.end()] = rng.choice(TOKENS)
    return bytes(buf)


def exchange(path: Path, data: bytes, *, close_early: bool) -> bytes:
    """Send ``data`` on a fresh connection, read what comes back for a moment."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(os.fspath(path))
        try:
            sock.sendall(data)
            if close_early:
                return b""
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server hung up on an oversized line: read its reason
        out = bytearray()
        sock.settimeout(2)
        try:
            while len(out) < 4 << 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (TimeoutError, OSError):
            pass
        return bytes(out)
    finally:
        sock.close()


def signature(reply: bytes) -> str:
    """A reply's kind: the error messages without their variable parts."""
    kinds = []
    for line in reply.splitlines()[:20]:
        try:
            message = json.loads(line)
        except ValueError:
            kinds.append("garbled")
            continue
        if not isinstance(message, dict):
            kinds.append("odd")
        elif message.get("ok"):
            kinds.append("ok")
        else:
            error = str(message.get("error"))
            kinds.append(" ".join(re.sub(r"[\d'\"(:].*", "", error).split()[:4]))
    return "|".join(sorted(set(kinds)))


@pytest.mark.timeout(BUDGET_S + 90)
def test_fuzzing_the_socket_never_breaks_the_instance(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
) -> None:
    instance = start_nerve("--rules", PACK)
    path = socket_file(nerve_env)
    rng = random.Random(SEED)
    pool = seeds()
    seen = {signature(exchange(path, data, close_early=False)) for data in pool}
    tried = checks = 0
    found: list[bytes] = []
    deadline = time.monotonic() + BUDGET_S
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(pool), pool)
        reply = exchange(path, data, close_early=rng.random() < 0.1)
        tried += 1
        kind = signature(reply)
        if kind and kind not in seen:
            seen.add(kind)
            found.append(data)
            if len(data) < 64 << 10:
                pool.append(data)
        if tried % CHECK_EVERY == 0:
            status = ipc.request("status", path=path, timeout=10)
            assert status["pid"] == instance.pid
            assert status["engine"]["rules"] == 1
            checks += 1
    # Whatever the fuzzing paused, the instance still answers everything.
    ipc.request("resume", path=path)
    status = ipc.request("status", path=path, timeout=10)
    assert status["pid"] == instance.pid
    assert status["engine"]["paused"] is False
    print(f"ipc fuzz: {tried} inputs, {checks} status checks, {len(found)} new reply kinds")
    assert tried > 100
    if SAVE:  # (small ones: the mutator makes the oversized ones again)
        for data in found:
            if len(data) > 16 << 10:
                continue
            name = "found-" + hashlib.sha256(data).hexdigest()[:12] + ".jsonl"
            (CORPUS / name).write_bytes(data)
    instance.stop()
    output = instance.output()
    log = Path(nerve_env["XDG_STATE_HOME"]) / "nerve" / "log" / "nerve.log"
    logged = log.read_text(errors="replace") if log.exists() else ""
    for text in (output, logged):
        at = max(text.find("Traceback"), text.find("internal error"))
        assert at < 0, text[max(0, at - 2000) : at + 3000]
