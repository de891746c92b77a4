"""Pack trust: which of the user's packs run before and after their capabilities are approved.

Most tests load packs the way a starting Nerve does (``Nerve.load_packs`` in a
fresh user's folders, the ``nerve_env`` fixture); the last one runs the real
``nerve run --headless`` and shows a held pack's rule really does not run.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import wait_until
from nerve.bootstrap import Nerve
from nerve.events import Event
from nerve.ipc import request
from nerve.options import Options
from nerve.packs import trust
from nerve.packs.loader import load_pack
from nerve.paths import Locations, locations
from test_cli import StartNerve, cli_ok, socket_file, start_nerve  # noqa: F401

RUNS = """\
nerve: 1
pack: {id: shared.touch, name: Touch things}
rules:
  - id: touch
    when: {event: x.touch}
    do:
      - run: {argv: [touch, "{event.path}"], wait: true}
"""
SHELL_TOO = (
    RUNS
    + """\
  - id: shell
    when: {event: x.shell}
    do: [{shell: "true"}]
"""
)
MOVES = """\
nerve: 1
pack: {id: shared.tidy}
rules:
  - id: tidy
    when: {event: x.tidy}
    do: [{file.move: {src: "{event.src}", dest: "{event.dest}"}}]
"""
HARMLESS = """\
nerve: 1
pack: {id: shared.notes}
rules:
  - id: note
    when: {event: x.note}
    do: [{log: "note {event.text}"}]
"""


@pytest.fixture
def where(nerve_env: dict[str, str]) -> Locations:
    return locations()


def loaded(where: Locations, *rule_paths: Path) -> Nerve:
    """A Nerve (not started) that has loaded its packs as at start (or a reload)."""
    app = Nerve(where, Options(rule_paths=list(rule_paths)))
    app.load_packs()
    return app


def keys(app: Nerve) -> set[str]:
    return {rule.key for rule in app.rules()}


def held(app: Nerve) -> dict[str, set[str]]:
    return {s.pack.id: set(s.missing) for s in app.held}


def first_start(where: Locations) -> Nerve:
    """The first start of a new user: the starter pack is installed (and approved)."""
    app = loaded(where)
    assert (where.packs / "starter.yaml").exists()
    return app


# --------------------------------------------------------------------- rules


def test_the_starter_pack_is_approved_when_installed(where: Locations) -> None:
    app = first_start(where)
    assert app.held == []
    assert "nerve.starter/note" in keys(app)
    approval = trust.Approvals(where.config).get("nerve.starter")
    assert approval is not None
    assert approval.file == "starter.yaml"
    assert approval.capabilities == {"controls-nerve", "writes-variables"}
    assert approval.approved


def test_a_pack_with_capabilities_is_held_until_approved(
    where: Locations, caplog: pytest.LogCaptureFixture
) -> None:
    first_start(where)
    (where.packs / "touch.yaml").write_text(RUNS)
    app = loaded(where)
    assert held(app) == {"shared.touch": {"runs-programs", "run:touch"}}
    assert "shared.touch/touch" not in keys(app)
    assert "nerve.starter/note" in keys(app)  # the others run
    # The log says which pack, what it can do and how to approve it.
    assert "pack shared.touch" in caplog.text
    assert "start the program touch" in caplog.text
    assert "nerve pack approve shared.touch" in caplog.text

    trust.Approvals(where.config).approve("shared.touch", ["runs-programs", "run:touch"])
    app = loaded(where)
    assert app.held == []
    assert "shared.touch/touch" in keys(app)


def test_a_pack_without_capabilities_needs_no_approval(where: Locations) -> None:
    first_start(where)
    (where.packs / "notes.yaml").write_text(HARMLESS)
    app = loaded(where)
    assert app.held == []
    assert "shared.notes/note" in keys(app)


def test_an_update_that_widens_the_capabilities_is_held_again(where: Locations) -> None:
    first_start(where)
    pack = where.packs / "touch.yaml"
    pack.write_text(RUNS)
    trust.Approvals(where.config).approve("shared.touch", ["runs-programs", "run:touch"])
    assert "shared.touch/touch" in keys(loaded(where))

    pack.write_text(SHELL_TOO)  # now it also runs shell command lines
    app = loaded(where)
    assert held(app) == {"shared.touch": {"runs-shell", "shell:true"}}
    # The version approved before runs meanwhile: the new rule does not.
    assert {k for k in keys(app) if k.startswith("shared.touch/")} == {"shared.touch/touch"}

    pack.write_text(RUNS)  # back within what was approved
    assert "shared.touch/touch" in keys(loaded(where))


def test_an_approval_does_not_pass_to_another_file_with_the_same_id(where: Locations) -> None:
    first_start(where)
    (where.packs / "touch.yaml").write_text(RUNS)
    trust.Approvals(where.config).approve("shared.touch", ["runs-programs", "run:touch"])
    # Another file claims the id (it sorts first, so a listing would give it first).
    (where.packs / "a-copy.yaml").write_text(RUNS.replace("argv: [touch, ", "argv: [rm, "))
    app = loaded(where)
    states = {s.file_name: s for s in trust.judge_all(app.packs, app.approvals)}
    assert states["a-copy.yaml"].state == "held"
    assert states["a-copy.yaml"].duplicate_of == "touch.yaml"
    assert states["touch.yaml"].state == "active"  # the approved file keeps its id
    assert {k for k in keys(app) if k.startswith("shared.touch/")} == {"shared.touch/touch"}
    # Approving the id approves the file that owns it, never the newcomer.
    approval = trust.Approvals(where.config).approve("shared.touch", ["runs-programs"])
    assert approval.file == "touch.yaml"


def test_packs_given_with_rules_are_trusted(where: Locations, short_tmp: Path) -> None:
    mine = short_tmp / "mine.yaml"
    mine.write_text(SHELL_TOO)
    app = loaded(where, mine)
    assert app.held == []
    assert keys(app) == {"shared.touch/touch", "shared.touch/shell"}
    assert not trust.Approvals(where.config).exists()  # nothing recorded for --rules


def test_a_pack_that_moves_the_approvals_away_gains_nothing(
    where: Locations, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack approved only to move files moves approvals.yaml away; at the next
    start every pack that needs approval is held, itself included."""
    monkeypatch.delenv("DISPLAY", raising=False)  # no keyboard listener
    first_start(where)
    (where.packs / "tidy.yaml").write_text(MOVES)
    (where.packs / "touch.yaml").write_text(RUNS)
    store = trust.Approvals(where.config)
    store.approve("shared.tidy", ["writes-files", "writes:*"])
    assert store.exists()
    away = short_tmp / "away"

    app = Nerve(where, Options())
    app.start()
    try:
        assert {"shared.tidy/tidy", "nerve.starter/note"} <= keys(app)
        assert held(app) == {"shared.touch": {"runs-programs", "run:touch"}}
        assert app.bus is not None
        app.bus.publish("x.tidy", {"src": str(store.path), "dest": str(away)}, source="test")
        wait_until((away / "approvals.yaml").exists, what="approvals.yaml moved")
    finally:
        app.stop()
    assert not store.exists()

    app = Nerve(where, Options())
    app.start()
    try:
        assert set(held(app)) == {"nerve.starter", "shared.tidy", "shared.touch"}
        assert keys(app) == set()
    finally:
        app.stop()
    assert not store.exists()  # and nothing was approved behind the user's back


