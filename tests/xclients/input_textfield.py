"""A tiny X text field for the input tests: a window that keeps the text typed
into it and prints every key and click it receives as a JSON line.

It reads keys as an ordinary Xlib application does (the core keyboard mapping,
Shift/CapsLock/AltGr levels, refreshed on MappingNotify), independently of
Nerve's own code. Commands on stdin: ``focus`` (take the input focus),
``clear`` (empty the text), ``quit``.

    python input_textfield.py --title T --class C [--x 0 --y 0] [--focus]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys

from Xlib import X, display

SHIFT, LOCK, MOD5 = X.ShiftMask, X.LockMask, X.Mod5Mask
RETURN, KP_ENTER, TAB, BACKSPACE = 0xFF0D, 0xFF8D, 0xFF09, 0xFF08


def out(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def char_of(keysym: int) -> str | None:
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110FFFF:
        return chr(keysym - 0x01000000)
    if keysym in (RETURN, KP_ENTER):
        return "\n"
    if keysym == TAB:
        return "\t"
    return None


def keysym_of(d: display.Display, keycode: int, state: int) -> int:
    base = 4 if state & MOD5 else 0
    lower = d.keycode_to_keysym(keycode, base) or d.keycode_to_keysym(keycode, 0)
    upper = d.keycode_to_keysym(keycode, base + 1) or lower
    shifted = bool(state & SHIFT)
    is_letter = 0x20 <= lower <= 0xFF and chr(lower).isalpha()
    if state & LOCK and is_letter:
        shifted = not shifted
    if shifted and upper == lower and 0x61 <= lower <= 0x7A:
        upper = lower - 0x20
    return upper if shifted else lower


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", default="nerve test field")
    parser.add_argument("--class", dest="cls", default="NerveTestField")
    parser.add_argument("--x", type=int, default=0)
    parser.add_argument("--y", type=int, default=0)
    parser.add_argument("--focus", action="store_true")
    args = parser.parse_args()

    d = display.Display()
    screen = d.screen()
    window = screen.root.create_window(
        args.x,
        args.y,
        300,
        120,
        0,
        screen.root_depth,
        X.InputOutput,
        X.CopyFromParent,
        background_pixel=screen.white_pixel,
        event_mask=(
            X.KeyPressMask
            | X.KeyReleaseMask
            | X.ButtonPressMask
            | X.FocusChangeMask
            | X.StructureNotifyMask
        ),
    )
    window.set_wm_name(args.title)
    window.set_wm_class(args.cls.lower(), args.cls)
    window.set_wm_hints(flags=1, input=1)  # InputHint: accepts the focus
    window.map()
    d.flush()

    text: list[str] = []
    fd = d.fileno()
    stdin = sys.stdin.fileno()
    while True:
        while d.pending_events():
            event = d.next_event()
            kind = event.type
            if kind == X.MapNotify:
                if args.focus:
                    window.set_input_focus(X.RevertToParent, X.CurrentTime)
                    d.sync()
                out(ready=window.id, pid=os.getpid())
            elif kind == X.MappingNotify:
                d.refresh_keyboard_mapping(event)
            elif kind in (X.KeyPress, X.KeyRelease):
                keysym = keysym_of(d, event.detail, event.state)
                pressed = kind == X.KeyPress
                if pressed:
                    if keysym == BACKSPACE:
                        if text:
                            text.pop()
                    elif not event.state & (X.ControlMask | X.Mod1Mask | X.Mod4Mask):
                        char = char_of(keysym)
                        if char is not None:
                            text.append(char)
                out(
                    key="press" if pressed else "release",
                    keycode=event.detail,
                    keysym=keysym,
                    state=event.state,
                    text="".join(text),
                )
            elif kind == X.ButtonPress:
                out(button=event.detail, x=event.root_x, y=event.root_y, state=event.state)
            elif kind in (X.FocusIn, X.FocusOut):
                out(focus=kind == X.FocusIn, mode=event.mode)
        readable, _, _ = select.select([fd, stdin], [], [])
        if stdin in readable:
            line = sys.stdin.readline()
            command = line.strip()
            if not line or command == "quit":
                return
            if command == "focus":
                window.set_input_focus(X.RevertToParent, X.CurrentTime)
                d.sync()
                out(focused=True)
            elif command == "clear":
                text.clear()
                out(cleared=True, text="")


if __name__ == "__main__":
    main()
