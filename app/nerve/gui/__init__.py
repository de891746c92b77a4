"""The desktop app (PySide6): an adapter over the bus, engine and store.

Nothing outside this package imports Qt; ``nerve.cli`` imports
:mod:`nerve.gui.app` only after checking that PySide6 and a display are there.
"""

import builtins
from collections.abc import Callable
from typing import Any

#: Python's ``__import__`` as it was when this package was first imported: before
#: PySide6 replaces it, when ``nerve`` is started from the command line.
PLAIN_IMPORT: Callable[..., Any] = builtins.__import__
