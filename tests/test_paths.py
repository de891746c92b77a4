"""Writing user files: atomically, with a backup, and never readable by more people than asked."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nerve.paths import atomic_write, ensure_private_dir


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most desktops have, whatever the test runner's is."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_file_is_written_with_a_backup_of_the_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "settings.yaml"
    atomic_write(target, b"one\n")
    assert target.read_bytes() == b"one\n"
    assert mode(target) == 0o644
    assert not (tmp_path / "settings.yaml~").exists()

    os.utime(target, (1_000_000, 1_000_000))
    atomic_write(target, b"two\n")
    backup = tmp_path / "settings.yaml~"
    assert target.read_bytes() == b"two\n"
    assert backup.read_bytes() == b"one\n"
    assert backup.stat().st_mtime == 1_000_000  # when the old version was written
    atomic_write(target, b"three\n", backup=False)
    assert backup.read_bytes() == b"one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.yaml", "settings.yaml~"]


def test_a_private_file_is_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "approvals.yaml"
    target.write_bytes(b"old, from an earlier version\n")
    target.chmod(0o644)
    # What the file's mode is while the secret is being written to it.
    modes_while_written: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):  # (not the folder's fsync)
            modes_while_written.append(info.st_mode & 0o777)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(target, b"token: s3cret\n", mode=0o600)
    assert target.read_bytes() == b"token: s3cret\n"
    assert mode(target) == 0o600
    assert mode(tmp_path / "approvals.yaml~") == 0o600  # the backup too
    assert modes_while_written  # the new file and the backup
    assert set(modes_while_written) == {0o600}


def test_a_private_file_in_a_new_folder_gets_a_private_folder(tmp_path: Path) -> None:
    target = tmp_path / "config" / "nerve" / "approvals.yaml"
    atomic_write(target, b"x", mode=0o600)
    assert mode(tmp_path / "config") == 0o700
    assert mode(tmp_path / "config" / "nerve") == 0o700

    shared = tmp_path / "share" / "applications" / "nerve.desktop"
    atomic_write(shared, b"[Desktop Entry]\n")
    assert mode(shared.parent) == 0o755
    assert mode(shared) == 0o644


def test_ensure_private_dir_creates_every_missing_folder_user_only(tmp_path: Path) -> None:
    existing = tmp_path / "home"
    existing.mkdir(mode=0o755)
    made = ensure_private_dir(existing / "config" / "nerve" / "packs")
    assert made == existing / "config" / "nerve" / "packs"
    for folder in (made, made.parent, made.parent.parent):
        assert mode(folder) == 0o700, folder
    assert mode(existing) == 0o755  # what existed is left alone
    assert ensure_private_dir(made) == made  # twice is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        ensure_private_dir(tmp_path / "file")


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "pack.yaml"
    target.write_bytes(b"old\n")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new\n")
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pack.yaml"]
