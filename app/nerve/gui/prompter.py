"""The desktop app's prompter: ask/choose/confirm/form dialogs on the GUI thread.

The engine (on its own thread) calls :meth:`QtPrompter.ask`; the dialog is
opened on the GUI thread through a queued signal and its answer comes back
to the engine's loop. A run that stops waiting (a pause, a timeout) closes
the dialog.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal

from nerve.gui.prompt_dialogs import PromptDialog, make_dialog
from nerve.prompts import Prompt, parse_answer


class QtPrompter(QObject):
    """Create on the GUI thread; call :meth:`ask` from the engine's loop."""

    _open = Signal(int, object)
    _close = Signal(int)
    #: A dialog opened (for tests and the window): the dialog.
    opened = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        self._dialogs: dict[int, PromptDialog] = {}
        self._open.connect(self._on_open)
        self._close.connect(self._on_close)

    async def ask(self, prompt: Prompt) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        key = next(self._ids)
        with self._lock:
            self._waiting[key] = (loop, future)
        self._open.emit(key, prompt)
        try:
            return parse_answer(await future)
        finally:
            with self._lock:
                self._waiting.pop(key, None)
            if not future.done() or future.cancelled():
                self._close.emit(key)

    # ------------------------------------------------------ on the GUI thread

    def _on_open(self, key: int, prompt: Prompt) -> None:
        with self._lock:
            if key not in self._waiting:
                return  # the run stopped waiting before the dialog opened
        dialog = make_dialog(prompt)
        self._dialogs[key] = dialog
        dialog.answered.connect(lambda answer: self._answer(key, answer))
        dialog.finished.connect(lambda _code: self._forget(key))
        dialog.present()
        self.opened.emit(dialog)

    def _on_close(self, key: int) -> None:
        dialog = self._dialogs.pop(key, None)
        if dialog is not None:
            dialog.close_quietly()
            dialog.deleteLater()

    def _forget(self, key: int) -> None:
        dialog = self._dialogs.pop(key, None)
        if dialog is not None:
            dialog.deleteLater()

    def _answer(self, key: int, answer: dict[str, Any]) -> None:
        with self._lock:
            waiting = self._waiting.get(key)
        if waiting is not None:
            loop, future = waiting
            loop.call_soon_threadsafe(_settle, future, answer)

    def close_all(self) -> None:
        """Close every open dialog (Nerve is quitting)."""
        for key in list(self._dialogs):
            self._on_close(key)


def _settle(future: asyncio.Future[Any], answer: Any) -> None:
    if not future.done():
        future.set_result(answer)
