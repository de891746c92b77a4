"""The Nerve of the desktop app: also answers a second launch's ``show``.

Free of Qt, and imported only once the window is on screen
(:func:`nerve.gui.app.plain_imports`): it pulls in the whole engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nerve.bootstrap import Nerve
from nerve.options import Options
from nerve.paths import Locations


class GuiNerve(Nerve):
    """Nerve with a window: also answers the ``show`` request of a second launch."""

    def __init__(self, locations: Locations, options: Options) -> None:
        super().__init__(locations, options)
        #: Called on an IPC worker thread; must only hand over to the Qt thread.
        self.on_show: Callable[[], None] | None = None
        #: A second launch asked to show the window before it was attached.
        self.show_pending = False

    def handle(self, cmd: str, args: dict[str, Any]) -> Any:
        if cmd == "show":
            if self.on_show is None:
                # The window is up (it shows before Nerve starts): raise it once attached.
                self.show_pending = True
            else:
                self.on_show()
            return {"shown": True}
        return super().handle(cmd, args)
