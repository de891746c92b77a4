"""What every bridge offers the rest of Nerve."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class Bridge(ABC):
    """A connection from the bus to something outside this machine.

    ``start`` and ``stop`` are called on the engine loop; neither blocks it.
    ``status`` may be called from any thread.
    """

    name: ClassVar[str]

    @abstractmethod
    def start(self) -> None:
        """Begin (connecting happens in the background)."""

    @abstractmethod
    def stop(self) -> None:
        """End; safe to call more than once."""

    @abstractmethod
    def status(self) -> dict[str, Any]:
        """State for ``nerve status`` and the status bar: at least ``name`` and ``state``."""
