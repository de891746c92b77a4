"""The pack loader on good input: inputs and ``--set``, capabilities, the shipped
starter pack, DESIGN.md's examples, and `nerve validate` on folders."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nerve.cli import main
from nerve.engine.registry import triggers
from nerve.packs.loader import CAPABILITY_TEXT, load_pack, load_paths
from nerve.packs.trust import capability_text
from nerve.packs.yamlsource import load_yaml

HERE = Path(__file__).parent
GOOD = HERE / "good"
BROKEN = HERE / "broken"
ROOT = HERE.parents[1]
STARTER = ROOT / "rules" / "starter.yaml"
INPUTS = GOOD / "inputs.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
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


def pack_text(rules: str, inputs: str = "") -> bytes:
    head = "nerve: 1\npack:\n  id: test.pack\n"
    if inputs:
        head += "  inputs:\n" + "".join(f"    {line}\n" for line in inputs.splitlines())
    return (head + "rules:\n" + rules).encode()


# --------------------------------------------------------------------------- inputs


def test_input_defaults() -> None:
    pack = load_pack(INPUTS)
    assert pack.ok, pack.errors
    assert pack.usable
    assert pack.version == "2"
    assert pack.values == {
        "folder": os.path.expanduser("~/Inbox"),
        "greeting": "hello",
        "count": 3,
        "loud": False,
        "level": "low",
    }
    assert list(pack.inputs) == ["folder", "greeting", "count", "loud", "level"]
    (rule,) = pack.rules
    assert rule.inputs == pack.values


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("count", "7", 7),
        ("count", "2.5", 2.5),
        ("count", "-1", -1),
        ("count", "1e3", 1000),
        ("loud", "yes", True),
        ("loud", "TRUE", True),
        ("loud", "1", True),
        ("loud", "off", False),
        ("loud", "false", False),
        ("greeting", "3", "3"),
        ("greeting", "", ""),
        ("greeting", "a=b", "a=b"),
        ("folder", "~/Elsewhere", os.path.expanduser("~/Elsewhere")),
        ("level", "high", "high"),
    ],
)
def test_set_converts_to_the_input_type(name: str, raw: str, value: Any) -> None:
    pack = load_pack(INPUTS, overrides={name: raw})
    assert pack.ok, pack.errors
    assert pack.values[name] == value
    assert type(pack.values[name]) is type(value)


@pytest.mark.parametrize(
    ("setting", "where", "message"),
    [
        (
            "count=lots",
            "10:5: pack.inputs.count",
            "--set count=lots: expected a number, got 'lots'",
        ),
        (
            "loud=maybe",
            "11:5: pack.inputs.loud",
            "--set loud=maybe: expected true or false, got 'maybe'",
        ),
        (
            "level=medium",
            "12:5: pack.inputs.level",
            "input 'level' must be one of ['low', 'high'], got 'medium'",
        ),
        (
            "nope=1",
            "7:3: pack.inputs",
            "--set nope: the pack has no such input (inputs: count, folder, greeting, level, loud)",
        ),
    ],
)
def test_bad_set(run_cli: Any, setting: str, where: str, message: str) -> None:
    result = run_cli("validate", "--set", setting, INPUTS)
    assert result.code == 1
    assert result.out == ""
    assert result.err == f"{INPUTS}:{where}: {message}\n"
    assert not load_pack(INPUTS, overrides=dict([setting.split("=")])).usable


def test_set_on_the_command_line(run_cli: Any) -> None:
    result = run_cli("validate", "--set", "count=5", "--set", "loud=on", INPUTS)
    assert result.code == 0, result.err
    assert result.out.startswith(f"{INPUTS}: ok, pack example.inputs, 1 rule(s)")


def test_set_without_equals_is_a_usage_error(run_cli: Any) -> None:
    result = run_cli("validate", "--set", "count", INPUTS)
    assert result.code == 2
    assert result.err == "nerve: --set takes key=value, got 'count'\n"


def test_set_gives_an_input_without_default(run_cli: Any) -> None:
    path = BROKEN / "input_no_default.yaml"
    assert run_cli("validate", path).code == 1
    result = run_cli("validate", "--set", "target=/srv/in", path)
    assert result.code == 0, result.err
    assert load_pack(path, overrides={"target": "/srv/in"}).values == {"target": "/srv/in"}


def test_set_for_a_pack_without_inputs() -> None:
    pack = load_pack(
        pack_text("  - {id: a, when: {event: x.y}, do: [{log: hi}]}\n"), overrides={"x": "1"}
    )
    assert [(e.line, e.column, e.path, e.message) for e in pack.errors] == [
        (2, 1, "pack.inputs", "--set x: the pack has no such input (inputs: none)")
    ]


def test_inputs_in_placeholders() -> None:
    pack = load_pack(
        pack_text(
            "  - id: a\n    when: {event: x.y}\n    do: [{log: '{input.n} {input.missing}'}]\n",
            inputs="n: {type: number, default: 2}",
        )
    )
    assert [(e.line, e.path) for e in pack.errors] == [(9, "rules[0].do[0].log")]
    assert "the pack declares no input 'missing' (inputs: n)" in pack.errors[0].message


# --------------------------------------------------------------------------- capabilities


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ("[{log: hi}, {notify: hi}, {delay: 1s}]", set()),
        ("[{log: hi}, {emit: x.done}]", {"emits-events"}),
        ("[{set: {a: 1}}]", {"writes-variables"}),
        ("[{wait_for: {event: clipboard.changed, timeout: 1s}}]", {"reads-clipboard"}),
        ("[{run: [echo, hi]}]", {"runs-programs"}),
        ("[{run: {argv: [sleep, 1], wait: true, timeout: 5s}}]", {"runs-programs"}),
        ("[{shell: 'ls | wc -l'}]", {"runs-programs", "runs-shell"}),
        ("[{open: 'https://example.invalid'}]", {"runs-programs"}),
        ("[{http: 'https://example.invalid'}]", {"network"}),
        ("[{file.move: {src: /a, dest: /b}}]", {"writes-files"}),
        ("[{file.copy: {src: /a, dest: /b}}]", {"writes-files"}),
        ("[{file.trash: /a}]", {"writes-files"}),
        ("[{rule.disable: a}, {pause: {for: 1m}}]", {"controls-nerve"}),
        (
            "[{if: [{var: {a: 1}}], then: [{http: 'https://example.invalid'}]}]",
            {"network"},
        ),
        ("[{if: {var: {a: 1}}, then: [{log: hi}], else: [{file.trash: /a}]}]", {"writes-files"}),
        (
            # Two levels deep, in both branches.
            "[{if: [{var: {a: 1}}],"
            " then: [{if: [{var: {b: 2}}], then: [{shell: x}], else: [{log: nope}]}],"
            " else: [{if: [{var: {c: 3}}], then: [{log: nope}], else: [{run: [y]}]}]}]",
            {"runs-programs", "runs-shell"},
        ),
    ],
)
def test_capabilities(actions: str, expected: set[str]) -> None:
    pack = load_pack(pack_text(f"  - id: a\n    when: {{event: x.y}}\n    do: {actions}\n"))
    assert pack.ok, pack.errors
    # The broad kinds (the concrete ones, run:PROGRAM..., are tested in test_trust).
    assert {c for c in pack.capabilities if ":" not in c} == expected
    assert {c for c in pack.rules[0].capabilities if ":" not in c} == expected


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("{event: x.y}", set()),
        ("{event: key.down}", {"reads-keyboard"}),
        ("{event: typed}", {"reads-keyboard"}),
        ("{event: clipboard.*}", {"reads-clipboard"}),
        ("{event: mouse.click}", {"reads-mouse"}),
        ("{event: '*'}", {"reads-keyboard", "reads-clipboard", "reads-mouse"}),
        ("{sequence: {steps: [{event: x.a}, {event: key.up}], within: 2s}}", {"reads-keyboard"}),
    ],
)
def test_listening_to_private_events_is_a_capability(trigger: str, expected: set[str]) -> None:
    pack = load_pack(pack_text(f"  - id: a\n    when: {trigger}\n    do: [{{log: hi}}]\n"))
    assert pack.ok, pack.errors
    # The broad kinds (the concrete ones, run:PROGRAM..., are tested in test_trust).
    assert {c for c in pack.capabilities if ":" not in c} == expected


@pytest.mark.parametrize("type_", ["hotkey", "typed", "key.down", "file.created", "rule.failed"])
def test_a_rule_cannot_emit_nerves_own_events(type_: str) -> None:
    pack = load_pack(
        pack_text(f"  - id: a\n    when: {{event: x.y}}\n    do: [{{emit: {type_}}}]\n")
    )
    (error,) = pack.errors
    assert error.path == "rules[0].do[0].emit"
    assert "come from Nerve itself" in error.message


def test_capabilities_are_per_pack_and_per_rule(tmp_path: Path, run_cli: Any) -> None:
    pack = load_pack(
        pack_text(
            "  - {id: a, when: {event: x.y}, do: [{run: [a]}]}\n"
            "  - {id: b, when: {event: x.y}, do: [{http: 'https://example.invalid'}]}\n"
            "  - {id: c, when: {event: x.y}, do: [{log: hi}]}\n"
        )
    )
    assert [sorted(rule.capabilities) for rule in pack.rules] == [
        ["run:a", "runs-programs"],
        ["http:example.invalid", "network"],
        [],
    ]
    assert pack.capabilities == {"runs-programs", "run:a", "network", "http:example.invalid"}
    # Another pack in the same run has its own.
    other = tmp_path / "other.yaml"
    other.write_bytes(pack_text("  - {id: a, when: {event: x.y}, do: [{file.trash: /a}]}\n"))
    result = run_cli("validate", GOOD / "composite.yaml", other)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"{GOOD / 'composite.yaml'}: ok, pack example.composite, 4 rule(s)",
        f"{other}: ok, pack test.pack, 1 rule(s); can trash /a",
    ]


def test_every_capability_has_a_text() -> None:
    pack = load_pack(GOOD / "design_forms.yaml")
    assert pack.ok, pack.errors
    broad = {c for c in pack.capabilities if ":" not in c}
    assert broad == {
        "runs-programs",
        "runs-shell",
        "network",
        "writes-files",
        "controls-nerve",
        "writes-variables",
        "emits-events",
    }
    assert broad <= set(CAPABILITY_TEXT)
    # Each concrete one (run:PROGRAM, writes:FOLDER...) has words of its own.
    for cap in pack.capabilities - broad:
        assert capability_text(cap) != cap


def test_capability_texts_say_what_a_pack_can_reach(run_cli: Any, tmp_path: Path) -> None:
    """``open`` of a web address starts the browser: the words must say so; typing
    reaches whatever window has the focus, a terminal too."""
    opens = tmp_path / "opens.yaml"
    opens.write_bytes(
        pack_text("  - {id: a, when: {event: x.y}, do: [{open: 'https://example.invalid'}]}\n")
    )
    types = tmp_path / "types.yaml"
    types.write_bytes(
        pack_text("  - {id: a, when: {event: x.y}, do: [{type: 'rm -rf ~'}]}\n").replace(
            b"test.pack", b"test.types"
        )
    )
    result = run_cli("validate", opens, types)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"{opens}: ok, pack test.pack, 1 rule(s); can open https://example.invalid",
        f"{types}: ok, pack test.types, 1 rule(s); "
        "can type and press keys for you (in any window, a terminal included)",
    ]


# --------------------------------------------------------------------------- shipped packs


def test_starter_pack_validates() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nerve", "validate", str(STARTER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith(f"{STARTER}: ok, pack nerve.starter, 6 rule(s)")


def test_starter_pack_contents() -> None:
    pack = load_pack(STARTER)
    assert pack.ok
    assert pack.usable
    assert [rule.id for rule in pack.rules] == [
        "focus-timer",
        "focus-stop",
        "remind",
        "note",
        "stretch",
        "failures",
    ]
    assert pack.values == {"focus": "25m", "break": "5m"}
    assert pack.capabilities == {"controls-nerve", "writes-variables"}
    remind = pack.rules[2]
    assert (remind.mode, remind.max) == ("parallel", 20)
    assert pack.rules[5].throttle == 60.0


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.yaml")), ids=lambda p: p.name)
def test_good_packs_load(path: Path) -> None:
    pack = load_pack(path)
    assert pack.ok, "\n".join(map(str, pack.errors))
    assert pack.usable
    assert len(pack.rules) == pack.rule_count > 0


def test_composite_pack_details() -> None:
    pack = load_pack(GOOD / "composite.yaml")
    sequence, count, held, schedules = pack.rules
    assert [t.key for t in sequence.triggers] == ["sequence"]
    assert (count.mode, count.max) == ("parallel", 3)
    assert held.mode == "restart"
    assert [t.key for t in schedules.triggers] == ["schedule"] * 4
    assert (schedules.throttle, schedules.cooldown, schedules.enabled) == (60.0, 10.0, False)


# --------------------------------------------------------------------------- DESIGN.md


#: Triggers DESIGN.md shows that are not implemented yet.
NOT_YET = {"hotkey", "typed", "file.created"}


def _design_text() -> str:
    candidates = [
        os.environ.get("NERVE_DESIGN_MD", ""),
        ROOT / "DESIGN.md",
        ROOT / "docs" / "DESIGN.md",
        ROOT.parent / "shared" / "DESIGN.md",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_text(encoding="utf-8")
    pytest.skip("DESIGN.md not found (set NERVE_DESIGN_MD)")


def _design_packs() -> list[str]:
    text = _design_text()
    start = text.index("## Rule packs (YAML)")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else None]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert blocks, "no YAML example in DESIGN.md's pack section"
    return blocks


def _trigger_keys(node: Any) -> set[str]:
    """Every trigger key in a ``when`` node, composite triggers' children included."""
    keys: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, options in item.items():
                keys.add(key)
                if key == "sequence" and isinstance(options, dict):
                    stack.extend(options.get("steps", []))
                elif key in ("count", "for") and isinstance(options, dict):
                    stack.extend(options.get(k) for k in ("of", "start", "stop") if k in options)
    return keys


