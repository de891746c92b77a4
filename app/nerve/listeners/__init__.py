"""Listeners: the producers of events from the desktop (input, files, processes...).

Each listener owns one source of OS events, runs on its own thread(s), and
publishes onto the bus; it never blocks in a callback. Listeners start only
while a loaded rule needs them (see :mod:`nerve.listeners.manager`).
"""
