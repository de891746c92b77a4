"""A test window that answers the window manager: maps one top-level window
with a title and class (and WM_NORMAL_HINTS without a size increment), prints
its id, and prints ``deleted`` and exits when asked to close (WM_DELETE_WINDOW).

    python managed_window.py --title T --class C

End of input closes it too.
"""

from __future__ import annotations

import argparse
import os
import select
import sys

from Xlib import X, Xatom, display


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", required=True)
    parser.add_argument("--class", dest="class_", required=True)
    args = parser.parse_args()

    d = display.Display()
    screen = d.screen()
    win = screen.root.create_window(
        40,
        40,
        320,
        240,
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=screen.white_pixel,
        event_mask=X.StructureNotifyMask,
    )
    utf8 = d.intern_atom("UTF8_STRING")
    win.change_property(d.intern_atom("_NET_WM_NAME"), utf8, 8, args.title.encode())
    win.change_property(Xatom.WM_NAME, Xatom.STRING, 8, args.title.encode("latin-1", "replace"))
    klass = f"{args.class_.lower()}\0{args.class_}\0".encode()
    win.change_property(Xatom.WM_CLASS, Xatom.STRING, 8, klass)
    win.change_property(d.intern_atom("_NET_WM_PID"), Xatom.CARDINAL, 32, [os.getpid()])
    delete = d.intern_atom("WM_DELETE_WINDOW")
    protocols = d.intern_atom("WM_PROTOCOLS")
    win.set_wm_protocols([delete])
    win.map()
    while d.next_event().type != X.MapNotify:
        pass
    print(f"0x{win.id:x}", flush=True)

    fd = d.fileno()
    while True:
        d.flush()  # also reads what the server sent into the queue
        while d.pending_events():
            event = d.next_event()
            if (
                event.type == X.ClientMessage
                and event.client_type == protocols
                and event.data[1][0] == delete
            ):
                print("deleted", flush=True)
                win.destroy()
                d.close()
                return
        readable, _, _ = select.select([fd, sys.stdin], [], [])
        if sys.stdin in readable and not sys.stdin.readline():
            break
    win.destroy()
    d.close()


if __name__ == "__main__":
    main()
