"""Loops through the outside world are cut: a rule whose program runs
``nerve emit`` for the event it reacts to, or whose file action writes into
the folder it watches. The events that come back carry the run as their
cause, so the cascade guard suspends the rule. A real daemon, real programs,
real folders."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_until
from nerve.bus import Bus
from nerve.causes import Causes, Origin
from test_cli import StartNerve, cli_ok, events, start_nerve  # noqa: F401

PY = sys.executable

#: Ways a rule's program can end up running `nerve emit` (each its own loop).
EMITTERS = {
    "run": "[{run: [PY, -m, nerve, emit, TYPE]}]",
    "run-wait": "[{run: {argv: [PY, -m, nerve, emit, TYPE], wait: true}}]",
    "shell": '[{shell: "PY -m nerve emit TYPE"}]',
    "shell-wait": '[{shell: {command: "PY -m nerve emit TYPE; true", wait: true}}]',
    "grandchild": '[{run: [sh, -c, "sleep 0.05; PY -m nerve emit TYPE & wait"]}]',
    # The shell exits at once: the emitter is re-parented to init (or a
    # subreaper) and found through the session the rule's program leads.
    "orphan": '[{shell: "(sleep 0.2; PY -m nerve emit TYPE) >/dev/null 2>&1 &"}]',
    # `open` hands the target to the desktop's opener (here a stand-in xdg-open).
    "open": "[{open: TYPE}]",
}

FAKE_OPENER = '#!/bin/sh\nexec PY -m nerve emit "$1"\n'


def loop_pack(folder: Path) -> Path:
    rules = []
    for name, template in EMITTERS.items():
        type_ = f"loop.{name}"
        do = template.replace("PY", PY).replace("TYPE", type_)
        rules.append(
            f"  - id: {name}\n    when: {{event: {type_}}}\n    mode: parallel\n"
            f"    max: 5\n    do: {do}\n"
        )
    path = folder / "loops.yaml"
    path.write_text("nerve: 1\npack: {id: test.loops}\nrules:\n" + "".join(rules))
    return path


def suspended(env: dict[str, str]) -> str:
    return cli_ok(env, "status")


@pytest.mark.timeout(120)
def test_nerve_emit_from_a_rules_program_is_cut(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    bin_dir = short_tmp / "bin"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    opener.write_text(FAKE_OPENER.replace("PY", PY))
    opener.chmod(0o755)
    nerve_env["PATH"] = f"{bin_dir}:{nerve_env['PATH']}"
    start_nerve("--rules", loop_pack(short_tmp))
    started = time.monotonic()
    for name in EMITTERS:
        cli_ok(nerve_env, "emit", f"loop.{name}")
    for name in EMITTERS:
        wait_until(
            lambda n=name: f"suspended: test.loops/{n}:" in suspended(nerve_env),
            60,
            f"rule {name} suspended",
        )
    took = time.monotonic() - started
    time.sleep(1.0)  # (anything still on its way)
    for name in EMITTERS:
        found = events(nerve_env, "--type", f"loop.{name}")
        # The user's one, then one per run up to the depth limit: no more.
        assert 2 <= len(found) <= 11, (name, len(found))
        assert found[0]["cause"] is None
        assert found[0]["depth"] == 0
        for i, event in enumerate(found[1:], 1):
            assert event["cause"], (name, event)
            assert event["depth"] == i, (name, [e["depth"] for e in found])
    assert took < 60


#: (In mode parallel: in mode single a rule whose run is still copying skips
#: the event its copy makes, which is no loop.)
FILE_LOOPS = {
    "copy-into-own-folder": """
  - id: r
    mode: parallel
    when: {file.created: {path: "A"}}
    do: [{file.copy: {src: "{event.path}", dest: "A"}}]
""",
    "copy-renamed": """
  - id: r
    mode: parallel
    when: {file.created: {path: "A", glob: "*.txt"}}
    do: [{file.copy: {src: "{event.path}", dest: "A", name: "c-{event.name}"}}]
""",
    "move-ping-pong": """
  - id: r
    mode: parallel
    when: {file.created: {path: "A"}}
    do: [{file.move: {src: "{event.path}", dest: "B"}}]
  - id: back
    mode: parallel
    when: {file.created: {path: "B"}}
    do: [{file.move: {src: "{event.path}", dest: "A"}}]