def test_design_examples_load() -> None:
    loaded = skipped = 0
    for block in _design_packs():
        doc = load_yaml(block, filename="DESIGN.md").data
        runnable = []
        for rule in doc["rules"]:
            keys = _trigger_keys(rule["when"])
            missing = {k for k in keys if k not in triggers}
            assert missing <= NOT_YET, f"DESIGN.md uses unknown triggers {missing}"
            if missing:
                skipped += 1
            else:
                runnable.append(rule)
        # The pack with the rules that can run today: header, inputs and those rules.
        import json

        text = json.dumps({**doc, "rules": runnable})  # JSON is YAML
        pack = load_pack(text.encode(), filename="DESIGN.md")
        assert pack.ok, "\n".join(map(str, pack.errors))
        assert pack.usable
        assert len(pack.rules) == len(runnable)
        loaded += len(runnable)
    assert loaded + skipped > 0


def test_design_example_as_today() -> None:
    """good/design_screenshots.yaml is DESIGN.md's first rule with an `event` trigger."""
    (block, *_) = _design_packs()
    design = load_yaml(block).data
    ours = load_yaml(GOOD / "design_screenshots.yaml").data
    assert ours["pack"] == design["pack"]
    theirs, mine = design["rules"][0], ours["rules"][0]
    assert {k: v for k, v in mine.items() if k != "when"} == {
        k: v for k, v in theirs.items() if k != "when"
    }
    pack = load_pack(GOOD / "design_screenshots.yaml")
    assert pack.ok, pack.errors
    assert pack.values == {"target": os.path.expanduser("~/Pictures/Screens")}


