"""Broken rule packs: `nerve validate` names file, line, column and path, never crashes.

Each file in ``broken/`` has one problem (apart from the few in ``MULTI``), and
the table below says where `nerve validate` must report it. Two more are made
at test time because they must not be committed: a 50 MB file (sparse) and
files that are not UTF-8. Every case runs the real command line: in-process
through ``nerve.cli.main`` (fast), and a selection as a subprocess
(``python -m nerve validate``), exactly as a user runs it.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nerve.cli import main
from nerve.packs.loader import load_pack

HERE = Path(__file__).parent
BROKEN = HERE / "broken"
GOOD = HERE / "good"

ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<rest>.*)$")


# --------------------------------------------------------------------------- helpers


@dataclass
class Result:
    code: int
    out: str
    err: str

    def errors(self) -> list[tuple[str, int, int, str]]:
        """``(file, line, column, rest)`` of each ``file:line:col: ...`` line on stderr."""
        found = []
        for text in self.err.splitlines():
            m = ERROR_LINE.match(text)
            if m:
                found.append((m["file"], int(m["line"]), int(m["column"]), m["rest"]))
        return found


def run_subprocess(*args: str | Path) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "nerve", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Iterator[object]:
    """``nerve ARGS`` in this process; the root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


Case = tuple[str, int, int, str, str]


def check_one_error(result: Result, path: Path, case: Case) -> None:
    """Exit 1, nothing on stdout, exactly one error, at ``line:column``, about ``where``."""
    _, line, column, where, message = case
    output = result.out + result.err
    assert "Traceback" not in output, output
    assert result.code == 1, output
    assert result.out == "", output
    errors = result.errors()
    assert len(errors) == 1, output
    file, got_line, got_column, rest = errors[0]
    assert file == str(path), output
    assert (got_line, got_column) == (line, column), output
    if where:
        assert rest.startswith(f"{where}: "), output
    else:  # a problem of the file or its YAML: no path in the pack
        assert not rest.startswith(("rules", "pack")), output
    assert message in rest, output


# --------------------------------------------------------------------------- the table

