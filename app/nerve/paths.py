"""Where Nerve keeps things (platformdirs), and the packs that ship with it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

APP = "nerve"


@dataclass(frozen=True)
class Locations:
    """The folders of one Nerve installation."""

    config: Path  # settings.yaml, packs/
    data: Path  # nerve.db
    logs: Path  # nerve.log

    @property
    def packs(self) -> Path:
        return self.config / "packs"

    @property
    def database(self) -> Path:
        return self.data / "nerve.db"

    @property
    def log_file(self) -> Path:
        return self.logs / "nerve.log"


def locations(data_dir: Path | None = None) -> Locations:
    """The platform's folders; ``data_dir`` (``--data-dir``) overrides the data folder."""
    data = Path(data_dir).expanduser().absolute() if data_dir else None
    return Locations(
        config=Path(platformdirs.user_config_dir(APP)),
        data=data or Path(platformdirs.user_data_dir(APP)),
        logs=Path(platformdirs.user_log_dir(APP)),
    )


def shipped_packs_dir() -> Path:
    """The folder of packs shipped with Nerve (package data, or ``rules/`` in a checkout)."""
    return _shipped("rules")


def resources_dir() -> Path:
    """Icons, the .desktop file and styles (package data, or ``resources/`` in a checkout)."""
    return _shipped("resources")


def _shipped(name: str) -> Path:
    packaged = resources.files("nerve") / "data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / name


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` if needed, with every missing folder above it, user-only (0700).

    Folders that exist already are left as they are. Returns ``path``."""
    parent = path.parent
    if parent != path and not parent.exists():
        ensure_private_dir(parent)
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def atomic_write(path: Path, data: bytes, *, backup: bool = True, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file, never half.

    The new file is created with ``mode`` (less the umask) before anything is
    written to it, so it is never readable by more people than ``mode`` allows;
    with a private mode (``0o600``) missing folders are created user-only too.
    With ``backup``, the previous version is kept as ``path~``, with the same mode.
    """
    if mode & 0o077:
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        ensure_private_dir(path.parent)
    tmp = _new_file(path, data, mode)
    try:
        if backup and path.exists():
            _keep_backup(path, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "nt":
        return  # Windows cannot open (or sync) a folder
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _new_file(path: Path, data: bytes, mode: int) -> Path:
    """A new hidden file next to ``path`` holding ``data``, created with ``mode``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:
            continue  # another writer's name: draw again
        break
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _keep_backup(path: Path, mode: int) -> None:
    """Copy ``path`` to ``path~`` (its times kept), created with ``mode``.

    Only a regular file is kept: what stands in its place otherwise (a named
    pipe, a device) is replaced without being read."""
    old = path.stat()
    if not stat.S_ISREG(old.st_mode):
        return
    saved = _new_file(path, read_user_file(path, max_bytes=1 << 30), mode)
    try:
        os.utime(saved, ns=(old.st_atime_ns, old.st_mtime_ns))
        os.replace(saved, path.with_name(path.name + "~"))
    except BaseException:
        saved.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------ reading user files

#: What a path is, when it is not a regular file.
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(OSError):
    """A path that is not a regular file (a FIFO, a device, a folder...)."""

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(f"{name} is {kind}, not a regular file")
        #: What it is instead, in words ("a named pipe (FIFO)").
        self.kind = kind


class FileTooLarge(OSError):
    """A file over the size limit of what reads it."""

    def __init__(self, message: str, size: int, limit: int, *, grew: bool = False) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
        #: True when it grew while being read (``size`` is then what was read).
        self.grew = grew


def _kind(mode: int) -> str:
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def read_user_file(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The content of ``path``, a regular file of at most ``max_bytes``.

    For every file a user or a pack can put where Nerve reads (packs,
    settings, approvals, a pack to import). Such a path may be a named pipe,
    a device (``/dev/zero``, ``/dev/tty``), a folder, or a symlink to one of
    them: opening or reading one would block, or never end. So: the path is
    looked at first (following symlinks: a symlink to a pack file is fine) and
    anything but a regular file is refused without being opened; it is then
    opened with ``O_NONBLOCK`` and ``O_NOCTTY`` (should it have been swapped for
    a pipe or a terminal meanwhile, the open returns at once and cannot take a
    controlling terminal), the open descriptor is checked again with ``fstat``
    (it must still be that regular file), and at most ``max_bytes + 1`` bytes
    are read through it. Raises :class:`NotRegularFile`, :class:`FileTooLarge`
    or another OSError.
    """
    name = os.fspath(path)
    before = os.stat(name)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegularFile(name, _kind(before.st_mode))
    if before.st_size > max_bytes:
        raise FileTooLarge(f"{name} is over {max_bytes} bytes", before.st_size, max_bytes)
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_NOCTTY", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    fd = os.open(name, flags)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise NotRegularFile(name, _kind(opened.st_mode))
        if os.name != "nt" and (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise NotRegularFile(name, "a file that was replaced while it was being opened")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # it grew since it was looked at
        raise FileTooLarge(f"{name} is over {max_bytes} bytes", len(data), max_bytes, grew=True)
    return data
