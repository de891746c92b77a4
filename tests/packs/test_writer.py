"""Round-trip pack writing: what is not edited stays byte for byte as the user wrote it."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from nerve.packs.loader import load_pack
from nerve.packs.writer import PackDocument, PackWriteError
from nerve.packs.yamlsource import load_yaml
from nerve.paths import shipped_packs_dir

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SAMPLES = sorted(
    [
        *shipped_packs_dir().glob("*.yaml"),
        *(HERE / "good").glob("*.yaml"),
        *(ROOT / "tests" / "cli_data").glob("*.yaml"),
    ]
)
STARTER = shipped_packs_dir() / "starter.yaml"


def ids(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed lines, added lines) between two texts."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def assert_loads(doc: PackDocument) -> None:
    """The document loads without errors (inputs without a default are given, as `--set` would)."""
    inputs = doc.header().get("inputs", {})
    needed = {k: "x" for k, spec in inputs.items() if "default" not in spec}
    pack = load_pack(doc.dumps().encode(), filename=str(doc.path), overrides=needed)
    assert pack.errors == [], "\n".join(map(str, pack.errors))


def has_ruamel_types(value: Any) -> bool:
    if isinstance(value, dict):
        return type(value) is not dict or any(has_ruamel_types(v) for v in value.values())
    if isinstance(value, list):
        return type(value) is not list or any(has_ruamel_types(v) for v in value)
    return type(value) not in (str, int, float, bool, type(None))


def test_there_are_samples() -> None:
    assert STARTER in SAMPLES
    assert len(SAMPLES) >= 5


@pytest.mark.parametrize("path", SAMPLES, ids=ids)
def test_load_dumps_is_byte_identical(path: Path) -> None:
    assert PackDocument.load(path).dumps() == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", SAMPLES, ids=ids)
def test_setting_each_rule_to_its_own_data_changes_nothing(path: Path) -> None:
    doc = PackDocument.load(path)
    assert doc.rule_ids()
    for rule_id in doc.rule_ids():
        doc.set_rule(rule_id, doc.rule(rule_id))
    assert doc.dumps() == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", SAMPLES, ids=ids)
def test_rules_are_what_the_loader_reads(path: Path) -> None:
    doc = PackDocument.load(path)
    plain = load_yaml(path).data
    assert [r["id"] for r in plain["rules"]] == doc.rule_ids()
    for i, rule_id in enumerate(doc.rule_ids()):
        rule = doc.rule(rule_id)
        assert rule == plain["rules"][i]
        assert not has_ruamel_types(rule)
    assert doc.header() == plain["pack"]
    assert not has_ruamel_types(doc.header())


@pytest.mark.parametrize("path", SAMPLES, ids=ids)
def test_remove_then_insert_restores_the_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    doc = PackDocument.load(path)
    for rule_id in doc.rule_ids():
        index, data = doc.remove_rule(rule_id)
        assert rule_id not in doc.rule_ids()
        assert_loads(doc)
        doc.insert_rule(index, data)
        assert doc.dumps() == text, rule_id


def test_rule_is_a_copy() -> None:
    doc = PackDocument.load(STARTER)
    rule = doc.rule("focus-timer")
    rule["do"].clear()
    assert doc.rule("focus-timer")["do"]
    with pytest.raises(KeyError):
        doc.rule("no-such-rule")


def test_editing_one_field_changes_only_that_line() -> None:
    text = STARTER.read_text()
    doc = PackDocument.load(STARTER)
    rule = doc.rule("remind")
    rule["do"][1]["notify"]["body"] = "Ding: {event.text}"
    rule["max"] = 5
    doc.set_rule("remind", rule)
    removed, added = changed_lines(text, doc.dumps())
    assert removed == [
        "    max: 20",
        '      - notify: {title: Reminder, body: "{event.text}", urgency: critical}',
    ]
    assert added == [
        "    max: 5",
        '      - notify: {title: Reminder, body: "Ding: {event.text}", urgency: critical}',
    ]
    assert_loads(doc)


def test_comments_survive_edits() -> None:
    text = (
        "# header comment\n"
        "nerve: 1\n"
        "pack: {id: t.comments, name: Comments}  # the header\n"
        "rules:\n"
        "  # first rule\n"
        "  - id: a\n"
        "    when: {event: x}  # on x\n"
        "    do:\n"
        "      - log: one   # first action\n"
        "      # between actions\n"
        "      - log: two\n"
        "      - log: three  # third\n"
        "\n"
        "  # second rule\n"
        "  - id: b\n"
        "    when: {event: y}\n"
        "    do: [{log: b}]\n"
    )
    doc = PackDocument(Path("comments.yaml"), text)
    rule = doc.rule("a")
    rule["do"].insert(1, {"log": "inserted"})
    rule["when"] = {"event": "z"}
    rule["mode"] = "queued"
    doc.set_rule("a", rule)
    out = doc.dumps()
    for comment in [
        "# header comment",
        "# the header",
        "# first rule",
        "# on x",
        "# first action",
        "# between actions",
        "# third",
        "# second rule",
    ]:
        assert comment in out
    removed, added = changed_lines(text, out)
    assert removed == ["    when: {event: x}  # on x"]
    assert added == [
        "    when: {event: z}  # on x",
        "      - log: inserted",
        "    mode: queued",
    ]
    # The blank line before the next rule's comment stays where it was.
    assert "    mode: queued\n\n  # second rule\n" in out
    assert_loads(doc)


def test_removed_keys_go_and_new_keys_go_last() -> None:
    doc = PackDocument.load(STARTER)
    rule = doc.rule("remind")
    del rule["max"]
    rule["mode"] = "queued"
    rule["cooldown"] = "1m"
    doc.set_rule("remind", rule)
    assert list(doc.rule("remind")) == [
        "id",
        "name",
        "description",
        "when",
        "mode",
        "do",
        "cooldown",
    ]
    assert_loads(doc)


def test_values_that_yaml_1_1_would_misread_are_quoted() -> None:
    doc = PackDocument.load(STARTER)
    rule = doc.rule("note")
    tricky = [
        "yes",
        "on",
        "0755",
        "1:30",
        "20:00",
        "~",
        "null",
        "3.5",
        "1e3",
        " padded ",
        "{event.path}",
    ]
    rule["do"] = [{"log": value} for value in tricky] + [{"log": "two\nlines"}]
    doc.set_rule("note", rule)
    again = PackDocument(doc.path, doc.dumps())
    assert [a["log"] for a in again.rule("note")["do"]] == [*tricky, "two\nlines"]
    assert '      - log: "{event.path}"\n' in doc.dumps()
    assert "      - log: |-\n          two\n          lines\n" in doc.dumps()
    assert_loads(doc)


def test_types_count_as_changes() -> None:
    doc = PackDocument.load(STARTER)
    rule = doc.rule("remind")
    rule["max"] = 20.0
    doc.set_rule("remind", rule)
    assert doc.rule("remind")["max"] == 20.0
    assert isinstance(doc.rule("remind")["max"], float)


def test_rename_through_the_data() -> None:
    doc = PackDocument.load(STARTER)
    rule = doc.rule("note")
    rule["id"] = "jot"
    doc.set_rule("note", rule)
    assert "note" not in doc.rule_ids()
    assert doc.rule_ids().index("jot") == 3
    assert_loads(doc)


def test_unknown_id_appends_with_the_files_spacing() -> None:
    doc = PackDocument.load(STARTER)
    new = {
        "id": "terminal",
        "when": {"hotkey": "ctrl+alt+t"},
        "do": [{"run": ["x-terminal-emulator"]}, {"notify": {"title": "T", "body": "B"}}],
    }
    doc.set_rule("terminal", new)
    assert doc.rule_ids()[-1] == "terminal"
    assert doc.rule("terminal") == new
    assert doc.dumps().endswith(
        "\n\n  - id: terminal\n"
        "    when: {hotkey: ctrl+alt+t}\n"
        "    do:\n"
        "      - run: [x-terminal-emulator]\n"
        "      - notify: {title: T, body: B}\n"
    )
    assert_loads(doc)


def test_insert_in_the_middle() -> None:
    doc = PackDocument.load(STARTER)
    doc.insert_rule(1, {"id": "second", "when": {"event": "s"}, "do": [{"log": "s"}]})
    assert doc.rule_ids()[:3] == ["focus-timer", "second", "focus-stop"]
    assert_loads(doc)


def test_new_pack() -> None:
    doc = PackDocument.new(Path("/nowhere/new.yaml"), "me.new", "yes")
    assert doc.dumps() == 'nerve: 1\npack:\n  id: me.new\n  name: "yes"\nrules: []\n'
    assert doc.header() == {"id": "me.new", "name": "yes"}
    assert doc.rule_ids() == []
    doc.set_rule("one", {"id": "one", "when": {"event": "x"}, "do": [{"log": "x"}]})
    doc.set_rule("two", {"id": "two", "when": {"event": "y"}, "do": [{"log": "y"}]})
    assert doc.dumps() == (
        'nerve: 1\npack:\n  id: me.new\n  name: "yes"\nrules:\n'
        "  - id: one\n    when: {event: x}\n    do:\n      - log: x\n"
        "  - id: two\n    when: {event: y}\n    do:\n      - log: y\n"
    )
    assert_loads(doc)


def test_the_files_own_indentation_is_kept() -> None:
    text = (
        "nerve: 1\n"
        "pack:\n"
        "    id: t.indent\n"
        "rules:\n"
        "- id: a\n"
        "  when:\n"
        "      event: x\n"
        "  do:\n"
        "  - log: a\n"
    )
    doc = PackDocument(Path("indent.yaml"), text)
    assert doc.dumps() == text
    doc.set_rule("b", {"id": "b", "when": {"event": "y"}, "do": [{"log": "b"}]})
    assert doc.dumps() == text + "- id: b\n  when: {event: y}\n  do:\n  - log: b\n"


def test_crlf_and_bom_are_kept() -> None:
    text = (
        "\ufeffnerve: 1\r\npack: {id: t.crlf}\r\nrules:\r\n"
        "  - id: a  # c\r\n    when: {event: x}\r\n    do: [{log: a}]\r\n"
    )
    doc = PackDocument(Path("crlf.yaml"), text)
    assert doc.dumps() == text
    rule = doc.rule("a")
    rule["do"] = [{"log": "b"}]
    doc.set_rule("a", rule)
    assert doc.dumps() == text.replace("log: a", "log: b")


def test_rule_text_and_set_rule_text() -> None:
    text = STARTER.read_text()
    doc = PackDocument.load(STARTER)
    snippet = doc.rule_text("remind")
    assert snippet.startswith("id: remind\nname: Reminder\n")
    assert snippet.endswith("urgency: critical}\n")
    doc.set_rule_text("remind", snippet)
    assert doc.dumps() == text
    doc.set_rule_text("remind", snippet.replace("max: 20", "max: 20  # plenty"))
    assert changed_lines(text, doc.dumps()) == (["    max: 20"], ["    max: 20 # plenty"])
    with pytest.raises(PackWriteError, match=r":1: a rule is a mapping"):
        doc.set_rule_text("remind", "- just a list\n")


def test_unreadable_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nerve: 1\npack: {id: x\nrules: []\n")
    with pytest.raises(PackWriteError, match=r"bad\.yaml:\d+: ") as info:
        PackDocument.load(bad)
    assert "Traceback" not in str(info.value)
    with pytest.raises(PackWriteError, match=r"missing\.yaml:1: cannot read"):
        PackDocument.load(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(PackWriteError, match=r"list\.yaml:1: a pack is a mapping"):
        PackDocument.load(tmp_path / "list.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"nerve: 1\n# caf\xe9\n")
    with pytest.raises(PackWriteError, match=r"latin1\.yaml:2: .*UTF-8"):
        PackDocument.load(tmp_path / "latin1.yaml")


def test_save_is_atomic_with_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "starter.yaml"
    original = STARTER.read_text()
    path.write_text(original)
    doc = PackDocument.load(path)
    rule = doc.rule("note")
    rule["name"] = "Jot"
    doc.set_rule("note", rule)
    doc.save()
    assert path.read_text() == doc.dumps()
    assert (tmp_path / "starter.yaml~").read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["starter.yaml", "starter.yaml~"]
    pack = load_pack(path)
    assert pack.errors == []
    assert [r.name for r in pack.rules if r.id == "note"] == ["Jot"]


def test_save_into_a_new_folder(tmp_path: Path) -> None:
    doc = PackDocument.new(tmp_path / "packs" / "mine.yaml", "me.mine", "Mine")
    doc.set_rule("r", {"id": "r", "when": {"event": "x"}, "do": [{"log": "x"}]})
    doc.save()
    assert load_pack(tmp_path / "packs" / "mine.yaml").errors == []


def test_save_failure_is_a_pack_write_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    doc = PackDocument.new(tmp_path / "file" / "x.yaml", "me.x", "X")
    with pytest.raises(PackWriteError, match=r"x\.yaml:1: cannot write the file"):
        doc.save()


def test_undoing_an_edit_restores_the_bytes() -> None:
    text = STARTER.read_text()
    doc = PackDocument.load(STARTER)
    before = doc.rule("focus-timer")
    after = json.loads(json.dumps(before))
    after["do"] = after["do"][:2]
    after["name"] = "Focus"
    doc.set_rule("focus-timer", after)
    assert doc.dumps() != text
    assert_loads(doc)
    doc.set_rule("focus-timer", before)
    assert doc.dumps() == text


def test_every_sample_survives_heavy_edits() -> None:
    for path in SAMPLES:
        doc = PackDocument.load(path)
        for rule_id in doc.rule_ids():
            rule = doc.rule(rule_id)
            rule["name"] = f"Edited {rule_id}"
            do = rule["do"]
            if "{steps." not in repr(do):  # (a step's outputs are used after it: order stays)
                do = list(reversed(do))
            rule["do"] = [*do, {"log": "added"}]
            doc.set_rule(rule_id, rule)
            assert doc.rule(rule_id) == rule
        assert_loads(doc)


def test_document_markers_and_what_surrounds_them_are_kept() -> None:
    text = (
        "# before the document\n%YAML 1.1\n---\nnerve: 1\npack: {id: t.markers}\nrules:\n"
        "  - id: a\n    when: {event: x}\n    do: [{log: a}]\n...\n# after it\n"
    )
    doc = PackDocument(Path("markers.yaml"), text)
    assert doc.dumps() == text
    doc.set_rule("b", {"id": "b", "when": {"event": "y"}, "do": [{"log": "b"}]})
    assert doc.dumps().startswith("# before the document\n%YAML 1.1\n---\nnerve: 1\n")
    assert doc.dumps().endswith("      - log: b\n...\n# after it\n")
    assert_loads(doc)


def test_errors_after_a_document_marker_name_the_right_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("# one\n# two\n---\nnerve: 1\npack: {id: [\n")
    with pytest.raises(PackWriteError, match=r"bad\.yaml:6: "):
        PackDocument.load(bad)


def test_anchors_are_kept_and_aliases_are_not_edited_through() -> None:
    text = (
        "nerve: 1\npack: {id: t.anchors}\nrules:\n"
        "  - id: x\n    when: &w {event: x}\n    do: [{log: &m x}]\n"
        "  - &b\n    id: y\n    when: *w\n    do: [{log: *m}]\n"
    )
    doc = PackDocument(Path("anchors.yaml"), text)
    assert doc.dumps() == text
    rule = doc.rule("y")
    rule["when"] = {"event": "z"}
    doc.set_rule("y", rule)
    assert doc.rule("x")["when"] == {"event": "x"}
    assert doc.rule("y")["when"] == {"event": "z"}
    assert "    when: &w {event: x}\n" in doc.dumps()
    rule = doc.rule("x")
    rule["when"] = {"event": "q"}
    doc.set_rule("x", rule)
    assert doc.rule("y")["when"] == {"event": "z"}
    assert doc.rule("y")["do"] == [{"log": "x"}]
    assert_loads(doc)


def test_rules_by_position() -> None:
    doc = PackDocument.load(STARTER)
    assert doc.rule_count() == len(doc.rule_ids()) == 6
    assert doc.index_of("remind") == 2
    assert doc.index_of("nope") is None
    assert doc.rule_at(2) == doc.rule("remind")
    assert doc.rule_text_at(2) == doc.rule_text("remind")
    rule = doc.rule_at(2)
    rule["id"] = ""  # ids may be anything while a rule is edited
    doc.set_rule_at(2, rule)
    assert doc.rule_at(2)["id"] == ""
    assert "remind" not in doc.rule_ids()


def test_set_rule_text_appends_with_the_files_spacing() -> None:
    doc = PackDocument.load(STARTER)
    doc.set_rule_text("extra", "id: extra  # mine\nwhen: {event: e}\ndo:\n  - log: e\n")
    assert doc.dumps().endswith(
        '"{event.rule}: {event.error}"}\n\n'
        "  - id: extra # mine\n    when: {event: e}\n    do:\n      - log: e\n"
    )
    assert_loads(doc)
