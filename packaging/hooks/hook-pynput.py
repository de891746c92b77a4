"""Replaces pyinstaller-hooks-contrib's hook for pynput.

That hook imports pynput to list its submodules, and importing pynput opens an
X display: on a build machine without one it warns and collects nothing.
packaging/nerve.spec names the backend modules of each platform instead.
"""