# (file, line, column, path in the pack, a fragment of the message)
CASES: list[Case] = [
    # YAML that does not parse: the file ends there.
    (
        "yaml_unclosed_flow.yaml",
        8,
        3,
        "",
        "did not find expected ',' or ']' (while parsing a flow sequence starting at line 7",
    ),
    ("yaml_bad_indent.yaml", 9, 6, "", "did not find expected key"),
    ("yaml_tab_indent.yaml", 5, 1, "", "a tab cannot start a token; indent with spaces"),
    ("two_documents.yaml", 5, 1, "", "a rule pack is one YAML document"),
    ("duplicate_keys.yaml", 8, 5, "", "duplicate key 'when' (first at line 6)"),
    ("on_key_boolean.yaml", 6, 5, "", "key 'on' is read as a boolean by YAML 1.1; quote it"),
    (
        "python_object_tag.yaml",
        8,
        14,
        "",
        "tags are not allowed (found '!!python/object:os.system')",
    ),
    ("python_apply_tag.yaml", 8, 14, "", "'!!python/object/apply:os.system'"),
    ("alias_bomb.yaml", 8, 8, "", "too many alias expansions"),
    ("empty.yaml", 1, 1, "", "the file is empty"),
    # The top of the file.
    (
        "pack_is_list.yaml",
        1,
        1,
        "",
        "a pack is a mapping with 'nerve', 'pack' and 'rules', not a list",
    ),
    ("pack_is_scalar.yaml", 1, 1, "", "not 'just some text'"),
    ("missing_nerve.yaml", 1, 1, "", "missing 'nerve'"),
    ("nerve_2.yaml", 1, 1, "nerve", "must be 1, got 2"),
    ("missing_pack_id.yaml", 2, 1, "pack", "missing 'id'"),
    ("bad_pack_id.yaml", 3, 3, "pack.id", "'My Pack!' is not valid: lower-case letters, digits"),
    # Inputs.
    ("input_no_default.yaml", 5, 5, "pack.inputs.target", "give it with --set target=VALUE"),
    ("choices_not_list.yaml", 5, 38, "pack.inputs.size.choices", "expected a list, got 5"),
    ("default_wrong_type.yaml", 7, 7, "pack.inputs.size.default", "expected a number, got 'large'"),
    (
        "default_not_a_choice.yaml",
        5,
        26,
        "pack.inputs.size.default",
        "input 'size' must be one of [1, 2, 3], got 4",
    ),
    # Rules.
    ("missing_when_do.yaml", 5, 5, "rules[0]", "missing 'when', 'do'"),
    ("rule_not_mapping.yaml", 5, 5, "rules[0]", "expected a mapping, got 'hello'"),
    ("unknown_rule_key.yaml", 6, 5, "rules[0].nmae", "unknown key 'nmae'; did you mean 'name'?"),
    (
        "duplicate_rule_id.yaml",
        8,
        5,
        "rules[1].id",
        "duplicate rule id 'same' (first at line 5); give each rule of a pack its own id",
    ),
    (
        "mode_not_in_enum.yaml",
        8,
        5,
        "rules[0].mode",
        "expected one of 'single', 'restart', 'queued', 'parallel', got 'sometimes'",
    ),
    ("max_with_single.yaml", 8, 5, "rules[0].max", "set 'mode: queued' or 'mode: parallel'"),
    # Triggers.
    ("unknown_trigger.yaml", 7, 9, "rules[0].when[0].evnt", "unknown trigger 'evnt'; did you mean"),
    (
        "when_string.yaml",
        6,
        5,
        "rules[0].when",
        "expected a trigger: a mapping such as {event: ...}",
    ),
    (
        "trigger_two_keys.yaml",
        6,
        5,
        "rules[0].when",
        "one trigger per item, found 'event', 'schedule'",
    ),
    ("bad_cron.yaml", 7, 18, "rules[0].when.schedule.cron", "bad cron expression '61 * * * *'"),
    (
        "bad_regex.yaml",
        10,
        11,
        "rules[0].when.event.data.name",
        "bad regular expression '([a-z'",
    ),
    ("sequence_one_step.yaml", 8, 9, "rules[0].when.sequence.steps", "needs at least 2 items"),
    # Conditions.
    ("unknown_condition.yaml", 8, 9, "rules[0].if[0].tme", "unknown condition 'tme'; did you mean"),
    ("string_for_list.yaml", 10, 11, "rules[0].if[0].time.weekdays", "expected a list, got 'mon'"),
    ("bad_time.yaml", 8, 16, "rules[0].if[0].time.after", "expected a time of day such as 08:00"),
    # Actions.
    (
        "unknown_action.yaml",
        9,
        9,
        "rules[0].do[1].file.mvoe",
        "unknown action 'file.mvoe'; did you mean 'file.move'",
    ),
    ("number_for_text.yaml", 9, 11, "rules[0].do[0].notify.title", "expected text, got 42"),
    (
        "bad_duration.yaml",
        9,
        9,
        "rules[0].do[1].delay",
        "expected a duration such as 500ms, 2s, 10m or 1h, got '5 parsecs'",
    ),
    (
        "run_string_spaces.yaml",
        8,
        9,
        "rules[0].do[0].run",
        "'run' takes a list: [ls, -la, /tmp] (or use 'shell' for a command line)",
    ),
    ("if_without_then.yaml", 8, 9, "rules[0].do[0].if", "'if' needs 'then'"),
    # Placeholders.
    (
        "placeholder_event_field.yaml",
        8,
        21,
        "rules[0].do[0].file.move.src",
        "unknown placeholder {event.pth}: file.created events have dest_path, dir, is_dir, name",
    ),
    (
        "placeholder_input.yaml",
        10,
        9,
        "rules[0].do[0].log",
        "unknown placeholder {input.nope}: the pack declares no input 'nope' (inputs: target)",
    ),
    (
        "placeholder_root.yaml",
        8,
        21,
        "rules[0].do[0].run[1]",
        "unknown placeholder {bogus.x}: placeholders start with event., input.",
    ),
]

#: Files with more than one error, tested on their own below.
MULTI = {"three_bad_rules.yaml", "header_and_rule.yaml"}

#: Cases also run as a real subprocess.
SUBPROCESS = {
    "yaml_unclosed_flow.yaml",
    "python_apply_tag.yaml",
    "alias_bomb.yaml",
    "empty.yaml",
    "duplicate_keys.yaml",
    "missing_pack_id.yaml",
    "unknown_action.yaml",
    "bad_duration.yaml",
    "placeholder_event_field.yaml",
}


