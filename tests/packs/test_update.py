"""Updates judged in-process: which changes keep the approval, which are held
with which diff (a new program, folder, host, script; removed ones), inputs kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerve.packs import trust, update

BASE = """\
nerve: 1
pack:
  id: t.upd
  version: VERSION
  inputs:
    token: {type: text, secret: true}
    dest: {type: path, default: /tmp/nerve-upd}
rules:
  - id: a
    when: {event: x.a}
    do:
      - run: [touch, /tmp/x]
      - file.move: {src: "{event.path}", dest: "{input.dest}"}
      - http: {url: "https://api.example.org/hook", method: POST}
      - log: hello
"""


@pytest.fixture
def store(tmp_path: Path) -> trust.Approvals:
    config = tmp_path / "config"
    (config / "packs").mkdir(parents=True)
    source = tmp_path / "v1.yaml"
    source.write_text(BASE.replace("VERSION", "1.0.0"))
    s = trust.Approvals(config)
    plan = trust.plan_import(source, s.packs_dir, {"token": "s3cr3t-token"})
    trust.install(plan, s, values={"token": "s3cr3t-token"}, approve=True)
    return s


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("log: hello", "log: changed words"), []),
        (("run: [touch, /tmp/x]", "run: [touch, /tmp/y]"), []),
        (
            ("run: [touch, /tmp/x]", "run: [rm, /tmp/x]"),
            ["~ start the program touch -> start the program rm"],
        ),
        (
            ("default: /tmp/nerve-upd", "default: /tmp/elsewhere"),
            ["~ write files into /tmp/nerve-upd -> write files into /tmp/elsewhere"],
        ),
        (
            ("api.example.org", "evil.example.net"),
            ["~ send requests to api.example.org -> send requests to evil.example.net"],
        ),
        (
            ("      - log: hello\n", "      - log: hello\n      - shell: echo hi\n"),
            ["+ run the shell command line: echo hi"],
        ),
        (('      - http: {url: "https://api.example.org/hook", method: POST}\n', ""), []),
    ],
)
def test_what_an_update_changes(
    store: trust.Approvals, change: tuple[str, str], expected: list[str]
) -> None:
    old, new = change
    text = BASE.replace("VERSION", "1.1.0")
    assert old in text
    text = text.replace(old, new)
    plan = update.plan_update(store, "t.upd", text.encode(), "v2.yaml")
    lines = plan.diff_lines()
    added = [line for line in lines if not line.startswith("-")]
    assert [line.lower() for line in added] == [e.lower() for e in expected], lines
    assert plan.needs_approval == bool(expected)
    assert plan.values == {"token": "s3cr3t-token"}
    runs = update.apply_update(plan, store, approve=False)
    assert runs == (not expected)
    entry = store.get("t.upd")
    assert entry is not None
    assert entry.values == {"token": "s3cr3t-token"}
    assert (entry.pending is None) == (not expected)
    _, states = trust.load_folder(store, record=False)
    (state,) = [s for s in states if s.pack.id == "t.upd"]
    assert state.state == ("active" if not expected else "held")
    if expected:
        assert state.runs_approved  # the approved 1.0.0 keeps running


def test_an_edit_after_an_update_is_judged_against_the_update(store: trust.Approvals) -> None:
    text = BASE.replace("VERSION", "1.1.0").replace("log: hello", "log: v2")
    update.apply_update(
        update.plan_update(store, "t.upd", text.encode(), "v2"), store, approve=False
    )
    target = store.packs_dir / "t.upd.yaml"
    target.write_text(text.replace("[touch, /tmp/x]", "[mkdir, /tmp/x]"))  # behind Nerve's back
    packs, states = trust.load_folder(store, record=False)
    (state,) = [s for s in states if s.pack.id == "t.upd"]
    assert state.state == "held"
    assert state.runs_approved
    (running,) = [p for p in packs if p.id == "t.upd"]
    assert any("v2" in str(a.__dict__) for r in running.rules for a in r.actions)


def test_the_secret_input_value_is_never_printed(
    store: trust.Approvals, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE.replace("VERSION", "1.1.0")
    plan = update.plan_update(store, "t.upd", text.encode(), "v2")
    assert "s3cr3t" not in repr(plan.diff_lines())