def test_a_damaged_approvals_file_approves_nothing(
    where: Locations, caplog: pytest.LogCaptureFixture
) -> None:
    first_start(where)
    path = where.config / "approvals.yaml"
    path.write_text("packs: [unclosed\n")
    app = loaded(where)
    assert set(held(app)) == {"nerve.starter"}
    errors = {r.getMessage() for r in caplog.records if r.levelname == "ERROR"}
    assert len(errors) == 1
    # file:line:column once, then what is wrong.
    (error,) = errors
    assert error.startswith(f"{path}:2:1: did not find expected")
    assert error.count(str(path)) == 1
    assert error.endswith("(no pack is approved)")


# -------------------------------------------------------- the approvals file


def test_the_approvals_file_is_private(where: Locations) -> None:
    old_umask = os.umask(0o022)
    try:
        first_start(where)  # Nerve creates the config folder
        config, path = where.config, where.config / "approvals.yaml"
        assert config.stat().st_mode & 0o777 == 0o700
        assert path.stat().st_mode & 0o777 == 0o600
        # One written by an earlier Nerve for everyone to read becomes private, backup too.
        path.chmod(0o644)
        trust.Approvals(config).record("shared.touch", file="touch.yaml", values={"t": "s3cret"})
        assert path.stat().st_mode & 0o777 == 0o600
        backup = config / "approvals.yaml~"
        assert backup.stat().st_mode & 0o777 == 0o600
        assert "nerve.starter" in backup.read_text()
    finally:
        os.umask(old_umask)


