"""Bridges: where Nerve's events meet other programs and machines.

Each bridge (the webhook endpoint, the MQTT bridge, ...) implements
:class:`nerve.bridges.base.Bridge`: a ``name``, ``start``/``stop`` coroutines
run on the engine's loop, and a ``status()`` dictionary that ``nerve status``
shows. :func:`start_all` and :func:`stop_all` drive a list of them from any
thread.

(Nothing is imported here: the settings read :mod:`nerve.bridges.schema`
without loading asyncio.)
"""
