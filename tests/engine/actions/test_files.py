"""``file.copy``, ``file.move`` and ``file.trash`` with real files in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import PACK_HEAD, Harness, wait_until
from nerve.packs.loader import load_pack
from nerve.storage import Store


def do(h: Harness, store: Store, action: str, **data: Any) -> dict[str, Any]:
    """Load one rule with ``action``, fire it once and return its run record."""
    h.load(f"  - id: r\n    when: {{event: t.go}}\n    do:\n      - {action}\n")
    event = h.publish("t.go", **data)

    def recorded() -> dict[str, Any] | None:
        runs = [r for r in store.query_runs(rule_id="test.pack/r") if r["event_id"] == event.id]
        return runs[0] if runs else None

    run: dict[str, Any] = wait_until(recorded, 10, "the run record")
    return run


def result(run: dict[str, Any]) -> Any:
    (action,) = run["trace"]["actions"]
    assert run["status"] == "ok", run
    return action["result"]


def error(run: dict[str, Any]) -> str:
    assert run["status"] == "failed", run
    return str(run["error"])


@pytest.fixture
def src(tmp_path: Path) -> Path:
    f = tmp_path / "in" / "Screenshot 1 'x' $(y).png"
    f.parent.mkdir()
    f.write_bytes(b"\x89PNG data")
    return f


# ---------------------------------------------------------------------- copy


def test_copy_into_a_new_folder(stored: Harness, store: Store, src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "deeper"
    run = do(
        stored,
        store,
        'file.copy: {src: "{event.path}", dest: "{event.dest}"}',
        path=str(src),
        dest=str(dest),
    )
    target = dest / src.name
    assert result(run) == {"src": str(src), "dest": str(target)}
    assert target.read_bytes() == b"\x89PNG data"
    assert src.exists()


def test_copy_with_a_new_name_and_home(
    stored: Harness, store: Store, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = do(
        stored,
        store,
        'file.copy: {src: "{event.path}", dest: "~/Pictures", name: "{now:%Y}-{event.n}.png"}',
        path=str(src),
        n=7,
    )
    (copied,) = (tmp_path / "home" / "Pictures").iterdir()
    assert copied.name.endswith("-7.png")
    assert result(run)["dest"] == str(copied)


@pytest.mark.parametrize(
    ("on_conflict", "outcome"),
    [
        ("rename", (["Screenshot 1 'x' $(y) (1).png", "Screenshot 1 'x' $(y).png"], b"old")),
        ("overwrite", (["Screenshot 1 'x' $(y).png"], b"\x89PNG data")),
        ("skip", (["Screenshot 1 'x' $(y).png"], b"old")),
    ],
)
def test_copy_conflicts(
    stored: Harness, store: Store, src: Path, on_conflict: str, outcome: tuple[list[str], bytes]
) -> None:
    names, content = outcome
    tmp_path = src.parent.parent
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / src.name).write_bytes(b"old")
    run = do(
        stored,
        store,
        f'file.copy: {{src: "{{event.path}}", dest: "{dest}", on_conflict: {on_conflict}}}',
        path=str(src),
    )
    assert sorted(p.name for p in dest.iterdir()) == sorted(names)
    assert (dest / src.name).read_bytes() == content
    if on_conflict == "skip":
        assert result(run) == {"skipped": str(dest / src.name)}


def test_copy_conflict_fail(stored: Harness, store: Store, src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / src.name).write_bytes(b"old")
    run = do(
        stored,
        store,
        f'file.copy: {{src: "{{event.path}}", dest: "{dest}", on_conflict: fail}}',
        path=str(src),
    )
    assert "already exists" in error(run)
    assert (dest / src.name).read_bytes() == b"old"


def test_copy_a_folder(stored: Harness, store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    (folder / "link").symlink_to("sub/a.txt")
    run = do(stored, store, f'file.copy: {{src: "{folder}", dest: "{tmp_path / "backup"}"}}')
    copy = tmp_path / "backup" / "project"
    assert result(run)["dest"] == str(copy)
    assert (copy / "sub" / "a.txt").read_text() == "a"
    assert (copy / "link").is_symlink()  # links are copied as links


def test_copy_missing_source_fails(stored: Harness, store: Store, tmp_path: Path) -> None:
    run = do(stored, store, f'file.copy: {{src: "{tmp_path}/nope", dest: "{tmp_path}/out"}}')
    assert error(run) == f"{tmp_path}/nope does not exist"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../escape.png", "a/b.png", "..", "{event.empty}"])
def test_bad_target_names_fail(
    stored: Harness, store: Store, src: Path, tmp_path: Path, name: str
) -> None:
    run = do(
        stored,
        store,
        f'file.copy: {{src: "{src}", dest: "{tmp_path}/out", name: "{name}"}}',
        empty="",
    )
    assert "bad file name" in error(run)
    assert not (tmp_path / "escape.png").exists()


# ---------------------------------------------------------------------- move


def test_move(stored: Harness, store: Store, src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sorted"
    run = do(
        stored,
        store,
        'file.move: {src: "{event.path}", dest: "{event.dir}/../sorted"}',
        path=str(src),
        dir=str(src.parent),
    )
    assert not src.exists()
    assert (dest / src.name).read_bytes() == b"\x89PNG data"
    assert Path(result(run)["dest"]).resolve() == (dest / src.name).resolve()


def test_move_renames_on_conflict(stored: Harness, store: Store, src: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sorted"
    dest.mkdir()
    (dest / src.name).write_bytes(b"old")
    (dest / "Screenshot 1 'x' $(y) (1).png").write_bytes(b"older")
    run = do(stored, store, f'file.move: {{src: "{src}", dest: "{dest}"}}')
    assert result(run)["dest"] == str(dest / "Screenshot 1 'x' $(y) (2).png")
    assert (dest / "Screenshot 1 'x' $(y) (2).png").read_bytes() == b"\x89PNG data"
    assert (dest / src.name).read_bytes() == b"old"


def test_move_overwrites_a_folder(stored: Harness, store: Store, tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "fresh.txt").write_text("fresh")
    (tmp_path / "dest" / "new").mkdir(parents=True)
    (tmp_path / "dest" / "new" / "stale.txt").write_text("stale")
    run = do(
        stored,
        store,
        f'file.move: {{src: "{tmp_path}/new", dest: "{tmp_path}/dest", on_conflict: overwrite}}',
    )
    assert result(run)["dest"] == str(tmp_path / "dest" / "new")
    assert [p.name for p in (tmp_path / "dest" / "new").iterdir()] == ["fresh.txt"]


def test_move_missing_source_fails(stored: Harness, store: Store, tmp_path: Path) -> None:
    run = do(stored, store, f'file.move: {{src: "{tmp_path}/nope", dest: "{tmp_path}/out"}}')
    assert "does not exist" in error(run)


def test_transfer_needs_src_and_dest() -> None:
    pack = load_pack(
        (
            PACK_HEAD + "  - id: r\n    when: {event: t.go}\n    do: [{file.move: {src: a}}]\n"
        ).encode(),
        filename="test.yaml",
    )
    assert any("missing 'dest'" in str(e) for e in pack.errors)


# --------------------------------------------------------------------- trash


@pytest.fixture
def trash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's trash in tmp_path: XDG_DATA_HOME (and HOME) point there.

    Send2Trash reads XDG_DATA_HOME when it is imported, so its copy is patched too.
    """
    data = tmp_path / "data"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    from send2trash import plat_other

    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", bytes(data))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", bytes(data / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(data / "Trash"))
    return data / "Trash"


def test_trash(stored: Harness, store: Store, src: Path, trash: Path) -> None:
    run = do(stored, store, 'file.trash: "{event.path}"', path=str(src))
    assert result(run) == {"trashed": str(src)}
    assert not src.exists()
    assert (trash / "files" / src.name).read_bytes() == b"\x89PNG data"
    info = (trash / "info" / f"{src.name}.trashinfo").read_text()
    assert "[Trash Info]" in info  # restorable from the desktop's trash


def test_trash_a_folder_and_a_same_name_twice(
    stored: Harness, store: Store, tmp_path: Path, trash: Path
) -> None:
    for content in ("one", "two"):
        folder = tmp_path / "old"
        folder.mkdir()
        (folder / "f.txt").write_text(content)
        run = do(stored, store, f'file.trash: "{folder}"')
        assert result(run) == {"trashed": str(folder)}
        assert not folder.exists()
    assert sorted(p.read_text() for p in (trash / "files").glob("*/f.txt")) == ["one", "two"]


def test_trash_missing_file_fails(
    stored: Harness, store: Store, tmp_path: Path, trash: Path
) -> None:
    run = do(stored, store, f'file.trash: "{tmp_path}/nope"')
    assert "does not exist" in error(run)
    assert not trash.exists()