def test_the_table_covers_every_broken_file() -> None:
    files = {p.name for p in BROKEN.iterdir()}
    listed = {case[0] for case in CASES}
    assert len(listed) == len(CASES), "a file is listed twice"
    assert files == listed | MULTI
    assert len(files) >= 25
    assert all(p.stat().st_size < 4096 for p in BROKEN.iterdir()), "keep broken packs small"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_validate_reports_the_error(run_cli: object, case: Case) -> None:
    path = BROKEN / case[0]
    result = run_cli("validate", path)  # type: ignore[operator]
    check_one_error(result, path, case)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c[0] in SUBPROCESS],
    ids=[c[0] for c in CASES if c[0] in SUBPROCESS],
)
def test_validate_subprocess(case: Case) -> None:
    path = BROKEN / case[0]
    check_one_error(run_subprocess("validate", path), path, case)


@pytest.mark.parametrize("filename", sorted(p.name for p in BROKEN.iterdir()))
def test_load_pack_never_raises_and_says_where(filename: str) -> None:
    pack = load_pack(BROKEN / filename)
    assert pack.errors
    lines = max(1, len((BROKEN / filename).read_bytes().splitlines()))
    for error in pack.errors:
        assert 1 <= error.line <= lines + 1, error
        assert error.column >= 1, error
        assert str(error).startswith(f"{BROKEN / filename}:{error.line}:{error.column}: ")


# --------------------------------------------------------------------------- generated files


def test_fifty_megabytes(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as stream:  # sparse: no 50 MB written to the disk
        stream.truncate(50 * 1024 * 1024)
    result = run_subprocess("validate", path)
    check_one_error(
        result, path, (path.name, 1, 1, "", "file is 50.0 MB; rule packs are limited to 1.0 MB")
    )


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"nerve: 1\npack:\n  id: broken.latin1\n  name: Caf\xe9 rules\nrules: []\n")
    result = run_subprocess("validate", path)
    check_one_error(
        result, path, (path.name, 4, 12, "", "invalid UTF-8 byte 0xe9 (rule packs must be saved")
    )


def test_utf16(tmp_path: Path, run_cli: object) -> None:
    path = tmp_path / "utf16.yaml"
    path.write_bytes("nerve: 1\npack:\n  id: broken.utf16\nrules: []\n".encode("utf-16"))
    result = run_cli("validate", path)  # type: ignore[operator]
    check_one_error(
        result, path, (path.name, 1, 1, "", "the file looks like UTF-16; save it as UTF-8")
    )


