"""The X test fixtures themselves: a real Xvfb with the extensions Nerve uses."""

from __future__ import annotations

from Xlib import display

from xserver import XServer


def test_xvfb_has_the_extensions_nerve_uses(xserver: XServer) -> None:
    conn = display.Display(xserver.display)
    try:
        extensions = set(conn.list_extensions())
    finally:
        conn.close()
    assert {"XTEST", "RECORD", "XFIXES", "MIT-SCREEN-SAVER", "XKEYBOARD"} <= extensions


def test_window_manager_sets_ewmh(xserver_wm: XServer) -> None:
    conn = display.Display(xserver_wm.display)
    try:
        root = conn.screen().root
        assert root.get_full_property(conn.intern_atom("_NET_SUPPORTING_WM_CHECK"), 0)
    finally:
        conn.close()
