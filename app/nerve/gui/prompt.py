"""The dialog helper headless Nerve starts to ask the user something.

``python -m nerve.gui.prompt`` reads one prompt (JSON, see
:meth:`nerve.prompts.Prompt.as_json`) from stdin, shows its dialog and
writes the answer as one JSON line to stdout: ``{"values": {...}}`` or
``{"cancelled": true}``. Nerve kills it when the run stops waiting (a
timeout, a pause); it also ends when Nerve dies. Nothing is written
anywhere else.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any


def _die_with_parent() -> None:
    """Linux: end when the process that started us ends (PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    from nerve.prompts import Prompt

    try:
        prompt = Prompt.from_json(json.loads(sys.stdin.buffer.readline()))
    except ValueError as exc:
        print(json.dumps({"error": f"bad prompt: {exc}"}), flush=True)
        return 2

    from PySide6.QtWidgets import QApplication

    from nerve.gui.prompt_dialogs import make_dialog

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("Nerve")
    app.setQuitOnLastWindowClosed(False)
    dialog = make_dialog(prompt)
    answer: dict[str, Any] = {"cancelled": True}

    def done(value: dict[str, Any]) -> None:
        nonlocal answer
        answer = value
        app.quit()

    dialog.answered.connect(done)
    dialog.finished.connect(lambda _code: app.quit())
    signal.signal(signal.SIGTERM, lambda *_: os._exit(1))
    dialog.present()
    app.exec()
    # ASCII JSON: the answer arrives whole whatever the locale's encoding.
    sys.stdout.buffer.write(json.dumps(answer).encode("ascii") + b"\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
