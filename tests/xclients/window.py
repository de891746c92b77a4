"""A tiny X client for tests: maps one top-level window with a given title and
class, prints its id, then follows commands on stdin.

    python -m xclients.window --title T --class C [--instance I]

Commands, one per line: ``title NEW TITLE`` changes the title (both
_NET_WM_NAME and WM_NAME); ``quit`` (or end of input) closes the window.
Each command is acknowledged with ``ok`` after the X server has it.
"""

from __future__ import annotations

import argparse
import os
import sys

from Xlib import X, Xatom, display


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", required=True)
    parser.add_argument("--class", dest="class_", required=True)
    parser.add_argument("--instance", default=None)
    args = parser.parse_args()

    d = display.Display()
    screen = d.screen()
    win = screen.root.create_window(
        10,
        10,
        300,
        200,
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=screen.white_pixel,
        event_mask=X.StructureNotifyMask,
    )
    utf8 = d.intern_atom("UTF8_STRING")

    def set_title(title: str) -> None:
        win.change_property(d.intern_atom("_NET_WM_NAME"), utf8, 8, title.encode())
        win.change_property(Xatom.WM_NAME, Xatom.STRING, 8, title.encode("latin-1", "replace"))

    set_title(args.title)
    instance = args.instance or args.class_.lower()
    win.change_property(Xatom.WM_CLASS, Xatom.STRING, 8, f"{instance}\0{args.class_}\0".encode())
    win.change_property(d.intern_atom("_NET_WM_PID"), Xatom.CARDINAL, 32, [os.getpid()])
    win.set_wm_protocols([d.intern_atom("WM_DELETE_WINDOW")])
    win.map()
    # Wait until it is mapped, so the caller can activate it at once.
    while True:
        event = d.next_event()
        if event.type == X.MapNotify:
            break
    print(f"0x{win.id:x}", flush=True)

    for line in sys.stdin:
        command, _, rest = line.rstrip("\n").partition(" ")
        if command == "title":
            set_title(rest)
        elif command == "quit":
            break
        d.sync()
        print("ok", flush=True)
    win.destroy()
    d.close()


if __name__ == "__main__":
    main()
