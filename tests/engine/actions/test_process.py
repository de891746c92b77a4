"""``run``, ``shell`` and ``open`` for real: real programs, real files.

The hostile value below carries spaces, both quotes, ``;``, backticks, ``$()``,
a line break and globs. Whatever a placeholder holds must arrive as one
literal argument, and nothing in it may run.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import PACK_HEAD, Harness, wait_until
from nerve.packs.loader import load_pack
from nerve.storage import Store

HOSTILE = "a b  'c' \"d\" ; touch {pwn} ; `touch {pwn}` $(touch {pwn}) \\ * ~ $HOME\nnext"
PY = sys.executable
# Writes its arguments (after the output file) to that file as JSON.
ARGV_DUMP = "import sys,json; open(sys.argv[1],'w').write(json.dumps(sys.argv[2:]))"


def last_run(h: Harness, rule: str = "r") -> dict[str, Any]:
    run: dict[str, Any] = wait_until(lambda: h.summary(rule)["last_run"], 10, "a run")
    return run


def run_record(store: Store, rule: str = "r") -> dict[str, Any]:
    runs = wait_until(lambda: store.query_runs(rule_id=f"test.pack/{rule}"), 10, "a run record")
    return dict(runs[0])


def hostile(tmp_path: Path) -> tuple[str, Path]:
    pwn = tmp_path / "pwned"
    return HOSTILE.replace("{pwn}", str(pwn)), pwn


def load_errors(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


# ----------------------------------------------------------------------- run


def test_run_placeholder_stays_one_argument(harness: Harness, tmp_path: Path) -> None:
    value, pwn = hostile(tmp_path)
    out = tmp_path / "argv.json"
    harness.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run: {{argv: [{PY}, -c, "{ARGV_DUMP}", "{out}", "{{event.value}}"], wait: true}}
      - emit: done
"""
    )
    harness.publish("t.go", value=value)
    harness.recorder.wait("done")
    assert json.loads(out.read_text()) == [value]
    assert not pwn.exists()


def test_run_placeholders_inside_arguments(harness: Harness, tmp_path: Path) -> None:
    value, pwn = hostile(tmp_path)
    out = tmp_path / "argv.json"
    harness.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run: [{PY}, -c, "{ARGV_DUMP}", "{out}",
              "--name={{event.value}}", "{{event.n}}", "{{event.none}}"]
      - emit: done
"""
    )
    harness.publish("t.go", value=value, n=7)
    harness.recorder.wait("done")
    # Not waited for (the default): the program runs on its own.
    wait_until(lambda: out.exists() and out.read_text(), 10, "the program's output")
    assert json.loads(out.read_text()) == [f"--name={value}", "7", ""]
    assert not pwn.exists()


def test_run_wait_result_env_and_cwd(stored: Harness, store: Store, tmp_path: Path) -> None:
    script = (
        "import os,sys; print(os.getcwd()); print(os.environ['GREETING']);"
        " print(os.environ['NERVE_RULE']); sys.stderr.write('warn')"
    )
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run:
          argv: [{PY}, -c, "{script}"]
          wait: true
          cwd: "{tmp_path}"
          env: {{GREETING: "hello {{event.who}}"}}
"""
    )
    stored.publish("t.go", who="you")
    run = run_record(store)
    assert run["status"] == "ok"
    (action,) = run["trace"]["actions"]
    assert action["result"] == {
        "exit_code": 0,
        "stdout": f"{tmp_path}\nhello you\ntest.pack/r\n",
        "stderr": "warn",
    }


def test_run_nonzero_exit_fails_unless_check_is_off(stored: Harness, store: Store) -> None:
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run: {{argv: [{PY}, -c, "import sys; sys.exit(4)"], wait: true, check: false}}
      - run:
          argv: [{PY}, -c, "import sys; print('oops', file=sys.stderr); sys.exit(5)"]
          wait: true
      - emit: never
