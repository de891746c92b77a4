"""Files a user or a pack can put where Nerve reads are read only when they are
regular files: a named pipe, a device, a folder, a socket (or a symlink to
one) is refused at once, with an error naming it, by every reader: the pack
loader, `nerve validate`, `nerve pack import`, settings, approvals, the editor."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nerve.packs import trust
from nerve.packs.loader import load_pack, load_paths
from nerve.packs.writer import PackDocument, PackWriteError
from nerve.paths import FileTooLarge, NotRegularFile, read_user_file
from nerve.settings import Settings

NERVE = [sys.executable, "-m", "nerve"]
PACK = b"nerve: 1\npack: {id: test.files, name: Files}\nrules:\n  - id: r\n    when: {event: x.a}\n    do: [{log: hi}]\n"  # noqa: E501


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``'s result or exception, failing if it takes longer than ``seconds``
    (it runs on a daemon thread: a reader stuck for ever cannot hang the tests)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for over {seconds}s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _fifo(path: Path, _: Path) -> str:
    os.mkfifo(path)
    return "a named pipe (FIFO)"


def _link_to_fifo(path: Path, tmp: Path) -> str:
    os.mkfifo(tmp / "target.fifo")
    path.symlink_to(tmp / "target.fifo")
    return "a named pipe (FIFO)"


def _dev_zero(path: Path, _: Path) -> str:
    path.symlink_to("/dev/zero")
    return "a character device"


def _dev_null(path: Path, _: Path) -> str:
    path.symlink_to("/dev/null")
    return "a character device"


def _dev_tty(path: Path, _: Path) -> str:
    path.symlink_to("/dev/tty")
    return "a character device"


def _folder(path: Path, _: Path) -> str:
    path.mkdir()
    return "a folder"


def _link_to_folder(path: Path, tmp: Path) -> str:
    (tmp / "a-folder").mkdir()
    path.symlink_to(tmp / "a-folder")
    return "a folder"


def _socket(path: Path, _: Path) -> str:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    _SOCKETS.append(server)
    return "a socket"


_SOCKETS: list[socket.socket] = []

KINDS: dict[str, Callable[[Path, Path], str]] = {
    "fifo": _fifo,
    "symlink to a fifo": _link_to_fifo,
    "/dev/zero": _dev_zero,
    "/dev/null": _dev_null,
    "/dev/tty": _dev_tty,
    "folder": _folder,
    "symlink to a folder": _link_to_folder,
    "socket": _socket,
}


@pytest.fixture
def short() -> Iterator[Path]:
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="nvf", dir="/tmp"))  # short: socket paths
    yield path
    for server in _SOCKETS:
        server.close()
    _SOCKETS.clear()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=sorted(KINDS))
def odd(request: pytest.FixtureRequest, short: Path) -> tuple[Path, str]:
    """A ``*.yaml`` path that is not a regular file, and what it is in words."""
    path = short / "odd.yaml"
    kind = KINDS[request.param](path, short)
    return path, kind


# -------------------------------------------------------------------- the reader


def test_read_user_file_refuses_what_is_not_a_regular_file(odd: tuple[Path, str]) -> None:
    path, kind = odd
    with pytest.raises(NotRegularFile) as caught:
        within(2, lambda: read_user_file(path, max_bytes=1 << 20))
    assert caught.value.kind == kind


def test_read_user_file_reads_a_regular_file_and_a_symlink_to_one(short: Path) -> None:
    (short / "real.yaml").write_bytes(PACK)
    (short / "link.yaml").symlink_to(short / "real.yaml")
    assert read_user_file(short / "real.yaml", max_bytes=1 << 20) == PACK
    assert read_user_file(short / "link.yaml", max_bytes=1 << 20) == PACK
    with pytest.raises(FileTooLarge):
        read_user_file(short / "real.yaml", max_bytes=10)
    with pytest.raises(FileNotFoundError):
        read_user_file(short / "missing.yaml", max_bytes=10)


@pytest.mark.parametrize("swap", ["fifo", "/dev/zero", "/dev/tty"])
def test_a_file_swapped_after_it_was_looked_at_is_refused_without_blocking(
    short: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    """Between the look (stat) and the open, the regular file becomes a pipe or a
    device: the open does not block (O_NONBLOCK, O_NOCTTY) and fstat refuses it."""
    path = short / "swapped.yaml"
    regular = short / "regular.yaml"
    regular.write_bytes(PACK)
    if swap == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(swap)
    real_stat = os.stat

    def looks_regular(target: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(target) == str(path):
            return real_stat(regular)
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", looks_regular)
    # Refused by fstat, or by the open itself (a terminal this process does not have).
    with pytest.raises(OSError, match=r"not a regular file|No such device") as caught:
        within(2, lambda: read_user_file(path, max_bytes=1 << 20))
    assert isinstance(caught.value, NotRegularFile) or swap == "/dev/tty"


# ------------------------------------------------------------------- every reader


def test_the_pack_loader_names_it(odd: tuple[Path, str]) -> None:
    path, kind = odd
    pack = within(2, lambda: load_pack(path))
    [error] = pack.errors
    assert str(error) == (
        f"{path}:1:1: cannot read the file: it is {kind}, and Nerve reads regular files only"
    )
    assert not pack.usable


def test_a_packs_folder_with_one_loads_the_others(odd: tuple[Path, str]) -> None:
    path, _ = odd
    (path.parent / "good.yaml").write_bytes(PACK)
    packs = within(2, lambda: load_paths([path.parent]))
    by_name = {Path(p.file).name: p for p in packs}
    assert by_name["good.yaml"].ok
    assert not by_name["odd.yaml"].usable


def test_settings_in_one_are_reported_and_the_defaults_used(odd: tuple[Path, str]) -> None:
    path, kind = odd
    settings = path.parent / "settings.yaml"
    path.rename(settings) if not path.is_symlink() else settings.symlink_to(os.readlink(path))
    loaded = within(2, lambda: Settings.load(settings))
    assert loaded.values() == Settings().values()
    [error] = loaded.errors
    assert f"it is {kind}" in error


def test_saving_settings_over_one_does_not_block(short: Path) -> None:
    settings = short / "settings.yaml"
    os.mkfifo(settings)
    within(5, lambda: Settings(max_depth=3).save(settings))
    assert Settings.load(settings).max_depth == 3


def test_approvals_in_one_approve_nothing(odd: tuple[Path, str]) -> None:
    path, _ = odd
    approvals = path.parent / trust.APPROVALS_FILE
    if path.is_symlink():
        approvals.symlink_to(os.readlink(path))
    else:
        path.rename(approvals)
    assert within(2, lambda: trust.Approvals(path.parent).read()) == {}


def test_importing_one_is_refused(odd: tuple[Path, str], short: Path) -> None:
    path, kind = odd
    with pytest.raises(trust.TrustError, match=re.escape(f"not a regular file but {kind}")):
        within(2, lambda: trust.plan_import(path, short / "packs"))


def test_the_editor_refuses_to_open_one(odd: tuple[Path, str]) -> None:
    path, _ = odd
    with pytest.raises(PackWriteError, match="cannot read the file"):
        within(2, lambda: PackDocument.load(path))


def test_a_packs_folder_holding_one_does_not_stop_an_import(short: Path) -> None:
    packs = short / "packs"
    packs.mkdir()
    os.mkfifo(packs / "test.files.yaml")  # where the import goes, and another
    (packs / "zero.yaml").symlink_to("/dev/zero")
    source = short / "new.yaml"
    source.write_bytes(PACK)
    plan = within(5, lambda: trust.plan_import(source, packs))
    assert plan.pack.ok


# ----------------------------------------------------------------- the command line


@pytest.mark.timeout(60)
def test_nerve_validate_names_each_and_returns(nerve_env: dict[str, str], short: Path) -> None:
    folder = short / "packs"
    folder.mkdir()
    expected = {}
    for name, make in KINDS.items():
        path = folder / (name.replace("/", "").replace(" ", "-") + ".yaml")
        expected[path] = make(path, short)
    (folder / "good.yaml").write_bytes(PACK)
    start = time.monotonic()
    proc = subprocess.run(
        [*NERVE, "validate", str(folder)],
        env=nerve_env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert time.monotonic() - start < 20
    assert proc.returncode == 1
    for path, kind in expected.items():
        assert f"{path}:1:1: cannot read the file: it is {kind}" in proc.stderr, path
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["fifo", "/dev/zero", "folder"])
def test_nerve_pack_import_refuses_one(nerve_env: dict[str, str], short: Path, name: str) -> None:
    path = short / "odd.yaml"
    kind = KINDS[name](path, short)
    proc = subprocess.run(
        [*NERVE, "pack", "import", str(path), "--approve"],
        env=nerve_env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 1
    assert f"not a regular file but {kind}" in proc.stderr
    assert "Traceback" not in proc.stderr
