"""Tests for nerve.packs.yamlsource: safe YAML loading with positions."""

from __future__ import annotations

import builtins
import io
import json
import os
import pathlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.packs import yamlsource
from nerve.packs.yamlsource import Located, Path_, YamlError, format_path, load_yaml

HAS_LIBYAML = hasattr(yaml, "CSafeLoader")


@pytest.fixture(params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's parser and with PyYAML's pure-Python one."""
    if request.param == "libyaml":
        if not HAS_LIBYAML:
            pytest.skip("PyYAML was built without libyaml")
        monkeypatch.setattr(yamlsource, "_make_parser", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(yamlsource, "_make_parser", yaml.SafeLoader)
    return str(request.param)


def fails(source: bytes | str | Path, **kwargs: Any) -> YamlError:
    with pytest.raises(YamlError) as info:
        load_yaml(source, filename="t.yaml", **kwargs)
    return info.value


def where(error: YamlError) -> tuple[int, int]:
    return error.line, error.column


def all_paths(data: Any) -> Iterator[Path_]:
    stack: list[tuple[Path_, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        yield path
        if isinstance(value, dict):
            stack.extend(((*path, key), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in enumerate(value))


PACK = """\
nerve: 1
pack:
  id: example.screenshots
  inputs:
    target: {description: Where screenshots go, type: path}
rules:
  - id: move-screenshots
    when:
      - file.created: {path: ~/Desktop, glob: "Screenshot*.png"}
    do:
      - file.move: {src: "{event.path}"}
      - notify: "Moved {event.name}"
    mode: queued
"""


# --- YamlError -----------------------------------------------------------------------


def test_error_str_and_fields() -> None:
    error = YamlError("screens.yaml", 14, 9, "rules[0].do[0].file.move: missing 'dest'")
    assert str(error) == "screens.yaml:14:9: rules[0].do[0].file.move: missing 'dest'"
    assert (error.file, error.line, error.column) == ("screens.yaml", 14, 9)
    assert error.message == "rules[0].do[0].file.move: missing 'dest'"
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)


# --- data and positions --------------------------------------------------------------


def test_data_and_nested_marks(parser: str) -> None:
    located = load_yaml(PACK, filename="screens.yaml")
    assert located.data["rules"][0]["do"] == [
        {"file.move": {"src": "{event.path}"}},
        {"notify": "Moved {event.name}"},
    ]
    assert located.data["pack"]["inputs"]["target"]["type"] == "path"
    assert list(located.data) == ["nerve", "pack", "rules"]
    marks = located.marks
    assert marks[()] == (1, 1)
    assert marks[("nerve",)] == (1, 1)
    assert marks[("rules",)] == (6, 1)
    assert marks[("rules", 0)] == (7, 5)  # a list item: the item (here, its first key)
    assert marks[("rules", 0, "id")] == (7, 5)
    assert marks[("rules", 0, "do", 0)] == (11, 9)
    assert marks[("rules", 0, "do", 0, "file.move")] == (11, 9)  # an entry: its key
    assert marks[("rules", 0, "do", 0, "file.move", "src")] == (11, 21)
    assert marks[("rules", 0, "do", 1)] == (12, 9)
    assert marks[("rules", 0, "when", 0, "file.created", "glob")] == (9, 41)
    assert marks[("pack", "inputs", "target", "type")] == (5, 49)
    # Keys and values separately.
    assert located.keys[("rules", 0, "mode")] == (13, 5)
    assert located.values[("rules", 0, "mode")] == (13, 11)
    assert located.values[("rules", 0, "do", 0, "file.move")] == (11, 20)
    assert ("rules", 0) not in located.keys
    assert located.values[("rules", 0)] == (7, 5)
    assert set(located.marks) == set(all_paths(located.data)) == set(located.values)


def test_position_falls_back_to_deepest_existing_prefix() -> None:
    located = load_yaml(PACK, filename="screens.yaml")
    move = ("rules", 0, "do", 0, "file.move")
    assert located.position((*move, "dest")) == (11, 9)
    assert located.position((*move, "dest", 3, "x")) == (11, 9)
    assert located.position(("rules", 5, "do")) == (6, 1)
    assert located.position(("nope",)) == (1, 1)
    assert located.position(()) == (1, 1)
    assert located.value_position((*move, "dest")) == (11, 20)


def test_located_error_and_format_path() -> None:
    located = load_yaml(PACK, filename="screens.yaml")
    path: Path_ = ("rules", 0, "do", 0, "file.move")
    assert format_path(path) == "rules[0].do[0].file.move"
    assert format_path(()) == ""
    assert format_path(("inputs", "my input", 0)) == 'inputs["my input"][0]'
    error = located.error(path, "missing 'dest'")
    assert str(error) == "screens.yaml:11:9: rules[0].do[0].file.move: missing 'dest'"
    error = located.error(("rules", 0, "mode"), "unknown mode", at_value=True)
    assert str(error) == "screens.yaml:13:11: rules[0].mode: unknown mode"
    assert str(located.error((), "not a pack")) == "screens.yaml:1:1: not a pack"


def test_marks_are_read_only() -> None:
    located = load_yaml("a: 1\n")
    assert isinstance(located, Located)
    with pytest.raises(TypeError):
        located.marks[("b",)] = (1, 1)  # type: ignore[index]


def test_flow_and_scalar_positions(parser: str) -> None:
    located = load_yaml("a: [x, {y: 1}, 'z']\nb:\n- 1\n-   two\n")
    assert located.marks[("a", 0)] == (1, 5)
    assert located.marks[("a", 1)] == (1, 8)
    assert located.marks[("a", 1, "y")] == (1, 9)
    assert located.marks[("a", 2)] == (1, 16)
    assert located.marks[("b", 1)] == (4, 5)


def test_columns_count_characters(parser: str) -> None:
    located = load_yaml("é: [x, ü, 😀, y]\nü: {a: 1}\n".encode())
    assert located.marks[("é", 1)] == (1, 8)
    assert located.marks[("é", 3)] == (1, 14)
    assert located.marks[("ü", "a")] == (2, 5)
    assert where(fails("ééé: [1\n")) == (2, 1)


def test_scalar_root_and_null_root() -> None:
    assert load_yaml("hello\n").data == "hello"
    assert load_yaml("~\n").data is None
    assert load_yaml("[1, 2]").data == [1, 2]


# --- reading: size, paths, encoding --------------------------------------------------


def test_size_limit_bytes_and_str() -> None:
    error = fails(b"a: 1\n" * 30, max_bytes=100)
    assert str(error) == "t.yaml:1:1: file is 150 bytes; rule packs are limited to 100 bytes"
    assert "limited to 100 bytes" in fails("a: 1\n" * 30, max_bytes=100).message
    # The limit counts UTF-8 bytes, not characters.
    assert "file is 120 bytes" in fails("é" * 60, max_bytes=100).message
    assert load_yaml(b"a: " + b"x" * 95, max_bytes=98).data == {"a": "x" * 95}


def test_huge_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as stream:
        stream.truncate(50 * 1024 * 1024)  # sparse: takes no disk space

    def guard(original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            target = args[0]
            if isinstance(target, os.PathLike | str) and os.fspath(target) == str(huge):
                raise AssertionError("the huge file was opened")
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    monkeypatch.setattr(pathlib.Path, "open", guard(pathlib.Path.open))
    monkeypatch.setattr(pathlib.Path, "read_bytes", guard(pathlib.Path.read_bytes))
    monkeypatch.setattr(pathlib.Path, "read_text", guard(pathlib.Path.read_text))
    with pytest.raises(YamlError) as info:
        load_yaml(huge)
    assert str(info.value) == f"{huge}:1:1: file is 50.0 MB; rule packs are limited to 1.0 MB"


def test_file_growing_after_stat_is_still_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grows.yaml"
    path.write_bytes(b"a: 1\n" * 100)
    real_stat = os.stat

    class Small:
        """The file's real status, but for a size that says it is small."""

        def __init__(self, real: os.stat_result) -> None:
            self.real = real

        st_size = 10

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    def fake_stat(target: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(target) == str(path):
            return Small(real_stat(target, *args, **kwargs))
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", fake_stat)
    error = fails(path, max_bytes=100)
    assert error.message == "file is over 100 bytes; rule packs are limited to 100 bytes"


def test_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text("a: [1, 2]\nb: x\n", encoding="utf-8")
    located = load_yaml(path)
    assert located.data == {"a": [1, 2], "b": "x"}
    assert located.file == str(path)
    assert load_yaml(path, filename="shown.yaml").file == "shown.yaml"
    path.write_text("a: 1\na: 2\n", encoding="utf-8")
    with pytest.raises(YamlError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}:2:1: duplicate key 'a' (first at line 1)"


def test_missing_file_is_a_yaml_error(tmp_path: Path) -> None:
    error = fails(tmp_path / "absent.yaml")
    assert where(error) == (1, 1)
    assert error.message.startswith("cannot read the file")
    assert "cannot read the file" in fails(tmp_path).message  # a directory


def test_invalid_utf8_position() -> None:
    error = fails(b"a: 1\nb: 2\ncc: \xff\n")
    assert where(error) == (3, 5)
    assert error.message.startswith("invalid UTF-8 byte 0xff")
    # Columns count characters, not bytes.
    error = fails("a: 1\nb: 2\néé: ".encode() + b"\xc3\x28\n")
    assert where(error) == (3, 5)
    assert error.message.startswith("invalid UTF-8 byte 0xc3")
    # A truncated sequence at the end, and CRLF line ends.
    assert where(fails(b"a: 1\r\nb: \xe2\x82")) == (2, 4)


def test_utf16_is_explained() -> None:
    error = fails("a: 1\n".encode("utf-16"))
    assert where(error) == (1, 1)
    assert "UTF-16" in error.message


def test_bom_is_skipped(parser: str) -> None:
    located = load_yaml(b"\xef\xbb\xbfa: 1\nb: [x]\n")
    assert located.data == {"a": 1, "b": ["x"]}
    assert located.marks[("a",)] == (1, 1)
    assert located.marks[("b", 0)] == (2, 5)
    assert load_yaml("\ufeffa: 1\n").marks[("a",)] == (1, 1)
    assert where(fails(b"\xef\xbb\xbfa: 1\nb: \xff")) == (2, 4)


def test_control_characters_and_surrogates() -> None:
    error = fails("a: 1\nbb: x\x07\n")
    assert where(error) == (2, 6)
    assert error.message.startswith("control character U+0007 is not allowed")
    assert where(fails(b"a: \x00")) == (1, 4)
    error = fails("a: \ud800\n")
    assert where(error) == (1, 4)
    assert "U+D800" in error.message
    # Escapes in double quotes are fine.
    assert load_yaml('a: "\\x07\\t"\n').data == {"a": "\x07\t"}


@pytest.mark.parametrize(
    "source",
    [
        b"",
        "",
        "   \n\n",
        "# only a comment\n  # another\n",
        "---\n",
        "--- # x\n...\n",
        b"\xef\xbb\xbf",
    ],
)
def test_empty_file(parser: str, source: bytes | str) -> None:
    error = fails(source)
    assert error.message == "the file is empty"
    assert where(error) == (1, 1)


# --- documents and syntax ------------------------------------------------------------


def test_multiple_documents(parser: str) -> None:
    error = fails("---\na: 1\n---\nb: 2\n")
    assert where(error) == (3, 1)
    assert "second" in error.message
    assert where(fails("a: 1\n--- \n")) == (2, 1)
    assert load_yaml("---\na: 1\n...\n").data == {"a": 1}


def test_syntax_error_mapping_values(parser: str) -> None:
    error = fails("a: 1\n  b: 2\n")
    assert where(error) == (2, 4)
    assert error.message.startswith("mapping values are not allowed")


def test_syntax_error_with_context(parser: str) -> None:
    error = fails("a:\n  - x\n b: 2\n")
    assert where(error) == (3, 2)
    assert "(while parsing a block mapping starting at line 1, column 1)" in error.message
    assert "<" not in error.message  # PyYAML's token names are made readable
    error = fails("a: [1, 2\n")
    assert where(error) == (2, 1)
    assert "while parsing a flow sequence starting at line 1, column 4" in error.message
    error = fails("a: 'x\n")
    assert where(error) == (2, 1)
    assert "quoted scalar starting at line 1, column 4" in error.message


def test_tab_indentation(parser: str) -> None:
    error = fails("a:\n\t- x\n")
    assert where(error) == (2, 1)
    assert error.message == "a tab cannot start a token; indent with spaces"


# --- tags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "shown", "position"),
    [
        ("a: !!python/object:os.system x\n", "!!python/object:os.system", (1, 4)),
        (
            'a:\n  - !!python/object/apply:os.system ["true"]\n',
            "!!python/object/apply:os.system",
            (2, 5),
        ),
        ("a: !!binary aGVsbG8=\n", "!!binary", (1, 4)),
        ("a: !foo bar\n", "!foo", (1, 4)),
        ("a: !!set {x, y}\n", "!!set", (1, 4)),
        ("a: !!omap [{x: 1}]\n", "!!omap", (1, 4)),
        ("a: !!int '3'\n", "!!int", (1, 4)),
        ("a: !!map {x: 1}\n", "!!map", (1, 4)),
        ("a: !!str [x]\n", "!!str", (1, 4)),
        ("a: ! 12\n", "!", (1, 4)),
        ("!!python/name:os.system\n", "!!python/name:os.system", (1, 1)),
        (
            "%TAG !e! tag:example.com,2000:\n---\na: !e!thing 1\n",
            "tag:example.com,2000:thing",
            (3, 4),
        ),
    ],
)
def test_tags_are_rejected(parser: str, source: str, shown: str, position: tuple[int, int]) -> None:
    error = fails(source)
    assert error.message == f"tags are not allowed (found {shown!r})"
    assert where(error) == position


def test_no_tag_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f'x: !!python/object/apply:os.system ["touch {marker}"]\n'
    fails(source)
    assert not marker.exists()


def test_explicit_str_tag_is_allowed(parser: str) -> None:
    located = load_yaml("version: !!str 1.10\nflag: !!str yes\n!!str 3: x\n")
    assert located.data == {"version": "1.10", "flag": "yes", "3": "x"}


# --- aliases and limits --------------------------------------------------------------


def test_aliases_are_expanded_into_copies(parser: str) -> None:
    source = "base: &b\n  x: [1, 2]\nother: *b\nlist:\n  - *b\n"
    located = load_yaml(source)
    assert located.data == {"base": {"x": [1, 2]}, "other": {"x": [1, 2]}, "list": [{"x": [1, 2]}]}
    # Through an alias, nodes keep the position where they are written...
    assert located.marks[("other", "x")] == (2, 3)
    assert located.marks[("other", "x", 1)] == (2, 10)
    # ...and the alias itself is where '*b' is.
    assert located.values[("other",)] == (3, 8)
    assert located.marks[("list", 0)] == (5, 5)
    assert set(located.marks) == set(all_paths(located.data))
    located.data["other"]["x"].append(3)
    assert located.data["base"]["x"] == [1, 2]


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_fails_fast(parser: str) -> None:
    error = fails(billion_laughs())
    assert error.message.startswith("too many alias expansions")
    # Level 4 is the first whose aliases add more than 10,000 nodes (9 * 1111 > 10,000
    # with the 4 levels before it): the error is on that line, before building anything.
    assert error.line == 5


def test_alias_expansion_limit_is_a_parameter(parser: str) -> None:
    source = billion_laughs(levels=3, width=9)  # 9 + 9*10 + 9*91 aliases' worth
    assert load_yaml(source).data["a2"][0][0] == ["lol"] * 9
    assert "too many alias expansions" in fails(source, max_alias_expansion=100).message
    assert load_yaml("a: &x 1\nb: [*x, *x, *x]\n", max_alias_expansion=3).data["b"] == [1, 1, 1]
    assert (
        "too many alias expansions"
        in fails("a: &x 1\nb: [*x, *x, *x, *x]\n", max_alias_expansion=3).message
    )


def test_node_limit(parser: str) -> None:
    source = "[" + ", ".join(["1"] * 50) + "]"
    assert len(load_yaml(source, max_nodes=51).data) == 50
    error = fails(source, max_nodes=50)
    assert error.message == "too many nodes (more than 50)"
    assert where(error) == (1, 2 + 3 * 49)  # the 50th item is the 51st node


@pytest.mark.parametrize(
    ("source", "position"),
    [
        ("a: &a [*a]\n", (1, 8)),
        ("a: &a {x: *a}\n", (1, 11)),
        ("a: &a\n  b:\n    - *a\n", (3, 7)),
    ],
)
def test_recursive_alias(parser: str, source: str, position: tuple[int, int]) -> None:
    error = fails(source)
    assert error.message.startswith("recursive alias '*a'")
    assert where(error) == position


def test_unknown_and_duplicate_anchor(parser: str) -> None:
    error = fails("a: 1\nb: *nope\n")
    assert where(error) == (2, 4)
    assert error.message.startswith("unknown alias '*nope'")
    error = fails("a: &x 1\nb: &x 2\n")
    assert where(error) == (2, 4)
    assert error.message == "duplicate anchor '&x' (first at line 1)"


def test_deep_flow_nesting(parser: str) -> None:
    error = fails("[" * 10_000)
    assert error.message == "nested too deeply (more than 100 levels)"
    assert where(error) == (1, 101)
    assert where(fails("{a: " * 10_000)) == (1, 401)


def test_deep_block_nesting(parser: str) -> None:
    source = "".join(" " * level + "a:\n" for level in range(150))
    error = fails(source)
    assert error.message == "nested too deeply (more than 100 levels)"
    assert where(error) == (101, 101)


def test_nesting_limit_counts_aliases(parser: str) -> None:
    ok = "[" * 100 + "]" * 100
    assert load_yaml(ok).data is not None
    assert where(fails("[" * 101 + "]" * 101)) == (1, 101)
    source = "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 50 + "*a" + "]" * 50 + "\n"
    error = fails(source)
    assert error.message == "nested too deeply (more than 100 levels)"
    assert where(error) == (2, 54)
    assert "nested too deeply" in fails("[[[[1]]]]", max_depth=3).message


