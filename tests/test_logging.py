"""Logging and errors of the ``nerve`` command line, run for real in subprocesses.

The terminal gets one line per problem and never a traceback (unless
``--verbose``); the app and headless runs keep a rotating log file in the
platform's log folder; an unexpected error is written there with its traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_until
from nerve.cli import build_parser

NERVE = [sys.executable, "-m", "nerve"]
TINY_PACK = """\
nerve: 1
pack: {id: test.tiny}
rules:
  - id: note
    when: {event: x.note}
    do: [{log: noted}]
"""


def run(
    env: dict[str, str], *args: object, code: str | None = None, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``nerve ARGS`` (or ``python -c CODE ARGS``) to the end, run by ``prefix``."""
    argv = [sys.executable, "-c", code] if code is not None else NERVE
    argv = [*prefix, *argv, *map(str, args)]
    return subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def log_file(env: dict[str, str]) -> Path:
    """Where the log goes on Linux: ``$XDG_STATE_HOME/nerve/log/nerve.log``."""
    return Path(env["XDG_STATE_HOME"]) / "nerve" / "log" / "nerve.log"


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


# ------------------------------------------------------------------ verbose


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield f"{prefix}{name}", command
                yield from _commands(command, f"{prefix}{name} ")


def test_verbose_is_accepted_by_every_command() -> None:
    commands = dict(_commands(build_parser()))
    assert {"run", "status", "validate", "install-desktop", "uninstall-desktop"} <= set(commands)
    for name, command in commands.items():
        assert "--verbose" in command._option_string_actions, name


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["run", "--headless"], False),
        (["-v", "run", "--headless"], True),
        (["run", "--headless", "-v"], True),
        (["status", "--verbose"], True),
        (["-v", "status"], True),
    ],
)
def test_verbose_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    assert build_parser().parse_args(argv).verbose is verbose


# ------------------------------------------------------------ the log file


def test_a_headless_run_keeps_a_log_file(nerve_env: dict[str, str], short_tmp: Path) -> None:
    pack = short_tmp / "tiny.yaml"
    pack.write_text(TINY_PACK)
    out = short_tmp / "run.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [*NERVE, "run", "--headless", "--rules", str(pack), "-v"],
            env=nerve_env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: run(nerve_env, "status").returncode == 0 or proc.poll() is not None,
            timeout=20,
            what="nerve status to answer",
        )
        assert proc.poll() is None, out.read_text()
        assert run(nerve_env, "emit", "x.note").returncode == 0
        path = log_file(nerve_env)
        wait_until(lambda: "noted" in path.read_text(), what="the log action in the log file")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, out.read_text()
    text = path.read_text()
    assert "log opened: nerve " in text  # what ran, for bug reports
    assert " DEBUG " in text  # -v reaches the file too
    assert "running: 1 rule(s) from 1 pack(s)" in text
    assert "stopping" in text
    assert "Traceback" not in out.read_text()


def test_short_commands_keep_no_log_file(nerve_env: dict[str, str], short_tmp: Path) -> None:
    pack = short_tmp / "tiny.yaml"
    pack.write_text(TINY_PACK)
    quiet = run(nerve_env, "validate", pack)
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert not log_file(nerve_env).exists()  # short commands keep no log file


def test_the_log_file_rotates(nerve_env: dict[str, str], short_tmp: Path) -> None:
    code = (
        "import logging\n"
        "from pathlib import Path\n"
        "from nerve import logs\n"
        "logs.setup_console(False)\n"
        f"logs.add_file(Path({str(log_file(nerve_env))!r}))\n"
        "for i in range(2600):\n"
        "    logging.getLogger('nerve.test').info('%05d %s', i, 'x' * 1000)\n"
    )
    proc = run(nerve_env, code=code)
    assert proc.returncode == 0, proc.stderr
    folder = log_file(nerve_env).parent
    assert sorted(p.name for p in folder.iterdir()) == ["nerve.log", "nerve.log.1"]
    assert folder.stat().st_mode & 0o077 == 0  # the log folder is the user's only
    assert 0 < (folder / "nerve.log").stat().st_size <= 2_000_000
    assert "02599" in (folder / "nerve.log").read_text()


