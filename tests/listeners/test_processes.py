"""Processes: real programs started and ended, seen through the proc connector
and through polling; the process.running condition; falling back when the
connector is refused."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import PACK_HEAD, Harness, LiveHarness, Recorder, wait_until
from nerve.bus import Bus
from nerve.engine.registry import load_builtin_types, triggers
from nerve.listeners import processes
from nerve.listeners.processes import (
    ProcessListener,
    ProcessSpec,
    ProcInfo,
    ProcSource,
    PsutilSource,
    Wanted,
    exit_code_of,
    running,
    user_name,
)
from nerve.packs.loader import load_pack

load_builtin_types()


def connector_problem() -> str | None:
    """Why the proc connector cannot be opened here (None: it can)."""
    try:
        processes.open_connector().close()
    except OSError as exc:
        return processes.connector_problem(exc)
    return None


CONNECTOR_PROBLEM = connector_problem()
needs_connector = pytest.mark.skipif(
    CONNECTOR_PROBLEM is not None, reason=f"proc connector: {CONNECTOR_PROBLEM}"
)


def copy_program(folder: Path, source: str) -> Path:
    """A copy of ``source`` under a name no other process has (at most 15 characters)."""
    path = folder / f"nrv{uuid.uuid4().hex[:8]}"
    shutil.copy(shutil.which(source) or source, path)
    return path


@pytest.fixture
def shell(tmp_path: Path) -> Path:
    """A copy of /bin/sh with a unique name: its argv and exit code are ours to pick."""
    return copy_program(tmp_path, "sh")


@pytest.fixture
def sleeper(tmp_path: Path) -> Path:
    return copy_program(tmp_path, "sleep")


@pytest.fixture(params=["connector", "poll"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with each backend, forced through the environment."""
    name: str = request.param
    if name == "connector" and CONNECTOR_PROBLEM is not None:
        pytest.skip(f"proc connector: {CONNECTOR_PROBLEM}")
    monkeypatch.setenv(processes.BACKEND_ENV, name)
    return name


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Programs a test starts; killed and reaped whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def spawn(children: list[subprocess.Popen[bytes]], *argv: object) -> subprocess.Popen[bytes]:
    """Start a program; return once it runs under its own name. (Popen returns
    when exec closed its pipe, a moment before the kernel renames the process.)"""
    proc = subprocess.Popen([str(a) for a in argv])
    children.append(proc)
    source = ProcSource()
    wait_until(lambda: source.comm(proc.pid) == Path(str(argv[0])).name, what="the exec")
    return proc


def direct(
    bus: Bus, needs: list[Any], failures: list[BaseException] | None = None, **options: Any
) -> ProcessListener:
    """A listener started without a manager (to look at its state)."""
    sink = failures if failures is not None else []
    listener = ProcessListener(bus, lambda _l, exc: sink.append(exc), **options)
    listener.start(needs)
    return listener


# ------------------------------------------------------------- the triggers


def test_started_and_exited_rules_fire_with_the_fields(
    live: LiveHarness, shell: Path, backend: str, children: list[subprocess.Popen[bytes]]
) -> None:
    name = shell.name
    me = user_name(os.getuid())
    live.load(
        f"""
  - id: started
    when:
      process.started: {{name: {name}, cmdline: "*nerve-marker", user: {me}}}
    do: [{{emit: {{type: t.started, data: {{pid: "{{event.pid}}", exe: "{{event.exe}}"}}}}}}]
  - id: exited
    when: {{process.exited: {name}}}
    do: [{{emit: {{type: t.exited, data: {{code: "{{event.exit_code}}"}}}}}}]
  - id: other-user
    when: {{process.started: {{name: {name}, user: nobody-else}}}}
    do: [{{emit: t.wrong}}]
"""
    )
    status = live.listener("processes")
    assert status["detail"].startswith(
        "proc connector" if backend == "connector" else "polling every 100 ms"
    )
    # $0 of `sh -c` is the last argument: a command line no other process has.
    argv = [shell, "-c", "sleep 0.3; exit 3", "nerve-marker"]
    proc = spawn(children, *argv)

    (started,) = live.recorder.wait("process.started", where=lambda e: e.data["name"] == name)
    assert dict(started.data) == {
        "pid": proc.pid,
        "name": name,
        "exe": os.path.realpath(shell),
        "cmdline": " ".join(map(str, argv)),
        "user": me,
        "exit_code": None,
    }
    assert started.source == "processes"
    (fired,) = live.recorder.wait("t.started")
    # A placeholder that is the whole value keeps its type.
    assert dict(fired.data) == {"pid": proc.pid, "exe": os.path.realpath(shell)}

    (exited,) = live.recorder.wait("process.exited", where=lambda e: e.data["name"] == name)
    assert proc.wait() == 3
    # The connector reports every exit status; polling cannot know it.
    expected = 3 if backend == "connector" else None
    assert dict(exited.data) == {**started.data, "exit_code": expected}
    (done,) = live.recorder.wait("t.exited")
    assert done.data["code"] == expected
    assert live.recorder.of("t.wrong") == []


