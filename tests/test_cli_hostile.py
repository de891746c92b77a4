"""Hostile input against a real headless daemon (its own packs folder, the
watcher, the control socket): numbers out of range, files that are not
files, faked event types, text that would forge log lines. Nerve reports
each with its place and keeps serving: later reloads work, SIGTERM stops it
within a second, and the next start is a normal one."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from nerve.cli import EXIT_INVALID, EXIT_USAGE
from test_cli import (  # the fixture too: this module starts daemons as test_cli does
    EXIT_OK,
    Instance,
    StartNerve,
    cli,
    cli_ok,
    socket_file,
)
from test_cli import start_nerve as _start_nerve_fixture  # noqa: F401 (registers the fixture)
from test_cli import wait_for as wait_until


@pytest.fixture
def daemon(_start_nerve_fixture: StartNerve) -> StartNerve:  # noqa: F811
    """Starts headless daemons (test_cli's ``start_nerve``: each is stopped at
    teardown, and none may have printed a traceback)."""
    return _start_nerve_fixture


#: The rule that stays good beside the bad one, in every pack below.
GOOD_RULE = """\
  - id: ok
    when: {event: x.ok}
    do: [{log: fine}]
"""

#: A rule with an out-of-range number, and where the error must point (path, line).
HUGE = [
    ('when: {schedule: {every: "9999999999d"}}', "rules[1].when.schedule.every", 8),
    (
        "when: {count: {times: 1000000000000000000000000000000, within: 1s, of: {event: x.a}}}",
        "rules[1].when.count.times",
        8,
    ),
    (
        "when: {sequence: {within: " + "9" * 400 + ", steps: [{event: x.a}, {event: x.b}]}}",
        "rules[1].when.sequence.within",
        8,
    ),
    (
        'when: {sequence: {within: "' + "9" * 150 + 'ms", steps: [{event: x.a}, {event: x.b}]}}',
        "rules[1].when.sequence.within",
        8,
    ),
    ("when: {event: {type: x.a, data: {n: {gt: " + "7" * 400 + "}}}}", "rules[1].when.event", 8),
    ("when: {event: x.a}\n    debounce: 1.0e+30", "rules[1].debounce", 9),
    ("when: {event: x.a}\n    max: 99999999999999999999\n    mode: queued", "rules[1].max", 9),
]


def pack_text(bad: str | None) -> str:
    head = "nerve: 1\npack: {id: test.hostile, name: Hostile}\nrules:\n" + GOOD_RULE
    if bad is None:
        return head
    return head + f"  - id: bad\n    {bad}\n    do: [{{log: never}}]\n"


def packs_folder(env: dict[str, str]) -> Path:
    folder = Path(env["XDG_CONFIG_HOME"]) / "nerve" / "packs"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def log_text(env: dict[str, str]) -> str:
    path = Path(env["XDG_STATE_HOME"]) / "nerve" / "log" / "nerve.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def stop_within(instance: Instance, seconds: float = 1.0) -> float:
    """SIGTERM ``instance``; how long it took to exit (asserted under ``seconds``)."""
    start = time.monotonic()
    instance.proc.send_signal(signal.SIGTERM)
    code = instance.proc.wait(10)
    took = time.monotonic() - start
    assert code == EXIT_OK, instance.output()
    assert took < seconds, f"SIGTERM took {took:.2f}s:\n{instance.output()}"
    return took


@pytest.mark.timeout(120)
def test_a_huge_number_is_reported_at_its_place_and_nerve_keeps_serving(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    packs = packs_folder(nerve_env)
    pack = packs / "hostile.yaml"
    pack.write_text(pack_text(None))
    instance = daemon()
    for bad, where, line in HUGE:
        pack.write_text(pack_text(bad))
        proc = cli(nerve_env, "reload")
        assert proc.returncode == EXIT_INVALID, proc.stdout + proc.stderr
        assert "internal error" not in proc.stderr
        located = [e for e in proc.stderr.splitlines() if f"{pack}:{line}:" in e]
        assert located, proc.stderr
        assert where in located[0], proc.stderr
        # The pack's good rule runs; the daemon answers.
        status = cli_ok(nerve_env, "status")
        assert "pack test.hostile: 1 rule(s), 1 error(s)" in status, status
    # A later reload of a good file works.
    pack.write_text(pack_text("when: {event: x.a}"))
    assert "reloaded" in cli_ok(nerve_env, "reload")
    assert "pack test.hostile: 2 rule(s), ok" in cli_ok(nerve_env, "status")
    # Bad again, then a restart: the daemon starts, reports, and serves.
    pack.write_text(pack_text(HUGE[0][0]))
    stop_within(instance)
    again = daemon()
    assert "pack test.hostile: 1 rule(s), 1 error(s)" in cli_ok(nerve_env, "status")
    assert f"{pack}:8:" in again.output()
    stop_within(again)


@pytest.mark.timeout(120)
def test_files_that_are_not_files_never_block_and_sigterm_stops_at_once(
    daemon: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    packs = packs_folder(nerve_env)
    instance = daemon()
    fifo = short_tmp / "elsewhere.fifo"
    os.mkfifo(fifo)
    os.mkfifo(packs / "fifo.yaml")
    (packs / "link-to-fifo.yaml").symlink_to(fifo)
    (packs / "zero.yaml").symlink_to("/dev/zero")
    (packs / "folder.yaml").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(packs / "socket.yaml"))
    start = time.monotonic()
    proc = cli(nerve_env, "reload", timeout=20)
    assert time.monotonic() - start < 10
    assert proc.returncode == EXIT_INVALID
    for name, kind in [
        ("fifo.yaml", "a named pipe"),
        ("link-to-fifo.yaml", "a named pipe"),
        ("zero.yaml", "a character device"),
        ("folder.yaml", "a folder"),
        ("socket.yaml", "a socket"),
    ]:
        assert f"{packs / name}:1:1: cannot read the file: it is {kind}" in proc.stderr, name
    # The watcher's own reloads went through too; the daemon serves.
    assert "running" in cli_ok(nerve_env, "status")
    instance.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: reloading packs" in instance.output(), what="the SIGHUP reload")
    stop_within(instance)
    # The next start with the same folder is a normal one.
    again = daemon()
    assert "running" in cli_ok(nerve_env, "status")
    stop_within(again)
    server.close()


#: A rule that takes the loader a little while (100 packs of 20: a reload of a few seconds).
SLOW_RULE = (
    "  - id: r{j}\n    when: {{event: x.a{j}}}\n    if: [{{var: {{v: {{gt: 3}}}}}}]\n"
    "    do: [{{log: 'x {{event.y}}'}}, {{delay: 1s}}]\n"
)


@pytest.mark.timeout(90)
def test_sigterm_is_honoured_while_a_sighup_reload_runs(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    """The reload SIGHUP asks for runs on its own thread: SIGTERM, sent while it
    runs, stops the daemon at once instead of after it."""
    packs = packs_folder(nerve_env)
    for i in range(100):
        rules = "".join(SLOW_RULE.format(j=j) for j in range(20))
        (packs / f"p{i}.yaml").write_text(
            f"nerve: 1\npack: {{id: test.slow{i}, name: Slow}}\nrules:\n{rules}"
        )
    instance = daemon()
    instance.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: reloading packs" in instance.output(), what="the SIGHUP reload")
    stop_within(instance)
    assert "reloaded: 2000" not in instance.output().split("SIGHUP: reloading packs")[1]


@pytest.mark.timeout(60)
def test_a_rendered_duration_out_of_range_fails_the_run_with_a_clear_message(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    daemon()  # with the starter pack: `remind` waits for {event.in}
    for value in ["9999999999d", "9" * 400, "1e999", "9" * 150 + "ms", "inf"]:
        cli_ok(nerve_env, "emit", "remind", f"in={value}", "text=tea")

    def failed() -> list[dict[str, object]]:
        out = cli(nerve_env, "runs", "--rule", "remind", "--json").stdout
        runs = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [r for r in runs if r.get("status") == "failed"] if len(runs) >= 5 else []

    runs = wait_until(failed, what="five failed runs of the reminder")
    assert len(runs) == 5
    for run in runs:
        error = str(run.get("error"))
        assert "internal error" not in error
        assert "duration" in error, error


@pytest.mark.timeout(60)
def test_faked_event_types_are_refused_at_the_socket(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    from nerve.ipc import IpcError, request

    daemon()
    for fake in ["file.created\n", "key.down\n", " file.created", "FILE.CREATED", "file..created"]:
        proc = cli(nerve_env, "emit", fake, "path=/tmp/x")
        assert proc.returncode == EXIT_USAGE, fake
        with pytest.raises(IpcError, match="not an event type"):
            request("emit", {"type": fake, "data": {}}, path=socket_file(nerve_env))
    assert "running" in cli_ok(nerve_env, "status")


@pytest.mark.timeout(60)
def test_text_with_line_breaks_cannot_forge_log_lines(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    instance = daemon()  # the starter pack's `note` logs "note: {event.text}"
    forged = "2026-01-01 00:00:00,000 ERROR nerve [MainThread]: FORGED"
    for sep in ["\n", "\r", "\r\n", "\x1b[2K\r", "\u2028", "\x85"]:
        cli_ok(nerve_env, "emit", "note", f"text=real{sep}{forged}")
    wait_until(lambda: log_text(nerve_env).count("FORGED") >= 6, what="the six notes")
    stop_within(instance)
    for line in log_text(nerve_env).splitlines():
        assert not line.startswith("2026-01-01"), line
        assert "\x1b" not in line
        assert "\r" not in line
    notes = [line for line in log_text(nerve_env).splitlines() if "FORGED" in line]
    assert len(notes) == 6
    assert all("note: real" in line for line in notes)


@pytest.mark.parametrize("command", ["events", "runs", "replay"])
@pytest.mark.parametrize("limit", ["1" + "0" * 30, "0", "-5", "1e3", "\u0661\u0662", "99999999999"])
def test_a_limit_out_of_range_is_a_usage_error(
    nerve_env: dict[str, str], command: str, limit: str
) -> None:
    proc = cli(nerve_env, command, "--limit", limit)
    assert proc.returncode == EXIT_USAGE
    assert "--limit" in proc.stderr
    assert "unexpected error" not in proc.stderr


STUCK_HTTP = """\
nerve: 1
pack: {{id: test.stuck, name: Stuck}}
rules:
  - id: call
    when: {{event: x.call}}
    do: [{{http: {{url: "http://127.0.0.1:{port}/", timeout: 1h}}}}]
"""


@pytest.mark.timeout(60)
def test_a_stuck_worker_does_not_hold_up_sigterm(
    daemon: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    """A request to a server that never answers keeps a worker thread blocked;
    Python would wait for it at exit. SIGTERM still ends Nerve within a second."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)  # accepts connections (the backlog), never answers
    pack = short_tmp / "stuck.yaml"
    pack.write_text(STUCK_HTTP.format(port=server.getsockname()[1]))
    instance = daemon("--rules", pack)
    cli_ok(nerve_env, "emit", "x.call")
    wait_until(
        lambda: "1 running" in cli_ok(nerve_env, "status"), what="the request to be under way"
    )
    stop_within(instance)
    server.close()