# --- keys ----------------------------------------------------------------------------


def test_duplicate_keys(parser: str) -> None:
    error = fails("rules:\n  - name: a\n    id: x\n    id: y\n")
    assert error.message == "duplicate key 'id' (first at line 3)"
    assert where(error) == (4, 5)
    assert where(fails("{a: 1, b: 2, a: 3}")) == (1, 14)
    # The same key in different mappings is fine.
    assert load_yaml("a: {id: 1}\nb: {id: 2}\n").data == {"a": {"id": 1}, "b": {"id": 2}}


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "true", "False", "ON", "Yes"])
def test_boolean_keys_are_explained(parser: str, word: str) -> None:
    error = fails(f"a: 1\n{word}: x\n")
    assert error.message == f"key '{word}' is read as a boolean by YAML 1.1; quote it"
    assert where(error) == (2, 1)
    assert load_yaml(f"'{word}': x\n").data == {word: "x"}


@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ("1: x\n", "keys must be text (found int 1); quote it: '1'", (1, 1)),
        ("a:\n  0x1F: x\n", "keys must be text (found int 0x1F); quote it: '0x1F'", (2, 3)),
        ("1.5: x\n", "keys must be text (found float 1.5); quote it: '1.5'", (1, 1)),
        ("~: x\n", "key '~' is read as null by YAML; quote it", (1, 1)),
        ("null: x\n", "key 'null' is read as null by YAML; quote it", (1, 1)),
        ("? [a]\n: b\n", "keys must be text (found a list)", (1, 3)),
        ("{[a]: b}\n", "keys must be text (found a list)", (1, 2)),
        ("? {a: 1}\n: b\n", "keys must be text (found a mapping)", (1, 3)),
        ("x: &k [1]\ny: {*k : 2}\n", "keys must be text (found a list)", (2, 5)),
    ],
)
def test_keys_must_be_text(
    parser: str, source: str, message: str, position: tuple[int, int]
) -> None:
    error = fails(source)
    assert error.message == message
    assert where(error) == position


