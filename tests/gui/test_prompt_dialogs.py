"""The dialogs of form/ask/choose/confirm, driven through their widgets, and
the desktop app's prompter answering a real engine's runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLineEdit, QListWidget, QPlainTextEdit
from pytestqt.qtbot import QtBot
from shiboken6 import Shiboken

from conftest import Harness, wait_until
from nerve.gui.prompt_dialogs import ChooseDialog, ConfirmDialog, FormDialog, make_dialog
from nerve.gui.prompter import QtPrompter
from nerve.prompts import Field, Prompt

FORM = Prompt(
    "form",
    "New ticket",
    "Fill in the ticket's details.",
    (
        Field("name", "text", "Name"),
        Field("body", "multiline", "Description", "first line"),
        Field("tone", "choice", "Tone", "warm", ("warm", "cool", "formal")),
        Field("pin", "password", "PIN"),
        Field("count", "number", "Count", 2),
    ),
)
CHOICES = (
    "Open terminal",
    "Open browser",
    "Kind regards,\nAda",
    "Format document",
    "Close window",
)


class Answers:
    def __init__(self, dialog: Any) -> None:
        self.got: list[dict[str, Any]] = []
        dialog.answered.connect(self.got.append)


def show(qtbot: QtBot, prompt: Prompt) -> tuple[Any, Answers]:
    dialog = make_dialog(prompt)
    qtbot.addWidget(dialog)
    answers = Answers(dialog)
    dialog.present()
    qtbot.waitExposed(dialog)
    return dialog, answers


def shot(dialog: Any, name: str) -> None:
    """A picture of the dialog, for a person to look at (NERVE_SHOTS=folder)."""
    folder = os.environ.get("NERVE_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        assert dialog.grab().save(str(Path(folder) / f"{name}.png"))


def test_form_fields_filled_and_accepted(qtbot: QtBot) -> None:
    dialog, answers = show(qtbot, FORM)
    assert isinstance(dialog, FormDialog)
    name = dialog.findChild(QLineEdit, "field-name")
    body = dialog.findChild(QPlainTextEdit, "field-body")
    tone = dialog.findChild(QComboBox, "field-tone")
    pin = dialog.findChild(QLineEdit, "field-pin")
    count = dialog.findChild(QLineEdit, "field-count")
    assert body.toPlainText() == "first line"  # the defaults are filled in
    assert tone.currentText() == "warm"
    assert count.text() == "2"
    qtbot.keyClicks(name, "Ada Lovelace")
    body.moveCursor(body.textCursor().MoveOperation.End)
    qtbot.keyClick(body, Qt.Key.Key_Return)  # a new line, not OK
    qtbot.keyClicks(body, "second ")
    body.insertPlainText("é ß")  # (QTest types ASCII only)
    tone.setCurrentIndex(2)
    qtbot.keyClicks(pin, "12ab")
    count.clear()
    qtbot.keyClicks(count, "7.5")
    assert answers.got == []
    shot(dialog, "form")
    qtbot.keyClick(name, Qt.Key.Key_Return)  # Enter in a line field: OK
    assert answers.got == [
        {
            "values": {
                "name": "Ada Lovelace",
                "body": "first line\nsecond é ß",
                "tone": "formal",
                "pin": "12ab",
                "count": "7.5",
            }
        }
    ]


def test_a_password_is_masked_on_screen(qtbot: QtBot) -> None:
    dialog, _ = show(qtbot, Prompt("form", "Log in", "", (Field("pw", "password", "Password"),)))
    pin = dialog.findChild(QLineEdit, "field-pw")
    qtbot.keyClicks(pin, "hunter2")
    assert pin.echoMode() == QLineEdit.EchoMode.Password
    assert pin.text() == "hunter2"
    assert "hunter2" not in pin.displayText()
    assert len(pin.displayText()) == 7
    shot(dialog, "ask-password")


def test_escape_cancels_a_form(qtbot: QtBot) -> None:
    dialog, answers = show(qtbot, FORM)
    qtbot.keyClicks(dialog.findChild(QLineEdit, "field-name"), "typed")
    qtbot.keyClick(dialog.findChild(QLineEdit, "field-name"), Qt.Key.Key_Escape)
    assert answers.got == [{"cancelled": True}]
    assert not dialog.isVisible()


def test_a_number_field_takes_numbers_only(qtbot: QtBot) -> None:
    prompt = Prompt("form", "Count", "", (Field("n", "number", "How many"),))
    dialog, answers = show(qtbot, prompt)
    field = dialog.findChild(QLineEdit, "field-n")
    qtbot.keyClicks(field, "abc")  # the validator refuses letters
    assert field.text() == ""
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert answers.got == []
    assert dialog.problem.isVisible()
    assert "enter a number" in dialog.problem.text()
    qtbot.keyClicks(field, "-3.25")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert answers.got == [{"values": {"n": "-3.25"}}]


def test_choose_by_searching(qtbot: QtBot) -> None:
    dialog, answers = show(
        qtbot, Prompt("choose", "Snippets", "Pick a snippet", choices=CHOICES, timeout=30)
    )
    assert isinstance(dialog, ChooseDialog)
    listing = dialog.findChild(QListWidget, "choices")
    search = dialog.findChild(QLineEdit, "search")
    assert search.hasFocus() or dialog.focusWidget() is search
    shot(dialog, "choose")
    qtbot.keyClicks(search, "open")
    items = [listing.item(r) for r in range(listing.count())]
    visible = [item.text() for item in items if not item.isHidden()]
    assert visible == ["Open terminal", "Open browser"]
    assert listing.currentItem().text() == "Open terminal"
    qtbot.keyClick(search, Qt.Key.Key_Down)
    assert listing.currentItem().text() == "Open browser"
    qtbot.keyClick(search, Qt.Key.Key_Down)  # stays on the last one shown
    assert listing.currentItem().text() == "Open browser"
    shot(dialog, "choose-search")
    qtbot.keyClick(search, Qt.Key.Key_Return)
    assert answers.got == [{"values": {"index": 1}}]


def test_choose_search_words_in_any_order_and_case(qtbot: QtBot) -> None:
    dialog, answers = show(qtbot, Prompt("choose", "x", choices=CHOICES))
    search = dialog.findChild(QLineEdit, "search")
    qtbot.keyClicks(search, "ADA kind")
    qtbot.keyClick(search, Qt.Key.Key_Return)
    assert answers.got == [{"values": {"index": 2}}]


def test_choose_with_nothing_matching_does_not_answer(qtbot: QtBot) -> None:
    dialog, answers = show(qtbot, Prompt("choose", "x", choices=CHOICES))
    search = dialog.findChild(QLineEdit, "search")
    qtbot.keyClicks(search, "zzz")
    qtbot.keyClick(search, Qt.Key.Key_Return)
    assert answers.got == []
    qtbot.keyClick(search, Qt.Key.Key_Escape)
    assert answers.got == [{"cancelled": True}]


def test_choose_starts_on_the_default(qtbot: QtBot) -> None:
    dialog, answers = show(qtbot, Prompt("choose", "x", choices=CHOICES, default="Close window"))
    qtbot.keyClick(dialog.findChild(QLineEdit, "search"), Qt.Key.Key_Return)
    assert answers.got == [{"values": {"index": 4}}]


@pytest.mark.parametrize(("button", "yes"), [("yes", True), ("no", False)])
def test_confirm_buttons(qtbot: QtBot, button: str, yes: bool) -> None:
    dialog, answers = show(
        qtbot, Prompt("confirm", "Delete", "Delete 3 files from Downloads?", default=False)
    )
    assert isinstance(dialog, ConfirmDialog)
    assert dialog.no.isDefault()  # default: No
    shot(dialog, "confirm")
    qtbot.mouseClick(getattr(dialog, button), Qt.MouseButton.LeftButton)
    assert answers.got == [{"values": {"yes": yes}}]


def test_confirm_escape_cancels(qtbot: QtBot) -> None:
    dialog, answers = show(qtbot, Prompt("confirm", "Sure", "Go on?"))
    assert dialog.yes.isDefault()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert answers.got == [{"cancelled": True}]


def test_a_countdown_is_shown(qtbot: QtBot) -> None:
    prompt = Prompt("form", "x", "", (Field("a", "text", "A", "dflt"),), timeout=30)
    dialog, _ = show(qtbot, prompt)
    assert dialog.countdown.text().startswith("Closes in 30 s")
    assert "defaults" in dialog.countdown.text()


# ------------------------------------------- the app's prompter, a real engine


@pytest.fixture
def prompted(qtbot: QtBot) -> Iterator[tuple[Harness, QtPrompter, list[Any]]]:
    h = Harness()
    prompter = QtPrompter()
    opened: list[Any] = []
    prompter.opened.connect(opened.append)
    h.engine.prompter = prompter
    yield h, prompter, opened
    prompter.close_all()
    h.close()


def gone(dialog: Any) -> bool:
    """Closed (and maybe deleted already)."""
    return not Shiboken.isValid(dialog) or not dialog.isVisible()


RULE = """
  - id: r
    when: {event: t.go}
    do:
      - ask: {prompt: "Name for {event.who}?", name: who, default: anon, timeout: %s}
      - choose: {items: [red, green, blue], name: colour}
      - emit: {type: t.done, data: {who: "{form.who}", colour: "{form.colour}"}}
