"""Nerve: turns what happens on a desktop into actions."""

__version__ = "0.1.0"