""",
    "copy-a-folder-into-itself": """
  - id: r
    mode: parallel
    when: {file.created: {path: "A"}}
    if: [{event: {is_dir: true}}]
    do: [{file.copy: {src: "{event.path}", dest: "A"}}]
""",
    "copy-to-other-watched-folder": """
  - id: r
    mode: parallel
    when: {file.created: {path: "A"}}
    do: [{file.copy: {src: "{event.path}", dest: "B"}}]
  - id: back
    mode: parallel
    when: {file.created: {path: "B"}}
    do: [{file.copy: {src: "{event.path}", dest: "A"}}]
""",
}


@pytest.mark.parametrize("loop", sorted(FILE_LOOPS))
def test_a_rule_writing_into_the_folder_it_watches_is_cut(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
    loop: str,
) -> None:
    a, b = short_tmp / "a", short_tmp / "b"
    a.mkdir()
    b.mkdir()
    text = FILE_LOOPS[loop].replace('"A"', f'"{a}"').replace('"B"', f'"{b}"')
    pack = short_tmp / "files.yaml"
    pack.write_text("nerve: 1\npack: {id: test.files}\nrules:" + text)
    start_nerve("--rules", pack)
    time.sleep(0.5)  # (the watcher is up once status answers; give inotify a moment)
    if "folder" in loop:
        (short_tmp / "seed").mkdir()
        (short_tmp / "seed" / "f.txt").write_text("x")
        shutil.move(short_tmp / "seed", a / "seed")
    else:
        (a / "seed.txt").write_text("x")
    wait_until(lambda: "suspended: test.files/" in suspended(nerve_env), 30, "a rule suspended")
    time.sleep(1.5)  # (copies still on their way)
    made = sum(1 for _ in a.rglob("*")) + sum(1 for _ in b.rglob("*"))
    assert made <= 40, made  # without the cause it ran on and on
    found = [e for e in events(nerve_env, "--type", "file.created") if e["cause"]]
    assert found, "no file event carried its cause"
    assert max(e["depth"] for e in found) >= 2


# ---------------------------------------------------------------- the registry


def test_causes_follow_ancestry_and_sessions_and_expire() -> None:
    import subprocess

    causes = Causes()
    origin = Origin("run1", 3)
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 30 & echo $!; wait"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert leader.stdout is not None
        child = int(leader.stdout.readline())
        assert causes.of_process(child) is None
        causes.note_process(leader.pid, origin)
        assert causes.of_process(leader.pid) == origin
        assert causes.of_process(child) == origin  # through the ppid chain
        assert causes.of_process(os.getpid()) is None  # not ours: the test itself
    finally:
        leader.kill()
        leader.wait()
    causes.process_ended(leader.pid)
    orphan_session = subprocess.run(
        ["ps", "-o", "sid=", "-p", str(child)], capture_output=True, text=True, check=False
    ).stdout.strip()
    if orphan_session:  # the sleep outlived its shell: found through its session
        assert causes.of_process(child) == origin
    os.system(f"kill {child} 2>/dev/null")


def test_paths_are_attributed_for_a_short_while(tmp_path: Path, monkeypatch: Any) -> None:
    import nerve.causes as module

    causes = Causes()
    origin = Origin("r", 0)
    causes.note_path(str(tmp_path / "x" / "f.txt"), origin)
    causes.note_path(str(tmp_path / "tree"), origin, tree=True)
    assert causes.of_path(str(tmp_path / "x" / "f.txt")) == origin
    assert causes.of_path(str(tmp_path / "x" / ".." / "x" / "f.txt")) == origin
    assert causes.of_path(str(tmp_path / "x" / "g.txt")) is None
    assert causes.of_path(str(tmp_path / "tree" / "deep" / "f")) == origin
    assert causes.of_path(str(tmp_path / "treex")) is None
    monkeypatch.setattr(module, "PATH_TTL_S", -1.0)
    causes.note_path(str(tmp_path / "old"), origin)
    assert causes.of_path(str(tmp_path / "old")) is None


def test_the_bus_has_one_registry() -> None:
    assert isinstance(Bus().causes, Causes)
