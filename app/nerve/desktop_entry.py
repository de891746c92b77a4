"""Nerve as a desktop application: the menu entry, its icon, and starting at login.

Freedesktop desktops only (Linux, the BSDs): ``$XDG_DATA_HOME/applications/nerve.desktop``,
``$XDG_DATA_HOME/icons/hicolor/scalable/apps/nerve.svg`` and
``$XDG_CONFIG_HOME/autostart/nerve.desktop``. The entries run the ``nerve`` that
installed them, by its absolute path, so they work from a pipx or other virtual
environment that is not on the desktop's ``PATH``.

Each file written carries a mark (``X-Nerve-Installed-By`` in the entries, an
XML comment in the icon); uninstalling removes only marked files, so a file the
user made with the same name is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nerve.paths import atomic_write, resources_dir

log = logging.getLogger(__name__)

APP_ID = "nerve"
MARK_KEY = "X-Nerve-Installed-By"
ICON_MARK = b"<!-- installed by nerve install-desktop; nerve uninstall-desktop removes it -->"
MENU_TEMPLATE = "nerve.desktop.in"
AUTOSTART_TEMPLATE = "nerve-autostart.desktop.in"

#: Characters that make the Desktop Entry spec require an Exec argument in double quotes.
_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")
#: Escaped with a backslash inside double quotes.
_QUOTED_ESCAPES = frozenset('"`$\\')


class DesktopEntryError(Exception):
    """A desktop entry could not be written or removed; the message says why."""


class Unsupported(DesktopEntryError):
    """This platform has no freedesktop menus or autostart (macOS, Windows)."""


def supported() -> bool:
    """Whether this platform has freedesktop.org menus and autostart."""
    return sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd", "dragonfly"))


def _require_support() -> None:
    if not supported():
        name = {"darwin": "macOS", "win32": "Windows", "cygwin": "Cygwin"}.get(
            sys.platform, sys.platform
        )
        raise Unsupported(
            f"desktop integration is not supported on this platform yet ({name}); "
            "start Nerve with `nerve`"
        )


# ----------------------------------------------------------------- where


def _xdg_home(variable: str, default: str) -> Path:
    """``$variable`` if it is an absolute path (the XDG spec ignores others), else ~/default."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / default


def menu_entry_path() -> Path:
    """``$XDG_DATA_HOME/applications/nerve.desktop``."""
    return _xdg_home("XDG_DATA_HOME", ".local/share") / "applications" / f"{APP_ID}.desktop"


def icon_path() -> Path:
    """``$XDG_DATA_HOME/icons/hicolor/scalable/apps/nerve.svg``."""
    return _icon_theme_dir() / "scalable" / "apps" / f"{APP_ID}.svg"


def autostart_path() -> Path:
    """``$XDG_CONFIG_HOME/autostart/nerve.desktop``."""
    return _xdg_home("XDG_CONFIG_HOME", ".config") / "autostart" / f"{APP_ID}.desktop"


def _icon_theme_dir() -> Path:
    return _xdg_home("XDG_DATA_HOME", ".local/share") / "icons" / "hicolor"


def label(path: Path) -> str:
    """What one of the installed files is, in words."""
    return {
        menu_entry_path(): "menu entry",
        icon_path(): "icon",
        autostart_path(): "start at login",
    }.get(path, "file")


# ------------------------------------------------------------ the command


def nerve_command() -> list[str]:
    """The command that starts this Nerve, with absolute paths.

    The ``nerve`` script being run (a pipx shim in ~/.local/bin stays a shim:
    it survives ``pipx upgrade``); under ``python -m nerve``, the ``nerve``
    script next to that Python, else ``python -m nerve``; in a bundled app, the
    bundle (or the AppImage file, not its temporary mount).
    """
    if getattr(sys, "frozen", False):
        return [os.environ.get("APPIMAGE") or os.path.abspath(sys.executable)]
    script = sys.argv[0] if sys.argv else ""
    if Path(script).name == APP_ID and os.path.isfile(script):
        return [os.path.abspath(script)]
    python = os.path.abspath(sys.executable) if sys.executable else ""
    if not python:
        raise DesktopEntryError("cannot tell which Python runs Nerve (sys.executable is empty)")
    sibling = Path(python).parent / APP_ID
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return [str(sibling)]
    return [python, "-m", APP_ID]


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DesktopEntryError(
            f"{value!r} is not valid UTF-8, which desktop entries require"
        ) from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise DesktopEntryError(f"{value!r} contains a control character")


def escape_string(value: str) -> str:
    """A value of type string: backslashes doubled, a leading space as ``\\s``."""
    _check_text(value)
    escaped = value.replace("\\", "\\\\")
    return "\\s" + escaped[1:] if escaped.startswith(" ") else escaped


def quote_arg(arg: str) -> str:
    """One Exec argument as the Desktop Entry spec wants it, before string escaping.

    ``%`` is doubled (field codes); an argument with a reserved character goes in
    double quotes, where a double quote, backtick, dollar sign or backslash gets
    a backslash before it.
    """
    text = arg.replace("%", "%%")
    if arg and not any(c in _RESERVED for c in arg):
        return text
    return '"' + "".join("\\" + c if c in _QUOTED_ESCAPES else c for c in text) + '"'


