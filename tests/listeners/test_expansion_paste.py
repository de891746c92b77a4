"""Expansions and ``type`` actions pasted through the clipboard, into a real Qt
text field on Xvfb: the text arrives exactly, the user's clipboard (text, an
image, or nothing) is put back as it was, and Nerve's own clipboard change
is nobody's ``clipboard.changed``."""

from __future__ import annotations

import json
import logging
import random
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import LiveHarness, wait_until
from xclients.qt_field import QtField
from xclients.typist import INSTANT, STEADY, Profile, Typist

pytestmark = pytest.mark.usefixtures("xserver_wm")

SetClipboard = Callable[..., None]


def long_text(size: int, seed: int = 1) -> str:
    """``size`` characters of words, non-ASCII letters, emoji, tabs and newlines."""
    rnd = random.Random(seed)
    pieces = ["word", "Grüße", "señor", "ßß", "ÉÉ", "😀", "👍", "a&&b", "{x}", "\n", "\t", " "]
    out: list[str] = []
    length = 0
    while length < size:
        out.append(rnd.choice(pieces))
        length += len(out[-1])
    return "".join(out)[:size]


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


def field_texts(field: QtField) -> list[str]:
    with field._cond:
        return [str(m["text"]) for m in field.lines if "text" in m]


def arrived_at_once(field: QtField, before: str, replacement: str) -> bool:
    """Whether ``replacement`` appeared after ``before`` in one change (pasted),
    not character by character (typed)."""
    final = before + replacement
    partial = [
        t
        for t in field_texts(field)
        if len(before) < len(t) < len(final) and final.startswith(t) and t.startswith(before)
    ]
    return not partial and final in field_texts(field)


def test_an_image_on_the_clipboard_comes_back_byte_exact(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard
) -> None:
    image = png(400, 400)  # about 480 KB: both ways in chunks (INCR)
    assert len(image) > 256 * 1024
    xclip(image, mime="image/png")
    live.load(rules())
    expand(live, typist, INSTANT)
    assert qt_field.settle() == "ok " + LONG
    assert read_clipboard("image/png") == image
    assert b"image/png" in read_clipboard("TARGETS")


def test_an_empty_clipboard_is_left_empty(
    live: LiveHarness, typist: Typist, qt_field: QtField
) -> None:
    wait_until(lambda: clipboard_owner() == 0, what="nobody to own the clipboard")
    live.load(rules(text="pasted into an empty clipboard ✓"))
    expand(live, typist, INSTANT)
    assert qt_field.settle() == "ok pasted into an empty clipboard ✓"
    wait_until(lambda: clipboard_owner() == 0, what="the clipboard to be given up")


def test_auto_pastes_long_texts_and_types_short_ones(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard
) -> None:
    xclip("mine")
    short = long_text(40, seed=5)
    long = long_text(41, seed=6)
    live.load(f"""
  - id: short
    when: {{typed: ";s"}}
    do: [{{type: {{text: {literal(short)}, paste_above: 40}}}}]
  - id: long
    when: {{typed: ";l"}}
    do: [{{type: {{text: {literal(long)}, paste_above: 40}}}}]
  - id: default
    when: {{typed: ";d"}}
    do: [{{type: {literal(LONG[:201])}}}]
""")
    expand(live, typist, INSTANT, "a ;s")
    got = qt_field.settle()
    assert got == "a " + short, (live.summary("short"), live.recorder.of("typed"))
    assert not arrived_at_once(qt_field, "a ", short)  # typed
    qt_field.clear()
    typist.type("b ;l", INSTANT)
    assert qt_field.settle() == "b " + long
    assert arrived_at_once(qt_field, "b ", long)  # pasted
    qt_field.clear()
    typist.type("c ;d", INSTANT)  # by default, above 200 characters
    assert qt_field.settle() == "c " + LONG[:201]
    assert arrived_at_once(qt_field, "c ", LONG[:201])
    assert read_clipboard() == b"mine"


def test_the_clipboard_placeholder_types_the_clipboards_text(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard
) -> None:
    copied = "copied: Grüße {x} 😀\nline two"
    xclip(copied)
    live.load("""
  - id: quote
    when: {typed: ";q"}
    do: [{type: {text: "«{clipboard}»", method: type}}]
  - id: quote_pasted
    when: {typed: ";p"}
    do: [{type: {text: "«{clipboard}»", method: paste}}]
""")
    expand(live, typist, STEADY, "x ;q")
    assert qt_field.settle() == f"x «{copied}»"
    qt_field.clear()
    typist.type("y ;p", STEADY)
    assert qt_field.settle() == f"y «{copied}»"
    assert read_clipboard().decode() == copied
    # Put back by Nerve, which serves it now: read again from there.
    qt_field.clear()
    typist.type("z ;q", STEADY)
    assert qt_field.settle() == f"z «{copied}»"


