"""Where Nerve keeps things (platformdirs), and the packs that ship with it."""

from __future__ import annotations

import os
import shutil
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
    """Create ``path`` (user-only) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def atomic_write(path: Path, data: bytes, *, backup: bool = True) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file, never half.

    With ``backup``, the previous version is kept as ``path~``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if backup and path.exists():
        shutil.copy2(path, path.with_name(path.name + "~"))
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