def test_empty_key(parser: str) -> None:
    assert fails("? \n: x\n").message == "a key is empty"


def test_text_keys(parser: str) -> None:
    source = "'1': a\n\"true\": b\n2024-01-01: c\n&k name: d\nx: {*k : e}\n"
    located = load_yaml(source)
    assert located.data == {
        "1": "a",
        "true": "b",
        "2024-01-01": "c",
        "name": "d",
        "x": {"name": "e"},
    }
    assert located.marks[("x", "name")] == (5, 5)


# --- merge keys ----------------------------------------------------------------------


MERGE = """\
defaults: &defaults
  mode: queued
  debounce: 500ms
rules:
  - <<: *defaults
    id: a
    mode: single
"""


def test_merge_key(parser: str) -> None:
    located = load_yaml(MERGE)
    rule = located.data["rules"][0]
    assert rule == {"mode": "single", "debounce": "500ms", "id": "a"}
    assert "<<" not in rule
    # Merged entries point at where they are written; own entries at themselves.
    assert located.marks[("rules", 0, "debounce")] == (3, 3)
    assert located.values[("rules", 0, "debounce")] == (3, 13)
    assert located.marks[("rules", 0, "mode")] == (7, 5)
    assert located.marks[("rules", 0, "id")] == (6, 5)
    assert set(located.marks) == set(all_paths(located.data))