def test_a_log_file_that_cannot_be_written_is_one_warning(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    blocker = short_tmp / "state-is-a-file"
    blocker.write_text("")
    nerve_env["XDG_STATE_HOME"] = str(blocker)
    pack = short_tmp / "tiny.yaml"
    pack.write_text(TINY_PACK)
    out = short_tmp / "run.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [*NERVE, "run", "--headless", "--rules", str(pack)],
            env=nerve_env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: run(nerve_env, "status").returncode == 0 or proc.poll() is not None,
            timeout=20,
            what="nerve status to answer",
        )
        assert proc.poll() is None, out.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, out.read_text()
    warnings = [line for line in lines(out.read_text()) if "log file" in line]
    assert warnings == [
        f"nerve: WARNING: cannot write the log file {blocker}/nerve/log/nerve.log "
        f"({blocker}/nerve/log: Not a directory); logging here only"
    ]


# ------------------------------------------------------- unexpected errors

CRASH = (
    "import sys\n"
    "import nerve.cli as cli\n"
    "def broken(args):\n"
    "    raise RuntimeError('kaput: an invariant broke')\n"
    "cli.cmd_schema = broken\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def test_an_unexpected_error_is_one_line_and_a_traceback_in_the_log(
    nerve_env: dict[str, str],
) -> None:
    proc = run(nerve_env, "schema", code=CRASH)
    assert proc.returncode == 1
    path = log_file(nerve_env)
    assert lines(proc.stderr) == [
        "nerve: unexpected error: RuntimeError: kaput: an invariant broke; the details are in "
        f"{path} (please include them when you report it)"
    ]
    text = path.read_text()
    assert (
        "CRITICAL nerve [MainThread]: unexpected error\n"
        "    Traceback (most recent call last):" in text
    )
    assert "RuntimeError: kaput: an invariant broke" in text
    assert "in broken" in text


def test_verbose_shows_the_traceback_on_the_terminal_too(nerve_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, "-v", "schema"],
        env=nerve_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback (most recent call last):" in proc.stderr
    assert lines(proc.stderr)[-1].startswith("nerve: unexpected error: RuntimeError: kaput")


def test_without_a_log_file_the_details_are_not_lost(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    blocker = short_tmp / "state-is-a-file"
    blocker.write_text("")
    nerve_env["XDG_STATE_HOME"] = str(blocker)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, "schema"],
        env=nerve_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert "cannot write the log file" in proc.stderr
    assert "Traceback (most recent call last):" in proc.stderr
    assert lines(proc.stderr)[-1] == (
        "nerve: unexpected error: RuntimeError: kaput: an invariant broke "
        "(no log file could be written)"
    )


def test_an_error_in_a_thread_is_logged_not_printed(nerve_env: dict[str, str]) -> None:
    code = (
        "import threading\n"
        "from nerve import logs\n"
        "logs.setup_console(False)\n"
        "logs.install_hooks()\n"
        "def work():\n"
        "    raise ValueError('listener fell over')\n"
        "t = threading.Thread(target=work, name='listener-x')\n"
        "t.start()\n"
        "t.join()\n"
    )
    proc = run(nerve_env, code=code)
    assert proc.returncode == 0
    path = log_file(nerve_env)
    assert lines(proc.stderr) == [
        "nerve: ERROR: unexpected error in thread listener-x "
        f"(ValueError: listener fell over; the traceback is in {path})"
    ]
    text = path.read_text()
    assert "Traceback" in text
    assert "ValueError: listener fell over" in text