def test_nerves_own_paste_is_no_clipboard_change(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard
) -> None:
    xclip("before")
    live.load(
        rules()
        + """
  - id: copied
    when: {clipboard.changed: {}}
    do: [{emit: {type: test.copied, data: {text: "{event.text}"}}}]
"""
    )
    expand(live, typist, INSTANT)
    assert qt_field.settle() == "ok " + LONG
    wait_until(lambda: live.summary("long")["last_run"] is not None)
    assert read_clipboard() == b"before"
    # Nothing of Nerve's paste or of its putting the clipboard back fired.
    assert live.recorder.of("clipboard.changed") == []
    assert live.recorder.of("test.copied") == []
    xclip("after")  # another program's copy still does
    wait_until(lambda: [e.get("text") for e in live.recorder.of("test.copied")] == ["after"])


@pytest.mark.parametrize("profile", [INSTANT, STEADY], ids=str)
def test_backspace_right_after_a_pasted_expansion_undoes_it(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard, profile: Profile
) -> None:
    xclip("mine")
    live.load(rules())
    expand(live, typist, profile)
    qt_field.wait_text("ok " + LONG)
    wait_until(lambda: live.summary("long")["last_run"] is not None)
    start = len(qt_field.lines)
    typist.type("\b", profile)
    qt_field.wait(lambda m: m.get("text") == "ok ;long", 20, "the abbreviation back", start)
    assert qt_field.settle() == "ok ;long"
    assert read_clipboard() == b"mine"


def test_the_caret_marker_works_with_a_paste(
    live: LiveHarness, typist: Typist, qt_field: QtField
) -> None:
    before, after = LONG[:300], " after {x}"
    live.load(rules(text=before + "$|$" + after))
    expand(live, typist, INSTANT)
    # Qt counts the caret in UTF-16 units.
    caret = len(("ok " + before).encode("utf-16-le")) // 2
    qt_field.wait(
        lambda m: m.get("text") == "ok " + before + after and m.get("cursor") == caret,
        what="the pasted text, with the caret at the marker",
    )
    typist.type("X", INSTANT)
    assert qt_field.settle() == "ok " + before + "X" + after


@pytest.mark.parametrize(
    "copied",
    ["a private copy ✓ with \"quotes\" and 'more'\nsecond line", "Grüße 😀 {x}", "Zq"],
    ids=["text", "unicode", "short"],
)
def test_the_clipboards_text_is_never_recorded(
    tmp_path: Any, xclip: SetClipboard, caplog: pytest.LogCaptureFixture, copied: str
) -> None:
    from nerve.storage import Store

    caplog.set_level(logging.DEBUG)
    store = Store(tmp_path / "nerve.db")
    live = LiveHarness(store=store)
    try:
        xclip(copied)
        live.load("""
  - id: r
    when: {event: t.go}
    do:
      - log: "got {clipboard}"
      - set: {copied: "<{clipboard}>"}
      - emit: {type: test.copied, data: {text: "{clipboard}!"}}
      - run: {argv: ["/nonexistent/{clipboard}"]}
        continue_on_error: true
      - type: {text: "{clipboard}", method: type}
""")
        live.listener("clipboard")
        live.publish("t.go")
        wait_until(lambda: live.summary("r")["last_run"] is not None, what="the run")
        (copy,) = wait_until(lambda: live.recorder.of("test.copied"))
        wait_until(lambda: store.query_runs(rule_id="test.pack/r"), what="the run stored")
        (run,) = store.query_runs(rule_id="test.pack/r")
        trace = json.dumps(run, ensure_ascii=False)
        assert copied not in trace
        assert json.dumps(copied)[1:-1] not in trace
        results = [a.get("result", a.get("error")) for a in run["trace"]["actions"]]
        assert results[0] == "got ***"
        assert results[1] == {"copied": "<***>"}
        assert "***" in str(results[3])
        assert store.load_variables()["copied"] == "<***>"
        assert copy.get("text") == "***!"  # emitted events are recorded too
        rule_lines = [r.getMessage() for r in caplog.records if r.name == "nerve.rules"]
        assert rule_lines == ["[test.pack/r] got ***"]
        assert not any(copied in r.getMessage() for r in caplog.records)
    finally:
        live.close()
        store.close()
    if len(copied) >= 4:  # (a short one may occur by chance in any binary file)
        for path in tmp_path.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert copied.encode() not in data, path
                assert json.dumps(copied).encode()[1:-1] not in data, path


@pytest.mark.parametrize("profile", [INSTANT, STEADY], ids=str)
def test_typing_on_while_the_paste_goes_out_lands_after_it(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard, profile: Profile
) -> None:
    xclip("mine")
    live.load(rules())
    expand(live, typist, profile, "ok ;long and more words")
    assert qt_field.settle(quiet=0.5) == "ok " + LONG + " and more words"
    assert read_clipboard() == b"mine"