def test_merge_list_precedence(parser: str) -> None:
    source = "a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n  w: 0\n"
    located = load_yaml(source)
    assert located.data["c"] == {"x": 1, "y": 1, "z": 2, "w": 0}
    assert located.marks[("c", "x")] == (1, 8)
    assert located.marks[("c", "z")] == (2, 14)


def test_merge_chain_and_inline(parser: str) -> None:
    source = "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\nd: {<<: {q: 1}}\n"
    located = load_yaml(source)
    assert located.data["c"] == {"x": 1, "y": 2, "z": 3}
    assert located.marks[("c", "x")] == (1, 8)
    assert located.data["d"] == {"q": 1}


def test_merge_errors(parser: str) -> None:
    error = fails("a: &a [1]\nb: {<<: *a}\n")
    assert where(error) == (2, 9)
    assert error.message.startswith("the merge key '<<' needs a mapping or a list of mappings")
    assert where(fails("b: {<<: [{x: 1}, 2]}\n")) == (1, 9)
    error = fails("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n")
    assert error.message == "duplicate key '<<' (first at line 3)"
    assert where(error) == (4, 3)
    # A quoted '<<' is an ordinary key.
    assert load_yaml("'<<': x\n").data == {"<<": "x"}


def test_merge_counts_as_alias_expansion(parser: str) -> None:
    source = "a: &a {x: 1, y: 2}\nb: {<<: *a}\n"
    assert "too many alias expansions" in fails(source, max_alias_expansion=3).message