# ----------------------------------------------- user-facing error paths


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["validate"], "the following arguments are required: PATH"),
        (["events", "--limit", "many"], "--limit: expected a whole number from 1 to"),
        (["events", "--since", "yesterday"], "--since:"),
        (["run", "--headless", "--set", "novalue"], "--set takes key=value"),
        (["pause", "--for", "0s"], "--for: expected a time longer than 0"),
        (["emit", "Not A Type"], "is not an event type"),
        (["install-desktop", "--autostart=yes"], "ignored explicit argument"),
    ],
)
def test_bad_arguments_exit_2_without_a_traceback(
    nerve_env: dict[str, str], args: list[str], message: str
) -> None:
    proc = run(nerve_env, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_an_x_display_that_does_not_answer_is_a_clear_message(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    # A display number nothing listens on (Qt itself would abort the process).
    env = {**nerve_env, "DISPLAY": ":4095", "QT_QPA_PLATFORM": "xcb"}
    env.pop("WAYLAND_DISPLAY", None)
    for args in ([], ["run"]):
        proc = run(env, *args)
        assert proc.returncode == 2, proc.stderr
        assert "cannot connect to the X display :4095" in proc.stderr
        assert "--headless" in proc.stderr
        assert len(lines(proc.stderr)) == 1


def test_a_runtime_folder_too_deep_for_a_socket(nerve_env: dict[str, str], short_tmp: Path) -> None:
    deep = short_tmp / ("d" * 110)
    deep.mkdir(mode=0o700)
    env = {**nerve_env, "XDG_RUNTIME_DIR": str(deep)}
    pack = short_tmp / "tiny.yaml"
    pack.write_text(TINY_PACK)
    proc = run(env, "run", "--headless", "--rules", pack)
    assert proc.returncode == 1
    assert "cannot start: AF_UNIX path too long" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run(env, "status")
    assert proc.returncode == 1
    assert lines(proc.stderr) == [
        f"nerve: cannot connect to Nerve at {deep}/nerve/nerve.sock: AF_UNIX path too long"
    ]


def test_something_else_at_the_socket_path(nerve_env: dict[str, str]) -> None:
    folder = Path(nerve_env["XDG_RUNTIME_DIR"]) / "nerve"
    folder.mkdir(mode=0o700)
    (folder / "nerve.sock").write_text("not a socket")
    proc = run(nerve_env, "status")
    assert proc.returncode == 3
    assert lines(proc.stderr) == [
        f"nerve: Nerve is not running (nothing listens at {folder}/nerve.sock)"
    ]


# ------------------------------------------------------------ permissions


@pytest.fixture
def as_user() -> list[str]:
    """A command prefix under which file permissions apply: nothing for a user;
    for root (who may read and write anything), root without the capabilities
    that override file permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux) to drop DAC override")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    if subprocess.run([*prefix, "true"], check=False).returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    return prefix


def test_a_pack_file_that_cannot_be_read(
    nerve_env: dict[str, str], short_tmp: Path, as_user: list[str]
) -> None:
    pack = short_tmp / "private.yaml"
    pack.write_text(TINY_PACK)
    pack.chmod(0o000)
    proc = run(nerve_env, "validate", pack, prefix=as_user)
    assert proc.returncode == 1
    assert lines(proc.stderr) == [f"{pack}:1:1: cannot read the file: Permission denied"]


def test_a_data_folder_that_cannot_be_written(
    nerve_env: dict[str, str], short_tmp: Path, as_user: list[str]
) -> None:
    data = short_tmp / "read-only"
    data.mkdir(mode=0o555)
    pack = short_tmp / "tiny.yaml"
    pack.write_text(TINY_PACK)
    proc = run(nerve_env, "run", "--headless", "--rules", pack, "--data-dir", data, prefix=as_user)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines(proc.stderr)[-1].startswith("nerve: cannot start: ")
    assert f"{data}/nerve.db" in proc.stderr
    assert "Permission denied" in proc.stderr
    assert run(nerve_env, "status").returncode == 3  # nothing was left running
