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

import pytest

from conftest import wait_until
from nerve.bootstrap import Nerve
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
    assert not {k for k in keys(app) if k.startswith("shared.touch/")}

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
