"""A real Qt text field for the expansion tests: a QPlainTextEdit in its own
process on the test's X server, reading keys the way Qt applications do (xcb
with xkbcommon), independently of Nerve's code.

It prints JSON lines: ``{"ready": window_id}`` once shown and focused, then
``{"text": ..., "cursor": n, "t": monotonic seconds}`` after every change of
its text or caret.
Commands on stdin: ``focus``, ``clear``, ``set TEXT`` (JSON string),
``quit``; each is answered with ``{"done": command}``.

    python qt_textfield.py [--title T]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

from PySide6.QtCore import QObject, QSocketNotifier, Qt
from PySide6.QtWidgets import QApplication, QPlainTextEdit


def out(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Field(QObject):
    def __init__(self, title: str) -> None:
        super().__init__()
        self.edit = QPlainTextEdit()
        self.edit.setWindowTitle(title)
        self.edit.resize(600, 300)
        self.edit.setTabChangesFocus(False)
        self.edit.textChanged.connect(self.report)
        self.edit.cursorPositionChanged.connect(self.report)
        self._last: tuple[str, int] | None = None
        self.notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
        self.notifier.activated.connect(self.command)

    def report(self) -> None:
        now = (self.edit.toPlainText(), self.edit.textCursor().position())
        if now != self._last:
            self._last = now
            # t: CLOCK_MONOTONIC, the same clock as time.monotonic() in other processes.
            out(text=now[0], cursor=now[1], t=time.monotonic())

    def focus(self) -> None:
        self.edit.show()
        self.edit.raise_()
        self.edit.activateWindow()
        self.edit.setFocus(Qt.FocusReason.OtherFocusReason)

    def command(self) -> None:
        line = sys.stdin.readline()
        if not line:
            QApplication.quit()
            return
        name, _, arg = line.strip().partition(" ")
        if name == "quit":
            QApplication.quit()
            return
        if name == "focus":
            self.focus()
        elif name == "clear":
            self.edit.setPlainText("")
        elif name == "set":
            self.edit.setPlainText(json.loads(arg))
            self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)
        self.report()
        out(done=name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", default="nerve qt field")
    args = parser.parse_args()
    app = QApplication([sys.argv[0]])
    field = Field(args.title)
    field.focus()

    def ready() -> None:
        if not field.edit.isActiveWindow():
            field.focus()
            return
        timer.stop()
        out(ready=int(field.edit.winId()))
        field.report()

    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(ready)
    timer.start(20)
    app.exec()


if __name__ == "__main__":
    main()