# --- scalars -------------------------------------------------------------------------


def test_scalars(parser: str) -> None:
    source = (
        "s: text\nq: '1'\ni: 12\nneg: -3\nhex: 0x1f\noctal: 0755\nf: 1.5\n"
        "t: true\ny: yes\nf2: off\nn: ~\nempty:\n"
    )
    assert load_yaml(source).data == {
        "s": "text",
        "q": "1",
        "i": 12,
        "neg": -3,
        "hex": 31,
        "octal": 493,
        "f": 1.5,
        "t": True,
        "y": True,
        "f2": False,
        "n": None,
        "empty": None,
    }


def test_non_json_scalars_stay_text(parser: str) -> None:
    source = (
        "date: 2024-01-01\nstamp: 2024-01-01 10:00:00\nafter: 20:00\nold: 1:30.5\n"
        "inf: .inf\nninf: -.Inf\nnan: .NaN\nhuge: 1.0e999\nmerge: <<\nvalue: =\n"
    )
    data = load_yaml(source).data
    assert data == {
        "date": "2024-01-01",
        "stamp": "2024-01-01 10:00:00",
        "after": "20:00",
        "old": "1:30.5",
        "inf": ".inf",
        "ninf": "-.Inf",
        "nan": ".NaN",
        "huge": "1.0e999",
        "merge": "<<",
        "value": "=",
    }
    json.dumps(data, allow_nan=False)