def test_a_clipboard_nerve_itself_set_comes_back(
    live: LiveHarness, typist: Typist, qt_field: QtField
) -> None:
    live.load(
        rules()
        + """
  - id: set
    when: {event: t.set}
    do: [{clipboard: "set by a rule ✓"}]
"""
    )
    live.listener("clipboard")
    live.publish("t.set")
    wait_until(lambda: read_clipboard() == "set by a rule ✓".encode(), what="the rule's copy")
    expand(live, typist, INSTANT)
    assert qt_field.settle() == "ok " + LONG
    assert read_clipboard().decode() == "set by a rule ✓"
    for target in ("UTF8_STRING", "text/plain;charset=utf-8", "text/plain", "TEXT"):
        assert read_clipboard(target).decode() == "set by a rule ✓", target
    assert read_clipboard("STRING") == "set by a rule ?".encode("latin-1")


def test_a_copy_from_the_field_itself_comes_back(
    live: LiveHarness, typist: Typist, qt_field: QtField
) -> None:
    """The application pasted into owns the user's clipboard (every Qt target)."""
    from nerve import injection

    live.load(rules())
    live.listener("keyboard")
    live.listener("clipboard")
    qt_field.command('set "copied in Qt ✓"', lambda m: m.get("done") == "set")
    injection.injector().send_combos([x11_combo("ctrl+a"), x11_combo("ctrl+c")])
    wait_until(lambda: read_clipboard() == "copied in Qt ✓".encode(), what="Qt's copy")
    typist.type("\n;long", INSTANT)  # (the text was selected: Return replaces it)
    assert qt_field.settle() == "\n" + LONG
    assert read_clipboard().decode() == "copied in Qt ✓"
    assert read_clipboard("text/plain").decode() == "copied in Qt ✓"


def x11_combo(text: str) -> Any:
    from nerve.listeners import x11

    return x11.parse_combo(text)


def test_the_placeholder_is_empty_when_the_clipboard_holds_no_text(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard
) -> None:
    xclip(png(8, 8), mime="image/png")
    live.load("""
  - id: quote
    when: {typed: ";q"}
    do: [{type: "[{clipboard}]"}]
""")
    expand(live, typist, INSTANT, ";q")
    assert qt_field.settle() == "[]"


def test_bad_paste_keys_are_an_error_at_their_line() -> None:
    from nerve.packs.loader import load_pack

    pack = load_pack(
        b"nerve: 1\npack: {id: p}\nrules:\n  - id: r\n    when: {event: x}\n"
        b"    do: [{type: {text: hi, paste_keys: ctrl+nokey}}]\n",
        filename="p.yaml",
    )
    assert [str(e).split(": ", 2)[:2] for e in pack.errors] == [
        ["p.yaml:6:28", "rules[0].do[0].type.paste_keys"]
    ]


_PIECES = st.sampled_from(["\n", "\t", " ", "👨‍👩‍👧", "e\u0301", "ß", "😀", "{x}", "«»", "日本語"])
_CHARS = st.characters(categories=["L", "M", "N", "P", "S"], exclude_characters="\r")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(text=st.lists(_PIECES | _CHARS, min_size=1, max_size=300).map("".join))
def test_any_text_is_pasted_exactly(live: LiveHarness, qt_field: QtField, text: str) -> None:
    if not live.engine.call(live.engine.rules):
        live.load("""
  - id: say
    when: {event: t.say}
    do: [{type: {text: "{event.text}", method: paste}}]
""")
        live.listener("clipboard")
    qt_field.clear()
    live.publish("t.say", text=text)
    qt_field.wait_text(text)
    assert qt_field.settle(quiet=0.1) == text


def test_a_large_text_on_the_clipboard_comes_back_exactly(
    live: LiveHarness, typist: Typist, qt_field: QtField, xclip: SetClipboard
) -> None:
    big = long_text(250_000, seed=9)  # over 256 KB in UTF-8: both ways in chunks
    assert len(big.encode()) > 256 * 1024
    xclip(big)
    live.load(rules())
    expand(live, typist, INSTANT)
    assert qt_field.settle() == "ok " + LONG
    assert read_clipboard().decode() == big


def test_a_copy_made_while_nerve_holds_the_clipboard_is_kept(
    live: LiveHarness, xclip: SetClipboard
) -> None:
    from nerve.listeners import clipboard

    xclip("before")
    live.load(rules())
    live.listener("clipboard")
    board = clipboard.paste_board()
    with board.hold("the text to paste") as delivery:
        assert read_clipboard() == b"the text to paste"
        assert delivery.wait_served(1.0)  # xclip -o fetched it
        xclip("copied meanwhile")  # the user copies before the clipboard is put back
        wait_until(delivery.lost.is_set, what="Nerve to lose the clipboard")
    assert read_clipboard() == b"copied meanwhile"
    # Without a copy meanwhile, the user's clipboard comes back.
    with board.hold("again"):
        assert read_clipboard() == b"again"
    assert read_clipboard() == b"copied meanwhile"