"""
    )
    stored.publish("t.go")
    (failed,) = stored.recorder.wait("rule.failed")
    assert failed.data["error"] == f"{PY} exited with 5: oops"
    run = run_record(store)
    first, second = run["trace"]["actions"]
    assert first["result"]["exit_code"] == 4
    assert "error" not in first
    assert "exited with 5: oops" in second["error"]
    assert stored.recorder.of("never") == []


def test_run_timeout_stops_the_program(stored: Harness, store: Store, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run:
          argv: [sh, -c, "echo $$ > {pidfile}; exec sleep 30"]
          wait: true
          timeout: 300ms
"""
    )
    start = time.monotonic()
    stored.publish("t.go")
    stored.recorder.wait("rule.failed")
    assert time.monotonic() - start < 5
    run = run_record(store)
    assert "did not finish within 0.3s" in run["error"]
    assert not Path(f"/proc/{pidfile.read_text().strip()}").exists()


def test_pause_kills_a_waited_program(harness: Harness, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    harness.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run:
          argv: [sh, -c, "echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 30"]
          wait: true
"""
    )
    harness.publish("t.go")
    wait_until(pidfile.exists, 10, "the program to start")
    pid = pidfile.read_text().strip()
    paused = time.monotonic()
    harness.engine.call(harness.engine.pause, "test")
    wait_until(lambda: last_run(harness)["status"] == "cancelled", 5, "cancelled")
    assert time.monotonic() - paused < 1.0
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped, not left running


def test_run_missing_program_fails(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do: [{run: [no-such-program-nerve-test]}]
"""
    )
    harness.publish("t.go")
    (failed,) = harness.recorder.wait("rule.failed")
    assert "program not found: no-such-program-nerve-test" in failed.data["error"]


def test_a_nul_from_an_event_fails_the_run_cleanly(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do: [{run: [echo, "{event.text}"]}]
"""
    )
    harness.publish("t.go", text="a\x00b")
    (failed,) = harness.recorder.wait("rule.failed")
    assert failed.data["error"] == (
        "cannot start echo: argument 1 holds a NUL character, which a program cannot receive"
    )


def test_run_string_with_spaces_is_a_load_error() -> None:
    errors = load_errors("  - id: r\n    when: {event: t.go}\n    do: [{run: 'ls -l /tmp'}]\n")
    assert len(errors) == 1
    assert "'run' takes a list: [ls, -l, /tmp]" in errors[0]


def test_run_timeout_needs_wait() -> None:
    errors = load_errors(
        "  - id: r\n    when: {event: t.go}\n    do: [{run: {argv: [ls], timeout: 1s}}]\n"
    )
    assert any("'timeout' needs 'wait: true'" in e for e in errors)


# --------------------------------------------------------------------- shell


@pytest.mark.parametrize(
    "command",
    [
        # The documented form: placeholders bare, quoted by Nerve.
        "printf %s {event.value} > {event.out}",
        # Quoted by the user out of habit: still one literal value, nothing runs.
        'printf %s "{event.value}" > "{event.out}"',
        "printf %s '{event.value}' > '{event.out}'",
        "printf %s \"x{event.value}y\" | sed 's/^x//; s/y$//' > {event.out}",
        'printf %s "$(printf %s {event.value})" > {event.out}',
        "# it's a comment with a quote\nprintf %s {event.value} > {event.out}",
    ],
)
def test_shell_values_arrive_literally(harness: Harness, tmp_path: Path, command: str) -> None:
    value, pwn = hostile(tmp_path)
    out = tmp_path / "out dir" / "result's.txt"
    out.parent.mkdir()
    harness.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - shell: {{command: {json.dumps(command)}, wait: true}}
      - emit: done
"""
    )
    harness.publish("t.go", value=value, out=str(out))
    harness.recorder.wait("done")
    expected = value.rstrip("\n") if "$(" in command else value  # $() drops trailing newlines
    assert out.read_text() == expected
    assert not pwn.exists()


