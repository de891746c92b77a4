"""The desktop app (PySide6): an adapter over the bus, engine and store.

Nothing outside this package imports Qt; ``nerve.cli`` imports
:mod:`nerve.gui.app` only after checking that PySide6 and a display are there.
"""