def exec_line(argv: list[str]) -> str:
    """The value of an Exec key that runs ``argv`` (quoted, then string-escaped)."""
    if not argv or not argv[0]:
        raise DesktopEntryError("no program to run")
    for arg in argv:
        _check_text(arg)
    # The spec forbids '=' in the program; GLib looks for a program with '%' in
    # its path without undoing '%%', and so ignores the entry.
    for bad in "=%":
        if bad in argv[0]:
            raise DesktopEntryError(
                f"{argv[0]}: desktop entries cannot run a program whose path contains {bad!r}"
            )
    return escape_string(" ".join(quote_arg(a) for a in argv))


def render(template: str, argv: list[str]) -> str:
    """A template from resources/ with ``@NERVE@`` and ``@TRYEXEC@`` filled in."""
    return template.replace("@NERVE@", exec_line(argv)).replace("@TRYEXEC@", escape_string(argv[0]))


def _template(name: str) -> str:
    path = resources_dir() / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DesktopEntryError(
            f"{path}: {exc.strerror or exc} (is Nerve installed completely?)"
        ) from None


def _icon_bytes() -> bytes:
    path = resources_dir() / f"{APP_ID}.svg"
    try:
        svg = path.read_bytes()
    except OSError as exc:
        raise DesktopEntryError(
            f"{path}: {exc.strerror or exc} (is Nerve installed completely?)"
        ) from None
    if svg.startswith(b"<?xml"):  # nothing may come before the XML declaration
        end = svg.index(b"?>") + 2
        return svg[:end] + b"\n" + ICON_MARK + svg[end:]
    return ICON_MARK + b"\n" + svg


# ------------------------------------------------------------ ours or not


def _entry_keys(path: Path) -> dict[str, str] | None:
    """The keys of the [Desktop Entry] group, or None if the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    keys: dict[str, str] = {}
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            group = line
        elif group == "[Desktop Entry]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), value.strip())
    return keys


def _ours(path: Path) -> bool:
    """Whether ``path`` was written by install-desktop (it carries our mark)."""
    if path.suffix == ".svg":
        try:
            with open(path, "rb") as fh:
                return ICON_MARK in fh.read(4096)
        except OSError:
            return False
    keys = _entry_keys(path)
    return keys is not None and MARK_KEY in keys


def _foreign(path: Path) -> bool:
    """Something is at ``path`` that Nerve did not write."""
    return (path.exists() or path.is_symlink()) and not _ours(path)


def _refuse_foreign(paths: list[Path]) -> None:
    for path in paths:
        if _foreign(path):
            raise DesktopEntryError(
                f"{path} is in the way: Nerve did not write it, so it is left alone; "
                "move it away and try again"
            )


# ------------------------------------------------------------ writing


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data, backup=False)
    except OSError as exc:
        where = exc.filename or path
        raise DesktopEntryError(f"cannot write {path}: {where}: {exc.strerror or exc}") from None


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise DesktopEntryError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return True


def _icon_theme_changed() -> None:
    """Tell icon caches about the new or removed icon (best effort)."""
    theme = _icon_theme_dir()
    with contextlib.suppress(OSError):
        os.utime(theme)  # GTK re-reads a theme whose folder changed
    tool = shutil.which("gtk-update-icon-cache")
    if tool and (theme / "icon-theme.cache").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [tool, "--quiet", "--force", "--ignore-theme-index", str(theme)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )


def install_desktop(autostart: bool = False) -> list[Path]:
    """Write the menu entry and the icon (and, with ``autostart``, the login entry).

    Returns the files written. An existing autostart entry is left as it is when
    ``autostart`` is False. Raises :class:`DesktopEntryError` (nothing written)
    if a file of the same name that Nerve did not write is in the way.
    """
    _require_support()
    argv = nerve_command()
    targets = [menu_entry_path(), icon_path()] + ([autostart_path()] if autostart else [])
    _refuse_foreign(targets)
    files = {
        menu_entry_path(): render(_template(MENU_TEMPLATE), argv).encode(),
        icon_path(): _icon_bytes(),
    }
    if autostart:
        files[autostart_path()] = render(_template(AUTOSTART_TEMPLATE), argv).encode()
    for path, data in files.items():
        _write(path, data)
        log.debug("wrote %s", path)
    _icon_theme_changed()
    return list(files)


def uninstall_desktop() -> list[Path]:
    """Remove what :func:`install_desktop` wrote; returns the files removed.

    A file of the same name without Nerve's mark is left alone (and logged).
    """
    _require_support()
    removed: list[Path] = []
    for path in (menu_entry_path(), autostart_path(), icon_path()):
        if _foreign(path):
            log.warning("left %s alone: it was not written by nerve install-desktop", path)
        elif _remove(path):
            removed.append(path)
    if icon_path() in removed:
        _icon_theme_changed()
    return removed


def autostart_enabled() -> bool:
    """Whether a ``nerve.desktop`` in the autostart folder starts at login.

    An entry turned off by the desktop (``Hidden=true``, or GNOME's
    ``X-GNOME-Autostart-enabled=false``) does not count.
    """
    if not supported():
        return False
    keys = _entry_keys(autostart_path())
    if keys is None:
        return False
    return (
        keys.get("Hidden", "false") != "true"
        and keys.get("X-GNOME-Autostart-enabled", "true") != "false"
    )


def set_autostart(enabled: bool) -> None:
    """Start Nerve in the tray at login, or not.

    Raises :class:`DesktopEntryError` if an autostart entry that Nerve did not
    write is in the way, or the file cannot be written or removed.
    """
    _require_support()
    path = autostart_path()
    _refuse_foreign([path])
    if enabled:
        _write(path, render(_template(AUTOSTART_TEMPLATE), nerve_command()).encode())
    else:
        _remove(path)
