"""Paths built from event data stay where the rule says, and stay literal.

Rules name their folders in their own text; event values fill in names.
Whatever a value holds (``..``, an absolute path, ``~``, ``~user``, ``$HOME``,
``${VAR}``, a symlink that points out, NUL, line breaks, a very long name),
no file outside those folders is moved, copied over, trashed, opened or used
as a working folder, and a refused value fails the run with a message.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Harness, rules_from, wait_until
from nerve.storage import Store
from test_cli import StartNerve, cli_ok, events, start_nerve  # noqa: F401 (a fixture)


@dataclass
class Tree:
    root: Path
    inbox: Path
    sorted: Path
    home: Path
    opened: Path

    def outside(self) -> dict[str, bytes]:
        """Every file outside inbox/ and sorted/ (and the trash), with its content."""
        found: dict[str, bytes] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            if here in (self.inbox, self.sorted) or self.inbox in here.parents:
                dirnames[:] = []
                continue
            if self.sorted in here.parents or "Trash" in here.parts:
                dirnames[:] = []
                continue
            for name in filenames:
                p = here / name
                if not p.is_symlink():
                    found[str(p)] = p.read_bytes()
        return found

    def reset(self) -> None:
        for folder in (self.inbox, self.sorted):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        (self.inbox / "a.txt").write_bytes(b"mine")
        (self.inbox / "sub").mkdir()
        (self.inbox / "sub" / "b.txt").write_bytes(b"mine too")
        (self.inbox / "link").symlink_to(self.root)  # a folder link that points out
        (self.inbox / "lnk.txt").symlink_to(self.root / "victim.txt")
        (self.sorted / "out").symlink_to(self.root)
        (self.root / "victim.txt").write_bytes(b"victim")
        (self.home / "secret.txt").write_bytes(b"secret")
        self.opened.write_text("")


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tree:
    root = tmp_path / "root"
    home = root / "home"
    home.mkdir(parents=True)
    t = Tree(root, root / "inbox", root / "sorted", home, tmp_path / "opened.txt")
    t.reset()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NERVE_TEST_ROOT", str(root))
    monkeypatch.setenv("NERVE_TEST_NAME", "secret.txt")
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    from send2trash import plat_other

    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", bytes(data))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", bytes(data / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(data / "Trash"))
    # An opener that records what it was asked to open.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    opener.write_text(f'#!/bin/sh\nprintf "%s\\0" "$1" >> "{t.opened}"\n')
    opener.chmod(opener.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return t


HOSTILE_NAMES = [
    "../victim.txt",
    "../../root/victim.txt",
    "sub/../../victim.txt",
    "..",
    ".",
    "./../victim.txt",
    "link/victim.txt",
    "link/home/secret.txt",
    "link",
    "lnk.txt",
    "/victim.txt",
    "~/secret.txt",
    "~root/x",
    "~",
    "$HOME/secret.txt",
    "${HOME}/secret.txt",
    "$NERVE_TEST_ROOT/victim.txt",
    "${NERVE_TEST_ROOT}/victim.txt",
    "a\x00b",
    "a.txt\x00../victim.txt",
    "a\nb",
    "\n",
    "x" * 300,
    "y/" * 2100,
    "\u00e9/../../victim.txt",
    "%2e%2e/victim.txt",
    "..\\victim.txt",
    "sub/b.txt",
    "a.txt",
    "-rf",
]

names = st.one_of(
    st.sampled_from(HOSTILE_NAMES),
    st.lists(
        st.sampled_from(
            ["..", ".", "a.txt", "sub", "link", "~", "$HOME", "", "victim.txt", "lnk.txt"]
        ),
        min_size=1,
        max_size=6,
    ).map("/".join),
)

#: (action YAML with INBOX/SORTED for the rule's own folders, what a success may touch)
ACTIONS = {
    "move-src": 'file.move: {src: "INBOX/{event.f}", dest: "SORTED"}',
    "copy-src": 'file.copy: {src: "INBOX/{event.f}", dest: "SORTED"}',
    "move-dest": 'file.move: {src: "INBOX/a.txt", dest: "SORTED/{event.f}"}',
    "copy-dest-home": 'file.copy: {src: "INBOX/a.txt", dest: "~/../sorted/{event.f}"}',
    "copy-name": 'file.copy: {src: "INBOX/a.txt", dest: "SORTED", name: "{event.f}"}',
    "trash": 'file.trash: "INBOX/{event.f}"',
    "trash-env": 'file.trash: "$NERVE_TEST_ROOT/inbox/{event.f}"',
    "cwd": 'run: {argv: [pwd, -P], cwd: "SORTED/{event.f}", wait: true}',
    "open": 'open: "INBOX/{event.f}"',
}


def fire(h: Harness, store: Store, value: str) -> dict[str, Any]:
    event = h.publish("t.go", f=value)

    def recorded() -> dict[str, Any] | None:
        runs = [r for r in store.query_runs(rule_id="test.pack/r") if r["event_id"] == event.id]
        return runs[0] if runs else None

    run: dict[str, Any] = wait_until(recorded, 10, "the run record")
    return run


def inside(path: str, folder: Path) -> bool:
    """Is the entry ``path`` (a symlink itself, not what it points to) in ``folder``?"""
    real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    base = os.path.realpath(folder)
    return os.path.commonpath([real, base]) == base


@pytest.mark.parametrize("action", list(ACTIONS))
def test_event_values_cannot_reach_outside_the_rules_folders(
    action: str, stored: Harness, store: Store, tree: Tree
) -> None:
    yaml = ACTIONS[action].replace("INBOX", str(tree.inbox)).replace("SORTED", str(tree.sorted))
    stored.load(
        f"  - id: r\n    mode: queued\n    when: {{event: t.go}}\n    do:\n      - {yaml}\n"
    )
    before = tree.outside()
    tried: list[str] = []

    @settings(
        max_examples=70,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(value=names)
    def check(value: str) -> None:
        tree.reset()
        tried.append(value)
        run = fire(stored, store, value)
        assert "internal error" not in str(run.get("error")), run
        if run["status"] == "failed":
            assert run["error"], run
        else:
            assert run["status"] == "ok", run
            (entry,) = run["trace"]["actions"]
            res = entry["result"]
            if action == "cwd":
                cwd = os.path.realpath(res["stdout"].strip())
                assert os.path.commonpath([cwd, tree.sorted]) == str(tree.sorted), (value, res)
            if isinstance(res, dict) and "dest" in res:
                assert inside(res["dest"], tree.sorted), (value, res)
            if isinstance(res, dict) and "trashed" in res:
                assert inside(res["trashed"], tree.inbox), (value, res)
                assert os.path.realpath(res["trashed"]) != str(tree.inbox), (value, res)
        assert tree.outside() == before, f"{action} with {value!r} changed a file outside"
        if action == "open":
            opened = [p for p in tree.opened.read_text().split("\0") if p]
            assert all(inside(os.path.dirname(p), tree.inbox) for p in opened), (value, opened)

    check()
    for value in HOSTILE_NAMES:
        check.hypothesis.inner_test(value=value)  # type: ignore[attr-defined]
    assert len(tried) >= len(HOSTILE_NAMES)


def test_plain_names_still_work_and_allow_outside_lets_a_rule_reach_out(
    stored: Harness, store: Store, tree: Tree
) -> None:
    stored.load(
        f"""
  - id: r
    mode: queued
    when: {{event: t.go}}
    do:
      - file.copy: {{src: "{tree.inbox}/{{event.f}}", dest: "{tree.sorted}/{{event.f}}-dir"}}
