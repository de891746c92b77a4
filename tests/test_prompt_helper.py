"""The dialog helper headless Nerve starts (``python -m nerve.gui.prompt``),
for real: a process on Xvfb with openbox, answered by keys typed through
XTEST into its window, killed when the run stops waiting."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import wait_until
from nerve import prompts
from nerve.prompts import Cancelled, Field, Prompt
from xclients.typist import BRISK, INSTANT, Typist

pytestmark = pytest.mark.usefixtures("xserver_wm")


class Loop:
    """An asyncio loop on a thread, as the engine's."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def start(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture
def typist(xserver_wm: Any) -> Iterator[Typist]:
    t = Typist(xserver_wm.display, seed=3)
    yield t
    t.close()


def tap(typist: Typist, name: str) -> None:
    """Press and release the key named ``name`` (Down, Escape)."""
    from Xlib import X

    keycode, _ = typist.key(name)
    typist.play([(0.0, X.KeyPress, keycode), (0.0, X.KeyRelease, keycode)])


def _xdotool(*args: str) -> str:
    out = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=5, check=False)
    return out.stdout.strip()


def focused_title() -> str:
    """The title of the window with the keyboard focus, once the window manager
    also shows it as the active one ('' before)."""
    active = _xdotool("getactivewindow")
    if not active or _xdotool("getwindowfocus", "-f") != active:
        return ""
    return _xdotool("getwindowname", active)


def wait_active(title: str) -> None:
    wait_until(lambda: focused_title() == title, 30, f"the dialog {title!r} to have the focus")


def helpers() -> list[int]:
    """The dialog helpers this test process started that are still alive."""
    out = []
    for child in psutil.Process().children():
        try:
            if "nerve.gui.prompt" in child.cmdline():
                out.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


FORM = Prompt(
    "form",
    "Helper form",
    "Who is it?",
    (Field("name", "text", "Name"), Field("tone", "choice", "Tone", "warm", ("warm", "cool"))),
)