# --------------------------------------------------------------------------- folders


def test_validate_a_folder(run_cli: Any) -> None:
    result = run_cli("validate", GOOD)
    assert result.code == 0, result.err
    assert result.err == ""
    names = [line.split(":", 1)[0] for line in result.out.splitlines()]
    assert names == [str(p) for p in sorted(GOOD.glob("*.yaml"))]
    assert all(": ok, pack " in line for line in result.out.splitlines())


def test_a_folder_takes_yaml_and_yml_only(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "b.yml").write_text(INPUTS.read_text())
    (tmp_path / "a.yaml").write_text((GOOD / "composite.yaml").read_text())
    (tmp_path / "notes.txt").write_text("not a pack")
    (tmp_path / "c.yaml~").write_text("backup: [")
    packs = load_paths([tmp_path])
    assert [Path(p.file).name for p in packs] == ["a.yaml", "b.yml"]
    assert run_cli("validate", tmp_path).code == 0


def test_files_and_folders_together() -> None:
    packs = load_paths([STARTER, GOOD])
    assert [Path(p.file).name for p in packs] == [
        "starter.yaml",
        *sorted(p.name for p in GOOD.glob("*.yaml")),
    ]


def test_an_empty_folder(tmp_path: Path, run_cli: Any) -> None:
    result = run_cli("validate", tmp_path)
    assert result.code == 1
    assert result.err == "nerve: no pack files (*.yaml, *.yml) found\n"


def test_set_on_a_folder_goes_to_the_packs_that_declare_the_input(
    tmp_path: Path, run_cli: Any
) -> None:
    (tmp_path / "a.yaml").write_text(
        "nerve: 1\npack:\n  id: a\n  inputs: {target: {type: path}}\n"
        "rules:\n  - {id: r, when: {event: x.y}, do: [{log: '{input.target}'}]}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "nerve: 1\npack: {id: b}\nrules:\n  - {id: r, when: {event: x.y}, do: [{log: b}]}\n"
    )
    result = run_cli("validate", "--set", "target=/srv", tmp_path)
    assert result.code == 0, result.err
    result = run_cli("validate", "--set", "nope=1", tmp_path)
    assert result.code == 2
    assert "--set nope: none of the packs has an input named 'nope'" in result.err
