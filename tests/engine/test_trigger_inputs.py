"""A pack's inputs in triggers and conditions are filled in when the rule is
loaded, so a rule matches what the user chose, never the placeholder's text.
Anything else that looks like a placeholder there is an error at its line,
not a rule that silently never fires."""

from __future__ import annotations

import pytest

from conftest import Harness, rules_from, wait_until
from nerve.packs.loader import load_pack

HEAD = """\
nerve: 1
pack:
  id: test.pack
  inputs:
    app: {description: a program, default: firefox}
    pattern: {description: a glob, default: "*.png"}
    folder: {description: a folder, type: path, default: /srv/in}
    mode: {description: a mode, default: work}
    times: {description: how many, type: number, default: 3}
    tag: {description: a tag, default: "a{b}"}
rules:
"""


def load(harness: Harness, rules: str) -> None:
    harness.engine.call(harness.engine.set_rules, rules_from(rules, pack_head=HEAD))


def fired(harness: Harness, rule: str) -> int:
    return int(harness.summary(rule)["fired"])


def test_inputs_fill_trigger_fields_and_the_rule_fires_on_the_chosen_value(
    harness: Harness,
) -> None:
    load(
        harness,
        """
  - id: proc
    when: {process.started: {name: "{input.app}"}}
    do: [{log: x}]
  - id: files
    when: {file.created: {path: "{input.folder}", glob: "{input.pattern}"}}
    do: [{log: x}]
  - id: custom
    when: {event: {type: t.go, data: {mode: "{input.mode}-{input.tag}"}}}
    do: [{log: x}]
  - id: counted
    when: {count: {of: {event: t.tick}, times: "{input.times}", within: 1m}}
    do: [{log: x}]
""",
    )
    harness.publish("process.started", name="{input.app}", pid=1, exe="/x", cmdline=[])
    harness.publish("process.started", name="firefox", pid=2, exe="/x", cmdline=[])
    for name in ("{input.pattern}", "shot.png", "notes.txt"):
        harness.publish(
            "file.created", path=f"/srv/in/{name}", name=name, dir="/srv/in", is_dir=False
        )
    harness.publish("t.go", mode="{input.mode}-{input.tag}")
    harness.publish("t.go", mode="work-a{b}")
    for _ in range(3):
        harness.publish("t.tick")
    wait_until(
        lambda: [fired(harness, r) for r in ("proc", "files", "custom", "counted")] == [1, 1, 1, 1],
        what="each rule to fire once, on the input's value",
    )


def test_inputs_fill_conditions(harness: Harness) -> None:
    load(
        harness,
        """
  - id: setup
    when: {event: t.set}
    do: [{set: {mode: work}}]
  - id: guarded
    when: {event: t.go}
    if: [{var: {mode: "{input.mode}"}}]
    do: [{log: x}]
""",
    )
    harness.publish("t.go")
    wait_until(lambda: harness.summary("guarded")["skips"], what="the condition to fail")
    assert harness.summary("guarded")["skips"] == {"condition": 1}
    harness.publish("t.set")
    wait_until(lambda: harness.summary("setup")["ran"] == 1, what="the variable set")
    harness.publish("t.go")
    wait_until(lambda: harness.summary("guarded")["ran"] == 1, what="the condition to hold")


@pytest.mark.parametrize(
    ("when", "path", "message"),
    [
        ('{process.started: {name: "{event.name}"}}', "when.process.started.name", "{event.name}"),
        ('{event: {type: t.go, data: {a: "x{var.mode}"}}}', "when.event.data.a", "{var.mode}"),
        ('{file.created: "/srv/{now:%Y}"}', "when.file.created", "{now:%Y}"),
        ('{process.exited: {name: "{input.nope}"}}', "when.process.exited.name", "no input"),
    ],
)
def test_other_placeholders_in_a_trigger_are_errors_at_their_line(
    when: str, path: str, message: str
) -> None:
    pack = load_pack(
        (HEAD + f"  - id: a\n    when: {when}\n    do: [{{log: x}}]\n").encode(), filename="t.yaml"
    )
    assert [(e.line, e.path) for e in pack.errors] == [(13, f"rules[0].{path}")]
    assert message in pack.errors[0].message


def test_a_condition_placeholder_is_an_error_at_its_line() -> None:
    pack = load_pack(
        (
            HEAD + "  - id: a\n    when: {event: t.go}\n    if: [{var: {mode: '{event.mode}'}}]\n"
            "    do: [{log: x}]\n"
        ).encode(),
        filename="t.yaml",
    )
    assert [(e.line, e.path) for e in pack.errors] == [(14, "rules[0].if[0].var.mode")]
    assert "only {input.*} placeholders" in pack.errors[0].message


def test_regex_braces_and_escaped_braces_stay_as_written() -> None:
    (rule,) = rules_from(
        '  - id: a\n    when: {event: {type: t.go, data: {code: {regex: "^[0-9]{3}\\\\Z"}}}}\n'
        "    do: [{log: x}]\n",
        pack_head=HEAD,
    )
    assert rule.triggers