def test_tags_never_run_anything(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (BROKEN / "python_apply_tag.yaml").read_text()
    assert "/tmp/nerve-pwned" in text
    path = tmp_path / "apply.yaml"
    path.write_text(text.replace("/tmp/nerve-pwned", str(marker)))
    result = run_subprocess("validate", path)
    assert result.code == 1
    assert "tags are not allowed" in result.err
    assert not marker.exists()


# --------------------------------------------------------------------------- all errors at once


def test_every_bad_rule_is_reported_and_the_good_ones_load(run_cli: object) -> None:
    path = BROKEN / "three_bad_rules.yaml"
    result = run_cli("validate", path)  # type: ignore[operator]
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    assert result.errors() == [
        (str(path), 10, 11, "rules[1].do[0].lgo: unknown action 'lgo'; did you mean 'log'?"),
        (str(path), 12, 12, "rules[2].when.evnt: unknown trigger 'evnt'; did you mean 'event'?"),
        (
            str(path),
            17,
            5,
            "rules[3].mode: expected one of 'single', 'restart', 'queued', 'parallel', got 'often'",
        ),
    ]
    pack = load_pack(path)
    assert pack.usable
    assert not pack.ok
    assert pack.rule_count == 5
    assert [rule.id for rule in pack.rules] == ["good-one", "good-two"]
    assert [rule.source for rule in pack.rules] == [f"{path}:5", f"{path}:18"]


def test_a_broken_header_makes_the_pack_unusable_but_rules_are_still_checked(
    run_cli: object,
) -> None:
    path = BROKEN / "header_and_rule.yaml"
    result = run_cli("validate", path)  # type: ignore[operator]
    assert result.code == 1
    assert result.errors() == [
        (str(path), 1, 1, "nerve: must be 1, got 2"),
        (str(path), 10, 11, "rules[1].do[0].lgo: unknown action 'lgo'; did you mean 'log'?"),
    ]
    pack = load_pack(path)
    assert not pack.usable
    assert [rule.id for rule in pack.rules] == ["good"]


@pytest.mark.parametrize(
    "filename",
    [
        "nerve_2.yaml",
        "missing_nerve.yaml",
        "missing_pack_id.yaml",
        "bad_pack_id.yaml",
        "input_no_default.yaml",
        "default_wrong_type.yaml",
        "pack_is_list.yaml",
        "yaml_unclosed_flow.yaml",
        "empty.yaml",
    ],
)
def test_unusable(filename: str) -> None:
    assert not load_pack(BROKEN / filename).usable


@pytest.mark.parametrize(
    ("filename", "loaded"),
    [
        ("rule_not_mapping.yaml", ["fine"]),
        ("duplicate_rule_id.yaml", ["same"]),
        ("unknown_action.yaml", []),
        ("max_with_single.yaml", []),
    ],
)
def test_a_broken_rule_leaves_the_pack_usable(filename: str, loaded: list[str]) -> None:
    pack = load_pack(BROKEN / filename)
    assert pack.usable
    assert [rule.id for rule in pack.rules] == loaded


def test_yaml_error_ends_the_file() -> None:
    pack = load_pack(BROKEN / "yaml_unclosed_flow.yaml")
    assert len(pack.errors) == 1
    assert pack.rules == []
    assert pack.id == ""


# --------------------------------------------------------------------------- several files


def test_validate_a_folder_of_broken_packs() -> None:
    result = run_subprocess("validate", BROKEN)
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    assert result.out == ""
    named = {Path(file).name for file, *_ in result.errors()}
    assert named == {p.name for p in BROKEN.iterdir()}


def test_good_and_broken_together(run_cli: object) -> None:
    good = GOOD / "inputs.yaml"
    bad = BROKEN / "unknown_action.yaml"
    result = run_cli("validate", good, bad)  # type: ignore[operator]
    assert result.code == 1
    assert result.out.startswith(f"{good}: ok, pack example.inputs, 1 rule(s)")
    assert [Path(e[0]) for e in result.errors()] == [bad]


def test_two_packs_with_one_id(tmp_path: Path, run_cli: object) -> None:
    text = "nerve: 1\npack:\n  name: Twin\n  id: twin.pack\nrules: []\n"
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    result = run_cli("validate", tmp_path)  # type: ignore[operator]
    assert result.code == 1
    assert result.out == f"{tmp_path / 'a.yaml'}: ok, pack twin.pack, 0 rule(s)\n"
    assert result.errors() == [
        (
            str(tmp_path / "b.yaml"),
            4,
            3,
            f"pack.id: pack id 'twin.pack' is also used by {tmp_path / 'a.yaml'}; "
            "packs need different ids",
        )
    ]


def test_missing_file(tmp_path: Path, run_cli: object) -> None:
    result = run_cli("validate", tmp_path / "nope.yaml")  # type: ignore[operator]
    assert result.code == 1
    assert result.err == f"{tmp_path / 'nope.yaml'}: no such file or folder\n"


def test_folder_named_like_a_pack(tmp_path: Path, run_cli: object) -> None:
    (tmp_path / "inner.yaml").write_text((GOOD / "inputs.yaml").read_text())
    (tmp_path / "old.yaml").mkdir()
    result = run_cli("validate", tmp_path)  # type: ignore[operator]
    assert result.code == 1
    assert "inner.yaml: ok" in result.out
    assert result.errors() == [
        (
            str(tmp_path / "old.yaml"),
            1,
            1,
            "cannot read the file: it is a folder, and Nerve reads regular files only",
        )
    ]


# --------------------------------------------------------------------------- mutations


def _mutations(text: str) -> Iterator[str]:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        yield "".join(lines[:i] + lines[i + 1 :])  # a line left out
        yield "".join(lines[:i])  # cut short
        for old, new in ((": ", ": ["), ("{", ""), (": ", ": 5 #"), (": ", ": [] #")):
            if old in line:
                yield "".join([*lines[:i], line.replace(old, new, 1), *lines[i + 1 :]])


@pytest.mark.parametrize(
    "path",
    [*sorted(GOOD.glob("*.yaml")), HERE.parents[1] / "rules" / "starter.yaml"],
    ids=lambda p: p.name,
)
def test_damaged_good_packs_never_crash_the_loader(path: Path) -> None:
    """Every one-line damage of a good pack gives errors with positions, or loads."""
    total = 0
    for text in _mutations(path.read_text()):
        pack = load_pack(text.encode(), filename="damaged.yaml")
        lines = text.count("\n") + 1
        for error in pack.errors:
            assert 1 <= error.line <= lines + 1, (error, text)
            assert error.column >= 1, (error, text)
            assert error.message, text
        total += 1
    assert total > 50
