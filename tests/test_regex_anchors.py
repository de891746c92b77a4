"""No regular expression in Nerve ends with ``$`` where it means "the end".

Python's ``$`` also matches before a final newline: ``^[a-z.]+$`` accepts
``"file.created\\n"``, which is how an unapproved pack once passed a faked
event type. Code uses ``fullmatch`` or ``\\Z``; ``$`` stays only where it means
the end of a line (``re.MULTILINE``). JSON Schema patterns keep their ``$``
(ECMA-262 reads it as the end of the text) and are evaluated by
``validation.pattern_holds``, which gives it that meaning.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nerve.engine.validation import pattern_holds, schema_regex

APP = Path(__file__).resolve().parents[1] / "app" / "nerve"
RE_FUNCTIONS = {"compile", "match", "search", "fullmatch", "sub", "subn", "split", "findall"}


def _uses_multiline(call: ast.Call) -> bool:
    return "MULTILINE" in ast.unparse(call) or "(?m" in ast.unparse(call)


def _ends_with_dollar(pattern: str) -> bool:
    stripped = pattern.rstrip(")")
    return stripped.endswith("$") and not stripped.endswith("\\$")


def test_no_code_regex_ends_with_a_bare_dollar() -> None:
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in RE_FUNCTIONS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            if _ends_with_dollar(node.args[0].value) and not _uses_multiline(node):
                offenders.append(f"{path.relative_to(APP)}:{node.lineno}: {node.args[0].value}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    ("pattern", "value", "holds"),
    [
        (r"^[a-z.]+$", "file.created", True),
        (r"^[a-z.]+$", "file.created\n", False),
        (r"^[a-z]+$|^x$", "x\n", False),
        (r"^[$]+$", "$$", True),
        (r"^\$$", "$", True),
        (r"^\$$", "$\n", False),
        (r"^a(?=$)", "a\n", False),
        (r"^\d+$", "\u0661\u0662", False),  # ECMA's \d is ASCII
        (r"\{", "{event.x}", True),
    ],
)
def test_schema_patterns_mean_what_json_schema_says(pattern: str, value: str, holds: bool) -> None:
    assert pattern_holds(pattern, value) is holds, schema_regex(pattern).pattern