def test_number_too_long(parser: str) -> None:
    error = fails("a: " + "1" * 5000 + "\n")
    assert where(error) == (1, 4)
    assert error.message.startswith("cannot read the number 11111111111111111...")
    assert load_yaml("a: '" + "1" * 5000 + "'\n").data["a"] == "1" * 5000


# --- properties ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=40,
)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=json_values,
    flow=st.sampled_from([None, True, False]),
    unicode=st.booleans(),
    libyaml=st.booleans(),
)
def test_round_trip(data: Any, flow: bool | None, unicode: bool, libyaml: bool) -> None:
    # PyYAML's emitter writes a raw NEL (U+0085) into quoted scalars, where YAML
    # folds it into a space: its own safe_load does not read it back either.
    unicode = unicode and "\x85" not in json.dumps(data, ensure_ascii=False)
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=unicode, sort_keys=False)
    original = yamlsource._make_parser
    yamlsource._make_parser = yaml.CSafeLoader if libyaml and HAS_LIBYAML else yaml.SafeLoader
    try:
        located = load_yaml(text)
    finally:
        yamlsource._make_parser = original
    assert located.data == data
    assert json.dumps(located.data) == json.dumps(data)  # same key order too
    assert set(located.marks) == set(all_paths(data))
    for line, column in located.marks.values():
        assert line >= 1
        assert column >= 1