"""


def test_the_app_prompter_answers_a_run(
    qtbot: QtBot, prompted: tuple[Harness, QtPrompter, list[Any]]
) -> None:
    h, _, opened = prompted
    h.load(RULE % "60s")
    h.publish("t.go", who="ticket 7")
    qtbot.waitUntil(lambda: len(opened) == 1, timeout=10000)
    ask = opened[0]
    assert ask.findChild(QLineEdit, "field-who").text() == "anon"
    ask.findChild(QLineEdit, "field-who").clear()
    qtbot.keyClicks(ask.findChild(QLineEdit, "field-who"), "Bo")
    qtbot.keyClick(ask.findChild(QLineEdit, "field-who"), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(opened) == 2, timeout=10000)
    qtbot.keyClicks(opened[1].findChild(QLineEdit, "search"), "gr")
    qtbot.keyClick(opened[1].findChild(QLineEdit, "search"), Qt.Key.Key_Return)
    (event,) = h.recorder.wait("t.done")
    assert event.data == {"who": "Bo", "colour": "green"}


def test_the_app_prompter_timeout_closes_the_dialog_with_the_default(
    qtbot: QtBot, prompted: tuple[Harness, QtPrompter, list[Any]]
) -> None:
    h, _, opened = prompted
    h.load(RULE % "300ms")
    h.publish("t.go", who="x")
    qtbot.waitUntil(lambda: len(opened) == 2, timeout=10000)  # the ask timed out
    assert gone(opened[0])
    qtbot.keyClick(opened[1].findChild(QLineEdit, "search"), Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: h.summary("r")["last_run"] is not None, timeout=10000)
    last = h.summary("r")["last_run"]
    assert last["status"] == "ok"
    assert last["error"] == "choose: cancelled by the user"
    assert not h.recorder.of("t.done")


def test_pause_closes_the_app_dialog(
    qtbot: QtBot, prompted: tuple[Harness, QtPrompter, list[Any]]
) -> None:
    h, _, opened = prompted
    h.load(RULE % "60s")
    h.publish("t.go", who="x")
    qtbot.waitUntil(lambda: len(opened) == 1, timeout=10000)
    h.engine.call(h.engine.pause, "test")
    qtbot.waitUntil(lambda: gone(opened[0]), timeout=10000)
    wait_until(lambda: h.summary("r")["last_run"] is not None, 10, "the run to end")
    assert h.summary("r")["last_run"]["status"] == "cancelled"


APP_PACK = """\
nerve: 1
pack: {id: test.app, name: App dialogs, version: 1.0.0}
rules:
  - id: pick
    name: Pick a colour
    when: {event: x.pick}
    do:
      - choose: {items: [red, green, blue], name: colour}
      - emit: {type: x.picked, data: {colour: "{form.colour}"}}
