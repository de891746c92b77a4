"""End-to-end tests of the real ``nerve`` command line.

Every command runs in a subprocess (``python -m nerve ...``) with the XDG
folders of a fresh user (the ``nerve_env`` fixture), the way a user or a script
would run it. ``nerve run --headless`` runs in the background for the tests that
talk to an instance; the ``start_nerve`` fixture always stops it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import wait_until as wait_for

NERVE = [sys.executable, "-m", "nerve"]
DATA = Path(__file__).parent / "cli_data"
PACK = DATA / "cli.yaml"  # x.touch path=P -> touch P
TICK = DATA / "tick.yaml"  # every 1s: a line appended to {input.out}

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_NO_INSTANCE = 0, 1, 2, 3


# --------------------------------------------------------------------- helpers


def cli(
    env: dict[str, str], *args: object, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run ``nerve ARGS`` to the end; no command may ever show a traceback."""
    proc = subprocess.run(
        [*NERVE, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, (
        f"nerve {' '.join(map(str, args))} showed a traceback:\n{proc.stdout}{proc.stderr}"
    )
    return proc


def cli_ok(env: dict[str, str], *args: object) -> str:
    """Run ``nerve ARGS``, insist on exit 0, return its standard output."""
    proc = cli(env, *args)
    assert proc.returncode == EXIT_OK, (
        f"nerve {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )
    return proc.stdout


def wait_for_path(path: Path, timeout: float = 10.0, lines: int = 0) -> Path:
    """Wait until ``path`` exists (and has at least ``lines`` lines)."""

    def ready() -> bool:
        if not path.exists():
            return False
        return not lines or len(path.read_text().splitlines()) >= lines

    wait_for(ready, timeout, f"{path}" + (f" with {lines} line(s)" if lines else ""))
    return path


def events(env: dict[str, str], *args: object) -> list[dict[str, Any]]:
    """``nerve events --json ARGS``, parsed."""
    out = cli_ok(env, "events", "--json", *args)
    return [json.loads(line) for line in out.splitlines()]


def wait_for_event(env: dict[str, str], type_: str, *args: object) -> list[dict[str, Any]]:
    """Wait until the event log (read by ``nerve events``) holds an event of ``type_``."""
    found: list[dict[str, Any]] = wait_for(
        lambda: events(env, "--type", type_, *args), what=f"a {type_} event in the log"
    )
    return found


def socket_file(env: dict[str, str]) -> Path:
    """Where the running instance listens (ipc.socket_path() under this env)."""
    return Path(env["XDG_RUNTIME_DIR"]) / "nerve" / "nerve.sock"


# ------------------------------------------------------------------ instances


class Instance:
    """A ``nerve run --headless`` in the background; its output goes to a file."""

    def __init__(self, env: dict[str, str], args: list[str], out: Path) -> None:
        self.env = env
        self.out = out
        with open(out, "wb") as fh:
            self.proc = subprocess.Popen(
                [*NERVE, "run", "--headless", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll ``nerve status`` until the instance answers."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"nerve run exited {self.proc.returncode} before answering:\n{self.output()}"
                )
            if cli(self.env, "status").returncode == EXIT_OK:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"nerve run did not answer in {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not end in ``timeout``; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


StartNerve = Callable[..., Instance]


@pytest.fixture
def start_nerve(nerve_env: dict[str, str], short_tmp: Path) -> Iterator[StartNerve]:
    """Start ``nerve run --headless ARGS`` and wait until it answers ``nerve status``.

    Every instance is stopped at teardown, whatever the test did, and must not
    have printed a traceback.
    """
    started: list[Instance] = []

    def start(*args: object, wait: bool = True) -> Instance:
        out = short_tmp / f"nerve-run-{len(started)}.out"
        instance = Instance(nerve_env, [str(a) for a in args], out)
        started.append(instance)
        if wait:
            instance.wait_ready()
        return instance

    yield start
    for instance in started:
        instance.stop()
    for instance in started:
        assert "Traceback" not in instance.output(), instance.output()


@pytest.fixture
def nerve(start_nerve: StartNerve) -> Instance:
    """A running instance with the test pack (x.touch path=P touches P)."""
    return start_nerve("--rules", PACK)


def touch_fires(env: dict[str, str], target: Path) -> None:
    """``nerve emit x.touch path=TARGET`` makes the running instance create TARGET."""
    out = cli_ok(env, "emit", "x.touch", f"path={target}")
    assert out.startswith("event ")
    assert "published" in out
    wait_for_path(target)


# --------------------------------------------------------------- running rules


def test_emit_fires_a_rule_that_runs_a_program(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    touch_fires(nerve_env, short_tmp / "touched")

    status = cli_ok(nerve_env, "status")
    assert f"(pid {nerve.pid}): running" in status
    assert "pack test.cli: 1 rule(s), ok" in status


def test_schedule_every_second_fires_again_and_again(
    start_nerve: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    ticks = short_tmp / "ticks"
    start_nerve("--rules", TICK, "--set", f"out={ticks}")

    wait_for_path(ticks, lines=2, timeout=15)
    assert set(ticks.read_text().split()) == {"tick"}
    wait_for(
        lambda: cli_ok(nerve_env, "runs", "--rule", "tick").count("test.tick/tick") >= 2,
        what="two runs of test.tick/tick in the history",
    )


def test_a_running_instance_maps_no_openssl(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    touch_fires(nerve_env, short_tmp / "touched")  # the engine has done some work
    maps = Path(f"/proc/{nerve.pid}/maps").read_text()
    # asyncio would load ssl (libssl, libcrypto); hashlib would load libcrypto.
    for library in ("libssl", "libcrypto", "_ssl", "_hashlib"):
        assert library not in maps, f"{library} is loaded"


def test_status_pause_and_resume(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    from nerve.ipc import request

    assert "running" in cli_ok(nerve_env, "status")

    out = cli_ok(nerve_env, "pause")
    assert out.startswith("paused")
    status = cli_ok(nerve_env, "status")
    assert f"(pid {nerve.pid}): paused" in status
    assert "paused by nerve pause" in status

    while_paused = short_tmp / "while-paused"
    cli_ok(nerve_env, "emit", "x.touch", f"path={while_paused}")
    # The engine handles events in order: once it counts the skip, the event is done with.
    wait_for(
        lambda: [
            r
            for r in request("rules", path=socket_file(nerve_env))
            if r["key"] == "test.cli/touch" and r["skipped"].get("paused")
        ],
        what="the paused skip of test.cli/touch",
    )

    assert cli_ok(nerve_env, "resume").strip() == "resumed"
    assert f"(pid {nerve.pid}): running" in cli_ok(nerve_env, "status")
    after = short_tmp / "after-resume"
    touch_fires(nerve_env, after)
    # The rule runs one at a time and events in order: had the paused event
    # fired it, its file would exist by the time the later one's does.
    assert not while_paused.exists()
    runs = wait_for(lambda: cli_ok(nerve_env, "runs", "--json"), what="a run in the history")
    paths = [json.loads(line)["trace"]["event"]["data"]["path"] for line in runs.splitlines()]
    assert paths == [str(after)]


def test_pause_for_a_while_resumes_by_itself(nerve: Instance, nerve_env: dict[str, str]) -> None:
    for bad in ("0s", "soon"):
        proc = cli(nerve_env, "pause", "--for", bad)
        assert proc.returncode == EXIT_USAGE
        assert "--for:" in proc.stderr
    assert f"(pid {nerve.pid}): running" in cli_ok(nerve_env, "status")

    # Long enough that a loaded machine starting `nerve status` still sees it.
    cli_ok(nerve_env, "pause", "--for", "4s")
    assert f"(pid {nerve.pid}): paused" in cli_ok(nerve_env, "status")
    wait_for(
        lambda: f"(pid {nerve.pid}): running" in cli_ok(nerve_env, "status"),
        what="the pause to end by itself",
    )


def test_a_second_instance_is_refused_and_the_first_keeps_working(
    nerve: Instance, start_nerve: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    second = start_nerve("--rules", PACK, wait=False)
    assert second.proc.wait(15) == EXIT_INVALID
    assert f"already running (pid {nerve.pid})" in second.output()
    assert "Traceback" not in second.output()

    assert nerve.proc.poll() is None
    assert socket_file(nerve_env).exists()
    assert f"(pid {nerve.pid}): running" in cli_ok(nerve_env, "status")
    touch_fires(nerve_env, short_tmp / "still-works")


def test_sigterm_stops_cleanly_and_a_new_instance_can_start(
    start_nerve: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    first = start_nerve("--rules", PACK)
    sock = socket_file(nerve_env)
    assert sock.exists()

    assert first.stop() == EXIT_OK
    assert not sock.exists()
    stopping = events(nerve_env, "--type", "app.stopping")
    assert len(stopping) == 1
    proc = cli(nerve_env, "status")
    assert proc.returncode == EXIT_NO_INSTANCE

    second = start_nerve("--rules", PACK)
    assert f"(pid {second.pid}): running" in cli_ok(nerve_env, "status")
    touch_fires(nerve_env, short_tmp / "after-restart")
    started = events(nerve_env, "--type", "app.started")
    assert [e["data"]["pid"] for e in started] == [first.pid, second.pid]


# ------------------------------------------------------------ no instance


@pytest.mark.parametrize(
    "args", [["status"], ["pause"], ["resume"], ["emit", "x.y"], ["emit", "x.y", "n=1"]]
)
def test_control_commands_without_an_instance_exit_3(
    nerve_env: dict[str, str], args: list[str]
) -> None:
    proc = cli(nerve_env, *args)
    assert proc.returncode == EXIT_NO_INSTANCE
    assert "Nerve is not running" in proc.stderr
    assert proc.stdout == ""


# ----------------------------------------------------------------------- emit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad.Type"], "'Bad.Type' is not an event type"),
        (["x..y"], "is not an event type"),
        (["x.y", "novalue"], "emit takes key=value, got 'novalue'"),
        (["x.y", "=v"], "emit takes key=value, got '=v'"),
        ([], "the following arguments are required: TYPE"),
    ],
)
def test_emit_with_malformed_arguments_exits_2(
    nerve_env: dict[str, str], args: list[str], message: str
) -> None:
    proc = cli(nerve_env, "emit", *args)
    assert proc.returncode == EXIT_USAGE
    assert message in proc.stderr


def test_emit_values_that_parse_as_json_are_typed(
    nerve: Instance, nerve_env: dict[str, str]
) -> None:
    cli_ok(
        nerve_env,
        "emit",
        "x.y",
        "n=3",
        "f=2.5",
        "b=true",
        "nothing=null",
        "list=[1, 2]",
        'obj={"a": 1}',
        'quoted="3"',
        "text=hello world",
        "empty=",
        "eq=a=b",
        "nan=NaN",
        "inf=-Infinity",
        "huge=1e999",
    )
    [event] = wait_for_event(nerve_env, "x.y")
    assert event["source"] == "cli"
    assert event["data"] == {
        "n": 3,
        "f": 2.5,
        "b": True,
        "nothing": None,
        "list": [1, 2],
        "obj": {"a": 1},
        "quoted": "3",
        "text": "hello world",
        "empty": "",
        "eq": "a=b",
        # Not JSON numbers: kept as the text that was typed.
        "nan": "NaN",
        "inf": "-Infinity",
        "huge": "1e999",
    }


# ------------------------------------------------------------- events and runs


def test_events_and_runs_show_the_log_and_traces(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    target = short_tmp / "traced"
    touch_fires(nerve_env, target)
    wait_for_event(nerve_env, "x.touch")
    wait_for(lambda: cli_ok(nerve_env, "runs").strip(), what="a run in the history")

    plain = cli_ok(nerve_env, "events")
    assert "app.started" in plain
    assert "x.touch" in plain
    assert f'path="{target}"' in plain

    everything = events(nerve_env)
    assert [e["type"] for e in everything][:2] == ["app.started", "x.touch"]
    assert all(set(e) >= {"id", "type", "time", "source", "data"} for e in everything)
    only = events(nerve_env, "--type", "x.*")
    assert [(e["type"], e["data"]) for e in only] == [("x.touch", {"path": str(target)})]
    assert events(nerve_env, "--type", "x.touch", "--since", "1h") == only
    assert events(nerve_env, "--type", "nothing.like.this") == []

    runs = cli_ok(nerve_env, "runs")
    [line] = runs.splitlines()
    assert "test.cli/touch" in line
    assert " ok " in line
    short_id = line.split()[2]

    [run] = [json.loads(x) for x in cli_ok(nerve_env, "runs", "--json").splitlines()]
    assert run["id"].startswith(short_id)
    assert run["status"] == "ok"
    assert run["trace"]["event"]["type"] == "x.touch"

    trace = cli_ok(nerve_env, "runs", short_id)
    assert f"run {run['id']} of test.cli/touch: ok" in trace
    assert "x.touch" in trace
    assert "run" in trace
    assert json.loads(cli_ok(nerve_env, "runs", run["id"], "--json"))["id"] == run["id"]
    assert cli_ok(nerve_env, "runs", "--rule", "touch") == runs
    assert cli_ok(nerve_env, "runs", "--rule", "other") == ""

    missing = cli(nerve_env, "runs", "0123456789abcdef")
    assert missing.returncode == EXIT_INVALID
    assert "no run '0123456789abcdef'" in missing.stderr


def test_events_follow_prints_new_events_as_they_come(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    wait_for_event(nerve_env, "app.started")
    follow = subprocess.Popen(
        [*NERVE, "events", "--follow", "--json", "--type", "x.*"],
        env=nerve_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        touch_fires(nerve_env, short_tmp / "followed")
        ready, _, _ = select.select([follow.stdout], [], [], 15)
        assert ready, "nerve events --follow printed nothing"
        event = json.loads(follow.stdout.readline())
        assert (event["type"], event["data"]) == ("x.touch", {"path": str(short_tmp / "followed")})
        follow.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
        _, err = follow.communicate(timeout=10)
        assert follow.returncode == EXIT_OK
        assert "Traceback" not in err
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()


def test_events_since_leaves_out_older_events(nerve_env: dict[str, str], short_tmp: Path) -> None:
    from nerve.events import Event
    from nerve.storage import Store

    data = short_tmp / "old-data"
    now = time.time()
    with Store(data / "nerve.db") as store:
        store.append_events(
            [
                Event("x.old", {"n": 1}, "test", id=1, time=now - 7200),
                Event("x.new", {"n": 2}, "test", id=2, time=now - 60),
            ]
        )
    assert [e["type"] for e in events(nerve_env, "--data-dir", data)] == ["x.old", "x.new"]
    assert [e["type"] for e in events(nerve_env, "--data-dir", data, "--since", "1h")] == ["x.new"]
    assert [e["type"] for e in events(nerve_env, "--data-dir", data, "--since", "3h")] == [
        "x.old",
        "x.new",
    ]
    plain = cli_ok(nerve_env, "events", "--data-dir", data, "--since", "1h")
    assert "x.new" in plain
    assert "x.old" not in plain

    bad = cli(nerve_env, "events", "--data-dir", data, "--since", "yesterday")
    assert bad.returncode == EXIT_USAGE
    assert "--since" in bad.stderr


def test_data_dir_keeps_the_log_where_it_is_told(
    start_nerve: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    data = short_tmp / "elsewhere"
    start_nerve("--rules", PACK, "--data-dir", data)
    touch_fires(nerve_env, short_tmp / "marker")

    assert "x.touch" in wait_for(
        lambda: cli_ok(nerve_env, "events", "--data-dir", data, "--type", "x.touch"),
        what="x.touch in the --data-dir log",
    )
    assert (data / "nerve.db").exists()
    assert f"data: {data}" in cli_ok(nerve_env, "status")
    wait_for(lambda: cli_ok(nerve_env, "runs", "--data-dir", data), what="a run in --data-dir")

    default = cli(nerve_env, "events")  # the default data folder was never used
    assert default.returncode == EXIT_INVALID
    assert "no event log yet" in default.stderr
    assert cli(nerve_env, "runs").returncode == EXIT_INVALID


def test_reading_a_log_that_is_not_a_nerve_database_fails_cleanly(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    data = short_tmp / "garbage"
    data.mkdir()
    (data / "nerve.db").write_bytes(b"this is not SQLite\n" * 100)
    for command in ("events", "runs"):
        proc = cli(nerve_env, command, "--data-dir", data)
        assert proc.returncode == EXIT_INVALID
        assert "not a Nerve database" in proc.stderr


def test_private_events_never_reach_the_log(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    secret = "hunter2-correct-horse"
    for args in (
        ("key.down", f"key={secret}", "modifiers=[]"),
        ("key.up", f"key={secret}"),
        ("clipboard.changed", "mime=text/plain", f"text={secret}"),
    ):
        # Nerve's own (and private) types cannot be faked from outside at all.
        refused = cli(nerve_env, "emit", *args)
        assert refused.returncode == EXIT_INVALID, refused.stderr
        assert "Nerve's own event types" in refused.stderr
    touch_fires(nerve_env, short_tmp / "after-the-secrets")
    wait_for_event(nerve_env, "x.touch")  # logged after the private ones

    logged = events(nerve_env)
    assert {e["type"] for e in logged} == {"app.started", "x.touch"}
    assert secret not in cli_ok(nerve_env, "events")
    assert nerve.stop() == EXIT_OK
    for name in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        for path in Path(nerve_env[name]).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"{secret!r} written to {path}"


# ------------------------------------------------------------------ the socket


def _connect(env: dict[str, str]) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(socket_file(env)))
    return sock


def _reply(sock: socket.socket) -> dict[str, Any] | None:
    """The server's reply line, or None if it closed without one."""
    buf = b""
    while not buf.endswith(b"\n"):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    if not buf:
        return None
    reply: dict[str, Any] = json.loads(buf)
    return reply


def _assert_unharmed(nerve: Instance, env: dict[str, str], target: Path) -> None:
    assert nerve.proc.poll() is None, nerve.output()
    assert f"(pid {nerve.pid}): running" in cli_ok(env, "status")
    touch_fires(env, target)


def test_the_socket_is_for_the_user_only(nerve: Instance, nerve_env: dict[str, str]) -> None:
    sock = socket_file(nerve_env)
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(sock.parent).st_mode) == 0o700


BAD_REQUESTS = {
    "text": (b"hello, is anybody there?\n", "not JSON"),
    "invalid UTF-8": (b"\xff\xfe\xfd garbage \x80\n", "not UTF-8"),
    "invalid UTF-8 in JSON": (
        b'{"v": 1, "id": 1, "cmd": "status", "args": {"x": "\xc3\x28"}}\n',
        "not UTF-8",
    ),
    "an array": (b"[1, 2, 3]\n", "not a JSON object"),
    "deep nesting": (b"[" * 100_000 + b"\n", "invalid request"),
    "another version": (b'{"v": 99, "id": 1, "cmd": "status"}\n', "protocol version mismatch"),
    "a bad command": (b'{"v": 1, "id": 1, "cmd": "STATUS!"}\n', "bad command"),
    "an unknown command": (b'{"v": 1, "id": 1, "cmd": "self-destruct"}\n', "unknown command"),
    "emit data not an object": (
        b'{"v": 1, "id": 1, "cmd": "emit", "args": {"type": "x.y", "data": [1]}}\n',
        "event data must be an object",
    ),
    "emit a bad type": (
        b'{"v": 1, "id": 1, "cmd": "emit", "args": {"type": "Not A Type"}}\n',
        "not an event type",
    ),
    "pause for a while": (
        b'{"v": 1, "id": 1, "cmd": "pause", "args": {"for": "soon"}}\n',
        "'for' must be a positive number of seconds",
    ),
}


def test_bad_requests_get_an_error_and_harm_nothing(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    for n, (what, (request_bytes, error)) in enumerate(BAD_REQUESTS.items()):
        with _connect(nerve_env) as sock:
            sock.sendall(request_bytes)
            reply = _reply(sock)
        assert reply is not None, what
        assert reply["ok"] is False, what
        assert error in reply["error"], what
        _assert_unharmed(nerve, nerve_env, short_tmp / f"unharmed-{n}")
    assert "paused" not in cli_ok(nerve_env, "status")


def test_clients_that_hang_up_or_go_silent_harm_nothing(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    # Gone in the middle of a message.
    with _connect(nerve_env) as sock:
        sock.sendall(b'{"v": 1, "id": 1, "cmd": "sta')
    # Gone before reading the reply.
    with _connect(nerve_env) as sock:
        sock.sendall(b'{"v": 1, "id": 2, "cmd": "status"}\n')
    # Connected and silent, or half a line, while others are served.
    silent = _connect(nerve_env)
    half = _connect(nerve_env)
    half.sendall(b'{"v": 1, "id": 3, "cmd"')
    try:
        _assert_unharmed(nerve, nerve_env, short_tmp / "unharmed")
    finally:
        silent.close()
        half.close()
    _assert_unharmed(nerve, nerve_env, short_tmp / "unharmed-again")


def test_a_100_mb_line_is_cut_off_not_buffered(
    nerve: Instance, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    server = psutil.Process(nerve.pid)
    rss_before = server.memory_info().rss
    total = 100 * 2**20
    chunk = b"x" * 2**20
    sent = 0
    with _connect(nerve_env) as sock:
        sock.sendall(b'{"v": 1, "id": 1, "cmd": "status", "args": {"pad": "')
        try:
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = _reply(sock)
    # The server read about its 1 MiB limit, answered and hung up.
    assert sent < 16 * 2**20, f"the server took {sent >> 20} MiB of one line"
    if reply is not None:
        assert reply["ok"] is False
        assert "too large" in reply["error"]
    assert server.memory_info().rss - rss_before < 50 * 2**20
    _assert_unharmed(nerve, nerve_env, short_tmp / "unharmed")


# ------------------------------------------------------------ packs and start


def test_validate_and_schema(nerve_env: dict[str, str], short_tmp: Path) -> None:
    ok = cli(nerve_env, "validate", PACK)
    assert ok.returncode == EXIT_OK
    assert "ok, pack test.cli, 1 rule(s)" in ok.stdout

    broken = short_tmp / "broken.yaml"
    broken.write_text("nerve: 1\npack: {id: t.broken}\nrules:\n  - id: r\n    do: [{log: hi}]\n")
    bad = cli(nerve_env, "validate", PACK, broken)
    assert bad.returncode == EXIT_INVALID
    assert "broken.yaml:" in bad.stderr
    assert "ok, pack test.cli" in bad.stdout

    missing = cli(nerve_env, "validate", short_tmp / "nope.yaml")
    assert missing.returncode == EXIT_INVALID
    assert "no such file or folder" in missing.stderr

    schema = json.loads(cli_ok(nerve_env, "schema"))
    assert schema["type"] == "object"
    assert "rules" in schema["properties"]


def test_first_start_installs_the_starter_pack(
    start_nerve: StartNerve, nerve_env: dict[str, str]
) -> None:
    installed = Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve" / "packs" / "starter.yaml"
    assert not installed.exists()
    start_nerve()

    assert installed.is_file()
    shipped = Path(__file__).resolve().parents[1] / "rules" / "starter.yaml"
    assert installed.read_bytes() == shipped.read_bytes()
    status = cli_ok(nerve_env, "status")
    assert "rules: 6 active of 6" in status
    assert f"pack nerve.starter: 6 rule(s), ok ({installed})" in status
    cli_ok(nerve_env, "emit", "note", "text=hello from the test")
    wait_for(
        lambda: "nerve.starter/note" in cli_ok(nerve_env, "runs", "--rule", "note"),
        what="a run of the starter pack's note rule",
    )


def test_rules_that_do_not_exist_are_a_usage_error(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    proc = cli(nerve_env, "run", "--headless", "--rules", short_tmp / "missing.yaml")
    assert proc.returncode == EXIT_USAGE
    assert "missing.yaml: no such file or folder" in proc.stderr


@pytest.mark.parametrize("data_dir", ["file", "database"])
def test_run_with_an_unusable_data_dir_fails_cleanly(
    nerve_env: dict[str, str], short_tmp: Path, data_dir: str
) -> None:
    if data_dir == "file":
        target = short_tmp / "a-file"
        target.write_text("not a folder")
        message = "cannot start"
    else:
        target = short_tmp / "bad-db"
        target.mkdir()
        (target / "nerve.db").write_bytes(b"not a database\n" * 100)
        message = "not a Nerve database"
    proc = cli(nerve_env, "run", "--headless", "--rules", PACK, "--data-dir", target)
    assert proc.returncode == EXIT_INVALID
    assert message in proc.stderr
    assert not socket_file(nerve_env).exists()
    assert cli(nerve_env, "status").returncode == EXIT_NO_INSTANCE


@pytest.mark.parametrize("args", [[], ["run"]], ids=["nerve", "nerve-run"])
def test_no_window_without_a_display(nerve_env: dict[str, str], args: list[str]) -> None:
    proc = cli(nerve_env, *args)
    assert proc.returncode == EXIT_USAGE
    assert "the desktop window cannot start here (no display" in proc.stderr
    assert "--headless" in proc.stderr


def test_output_to_a_closed_pipe_is_no_traceback(nerve_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [*NERVE, "schema"],
        env=nerve_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader (`| head`) is gone before nerve writes
    _, err = proc.communicate(timeout=20)
    assert b"Traceback" not in err
    assert b"Exception ignored" not in err
    assert proc.returncode != EXIT_OK


# --------------------------------------------------------------------- reload


RELOAD_PACK = """\
nerve: 1
pack: {{id: test.reload}}
rules:
  - id: touch
    when: {{event: {event}}}
    do:
      - run: {{argv: [touch, "{{event.path}}"], wait: true}}
"""


@pytest.mark.parametrize("how", ["command", "sighup"])
def test_reload_reads_changed_packs(
    start_nerve: StartNerve, nerve_env: dict[str, str], short_tmp: Path, how: str
) -> None:
    pack = short_tmp / "reload.yaml"
    pack.write_text(RELOAD_PACK.format(event="x.old"))
    instance = start_nerve("--rules", pack)
    pack.write_text(RELOAD_PACK.format(event="x.new"))
    if how == "command":
        out = cli_ok(nerve_env, "reload")
        assert "reloaded: 1 rule(s) running" in out
    else:
        instance.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded: 1 rule(s)" in instance.output(), what="the reload")
    cli_ok(nerve_env, "emit", "x.new", f"path={short_tmp / 'new'}")
    wait_for_path(short_tmp / "new")
    assert instance.proc.poll() is None  # SIGHUP reloads; it does not stop Nerve


def test_reload_reports_errors_and_keeps_the_good_rules(
    start_nerve: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    pack = short_tmp / "reload.yaml"
    pack.write_text(RELOAD_PACK.format(event="x.old"))
    start_nerve("--rules", pack)
    pack.write_text(
        RELOAD_PACK.format(event="x.new") + "  - id: broken\n    when: {nope: 1}\n    do: []\n"
    )
    proc = cli(nerve_env, "reload")
    assert proc.returncode == EXIT_INVALID
    assert "reload.yaml:9:12: rules[1].when.nope:" in proc.stderr
    assert "unknown trigger 'nope'" in proc.stderr
    cli_ok(nerve_env, "emit", "x.new", f"path={short_tmp / 'new'}")
    wait_for_path(short_tmp / "new")


def test_status_lists_listeners(start_nerve: StartNerve, nerve_env: dict[str, str]) -> None:
    start_nerve("--rules", PACK)
    # No rule needs a listener: none runs (no keyboard hook, no file watch).
    assert "listener " not in cli_ok(nerve_env, "status")
