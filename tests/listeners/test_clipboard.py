"""The clipboard on a real Xvfb: changes by other X clients (xclip), the
clipboard action, and what the listener does when things go wrong."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import LiveHarness, wait_until
from nerve.bus import Bus
from nerve.listeners import clipboard as clipboard_module
from nerve.listeners import manager as manager_module
from nerve.listeners.clipboard import MAX_TEXT_BYTES, ClipboardListener
from xclients import kill_connection
from xserver import XServer

pytestmark = pytest.mark.usefixtures("xserver")

SetClipboard = Callable[..., None]


@pytest.fixture
def xclip() -> Iterator[SetClipboard]:
    """Put data on a selection with xclip, as another program would; xclip
    serves it until someone else takes the selection or the test ends."""
    procs: list[subprocess.Popen[bytes]] = []

    def put(data: str | bytes, selection: str = "clipboard", mime: str | None = None) -> None:
        argv = ["xclip", "-quiet", "-selection", selection, "-i"]
        if mime:
            argv += ["-t", mime]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert proc.stdin is not None
        proc.stdin.write(data.encode() if isinstance(data, str) else data)
        proc.stdin.close()
        procs.append(proc)

    yield put
    for proc in procs:
        proc.kill()
        proc.wait()


def read_clipboard(selection: str = "clipboard", target: str | None = None) -> str:
    argv = ["xclip", "-o", "-selection", selection] + (["-t", target] if target else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout


def test_another_program_copies_text(live: LiveHarness, xclip: SetClipboard) -> None:
    live.load(
        """
  - id: copied
    when: {clipboard.changed: {text: "hello*"}}
    do: [{emit: {type: test.copied, data: {text: "{event.text}"}}}]
  - id: selected
    when: {clipboard.changed: {selection: primary}}
    do: [{emit: {type: test.selected, data: {text: "{event.text}"}}}]
"""
    )
    assert "watching clipboard, primary" in live.listener("clipboard")["detail"]
    xclip("hello wörld ✓")
    (event,) = live.recorder.wait("clipboard.changed")
    assert event.source == "clipboard"
    assert dict(event.data) == {
        "selection": "clipboard",
        "mime": "text/plain",
        "text": "hello wörld ✓",
        "truncated": False,
    }
    assert live.recorder.wait("test.copied")[0].data["text"] == "hello wörld ✓"

    xclip("goodbye")  # changed, but the rule's text does not match
    live.recorder.wait("clipboard.changed", 2)
    xclip("the selected words", selection="primary")
    assert live.recorder.wait("test.selected")[0].data["text"] == "the selected words"
    texts = [e.data["text"] for e in live.recorder.wait("clipboard.changed", 3)]
    assert texts == ["hello wörld ✓", "goodbye", "the selected words"]
    assert len(live.recorder.of("test.copied")) == 1


def test_something_other_than_text(live: LiveHarness, xclip: SetClipboard, tmp_path: Path) -> None:
    live.load(
        """
  - id: image
    when: {clipboard.changed: {mime: "image/*"}}
    do: [{emit: {type: test.image, data: {mime: "{event.mime}"}}}]
"""
    )
    live.listener("clipboard")
    xclip(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, mime="image/png")
    (event,) = live.recorder.wait("clipboard.changed")
    assert dict(event.data) == {
        "selection": "clipboard",
        "mime": "image/png",
        "text": None,
        "truncated": False,
    }
    assert live.recorder.wait("test.image")[0].data["mime"] == "image/png"


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(100_000, id="one-property"),
        # Above xclip's chunk size (a quarter of the largest request): INCR.
        pytest.param(5_000_000, id="incremental"),
    ],
)
def test_large_text_is_cut(live: LiveHarness, xclip: SetClipboard, size: int) -> None:
    live.load("  - {id: any, when: {clipboard.changed: null}, do: [{log: copied}]}\n")
    live.listener("clipboard")
    text = "ä" + "x" * (size - 1)
    xclip(text)
    (event,) = live.recorder.wait("clipboard.changed")
    assert event.data["truncated"] is True
    assert event.data["text"] == text[: MAX_TEXT_BYTES - 1]  # "ä" is two bytes
    # The owner was read to the end (not left waiting): it still serves others.
    assert len(read_clipboard()) == size


def test_the_clipboard_action(live: LiveHarness, xclip: SetClipboard) -> None:
    live.load(
        """
  - id: copy
    mode: queued
    when: {event: test.copy}
    do: [{clipboard: "copied {event.n} ✓"}, {emit: test.done}]
  - id: select
    when: {event: test.select}
    do: [{clipboard: {text: "selected", selection: primary}}, {emit: test.done}]
  - id: changed
    when: {clipboard.changed: null}
    do: [{emit: test.changed}]
"""
    )
    live.listener("clipboard")
    live.publish("test.copy", n=1)
    live.recorder.wait("test.done")
    # The action returns once Nerve owns the clipboard: it can be pasted at once.
    assert read_clipboard() == "copied 1 ✓"
    assert read_clipboard(target="STRING") == "copied 1 ?"
    targets = read_clipboard(target="TARGETS").split()
    assert {"TARGETS", "UTF8_STRING", "STRING", "TEXT", "text/plain"} <= set(targets)
    live.publish("test.copy", n=2)
    live.publish("test.select")
    live.recorder.wait("test.done", 3)
    assert read_clipboard() == "copied 2 ✓"
    assert read_clipboard("primary") == "selected"
    assert "owns clipboard, primary" in live.listener("clipboard")["detail"]

    # Another program takes the clipboard over: that is a change, and the
    # first one seen, since Nerve's own copies are not.
    xclip("from elsewhere")
    (event,) = live.recorder.wait("clipboard.changed")
    assert event.data["text"] == "from elsewhere"
    assert len(live.recorder.wait("test.changed")) == 1
    wait_until(lambda: "owns primary" in live.listener("clipboard")["detail"])
    assert read_clipboard() == "from elsewhere"
    assert live.summary("copy")["last_run"]["status"] == "ok"


def test_the_action_says_why_it_cannot_work(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY")
    live.load("  - {id: copy, when: {event: test.copy}, do: [{clipboard: text}]}\n")
    live.listener("clipboard", state="unavailable")
    live.publish("test.copy")
    (failed,) = live.recorder.wait("rule.failed")
    assert "cannot set the clipboard" in str(failed.data["error"])
    assert "DISPLAY is not set" in str(failed.data["error"])


def test_stop_is_prompt(xserver: XServer) -> None:
    failures: list[BaseException] = []
    listener = ClipboardListener(Bus(), lambda _l, exc: failures.append(exc))
    listener.start([("watch", "clipboard"), "serve"])
    listener.set_text("clipboard", "held").result(5)
    thread = listener._thread
    assert thread is not None
    started = time.perf_counter()
    listener.stop()
    assert time.perf_counter() - started < 0.5
    assert not thread.is_alive()
    assert clipboard_module._shared.listener is None
    assert failures == []


def test_a_killed_connection_is_reported_and_survived(
    live: LiveHarness, xclip: SetClipboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "BACKOFF_FIRST_S", 0.05)
    live.load("  - {id: any, when: {clipboard.changed: null}, do: [{log: copied}]}\n")
    live.listener("clipboard")
    first = clipboard_module._shared.listener
    assert first is not None
    kill_connection(first.display)
    wait_until(
        lambda: any(
            s["restarts"] == 1 and s["state"] == "running" for s in live.listeners.status()
        ),
        what="the clipboard listener restarted",
    )
    xclip("after the restart")
    (event,) = live.recorder.wait("clipboard.changed")
    assert event.data["text"] == "after the restart"
