"""No regex or glob from a pack or a user can stall Nerve (ReDoS).

Every place a pack supplies a pattern (field matches in triggers, ``event``
and ``if: event``, window and process matches, type globs, file globs, the
GUI's filters) matches in time linear in the text. Patterns RE2 cannot run
in linear time are located errors at load time.
"""

from __future__ import annotations

import fnmatch
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Harness
from nerve import matching, saferegex
from nerve.events import TypePattern
from nerve.listeners.filesystem import Patterns
from nerve.packs.loader import load_pack
from test_cli import StartNerve, cli_ok, start_nerve  # noqa: F401 (a fixture)

#: Classic catastrophic-backtracking regexes (exponential or high-degree
#: polynomial under a backtracking engine) and a text that makes them explode.
EVIL_REGEXES = [
    ("(a+)+$", "a" * 26 + "!"),
    ("(a|a)*$", "a" * 26 + "!"),
    ("(a|aa)+$", "a" * 40 + "!"),
    ("(a*)*b", "a" * 26),
    ("^(a+)+b", "a" * 26),
    ("(.*a){12}$", "a" * 26 + "!"),
    (r"^(\w+\s?)*$", "word " * 8 + "!"),
    ("(x+x+)+y", "x" * 26),
    ("(?i)(A+)+$", "a" * 26 + "!"),
    (r"^([a-zA-Z0-9]+)*@", "a" * 26),
    ("(a?){25}a{25}", "a" * 25),
    ("(\\d+)*[a-z]$", "1" * 26 + "!"),
]

#: Globs that a backtracking translation makes polynomial of high degree.
EVIL_GLOBS = [
    ("*a*a*a*a*a*a*a*b", "a" * 3000),
    ("*?*?*?*?*?*?*?*?*?*?!", "a" * 3000),
    ("*[ab]*[ab]*[ab]*[ab]*[ab]*c", "ab" * 1500),
    ("a*a*a*a*a*a*a*a*a*a*", "a" * 3000 + "b"),
]

#: Path globs for file triggers (``**`` crosses folders).
EVIL_PATH_GLOBS = [
    ("**/**/**/**/**/**/**/**/x", "a/" * 60 + "y"),
    ("**a**a**a**a**a**a**a**b", "a/" * 400),
    ("*a*a*a*a*a*a*a*b", "a" * 3000),
    ("a/**/**/**/**/**/*.txt", "a/" + "b/" * 60 + "c.pdf"),
]

BUDGET = 0.25  # seconds: generous for a linear scan of a few KB on a loaded machine


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


@pytest.mark.parametrize(("pattern", "text"), EVIL_REGEXES)
def test_an_evil_regex_in_a_field_match_is_linear(pattern: str, text: str) -> None:
    for spec in ({"regex": pattern}, {"not": {"regex": pattern}}, {"regex": pattern, "exists": 1}):
        check = matching.compile_spec(spec)
        for size in (1, 4, 40):
            _, took = timed(check, text * size)
            assert took < BUDGET, f"{spec} took {took:.2f}s on {len(text) * size} chars"


@pytest.mark.parametrize(("pattern", "text"), EVIL_GLOBS)
def test_an_evil_glob_in_a_match_or_a_type_pattern_is_linear(pattern: str, text: str) -> None:
    for check in (
        matching.compile_spec(pattern),
        matching.compile_spec({"glob": pattern}),
        matching.compile_spec("!" + pattern),
        TypePattern([pattern]).matches,
    ):
        _, took = timed(check, text)
        assert took < BUDGET, f"{pattern!r} took {took:.2f}s"


@pytest.mark.parametrize(("pattern", "text"), EVIL_PATH_GLOBS)
def test_an_evil_file_glob_is_linear(pattern: str, text: str) -> None:
    for anywhere in (False, True):
        patterns = Patterns([pattern, pattern + "/"], anywhere=anywhere)
        for is_dir in (False, True):
            _, took = timed(patterns.match, text, is_dir)
            assert took < BUDGET, f"{pattern!r} took {took:.2f}s"


@settings(max_examples=2000, deadline=None)
@given(
    st.text("ab*?[]!-^\\.\n/", max_size=10),
    st.text("ab-^\\.]\n[!/", max_size=8),
)
def test_globs_match_as_fnmatch_does(pattern: str, text: str) -> None:
    from nerve import saferegex

    assert saferegex.glob_matcher(pattern)(text) == fnmatch.fnmatchcase(text, pattern)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["(a+)+", "(a|a)*", "(a*)*", ".*a", "(x+x+)+", "\\w*"]),
        min_size=1,
        max_size=6,
    )
)
def test_any_nesting_of_evil_pieces_stays_linear(pieces: list[str]) -> None:
    check = matching.compile_spec({"regex": "^" + "".join(pieces) + "$"})
    _, took = timed(check, "a" * 5000 + "!")
    assert took < BUDGET


#: Patterns whose DFA explodes, so RE2 simulates them step by step: the cost is
#: text length x pattern size, which the size cap and the text cap bound.
DFA_EXPLOSIONS = ["[ab]*a[ab]{500}", "(a|b)*a(a|b){900}", "(?:a?){600}a{600}", "(.*a){200}b"]


@pytest.mark.parametrize("pattern", DFA_EXPLOSIONS)
def test_the_worst_linear_cases_are_bounded(pattern: str) -> None:
    import random

    check = matching.compile_spec({"regex": pattern})
    glob = matching.compile_spec("*a" + "[ab]" * 400)
    noise = "".join(random.Random(7).choices("ab", k=300_000))
    for text in (noise, "a" * 300_000):
        for match in (check, glob):
            _, took = timed(match, text)
            assert took < 1.0, f"{pattern!r} took {took:.2f}s on {len(text)} chars"