"""
    )
    run = fire(stored, store, "a.txt")
    assert run["status"] == "ok", run
    assert (tree.sorted / "a.txt-dir" / "a.txt").read_bytes() == b"mine"
    run = fire(stored, store, "../victim.txt")
    assert run["status"] == "failed"
    assert "leads out of" in run["error"]
    assert "allow_outside" in run["error"]

    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - file.copy: {{src: "{tree.inbox}/{{event.f}}", dest: "{tree.sorted}", allow_outside: true}}
"""
    )
    run = fire(stored, store, "../victim.txt")
    assert run["status"] == "ok", run
    assert (tree.sorted / "victim.txt").read_bytes() == b"victim"


def test_home_and_variables_expand_in_the_rules_text_only(
    stored: Harness, store: Store, tree: Tree
) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - file.copy: {src: "~/{event.f}", dest: "$NERVE_TEST_ROOT/sorted"}
"""
    )
    run = fire(stored, store, "secret.txt")
    assert run["status"] == "ok", run
    assert (tree.sorted / "secret.txt").read_bytes() == b"secret"
    (tree.sorted / "secret.txt").unlink()
    for value in ["$NERVE_TEST_NAME", "${NERVE_TEST_NAME}", "${NERVE_TEST_NAME:-x}"]:
        run = fire(stored, store, value)
        assert run["status"] == "failed", (value, run)
        assert "does not exist" in run["error"], run  # taken literally: no such file
        assert not (tree.sorted / "secret.txt").exists()


def test_a_whole_path_from_an_event_must_be_absolute_without_dotdot(
    stored: Harness, store: Store, tree: Tree
) -> None:
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - file.copy: {{src: "{{event.f}}", dest: "{tree.sorted}"}}
"""
    )
    assert fire(stored, store, str(tree.inbox / "a.txt"))["status"] == "ok"
    for value in ["a.txt", "~/secret.txt", "$HOME/secret.txt", f"{tree.inbox}/../victim.txt"]:
        run = fire(stored, store, value)
        assert run["status"] == "failed", (value, run)
    assert not (tree.sorted / "victim.txt").exists()
    assert not (tree.sorted / "secret.txt").exists()