def check_data_or_yaml_error(source: str | bytes, libyaml: bool) -> None:
    """Any input gives JSON-like data with every path marked, or a YamlError."""
    original = yamlsource._make_parser
    yamlsource._make_parser = yaml.CSafeLoader if libyaml and HAS_LIBYAML else yaml.SafeLoader
    located: Located | None = None
    problem: YamlError | None = None
    try:
        located = load_yaml(source)
    except YamlError as error:
        problem = error
    finally:
        yamlsource._make_parser = original
    if problem is not None:
        assert problem.line >= 1
        assert problem.column >= 1
        assert str(problem).startswith(f"<string>:{problem.line}:{problem.column}: ")
    else:
        assert located is not None
        json.dumps(located.data, allow_nan=False)
        assert set(located.marks) == set(all_paths(located.data))


YAMLISH = st.lists(
    st.sampled_from(
        [
            "a",
            "b",
            ":",
            " ",
            "\n",
            "- ",
            "[",
            "]",
            "{",
            "}",
            ",",
            "&x ",
            "*x",
            "&y ",
            "*y",
            "<<: ",
            "? ",
            "'",
            '"',
            "#",
            "!!str ",
            "!t ",
            "on",
            "1",
            "---\n",
            "\t",
            "  ",
        ]
    ),
    max_size=40,
).map("".join)


@settings(deadline=None, max_examples=300)
@given(source=st.text(max_size=200) | st.binary(max_size=200), libyaml=st.booleans())
def test_any_input_gives_data_or_yaml_error(source: str | bytes, libyaml: bool) -> None:
    check_data_or_yaml_error(source, libyaml)


@settings(deadline=None, max_examples=400)
@given(source=YAMLISH, libyaml=st.booleans())
def test_yaml_like_input_gives_data_or_yaml_error(source: str, libyaml: bool) -> None:
    check_data_or_yaml_error(source, libyaml)