def test_a_form_answered_in_the_helper(
    loop: Loop, typist: Typist, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inherited from a test of widgets, say: a platform that shows nothing is not used.
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    answer = loop.start(prompts.HelperPrompter().ask(FORM))
    wait_active("Helper form")
    typist.type("Grace Hopper", BRISK)
    typist.type("\t", INSTANT)
    tap(typist, "Down")  # the choice list: the next item
    typist.type("\n", INSTANT)
    assert answer.result(20) == {"name": "Grace Hopper", "tone": "cool"}
    wait_until(lambda: not helpers(), 10, "the helper to end")


def test_escape_in_the_helper_cancels(loop: Loop, typist: Typist) -> None:
    answer = loop.start(prompts.HelperPrompter().ask(FORM))
    wait_active("Helper form")
    typist.type("abc", INSTANT)
    tap(typist, "Escape")
    with pytest.raises(Cancelled):
        answer.result(20)


def test_choose_by_searching_in_the_helper(loop: Loop, typist: Typist) -> None:
    prompt = Prompt("choose", "Helper choose", choices=("red", "green", "blue", "grey"))
    answer = loop.start(prompts.HelperPrompter().ask(prompt))
    wait_active("Helper choose")
    typist.type("gr", BRISK)
    tap(typist, "Down")  # green, grey: the second
    typist.type("\n", INSTANT)
    assert answer.result(20) == {"index": 3}


def test_a_password_in_the_helper(loop: Loop, typist: Typist) -> None:
    prompt = Prompt("form", "Helper password", "", (Field("pw", "password", "Password"),))
    answer = loop.start(prompts.HelperPrompter().ask(prompt))
    wait_active("Helper password")
    typist.type("s3cr3t!", BRISK)
    typist.type("\n", INSTANT)
    assert answer.result(20) == {"pw": "s3cr3t!"}


def test_confirm_in_the_helper(loop: Loop, typist: Typist) -> None:
    prompt = Prompt("confirm", "Helper confirm", "Go on?", default=False)
    answer = loop.start(prompts.HelperPrompter().ask(prompt))
    wait_active("Helper confirm")
    typist.type("\n", INSTANT)  # the default button: No
    assert answer.result(20) == {"yes": False}


def test_the_helper_is_killed_when_the_run_stops_waiting(loop: Loop) -> None:
    async def ask_briefly() -> Any:
        return await asyncio.wait_for(prompts.HelperPrompter().ask(FORM), 2.5)

    answer = loop.start(ask_briefly())
    wait_until(helpers, 20, "the helper to start")
    with pytest.raises(TimeoutError):
        answer.result(30)
    assert not helpers()  # killed and reaped before the call returned


def test_a_broken_helper_is_a_clear_error(loop: Loop) -> None:
    helper = prompts.HelperPrompter(["/bin/sh", "-c", "echo 'no Qt here' >&2; exit 3"])
    with pytest.raises(prompts.PromptUnavailable, match="ended without an answer: no Qt here"):
        loop.start(helper.ask(FORM)).result(20)
    crash = prompts.HelperPrompter([sys.executable, "-c", "import sys; sys.exit(1/0)"])
    with pytest.raises(prompts.PromptUnavailable, match="ZeroDivisionError: division by zero"):
        loop.start(crash.ask(FORM)).result(20)
    missing = prompts.HelperPrompter(["/nonexistent/nerve-prompt"])
    with pytest.raises(prompts.PromptUnavailable, match="could not start"):
        loop.start(missing.ask(FORM)).result(20)


def test_an_unreachable_display_is_named(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":9873")
    with pytest.raises(prompts.PromptUnavailable, match="could not connect to display :9873"):
        loop.start(prompts.HelperPrompter().ask(FORM)).result(30)


def test_the_focus_is_given_back_to_the_window_the_user_was_in(xserver_wm: Any) -> None:
    from xclients.qt_field import QtField

    first = QtField(xserver_wm.display, title="first field")
    second = QtField(xserver_wm.display, title="second field")
    try:
        second.focus()
        wait_until(lambda: prompts.active_window() == second.window, 10, "the second to be active")
        assert prompts.restore_focus(first.window)
        assert prompts.active_window() == first.window
        assert prompts.restore_focus(None) is False
    finally:
        first.close()
        second.close()


# ---------------------------------------------- the real headless daemon

ASK_PACK = """\
nerve: 1
pack: {id: test.ask, name: Ask tests, version: 1.0.0}
rules:
  - id: who
    name: Who is it
    when: {event: x.ask}
    do:
      - ask: {prompt: "Name?", name: who, type: password}
      - emit: {type: x.answered, data: {size: "{form.who}"}}
"""


def test_nerve_run_headless_asks_through_the_helper(
    xserver_wm: Any, nerve_env: dict[str, str], short_tmp: Any, typist: Typist
) -> None:
    from test_cli import Instance, cli_ok, wait_for_event

    pack = short_tmp / "ask.yaml"
    pack.write_text(ASK_PACK)
    env = {**nerve_env, "DISPLAY": xserver_wm.display}
    instance = Instance(env, ["--rules", str(pack)], short_tmp / "run.out")
    try:
        instance.wait_ready()
        cli_ok(env, "emit", "x.ask")
        wait_active("Who is it")
        typist.type("Zebra-42", BRISK)
        typist.type("\n", INSTANT)
        (event,) = wait_for_event(env, "x.answered")
        assert event["data"] == {"size": "***"}  # masked in the stored event
        runs = cli_ok(env, "runs", "--json")
        assert "Zebra-42" not in runs
        # A pause closes an open dialog (the helper is killed).
        cli_ok(env, "emit", "x.ask")
        wait_active("Who is it")
        cli_ok(env, "pause")
        wait_until(lambda: focused_title() != "Who is it", 20, "the dialog to close")
    finally:
        assert instance.stop() == 0
    assert "Zebra-42" not in instance.output()
    for path in short_tmp.rglob("*"):
        if path.is_file():
            assert b"Zebra-42" not in path.read_bytes(), path


def test_unicode_and_line_breaks_come_back_whole(
    loop: Loop, typist: Typist, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("PYTHONIOENCODING", "ascii")
    text = 'Grüße, señor 😀 "q" \\ \t end'
    prompt = Prompt(
        "form",
        "Helper unicode",
        "",
        (Field("a", "text", "A", text), Field("b", "multiline", "B", "one\ntwo ß\n")),
    )
    answer = loop.start(prompts.HelperPrompter().ask(prompt))
    wait_active("Helper unicode")
    typist.type("\n", INSTANT)  # the defaults as they are
    assert answer.result(20) == {"a": text, "b": "one\ntwo ß\n"}


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=40),
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=10),
            st.sampled_from(prompts.FIELD_KINDS),
            st.text(max_size=20),
            st.one_of(st.none(), st.text(max_size=20), st.integers(-(10**9), 10**9)),
            st.lists(st.text(max_size=8), max_size=4),
        ),
        max_size=5,
    ),
    st.one_of(st.none(), st.floats(0, 1e6)),
)
def test_a_prompt_survives_its_json(
    title: str, fields: list[tuple[str, str, str, Any, list[str]]], timeout: float | None
) -> None:
    prompt = Prompt(
        "form",
        title or "Nerve",
        title,
        tuple(Field(n, k, label, d, tuple(c)) for n, k, label, d, c in fields),
        timeout=timeout,
    )
    import json

    assert Prompt.from_json(json.loads(json.dumps(prompt.as_json()))) == prompt