def test_an_input_path_expands_as_the_rules_own_text(
    stored: Harness, store: Store, tree: Tree
) -> None:
    head = (
        "nerve: 1\npack:\n  id: test.pack\n"
        "  inputs: {target: {type: text, default: '~/../sorted'}}\nrules:\n"
    )
    rules = rules_from(
        """
  - id: r
    when: {event: t.go}
    do:
      - file.copy: {src: "~/{event.f}", dest: "{input.target}/{event.f}-dir"}
""",
        pack_head=head,
    )
    stored.engine.call(stored.engine.set_rules, rules)
    run = fire(stored, store, "secret.txt")
    assert run["status"] == "ok", run
    assert (tree.sorted / "secret.txt-dir" / "secret.txt").read_bytes() == b"secret"


def test_the_running_daemon_keeps_emitted_values_inside(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    """As reported: ``nerve emit`` with ``f=../../victim.txt`` and ``$HOME`` values."""
    inbox, sorted_, victim = short_tmp / "inbox", short_tmp / "sorted", short_tmp / "victim.txt"
    inbox.mkdir()
    victim.write_text("victim")
    (inbox / "mine.txt").write_text("mine")
    pack = short_tmp / "move.yaml"
    pack.write_text(
        "nerve: 1\npack: {id: t.move}\nrules:\n  - id: m\n    mode: queued\n"
        "    when: {event: x.move}\n"
        f'    do: [{{file.move: {{src: "{inbox}/{{event.f}}", dest: "{sorted_}/{{event.d}}"}}}}]\n'
    )
    start_nerve("--rules", pack)
    hostile = ["../victim.txt", "../../" + str(victim), "$HOME/../victim.txt", "~/victim.txt"]
    for value in hostile:
        cli_ok(nerve_env, "emit", "x.move", f"f={value}", "d=x")
    cli_ok(nerve_env, "emit", "x.move", "f=mine.txt", "d=../..")
    cli_ok(nerve_env, "emit", "x.move", "f=mine.txt", "d=$HOME")
    failed = wait_until(
        lambda: len(found := events(nerve_env, "--type", "rule.failed")) >= 5 and found,
        20,
        "five refused runs",
    )
    assert all("internal error" not in str(e) for e in failed)
    assert victim.read_text() == "victim"
    # $HOME in a value is a folder literally named $HOME, inside sorted/.
    wait_until((sorted_ / "$HOME" / "mine.txt").exists, 10, "the literal move")
    assert [p.name for p in sorted_.rglob("*.txt")] == ["mine.txt"]