@needs_connector
def test_exit_by_signal_is_minus_the_signal(
    sleeper: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(
        bus, [ProcessSpec.of({"name": sleeper.name}, exits=True)], backend="connector"
    )
    try:
        proc = spawn(children, sleeper, "30")
        recorder.wait("process.started")
        proc.send_signal(signal.SIGTERM)
        (exited,) = recorder.wait("process.exited")
        assert exited.data["exit_code"] == -signal.SIGTERM
        assert exited.data["pid"] == proc.pid
    finally:
        listener.stop()
        recorder.close()


@needs_connector
def test_short_lived_processes_are_all_seen_by_the_connector(
    tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    # `true` ends within a millisecond: the listener reads /proc after it may
    # have exited, and must still report it (a zombie keeps its name until reaped).
    program = copy_program(tmp_path, "true")
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(
        bus, [ProcessSpec.of({"name": program.name}, exits=True)], backend="connector"
    )
    try:
        procs = [spawn(children, program) for _ in range(30)]
        started = recorder.wait("process.started", 30)
        exited = recorder.wait("process.exited", 30)
        pids = {p.pid for p in procs}
        assert {e.data["pid"] for e in started} == pids
        assert {e.data["pid"] for e in exited} == pids
        assert all(e.data["exit_code"] == 0 for e in exited)
        assert listener.tracked() == []
    finally:
        listener.stop()
        recorder.close()


@needs_connector
def test_old_style_connector_subscription(
    sleeper: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    # Kernels before 6.6 take no event filter: the listener asks for every event
    # type, waits for the kernel's acknowledgement, and skips what it does not need.
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(
        bus,
        [ProcessSpec.of({"name": sleeper.name}, exits=True)],
        backend="connector",
        filtered=False,
    )
    try:
        proc = spawn(children, sleeper, "0.1")
        (started,) = recorder.wait("process.started")
        (exited,) = recorder.wait("process.exited")
        assert started.data["pid"] == exited.data["pid"] == proc.pid
        assert exited.data["exit_code"] == 0
    finally:
        listener.stop()
        recorder.close()


def test_processes_running_at_start_are_known_when_they_exit(
    sleeper: Path, backend: str, children: list[subprocess.Popen[bytes]]
) -> None:
    proc = spawn(children, sleeper, "30")
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(bus, [ProcessSpec.of({"name": sleeper.name}, exits=True)])
    try:
        assert [p.pid for p in listener.tracked()] == [proc.pid]
        proc.kill()
        (exited,) = recorder.wait("process.exited")
        assert exited.data["name"] == sleeper.name
        assert exited.data["exit_code"] == (-signal.SIGKILL if backend == "connector" else None)
        assert recorder.of("process.started") == []  # it was already running
    finally:
        listener.stop()
        recorder.close()


def test_new_rules_take_over_running_processes_without_a_restart(
    sleeper: Path, backend: str, children: list[subprocess.Popen[bytes]]
) -> None:
    proc = spawn(children, sleeper, "30")
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(bus, [ProcessSpec.of({"name": "nrv-nothing"})])
    try:
        assert listener.tracked() == []
        listener.reconfigure([ProcessSpec.of({"name": sleeper.name}, exits=True)])
        assert [p.pid for p in listener.tracked()] == [proc.pid]
        proc.kill()
        recorder.wait("process.exited")
        listener.reconfigure([])
        assert listener.tracked() == []
    finally:
        listener.stop()
        recorder.close()


def test_with_no_exit_rules_nothing_is_kept(
    sleeper: Path, backend: str, children: list[subprocess.Popen[bytes]]
) -> None:
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(bus, [ProcessSpec.of({"name": sleeper.name})])
    try:
        first = spawn(children, sleeper, "30")
        recorder.wait("process.started")
        assert listener.tracked() == []  # and the connector was not asked for exits
        first.kill()
        first.wait()
        # An exit rule arrives (the connector subscribes again, for exits too).
        listener.reconfigure([ProcessSpec.of({"name": sleeper.name}, exits=True)])
        assert listener.backend == backend
        second = spawn(children, sleeper, "30")
        recorder.wait("process.started", 2)
        second.kill()
        second.wait()
        exited = recorder.wait("process.exited")
        assert [e.data["pid"] for e in exited] == [second.pid]
    finally:
        listener.stop()
        recorder.close()


class CountingSource(ProcSource):
    """The real /proc, counting how many processes are read beyond their name."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[int] = []

    def info(self, pid: int, comm: str) -> ProcInfo:
        self.read.append(pid)
        return super().info(pid, comm)


def test_a_thousand_exact_names_cost_one_lookup(
    sleeper: Path, tmp_path: Path, backend: str, children: list[subprocess.Popen[bytes]]
) -> None:
    other = copy_program(tmp_path, "sleep")
    needs: list[Any] = [ProcessSpec.of({"name": f"nrv-rule-{i}"}) for i in range(1000)]
    needs.append(ProcessSpec.of({"name": sleeper.name}))
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    source = CountingSource()
    listener = direct(bus, needs, source=source)
    try:
        ignored = spawn(children, other, "30")
        wanted = spawn(children, sleeper, "30")
        (started,) = recorder.wait("process.started")
        assert started.data["pid"] == wanted.pid
        # Only processes with a rule's name (or a name cut at 15 characters) are read.
        assert ignored.pid not in source.read
        assert wanted.pid in source.read
    finally:
        listener.stop()
        recorder.close()
    # The engine indexes the trigger by that exact name too.
    (rule,) = rules_of(f"{{process.started: {sleeper.name}}}")
    (matcher,) = rule.triggers[0].matchers()
    assert matcher.index == ("name", sleeper.name)
    assert matcher.predicate is None
    (rule,) = rules_of('{process.started: {name: "fire*"}}')
    assert rule.triggers[0].matchers()[0].index is None


def test_wanted_reads_names_cut_by_the_kernel() -> None:
    wanted = Wanted([ProcessSpec.of({"name": "gnome-terminal-server"})])
    assert not wanted.may_want("bash")
    assert wanted.may_want("gnome-terminal-")  # 15 characters: could be longer
    info = ProcInfo(1, "gnome-terminal-server", None, "", None)
    assert wanted.wants(info)
    assert processes._full_name("gnome-terminal-", "/usr/libexec/gnome-terminal-server") == (
        "gnome-terminal-server"
    )
    assert processes._full_name("bash", "-bash") == "bash"


def test_exit_status_decoding() -> None:
    assert exit_code_of(0) == 0
    assert exit_code_of(3 << 8) == 3
    assert exit_code_of(signal.SIGKILL) == -9
    assert exit_code_of(signal.SIGSEGV | 0x80) == -signal.SIGSEGV  # with a core dump


# ------------------------------------------------------------ the condition

RUNNING_RULES = """
  - id: running
    when: {{event: t.check}}
    if: [{{process.running: {{name: {name}, cmdline: "* 30"}}}}]
    do: [{{emit: t.running}}]
  - id: not-running
    when: {{event: t.check}}
    if: [{{not: [{{process.running: {name}}}]}}]
    do: [{{emit: t.not-running}}]
"""


def test_process_running_condition(
    harness: Harness, sleeper: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    harness.load(RUNNING_RULES.format(name=sleeper.name))
    harness.publish("t.check")
    harness.recorder.wait("t.not-running")

    proc = spawn(children, sleeper, "30")
    harness.publish("t.check")
    harness.recorder.wait("t.running")
    assert len(harness.recorder.of("t.not-running")) == 1

    # Killed but not reaped yet (a zombie): it is no longer running.
    proc.kill()
    wait_until(lambda: ProcSource().is_zombie(proc.pid), what="a zombie")
    assert running(ProcessSpec.of({"name": sleeper.name})) == []
    proc.wait()
    harness.publish("t.check")
    harness.recorder.wait("t.not-running", 2)
    assert len(harness.recorder.of("t.running")) == 1


# ---------------------------------------------------------------- fallbacks


def test_refused_connector_falls_back_to_polling(
    live: LiveHarness,
    monkeypatch: pytest.MonkeyPatch,
    sleeper: Path,
    children: list[subprocess.Popen[bytes]],
) -> None:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.delenv(processes.BACKEND_ENV, raising=False)
    monkeypatch.setattr(processes, "open_connector", refused)
    live.load(f"""
  - id: r
    when: {{process.started: {sleeper.name}}}
    do: [{{emit: t.fired}}]
""")
    status = live.listener("processes")
    assert status["detail"].startswith(
        "polling every 100 ms; proc connector not used: not permitted"
    )
    spawn(children, sleeper, "30")
    live.recorder.wait("t.fired")


def test_forced_connector_that_is_refused_is_unavailable(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setenv(processes.BACKEND_ENV, "connector")
    monkeypatch.setattr(processes, "open_connector", refused)
    live.load("""
  - id: r
    when: {process.started: firefox}
    do: [{emit: t.fired}]
  - id: other
    when: {event: t.ping}
    do: [{emit: t.pong}]
""")
    status = live.listener("processes", "unavailable")
    assert status["error"].startswith("the proc connector cannot be used: the kernel did not")
    live.publish("t.ping")
    live.recorder.wait("t.pong")  # the rest of Nerve runs on


def test_unknown_backend_is_unavailable(live: LiveHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(processes.BACKEND_ENV, "ebpf")
    live.load("""
  - id: r
    when: {process.exited: firefox}
    do: [{emit: t.fired}]
""")
    status = live.listener("processes", "unavailable")
    assert status["error"] == "NERVE_PROCESS_BACKEND='ebpf' is not a backend: use connector or poll"


PROBE = """
import json, sys
from nerve.bus import Bus
from nerve.listeners.base import ListenerUnavailable
from nerve.listeners.processes import ProcessListener, ProcessSpec
out = {}
for backend in ("auto", "connector"):
    listener = ProcessListener(Bus(), lambda *a: None, backend=backend)
    try:
        listener.start([ProcessSpec.of({"name": "nrv-probe"})])
        out[backend] = [listener.backend, listener.detail()]
    except ListenerUnavailable as exc:
        out[backend] = ["unavailable", str(exc)]
    finally:
        listener.stop()
print(json.dumps(out))
"""


@needs_connector
def test_in_a_network_namespace_of_its_own_the_connector_is_refused_for_real() -> None:
    # A container with its own network cannot subscribe (the kernel sends proc
    # events to the first network namespace only): run the listener inside one.
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], check=False).returncode:
        pytest.skip("cannot create a network namespace here (unshare -n)")
    result = subprocess.run(
        [unshare, "-n", sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    out = json.loads(result.stdout)
    backend, detail = out["auto"]
    assert backend == "poll"
    assert "proc connector not used: the kernel did not accept the subscription" in detail
    assert out["connector"][0] == "unavailable"


# --------------------------------------------------------------- validation


def rules_of(trigger: str) -> list[Any]:
    pack = load_pack(
        (PACK_HEAD + f"  - id: r\n    when: {trigger}\n    do: [{{log: x}}]\n").encode(),
        filename="test.yaml",
    )
    assert not pack.errors, pack.errors
    return pack.rules


def errors_of(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


def test_option_shapes() -> None:
    (rule,) = rules_of("{process.exited: {exe: /usr/bin/*, cmdline: {regex: 'x$'}}}")
    trigger = rule.triggers[0]
    assert trigger.describe() == "process.exited cmdline={'regex': 'x$'}, exe=/usr/bin/*"
    assert dict(rule.needs()) == {
        "processes": ProcessSpec.of({"exe": "/usr/bin/*", "cmdline": {"regex": "x$"}}, exits=True)
    }
    (rule,) = rules_of("{process.started: }")
    assert rule.triggers[0].describe() == "process.started any process"
    assert triggers.get("process.started") is not None


def test_bad_options_are_reported_with_their_path() -> None:
    errors = errors_of("""
  - id: a
    when: {process.started: {nmae: firefox}}
    do: [{log: x}]
  - id: b
    when: {process.exited: {cmdline: {regex: "("}}}
    do: [{log: x}]
  - id: c
    when: {event: t.x}
    if: [{process.running: {}}]
    do: [{log: x}]
  - id: d
    when: {process.started: firefox}
    do: [{log: "{event.title}"}]
""")
    assert len(errors) == 4, errors
    assert "rules[0].when.process.started" in errors[0]
    assert "nmae" in errors[0]
    assert "rules[1].when.process.exited.cmdline: bad regular expression" in errors[1]
    assert "rules[2].if[0].process.running" in errors[2]
    assert "title" in errors[3]


class Overflowing:
    """A connector socket whose kernel queue overflowed: ENOBUFS, then empty."""

    def __init__(self) -> None:
        self.calls = 0

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.calls += 1
        if self.calls == 1:
            raise OSError(errno.ENOBUFS, "No buffer space available")
        raise BlockingIOError()


def test_lost_events_are_made_up_for_by_a_fresh_look(
    sleeper: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    # A listener that never looks by itself: only the overflow makes it look.
    listener = direct(
        bus, [ProcessSpec.of({"name": sleeper.name}, exits=True)], backend="poll", interval=60
    )
    try:
        proc = spawn(children, sleeper, "30")
        listener._drain(Overflowing())  # type: ignore[arg-type]
        (started,) = recorder.wait("process.started")
        assert started.data["pid"] == proc.pid
        proc.kill()
        wait_until(lambda: ProcSource().is_zombie(proc.pid), what="a zombie")
        listener._drain(Overflowing())  # type: ignore[arg-type]
        (exited,) = recorder.wait("process.exited")
        assert exited.data["pid"] == proc.pid
        assert listener.overflows == 2
    finally:
        listener.stop()
        recorder.close()


FORKS_THEN_EXECS = """
import os, sys
pid = os.fork()
if pid == 0:  # the child: forked, and runs the program only when told
    os.read(0, 1)
    os.execv(sys.argv[1], [sys.argv[1], "30"])
print(pid, flush=True)
os.waitpid(pid, 0)
"""


def test_a_process_seen_before_its_exec_is_looked_at_again(
    sleeper: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    # Polling can catch a process between fork and exec, under its parent's
    # name: it looks at such processes once more a round later.
    parent = subprocess.Popen(
        [sys.executable, "-c", FORKS_THEN_EXECS, str(sleeper)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    children.append(parent)
    assert parent.stdin is not None
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(bus, [ProcessSpec.of({"name": sleeper.name})], backend="poll", interval=60)
    try:
        assert listener.tracked() == []
        parent.stdin.write(b"x")
        parent.stdin.close()
        wait_until(lambda: ProcSource().comm(child) == sleeper.name, what="the exec")
        listener._recheck()
        (started,) = recorder.wait("process.started")
        assert started.data["pid"] == child
        assert started.data["cmdline"] == f"{sleeper} 30"
    finally:
        listener.stop()
        recorder.close()
        os.kill(child, signal.SIGKILL)


class WrappingSource(ProcSource):
    """/proc whose last pid only goes down: as after a wrap-around, every round."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds = 0

    def counters(self) -> tuple[int, int] | None:
        self.rounds += 1
        return 0, 1_000_000 - self.rounds


@pytest.mark.parametrize("source", [PsutilSource, WrappingSource], ids=["psutil", "pid-wrap"])
def test_polling_by_listing_every_pid(
    source: type[Any], sleeper: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    # Off Linux (psutil), and on Linux after the pids wrapped around, polling
    # lists every pid and reads the ones it has not seen.
    bus = Bus()
    recorder = Recorder(bus, "process.*")
    listener = direct(
        bus, [ProcessSpec.of({"name": sleeper.name}, exits=True)], backend="poll", source=source()
    )
    try:
        proc = spawn(children, sleeper, "30")
        (started,) = recorder.wait("process.started")
        assert started.data["pid"] == proc.pid
        assert started.data["cmdline"] == f"{sleeper} 30"
        assert started.data["exe"] == os.path.realpath(sleeper)
        proc.kill()
        proc.wait()
        (exited,) = recorder.wait("process.exited")
        assert exited.data["pid"] == proc.pid
        assert exited.data["exit_code"] is None
    finally:
        listener.stop()
        recorder.close()