def test_file_names_that_are_not_utf8_still_match() -> None:
    name = b"caf\xe9-\xff.pdf".decode("utf-8", "surrogateescape")
    assert matching.compile_spec({"regex": r"\.pdf$"})(name)
    assert matching.compile_spec("caf*.pdf")(name)
    assert Patterns(["*.pdf"], anywhere=False).match(name, False)


# ------------------------------------------------------------ load-time errors

UNSUPPORTED = [
    (r"(a)\1", "backreference"),
    ("(?=a)b", "lookahead"),
    ("(?!a)b", "lookahead"),
    ("(?<=a)b", "lookbehind"),
    ("(?<!a)b", "lookbehind"),
    ("(?>a+)b", "atomic"),
    ("(a)(?(1)b|c)", "conditional"),
    ("a{5000}", "1000"),
    (".{1000}", "too complex"),
    ("[ab]{900}[ab]{900}[ab]{900}", "too complex"),
    ("(?x) a b", "flags"),
    ("(", "missing"),
]

PLACES = [
    # (YAML of one rule, the path the error must name)
    ("when: {{event: {{type: x.y, data: {{f: {{regex: '{p}'}}}}}}}}", "data.f"),
    ("when: {{event: x.y}}\n    if: [{{event: {{f: {{regex: '{p}'}}}}}}]", "if[0].event.f"),
    ("when: {{event: x.y}}\n    if: [{{window: {{title: {{regex: '{p}'}}}}}}]", "window.title"),
    ("when: {{window.focused: {{class: {{not: {{regex: '{p}'}}}}}}}}", "class"),
    ("when: {{process.started: {{cmdline: {{regex: '{p}'}}}}}}", "cmdline"),
    ("when: {{event: x.y}}\n    if: [{{var: {{v: {{regex: '{p}'}}}}}}]", "var.v"),
]


@pytest.mark.parametrize(("pattern", "why"), UNSUPPORTED)
@pytest.mark.parametrize(("rule", "where"), PLACES)
def test_an_unsupported_regex_is_a_located_load_error(
    pattern: str, why: str, rule: str, where: str
) -> None:
    text = (
        "nerve: 1\npack:\n  id: t.p\nrules:\n  - id: ok\n    when: {event: x.y}\n"
        "    do: [{log: hi}]\n  - id: bad\n    "
        + rule.format(p=pattern)
        + "\n    do: [{log: hi}]\n"
    )
    pack = load_pack(text.encode(), filename="evil.yaml")
    assert [r.id for r in pack.rules] == ["ok"]  # the bad rule is skipped, the rest runs
    assert len(pack.errors) == 1, pack.errors
    message = str(pack.errors[0])
    assert message.startswith("evil.yaml:"), message
    line = int(message.split(":")[1])
    assert line >= 9, message
    assert where in message, message
    assert why in message.lower(), message


# ------------------------------------------------------- the engine keeps going


def test_an_evil_regex_does_not_stall_the_engine(harness: Harness) -> None:
    harness.load(
        """
  - id: evil
    when: {event: {type: x.evil, data: {f: {regex: "(a+)+$"}}}}
    if: [{event: {g: {regex: "^(\\\\w+\\\\s?)*$"}}}]
    do: [{log: matched}]
  - id: other
    when: {event: x.other}
    do: [{emit: x.done}]
"""
    )
    for _ in range(5):
        harness.publish("x.evil", f="a" * 28 + "!", g="word " * 10 + "!")
    start = time.perf_counter()
    harness.publish("x.other")
    harness.recorder.wait("x.done", timeout=10)
    assert time.perf_counter() - start < 1.0


def test_a_running_instance_answers_while_evil_events_arrive(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    """The real daemon, a field match on data from ``nerve emit``."""
    pack = short_tmp / "evil.yaml"
    pack.write_text(
        "nerve: 1\npack: {id: t.evil}\nrules:\n"
        "  - id: evil\n    when: {event: {type: x.evil, data: {f: {regex: '(a+)+$'}}}}\n"
        "    do: [{log: matched}]\n"
    )
    start_nerve("--rules", pack)
    for _ in range(3):
        cli_ok(nerve_env, "emit", "x.evil", "f=" + "a" * 27 + "!")
    start = time.perf_counter()
    assert "running" in cli_ok(nerve_env, "status")
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize("glob", ["[" * 5000, "*" * 5000 + "[", "a" * 5000])
def test_a_huge_glob_is_a_located_error_not_a_slow_load(glob: str) -> None:
    text = (
        "nerve: 1\npack: {id: t.p}\nrules:\n  - id: bad\n"
        f"    when: {{event: {{type: x.y, data: {{f: {{glob: '{glob}'}}}}}}}}\n"
        "    do: [{log: hi}]\n"
    )
    start = time.perf_counter()
    pack = load_pack(text.encode(), filename="big.yaml")
    assert time.perf_counter() - start < 2.0
    assert len(pack.errors) == 1
    assert "big.yaml:5:" in str(pack.errors[0])


@given(
    pattern=st.text(alphabet="ab*.x/é", max_size=8),
    text=st.text(alphabet="ab.x/é", max_size=12),
)
@settings(max_examples=2000, deadline=None)
def test_star_globs_match_without_regex_as_fnmatch_does(pattern: str, text: str) -> None:
    matcher = saferegex.star_matcher(pattern)
    assert matcher is not None  # only * wildcards: string operations
    assert matcher(text) == fnmatch.fnmatchcase(text, pattern)
    assert saferegex.glob_matcher(pattern)(text) == fnmatch.fnmatchcase(text, pattern)


def test_other_globs_go_to_re2() -> None:
    assert saferegex.star_matcher("a?c") is None
    assert saferegex.star_matcher("[ab]*") is None