def test_two_writers_do_not_lose_each_others_approvals(
    where: Locations, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window and the command line approve at the same time: both approvals stay.

    The first writer pauses between reading and writing the file until the
    second one has read it too (or for a second: the lock keeps the second out)."""
    first_start(where)
    store_a, store_b = trust.Approvals(where.config), trust.Approvals(where.config)
    a_read, b_read = threading.Event(), threading.Event()
    real_read = trust.Approvals.read

    def read(self: trust.Approvals) -> dict[str, trust.Approval]:
        entries = real_read(self)
        if self is store_a:
            a_read.set()
            b_read.wait(1.0)  # without the lock B reads now, before A writes
        elif self is store_b:
            b_read.set()
        return entries

    monkeypatch.setattr(trust.Approvals, "read", read)
    errors: list[BaseException] = []

    def approve(store: trust.Approvals, pack_id: str) -> None:
        try:
            store.approve(pack_id, ["runs-programs"], file=f"{pack_id}.yaml")
        except BaseException as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    first = threading.Thread(target=approve, args=(store_a, "shared.a"))
    first.start()
    assert a_read.wait(10)
    second = threading.Thread(target=approve, args=(store_b, "shared.b"))
    second.start()
    first.join(10)
    second.join(10)
    assert not errors
    monkeypatch.setattr(trust.Approvals, "read", real_read)
    assert {"nerve.starter", "shared.a", "shared.b"} <= set(trust.Approvals(where.config).read())


def test_input_values_chosen_at_import_are_used(where: Locations, short_tmp: Path) -> None:
    first_start(where)
    source = short_tmp / "needs.yaml"
    source.write_text(
        "nerve: 1\npack:\n  id: shared.needs\n  inputs:\n    greeting: {type: text}\n"
        "rules:\n  - id: hi\n    when: {event: x.hi}\n    do: [{log: '{input.greeting}'}]\n"
    )
    plan = trust.plan_import(source, where.packs)
    assert plan.missing_inputs == ["greeting"]
    plan = trust.plan_import(source, where.packs, {"greeting": "hello"})
    assert not plan.pack.errors
    target = trust.install(
        plan, trust.Approvals(where.config), values={"greeting": "hello"}, approve=False
    )
    assert target == where.packs / "shared.needs.yaml"
    app = loaded(where)
    pack = next(p for p in app.packs if p.id == "shared.needs")
    assert pack.values == {"greeting": "hello"}
    assert "shared.needs/hi" in keys(app)  # no capabilities: it runs


def test_the_reviewed_bytes_are_installed_whatever_happens_to_the_source(
    where: Locations, short_tmp: Path
) -> None:
    first_start(where)
    source = short_tmp / "touch.yaml"
    source.write_text(RUNS)
    plan = trust.plan_import(source, where.packs)
    source.write_text(SHELL_TOO)  # swapped after the review
    plan = plan.with_values({})
    assert plan.pack.capabilities == {"runs-programs", "run:touch"}
    target = trust.install(plan, trust.Approvals(where.config), values={}, approve=True)
    assert target.read_text() == RUNS
    assert held(loaded(where)) == {}

    # Imported again, the same bytes are found in the folder; if that file was
    # changed in between, it gets the reviewed bytes again.
    plan = trust.plan_import(target, where.packs)
    assert plan.same_as == target
    target.write_text(SHELL_TOO)
    trust.install(plan, trust.Approvals(where.config), values={}, approve=True)
    assert target.read_text() == RUNS


def test_export_keeps_the_chosen_rules_and_the_inputs_they_use(
    where: Locations, short_tmp: Path
) -> None:
    source = short_tmp / "src.yaml"
    source.write_text(
        "nerve: 1\npack:\n  id: me.src\n  name: Mine\n  version: 2.0.0\n  inputs:\n"
        "    out: {type: path, description: Where}\n    other: {default: x}\n"
        "rules:\n"
        "  # the first rule\n"
        "  - id: one\n    when: {event: x.one}\n    do: [{log: '{input.out}'}]  # says where\n"
        "  - id: two\n    when: {event: x.two}\n    do: [{log: '{input.other}'}]\n"
    )
    text = trust.export_text([(source, ["one"])])
    assert "# says where" in text
    pack = load_pack(text.encode(), overrides={"out": "/tmp"})
    assert not pack.errors
    assert [r.id for r in pack.rules] == ["one"]
    assert (pack.id, pack.name, pack.version) == ("me.src", "Mine", "2.0.0")
    assert set(pack.inputs) == {"out"}

    with pytest.raises(trust.TrustError, match="no rule 'three'"):
        trust.export_text([(source, ["three"])])


# ----------------------------------------------------- a real running Nerve


def test_a_held_packs_rule_does_not_run_until_approved(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    nerve = start_nerve()  # the user's packs folder, with the starter pack
    packs = Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve" / "packs"
    (packs / "touch.yaml").write_text(RUNS)
    sock = socket_file(nerve_env)

    # The running Nerve notices the new file, and holds the pack.
    def held_now() -> bool:
        return "held pack shared.touch" in cli_ok(nerve_env, "status")

    wait_until(held_now, what="the new pack held in `nerve status`")
    status = cli_ok(nerve_env, "status")
    assert "start the program touch" in status
    assert "nerve pack approve shared.touch" in status
    assert not [r for r in request("rules", path=sock) if r["key"].startswith("shared.touch/")]

    target = short_tmp / "touched"
    cli_ok(nerve_env, "emit", "x.touch", f"path={target}")
    # A later event handled by an active rule: the engine handles events in order.
    cli_ok(nerve_env, "emit", "note", "text=after")
    wait_until(
        lambda: "nerve.starter/note" in cli_ok(nerve_env, "runs", "--rule", "note"),
        what="the starter pack's note rule to run",
    )
    runs = [json.loads(line) for line in cli_ok(nerve_env, "runs", "--json").splitlines()]
    assert [r["rule_id"] for r in runs] == ["nerve.starter/note"]
    assert not target.exists()

    out = cli_ok(nerve_env, "pack", "approve", "shared.touch", "--yes")
    assert "Approved shared.touch: it may start the program touch" in out
    assert "reloaded" in out
    cli_ok(nerve_env, "emit", "x.touch", f"path={target}")
    wait_until(target.exists, what="the approved rule to touch its file")
    assert "held pack" not in cli_ok(nerve_env, "status")
    assert "is held" in nerve.output()


# ------------------------------------------------- one owner per pack id

TOKEN = "tok-3f9a1c27-SECRET"
OWNED = """\
nerve: 1
pack:
  id: shared.owned
  inputs:
    token: {type: text, secret: true}
rules:
  - id: call
    when: {event: x.call}
    do:
      - run: {argv: [touch, "{event.path}"], wait: true}
"""
#: A newcomer claiming the id: it needs no capability, and would log the token.
IMPOSTOR = """\
nerve: 1
pack:
  id: shared.owned
  inputs:
    token: {type: text, default: none}
rules:
  - id: steal
    when: {event: x.call}
    do: [{log: "stolen {input.token}"}]
"""


def install_owned(where: Locations, short_tmp: Path) -> Path:
    """The real pack, imported with a secret token and approved."""
    source = short_tmp / "owned-src.yaml"
    source.write_text(OWNED)
    plan = trust.plan_import(source, where.packs, {"token": TOKEN})
    return trust.install(plan, trust.Approvals(where.config), values={"token": TOKEN}, approve=True)


def place(where: Locations, short_tmp: Path, how: str, text: str) -> Path | None:
    """Put a pack file into the packs folder the way ``how`` says; the path it
    has there (None: a file Nerve must not load at all)."""
    packs = where.packs
    if how == "hidden":
        (packs / ".shared.owned.yaml").write_text(text)
        return None
    if how == "hidden-yml":
        (packs / ".a.yml").write_text(text)
        return None
    if how == "autosave":
        (packs / "#shared.owned.yaml#.yaml").write_text(text)
        return None
    if how == "sorts-first":
        path = packs / "0-shared.owned.yaml"
    elif how == "sorts-last":
        path = packs / "zz.yaml"
    elif how == "yml":
        path = packs / "a.yml"
    elif how == "rename":
        # Seen under one name, then renamed to sort first.
        (packs / "zz-new.yaml").write_text(text)
        loaded(where)
        path = packs / "0.yaml"
        os.replace(packs / "zz-new.yaml", path)
        return path
    elif how in ("symlink", "symlink-to-owner"):
        path = packs / "0-link.yaml"
        if how == "symlink":
            outside = short_tmp / "elsewhere.yaml"
            outside.write_text(text)
            path.symlink_to(outside)
        else:
            path.symlink_to(packs / "shared.owned.yaml")
        return path
    elif how == "newer-mtime":
        path = packs / "0.yaml"
        path.write_text(text)
        old = (packs / "shared.owned.yaml").stat().st_mtime
        os.utime(packs / "shared.owned.yaml", (old + 3600, old + 3600))  # the owner "newer"
        os.utime(path, (old - 3600, old - 3600))
        return path
    else:
        raise AssertionError(how)
    path.write_text(text)
    return path


NEWCOMERS = [
    "hidden",
    "hidden-yml",
    "autosave",
    "sorts-first",
    "sorts-last",
    "yml",
    "rename",
    "symlink",
    "symlink-to-owner",
    "newer-mtime",
]


@pytest.mark.parametrize("how", NEWCOMERS)
def test_a_newcomer_never_takes_an_approved_packs_id(
    where: Locations, short_tmp: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    first_start(where)
    owner = install_owned(where, short_tmp)
    newcomer = place(where, short_tmp, how, IMPOSTOR)
    app = loaded(where)
    # The approved file keeps its id, its rules and its input values.
    assert keys(app) >= {"shared.owned/call"}
    assert "shared.owned/steal" not in keys(app)
    real = next(p for p in app.packs if p.file == str(owner))
    assert real.values["token"] == TOKEN
    # No other file's pack got the token, loaded or not.
    for pack in app.packs:
        if pack.file != str(owner):
            assert TOKEN not in json.dumps(pack.values)
    files = {Path(p.file).name for p in app.packs}
    if newcomer is None:
        # Hidden files are not packs: not loaded, not held, not reported.
        assert files == {"starter.yaml", "shared.owned.yaml"}
        return
    states = {s.file_name: s for s in app.held}
    state = states[newcomer.name]
    assert state.duplicate_of == "shared.owned.yaml"
    assert not state.approvable
    assert "belongs to shared.owned.yaml (installed first)" in state.reason()
    assert f"{newcomer.name} claims the same id" in caplog.text
    # Approving the id approves the owner, whatever the newcomer asks for.
    approval = trust.Approvals(where.config).approve("shared.owned", ["runs-programs"])
    assert approval.file == "shared.owned.yaml"


@pytest.mark.parametrize("newcomer_name", ["0.yaml", "zz.yaml", "notes.yml"])
def test_the_first_file_seen_with_an_id_keeps_it(where: Locations, newcomer_name: str) -> None:
    """A pack dropped in by hand (no import, no approval: nothing needs one) is
    recorded when Nerve first sees it; a later file with its id is held."""
    first_start(where)
    (where.packs / "notes.yaml").write_text(HARMLESS)
    assert "shared.notes/note" in keys(loaded(where))
    (where.packs / newcomer_name).write_text(HARMLESS.replace("note {event.text}", "other"))
    app = loaded(where)
    assert "shared.notes/note" in keys(app)
    (state,) = app.held
    assert (state.file_name, state.duplicate_of) == (newcomer_name, "notes.yaml")
    rules = [r for r in app.rules() if r.pack == "shared.notes"]
    assert [r.source.rsplit(":", 1)[0] for r in rules] == [str(where.packs / "notes.yaml")]


def test_two_new_files_with_one_id_are_both_held(where: Locations) -> None:
    """Neither was seen first: which one came first is not guessed from a listing."""
    first_start(where)
    (where.packs / "a.yaml").write_text(HARMLESS)
    (where.packs / "b.yaml").write_text(HARMLESS.replace("note {event.text}", "other"))
    app = loaded(where)
    assert not [k for k in keys(app) if k.startswith("shared.notes/")]
    reasons = {s.file_name: s.reason() for s in app.held}
    assert set(reasons) == {"a.yaml", "b.yaml"}
    assert "none is recorded as installed first" in reasons["a.yaml"]
    assert "b.yaml" in reasons["a.yaml"]
    # The user removes one: the other is the only one, and runs.
    (where.packs / "b.yaml").unlink()
    assert "shared.notes/note" in keys(loaded(where))


def test_input_values_belong_to_the_file_they_were_given_for(
    where: Locations, short_tmp: Path
) -> None:
    """The approved file renamed (or a copy of it) gets no input values and no approval."""
    first_start(where)
    owner = install_owned(where, short_tmp)
    os.replace(owner, where.packs / "renamed.yaml")
    app = loaded(where)
    pack = next(p for p in app.packs if p.file.endswith("renamed.yaml"))
    assert "token" not in pack.values  # (so it does not even load: no value for its input)
    assert not [k for k in keys(app) if k.startswith("shared.owned/")]
    # With a value of its own, it is still not the approved file.
    text = OWNED.replace("{type: text, secret: true}", "{type: text, default: mine}")
    (where.packs / "renamed.yaml").write_text(text)
    app = loaded(where)
    (state,) = app.held
    assert state.approved_for == "shared.owned.yaml"
    assert state.pack.values["token"] == "mine"
    assert not [k for k in keys(app) if k.startswith("shared.owned/")]


# ----------------------------------------- concrete capabilities and their changes


def one_rule(when: str, do: str, inputs: str = "") -> str:
    head = f"nerve: 1\npack:\n  id: shared.edit\n{inputs}"
    return head + f"rules:\n  - id: r\n    when: {when}\n    do: {do}\n"


#: (before, after, what the edit asks for that was not approved)
CHANGES = {
    "program": (
        one_rule("{event: x.a}", "[{run: [/usr/bin/touch, /tmp/x]}]"),
        one_rule("{event: x.a}", "[{run: [/usr/bin/rm, /tmp/x]}]"),
        {"run:/usr/bin/rm"},
    ),
    "program-by-name": (
        one_rule("{event: x.a}", "[{run: touch}]"),
        one_rule("{event: x.a}", "[{run: ./touch}]"),
        {"run:./touch"},
    ),
    "program-from-a-placeholder": (
        one_rule("{event: x.a}", "[{run: [touch, '{event.path}']}]"),
        one_rule("{event: x.a}", "[{run: ['{event.path}']}]"),
        {"run:*"},
    ),
    "program-in-a-branch": (
        one_rule("{event: x.a}", "[{if: [{var: {a: 1}}], then: [{run: [touch]}]}]"),
        one_rule(
            "{event: x.a}",
            "[{if: [{var: {a: 1}}], then: [{log: hi}], else: [{run: {argv: [curl], wait: true}}]}]",
        ),
        {"run:curl"},
    ),
    "program-from-an-input": (
        one_rule("{event: x.a}", "[{run: ['{input.p}']}]", "  inputs: {p: {default: touch}}\n"),
        one_rule("{event: x.a}", "[{run: ['{input.p}']}]", "  inputs: {p: {default: sh}}\n"),
        {"run:sh"},
    ),
    "shell-text": (
        one_rule("{event: x.a}", "[{shell: 'ls | wc -l'}]"),
        one_rule("{event: x.a}", "[{shell: 'ls | wc -l; id'}]"),
        {"shell:ls | wc -l; id"},
    ),
    "shell-whitespace": (
        one_rule("{event: x.a}", "[{shell: 'ls'}]"),
        one_rule("{event: x.a}", "[{shell: 'ls '}]"),
        {"shell:ls "},
    ),
    "open": (
        one_rule("{event: x.a}", "[{open: 'https://a.example/'}]"),
        one_rule("{event: x.a}", "[{open: '{event.url}'}]"),
        {"open:*"},
    ),
    "copy-folder": (
        one_rule("{event: x.a}", "[{file.copy: {src: '{event.path}', dest: /tmp/a}}]"),
        one_rule("{event: x.a}", "[{file.copy: {src: '{event.path}', dest: ~/.ssh}}]"),
        {"writes:~/.ssh"},
    ),
    "move-folder-from-a-placeholder": (
        one_rule("{event: x.a}", "[{file.move: {src: '{event.path}', dest: /tmp/a}}]"),
        one_rule("{event: x.a}", "[{file.move: {src: '{event.path}', dest: '{event.to}'}}]"),
        {"writes:*"},
    ),
    "move-folder-from-an-input": (
        one_rule(
            "{event: x.a}",
            "[{file.move: {src: '{event.path}', dest: '{input.to}'}}]",
            "  inputs: {to: {type: path, default: /tmp/a}}\n",
        ),
        one_rule(
            "{event: x.a}",
            "[{file.move: {src: '{event.path}', dest: '{input.to}'}}]",
            "  inputs: {to: {type: path, default: /etc}}\n",
        ),
        {"writes:/etc"},
    ),
    "trash": (
        one_rule("{event: x.a}", "[{file.trash: /tmp/a}]"),
        one_rule("{event: x.a}", "[{file.trash: /tmp/b}]"),
        {"trash:/tmp/b"},
    ),
    "host": (
        one_rule("{event: x.a}", "[{http: 'https://a.example/hook'}]"),
        one_rule("{event: x.a}", "[{http: 'https://b.example/hook'}]"),
        {"http:b.example"},
    ),
    "host-behind-userinfo": (
        one_rule("{event: x.a}", "[{http: 'https://a.example/hook'}]"),
        one_rule("{event: x.a}", "[{http: 'https://a.example@b.example/hook'}]"),
        {"http:b.example"},
    ),
    "host-from-a-placeholder": (
        one_rule("{event: x.a}", "[{http: {url: 'https://a.example/hook', method: POST}}]"),
        one_rule("{event: x.a}", "[{http: {url: 'https://{event.host}/hook', method: POST}}]"),
        {"http:*"},
    ),
    "whole-url-from-a-placeholder": (
        one_rule("{event: x.a}", "[{http: 'https://a.example/'}]"),
        one_rule("{event: x.a}", "[{http: '{event.url}'}]"),
        {"http:*"},
    ),
    "program-environment": (
        one_rule("{event: x.a}", "[{run: {argv: [touch], wait: true}}]"),
        one_rule("{event: x.a}", "[{run: {argv: [touch], wait: true, env: {PATH: /tmp/b}}}]"),
        {"run:touch (PATH=/tmp/b)"},
    ),
    "program-preload": (
        one_rule("{event: x.a}", "[{run: {argv: [touch], env: {A: '1'}}}]"),
        one_rule("{event: x.a}", "[{run: {argv: [touch], env: {A: '1', LD_PRELOAD: /x.so}}}]"),
        {"run:touch (A=1, LD_PRELOAD=/x.so)"},
    ),
    "program-folder": (
        one_rule("{event: x.a}", "[{run: {argv: [./go], cwd: /opt/a}}]"),
        one_rule("{event: x.a}", "[{run: {argv: [./go], cwd: /tmp}}]"),
        {"run:./go (in /tmp)"},
    ),
    "shell-environment": (
        one_rule("{event: x.a}", "[{shell: {command: ls}}]"),
        one_rule("{event: x.a}", "[{shell: {command: ls, env: {PATH: /tmp}}}]"),
        {"shell:ls (PATH=/tmp)"},
    ),
    "port": (
        one_rule("{event: x.a}", "[{http: 'http://127.0.0.1:8080/hook'}]"),
        one_rule("{event: x.a}", "[{http: 'http://127.0.0.1:22/hook'}]"),
        {"http:127.0.0.1:22"},
    ),
    "url-from-an-input": (
        one_rule(
            "{event: x.a}",
            "[{http: '{input.u}'}]",
            "  inputs: {u: {default: 'https://a.example/'}}\n",
        ),
        one_rule(
            "{event: x.a}",
            "[{http: '{input.u}'}]",
            "  inputs: {u: {default: 'https://b.example/'}}\n",
        ),
        {"http:b.example"},
    ),
    "host-from-a-secret-input": (
        one_rule(
            "{event: x.a}",
            "[{http: 'https://a.example/{input.t}'}]",
            "  inputs: {t: {default: x, secret: true}}\n",
        ),
        one_rule(
            "{event: x.a}",
            "[{http: 'https://{input.t}/'}]",
            "  inputs: {t: {default: x, secret: true}}\n",
        ),
        {"http:*"},
    ),
    "watched-folder": (
        one_rule("{file.created: /tmp/a}", "[{log: hi}]"),
        one_rule("{file.created: {path: ~/.ssh, recursive: true}}", "[{log: hi}]"),
        {f"watches:{Path('~/.ssh').expanduser()}/**"},
    ),
    "emitted-type": (
        one_rule("{event: x.a}", "[{emit: x.done}]"),
        one_rule("{event: x.a}", "[{emit: {type: job.done, data: {k: v}}}]"),
        {"emits:job.done"},
    ),
}

#: Edits that name nothing new: the pack keeps running.
SAME = {
    "arguments": (
        one_rule("{event: x.a}", "[{run: [touch, /tmp/a]}]"),
        one_rule("{event: x.a}", "[{run: {argv: [touch, /tmp/b], wait: true}}]"),
    ),
    "url-path": (
        one_rule("{event: x.a}", "[{http: 'https://a.example/one'}]"),
        one_rule("{event: x.a}", "[{http: 'https://A.example/two?q={event.q}'}]"),
    ),
    "text": (
        one_rule("{event: x.a}", "[{shell: 'ls'}, {log: one}]"),
        one_rule("{event: x.a}", "[{log: two}, {shell: 'ls'}]"),
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_an_edit_that_names_something_new_is_held_with_a_diff(
    where: Locations, change: str
) -> None:
    before, after, added = CHANGES[change]
    first_start(where)
    pack_file = where.packs / "edit.yaml"
    pack_file.write_text(before)
    approved = load_pack(pack_file).capabilities
    assert approved, "the first version needs an approval"
    trust.Approvals(where.config).approve("shared.edit", approved)
    assert "shared.edit/r" in keys(loaded(where))

    pack_file.write_text(after)
    app = loaded(where)
    (state,) = app.held
    # The version approved before keeps running; the edit waits for approval.
    assert state.runs_approved
    (rule,) = [r for r in app.rules() if r.key == "shared.edit/r"]
    assert rule.capabilities <= approved
    assert "the version you approved keeps running" in state.reason()
    assert added <= state.missing
    assert {c for c in state.missing if ":" in c} == added
    lines = state.diff_lines()
    assert lines
    assert all(line[:2] in ("+ ", "- ", "~ ") for line in lines)
    shown = "\n".join(lines)
    for cap in added:
        assert trust.capability_text(cap) in shown
    assert state.approvable

    pack_file.write_text(before)  # back to what was approved
    assert "shared.edit/r" in keys(loaded(where))


@pytest.mark.parametrize("change", sorted(SAME))
def test_an_edit_within_the_approval_keeps_running(where: Locations, change: str) -> None:
    before, after = SAME[change]
    first_start(where)
    pack_file = where.packs / "edit.yaml"
    pack_file.write_text(before)
    trust.Approvals(where.config).approve("shared.edit", load_pack(pack_file).capabilities)
    pack_file.write_text(after)
    app = loaded(where)
    assert app.held == []
    assert "shared.edit/r" in keys(app)


def test_an_approval_from_before_concrete_capabilities_is_pinned(where: Locations) -> None:
    """An approval that lists only broad kinds (an older Nerve wrote it) covers what
    the pack names when it is first loaded; from then on a new program is held."""
    first_start(where)
    pack_file = where.packs / "edit.yaml"
    pack_file.write_text(CHANGES["program"][0])
    store = trust.Approvals(where.config)
    store.approve("shared.edit", ["runs-programs"])
    text = store.path.read_text()
    store.path.write_text("\n".join(ln for ln in text.splitlines() if "sha256" not in ln) + "\n")
    assert store.get("shared.edit").sha256 is None  # type: ignore[union-attr]
    app = Nerve(where, Options())
    app.load_packs()
    assert "shared.edit/r" in keys(app)
    assert trust.Approvals(where.config).get("shared.edit").sha256  # type: ignore[union-attr]
    pack_file.write_text(CHANGES["program"][1])
    (state,) = loaded(where).held
    assert state.missing == {"run:/usr/bin/rm"}


# ------------------------------------------------------- where events come from


def from_predicate(accept: str) -> Any:
    pack = load_pack(
        (
            "nerve: 1\npack: {id: my.pack}\nrules:\n  - id: r\n"
            f"    when: {{event: {{type: job.done, from: {accept}}}}}\n    do: [{{log: hi}}]\n"
        ).encode(),
        filename="from.yaml",
    )
    assert not pack.errors, pack.errors
    (matcher,) = pack.rules[0].triggers[0].matchers()
    return matcher.predicate


SOURCES = {
    "cli": "cli",
    "a pack's rule": "rule:other.pack/r",
    "this pack's rule": "rule:my.pack/r2",
    "a listener": "files",
    "a schedule": "schedule",
    "the engine": "engine",
    "mqtt": "mqtt",
    "a pack named like a keyword": "rule:cli/r",
}
ACCEPTS = {
    "[cli]": {"cli"},
    "cli": {"cli"},
    "[self]": {"this pack's rule"},
    "[rules]": {"a pack's rule", "this pack's rule", "a pack named like a keyword"},
    "[other.pack]": {"a pack's rule"},
    "['pack:other.pack', cli]": {"a pack's rule", "cli"},
    "['pack:cli']": {"a pack named like a keyword"},
    "[nerve]": {"a listener", "a schedule", "the engine"},
    "[mqtt, self]": {"mqtt", "this pack's rule"},
}


@pytest.mark.parametrize("accept", sorted(ACCEPTS))
def test_a_rule_accepts_events_only_from_the_sources_it_names(accept: str) -> None:
    predicate = from_predicate(accept)
    taken = {
        name for name, source in SOURCES.items() if predicate(Event("job.done", source=source))
    }
    assert taken == ACCEPTS[accept]


@pytest.mark.parametrize("bad", ["['Not A Pack']", "[rule:x/y]", "['']", "[]"])
def test_a_source_that_is_not_one_is_a_located_error(bad: str) -> None:
    pack = load_pack(
        (
            "nerve: 1\npack: {id: my.pack}\nrules:\n  - id: r\n"
            f"    when: {{event: {{type: job.done, from: {bad}}}}}\n    do: [{{log: hi}}]\n"
        ).encode(),
        filename="from.yaml",
    )
    (error,) = pack.errors
    assert error.path.startswith("rules[0].when.event.from")
    assert error.line == 5


# ----------------------------------------------------------- secrets in log lines


def test_secret_values_are_masked_in_every_log_line() -> None:
    """Whatever the logger, the arguments or an exception's text."""
    import io
    import logging

    from nerve import masking

    masking.install_log_masking()
    masking.register([TOKEN, "abc"])  # (too short to mask: an ordinary word)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("some.where.else")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("plain %s", TOKEN)
        logger.warning("in the format " + TOKEN)
        logger.warning("%(k)s", {"k": f"x{TOKEN}y"})
        try:
            raise ValueError(f"failed with {TOKEN}")
        except ValueError:
            logger.exception("caught")
    finally:
        logger.removeHandler(handler)
        masking.clear()
    text = stream.getvalue()
    assert TOKEN not in text
    assert text.count(masking.MASK) == 4


@pytest.mark.parametrize("copy", ["missing", "tampered"])
def test_without_the_approved_version_an_edited_pack_is_only_held(
    where: Locations, copy: str
) -> None:
    before, after, _ = CHANGES["program"]
    first_start(where)
    pack_file = where.packs / "edit.yaml"
    pack_file.write_text(before)
    store = trust.Approvals(where.config)
    approval = store.approve("shared.edit", load_pack(pack_file).capabilities)
    kept = store.versions_dir / f"{approval.sha256}.yaml"
    assert kept.read_text() == before
    assert kept.stat().st_mode & 0o777 == 0o600
    if copy == "missing":
        kept.unlink()
    else:  # someone changed the kept version: it is not the approved one any more
        kept.write_text(after)
    pack_file.write_text(after)
    app = loaded(where)
    (state,) = app.held
    assert not state.runs_approved
    assert "shared.edit/r" not in keys(app)


SECRETS = ["s3cret-token", "a'b\"c/d+e f&g=h", "pässwörd-ünïcode", "back\\slash\nnew-line"]


@pytest.mark.parametrize("secret", SECRETS)
def test_a_secret_is_masked_however_it_is_written_out(secret: str) -> None:
    """As it is, in JSON (ASCII or not), in a repr, URL-encoded, shell-quoted."""
    import shlex
    from urllib.parse import quote, quote_plus

    from nerve import masking

    masking.register([secret])
    try:
        for written in (
            secret,
            json.dumps({"k": secret}),
            json.dumps({"k": secret}, ensure_ascii=False),
            repr({"k": secret}),
            "https://h/?t=" + quote(secret, safe=""),
            "https://h/?t=" + quote_plus(secret),
            "sh -c " + shlex.quote(secret),
        ):
            masked = masking.mask(written)
            assert masking.MASK in masked, written
            rest = masked.replace(masking.MASK, "")
            assert secret not in rest
        value = masking.mask_value({"a": [secret, {"b": f"x{secret}y"}], secret: 1})
        assert secret not in json.dumps(value, ensure_ascii=False)
    finally:
        masking.clear()


@pytest.mark.parametrize("recorded", ["approved", "first seen"])
def test_a_recorded_file_that_is_broken_for_a_moment_keeps_its_id(
    where: Locations, short_tmp: Path, recorded: str
) -> None:
    first_start(where)
    if recorded == "approved":
        owner = install_owned(where, short_tmp)
        newcomer_text = IMPOSTOR
    else:
        owner = where.packs / "notes.yaml"
        owner.write_text(HARMLESS)
        loaded(where)
        newcomer_text = HARMLESS.replace("note {event.text}", "other")
    good = owner.read_text()
    owner.write_text("nerve: 1\npack: {id: [unclosed\n")  # mid-edit
    (where.packs / "0.yaml").write_text(newcomer_text)
    app = loaded(where)
    (state,) = app.held
    assert (state.file_name, state.duplicate_of) == ("0.yaml", owner.name)
    owner.write_text(good)  # the edit is done: the owner is back, the newcomer still held
    app = loaded(where)
    (state,) = app.held
    assert state.file_name == "0.yaml"


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="*"),
        min_size=4,
        max_size=24,
    ),
    before=st.text(max_size=10),
    after=st.text(max_size=10),
)
def test_no_spelling_of_a_secret_survives_masking(secret: str, before: str, after: str) -> None:
    import shlex
    from urllib.parse import quote, quote_plus

    from nerve import masking

    masking.register([secret])
    try:
        for form in (
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            repr(secret)[1:-1],
            quote(secret, safe=""),
            quote_plus(secret),
            shlex.quote(secret),
        ):
            masked = masking.mask(before + form + after)
            assert form not in masked
    finally:
        masking.clear()
