"""Expansions and ``type`` actions pasted through the clipboard, into a real Qt
text field on Xvfb: the text arrives exactly, the user's clipboard (text, an
image, or nothing) is put back as it was, and Nerve's own clipboard change
is nobody's ``clipboard.changed``."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import LiveHarness, wait_until
from xclients.qt_field import QtField
from xclients.typist import INSTANT, STEADY, Profile, Typist

pytestmark = pytest.mark.usefixtures("xserver_wm")

SetClipboard = Callable[..., None]


def long_text(size: int, seed: int = 1) -> str:
    """``size`` characters of words, non-ASCII letters, emoji, tabs and newlines."""
    rnd = random.Random(seed)
    pieces = ["word", "Grüße", "señor", "ßß", "ÉÉ", "😀", "👍", "a&&b", "{x}", "\n", "\t", " "]
    out = ""
    while len(out) < size:
        out += rnd.choice(pieces)
    return out[:size]


LONG = long_text(1000)


def literal(text: str) -> str:
    """``text`` as a YAML string whose braces are literal (not placeholders)."""
    return json.dumps(text.replace("{", "{{").replace("}", "}}"), ensure_ascii=False)


def rules(method: str = "paste", extra: str = "", text: str = LONG) -> str:
    return f"""
  - id: long
    when: {{typed: ";long"}}
    do: [{{type: {{text: {literal(text)}, method: {method}{extra}}}}}]
"""


@pytest.fixture
def qt_field(xserver_wm: Any) -> Iterator[QtField]:
    f = QtField(xserver_wm.display)
    yield f
    f.close()


@pytest.fixture
def typist(xserver_wm: Any) -> Iterator[Typist]:
    from nerve import injection

    t = Typist(xserver_wm.display, seed=11)
    yield t
    injection.reset()
    t.close()


@pytest.fixture
def xclip() -> Iterator[SetClipboard]:
    """Put data on the clipboard with xclip, as another program would."""
    procs: list[subprocess.Popen[bytes]] = []

    def put(data: str | bytes, mime: str | None = None) -> None:
        argv = ["xclip", "-quiet", "-selection", "clipboard", "-i"]
        if mime:
            argv += ["-t", mime]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert proc.stdin is not None
        proc.stdin.write(data.encode() if isinstance(data, str) else data)
        proc.stdin.close()
        procs.append(proc)
        wait_until(lambda: clipboard_owner() != 0, what="xclip to own the clipboard")

    yield put
    for proc in procs:
        proc.kill()
        proc.wait()


def clipboard_owner() -> int:
    from Xlib import display

    d = display.Display()
    try:
        owner = d.get_selection_owner(d.intern_atom("CLIPBOARD"))
        return int(getattr(owner, "id", owner) or 0)
    finally:
        d.close()


def read_clipboard(target: str | None = None) -> bytes:
    argv = ["xclip", "-o", "-selection", "clipboard"] + (["-t", target] if target else [])
    return subprocess.run(argv, capture_output=True, timeout=10, check=True).stdout


def png(width: int, height: int, seed: int = 3) -> bytes:
    """A real PNG of random pixels (incompressible: large on the clipboard)."""
    rnd = random.Random(seed)
    raw = b"".join(b"\0" + rnd.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


def expand(live: LiveHarness, typist: Typist, profile: Profile, typed: str = "ok ;long") -> None:
    live.listener("keyboard")
    live.listener("clipboard")
    typist.type(typed, profile)


@pytest.mark.parametrize("profile", [INSTANT, STEADY], ids=str)
def test_a_long_paste_arrives_exactly_and_the_users_text_comes_back(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard, profile: Profile
) -> None:
    mine = "the user's own copy ✓\nsecond line 😀"
    xclip(mine)
    live.load(rules())
    expand(live, typist, profile)
    assert qt_field.settle() == "ok " + LONG
    wait_until(lambda: live.summary("long")["last_run"] is not None)
    assert live.summary("long")["last_run"]["status"] == "ok"
    assert read_clipboard().decode() == mine
    assert read_clipboard("UTF8_STRING").decode() == mine