"""


def test_the_desktop_app_shows_the_rules_dialogs(
    qtbot: QtBot, nerve_env: dict[str, str], tmp_path: Path
) -> None:
    from nerve.gui.app import DesktopApp
    from nerve.gui.instance import GuiNerve
    from nerve.options import Options
    from nerve.paths import locations

    pack = tmp_path / "app.yaml"
    pack.write_text(APP_PACK)
    nerve = GuiNerve(locations(), Options(rule_paths=[pack]))
    nerve.start()
    desktop = DesktopApp(nerve, show=False)
    try:
        qtbot.addWidget(desktop.window)
        assert nerve.engine is not None
        prompter = nerve.engine.prompter
        assert isinstance(prompter, QtPrompter)
        opened: list[Any] = []
        prompter.opened.connect(opened.append)
        picked: list[Any] = []
        nerve.bus.subscribe("x.picked", picked.extend, name="test")
        nerve.bus.publish("x.pick", {}, source="test")
        qtbot.waitUntil(lambda: len(opened) == 1, timeout=10_000)
        assert opened[0].windowTitle() == "Pick a colour"
        search = opened[0].findChild(QLineEdit, "search")
        qtbot.keyClicks(search, "blu")
        qtbot.keyClick(search, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: len(picked) == 1, timeout=10_000)
        assert picked[0].data == {"colour": "blue"}
    finally:
        desktop.quit()