def test_shell_pipes_and_exit_codes(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - shell: {command: "printf 'a\\nb\\nc\\n' | wc -l", wait: true}
      - shell: {command: "exit 3", wait: true}
"""
    )
    stored.publish("t.go")
    stored.recorder.wait("rule.failed")
    run = run_record(store)
    first, second = run["trace"]["actions"]
    assert first["result"]["stdout"].strip() == "3"
    assert "/bin/sh exited with 3" in second["error"]


def test_shell_comment_cannot_be_broken_out_of(harness: Harness, tmp_path: Path) -> None:
    value, pwn = hostile(tmp_path)
    value = f"\ntouch {pwn}\n"
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - shell: {command: "true # {event.value}", wait: true}
      - emit: done
"""
    )
    harness.publish("t.go", value=value)
    harness.recorder.wait("done")
    assert not pwn.exists()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo \\\\{event.value}", "cannot follow a backslash"),
        ("cat <<'EOF'\\n{event.value}\\nEOF", "quoted here-document"),
        ("echo $'a{event.value}'", "$'...'"),
    ],
)
def test_shell_spots_that_cannot_be_made_safe_are_load_errors(command: str, message: str) -> None:
    errors = load_errors(
        f'  - id: r\n    when: {{event: t.go}}\n    do: [{{shell: "{command}"}}]\n'
    )
    assert len(errors) == 1
    assert message in errors[0]


# ---------------------------------------------------------------------- open


@pytest.fixture
def fake_opener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``xdg-open`` on PATH that records what it was asked to open."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "opened.txt"
    opener = bin_dir / "xdg-open"
    opener.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{log}"\n')
    opener.chmod(opener.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return log


def test_open_paths_and_urls(harness: Harness, fake_opener: Path, tmp_path: Path) -> None:
    value, pwn = hostile(tmp_path)
    harness.load(
        """
  - id: r
    mode: queued
    when: {event: t.go}
    do:
      - open: "{event.target}"
      - emit: done
  - id: own
    mode: queued
    when: {event: t.own}
    do:
      - open: "~/Documents/{event.name}"
      - emit: done
"""
    )
    absolute = f"{tmp_path}/{value}"
    for target in ["https://example.org/?q=a b", absolute]:
        harness.publish("t.go", target=target)
    harness.publish("t.own", name="report.pdf")
    harness.recorder.wait("done", 3)
    expected = [
        "https://example.org/?q=a b",  # a whole URL from the event is passed on as it is
        absolute,  # so is an absolute path
        f"{tmp_path}/home/Documents/report.pdf",  # ~ in the rule's own text is the home
    ]
    # The openers run detached, side by side: wait for all three lines.
    wait_until(
        lambda: fake_opener.exists() and all(f"{t}\n" in fake_opener.read_text() for t in expected),
        10,
        "all three opened",
    )
    assert len(fake_opener.read_text()) == sum(len(t) + 1 for t in expected)
    assert not pwn.exists()
    # ~ and $VARS in a value are not expanded: a relative value is refused.
    for target in ["~/Documents/report.pdf", "$HOME/x", value]:
        harness.publish("t.go", target=target)
    failed = harness.recorder.wait("rule.failed", 3)
    assert all("is not an absolute path" in f.data["error"] for f in failed)


def test_open_without_an_opener_fails(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    harness.load("  - id: r\n    when: {event: t.go}\n    do: [{open: /tmp}]\n")
    harness.publish("t.go")
    (failed,) = harness.recorder.wait("rule.failed")
    assert "xdg-open is not installed" in failed.data["error"]


def test_a_detached_program_is_reaped_when_it_ends(harness: Harness) -> None:
    harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - run: [sleep, "0.2"]
"""
    )
    harness.publish("t.go")
    run = wait_until(lambda: harness.summary("r")["last_run"], 10, "the run")
    assert run["status"] == "ok"
    engine = harness.engine
    pids = engine.call(lambda: [p.pid for p in engine._pidfds.values()])
    assert len(pids) == 1  # watched by the loop (a pidfd), not polled
    (pid,) = pids

    def gone() -> bool:
        # A zombie keeps its /proc entry until it is reaped.
        return not Path(f"/proc/{pid}").exists()

    wait_until(gone, 10, "the ended program to be reaped")
    assert engine.call(lambda: dict(engine._pidfds)) == {}
