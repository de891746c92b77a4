"""Event types are matched whole, and Nerve's own types cannot be faked.

An unapproved pack once emitted ``"file.created\\n"`` and ``"key.down\\n"``, and
an approved pack's ``file.*`` and ``key.*`` rules ran their commands. Every
spelling of a reserved type (blanks or a newline around it, another case,
fullwidth or look-alike letters, NUL, zero-width or control characters,
doubled dots, a hyphen for the dot, a made-up member of a reserved family)
is refused by every path that makes events: the ``emit`` action, a rule's run,
the bus itself and the control socket; replay skips stored events of an
invalid type; a glob about Nerve's events matches no custom type."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Harness, rules_from
from nerve.bus import Bus
from nerve.events import (
    KNOWN_FIELDS,
    RESERVED_FAMILIES,
    Event,
    TypePattern,
    reserved_only,
    reserved_type,
    valid_type,
)
from nerve.packs.loader import load_pack
from nerve.replay import replay

RESERVED = sorted(KNOWN_FIELDS)
STRICT = re.compile(r"[a-z0-9_]+(?:[.\-][a-z0-9_]+)*", re.ASCII)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _cyrillic(text: str) -> str:
    return text.replace("e", "\u0435").replace("o", "\u043e").replace("a", "\u0430")


#: Ways to spell a type so that it reads as the same one.
SPELLINGS = [
    lambda t: t + "\n",
    lambda t: "\n" + t,
    lambda t: t + "\r\n",
    lambda t: t + " ",
    lambda t: " " + t,
    lambda t: "\t" + t,
    lambda t: t + "\x00",
    lambda t: t.upper(),
    lambda t: t.title(),
    lambda t: t[:1].upper() + t[1:],
    _fullwidth,
    _cyrillic,
    lambda t: t.replace(".", ".."),
    lambda t: t.replace(".", "\u200b."),
    lambda t: t + "\u200b",
    lambda t: "\ufeff" + t,
    lambda t: t + ".",
    lambda t: "." + t,
    lambda t: t.replace(".", "\u2024"),  # one dot leader
    lambda t: unicodedata.normalize("NFKD", _fullwidth(t)),
    lambda t: t + "\x1b[0m",
    lambda t: t.replace(".", "\n."),
]


def fakes() -> Iterator[tuple[str, str]]:
    for type_ in RESERVED:
        for spell in SPELLINGS:
            fake = spell(type_)
            if fake != type_:
                yield type_, fake


FAKES = list(fakes())
#: Made-up members of reserved families: valid names, but not a pack's to make.
FAMILY_MEMBERS = [
    f"{family}.{tail}" for family in sorted(RESERVED_FAMILIES) for tail in ("x", "created", "down")
] + ["file-x.created", "key-x.down", "hotkey.x", "typed.x", "schedule.x"]


def test_there_are_many_spellings() -> None:
    assert len(FAKES) > 500


@pytest.mark.parametrize(("real", "fake"), FAKES)
def test_no_spelling_of_a_reserved_type_is_a_publishable_type(real: str, fake: str) -> None:
    assert not valid_type(fake) or reserved_type(fake), repr(fake)


@pytest.mark.parametrize(("real", "fake"), FAKES[::7])
def test_the_emit_action_refuses_every_spelling(real: str, fake: str) -> None:
    text = (
        "nerve: 1\npack: {id: test.fake}\nrules:\n  - id: r\n    when: {event: x.go}\n"
        f"    do: [{{emit: {{type: {_yaml_string(fake)}}}}}]\n"
    )
    pack = load_pack(text.encode(), filename="fake.yaml")
    [error] = pack.errors
    assert (error.line, error.path) == (6, "rules[0].do[0].emit.type"), str(error)
    assert not pack.rules


@pytest.mark.parametrize("member", FAMILY_MEMBERS)
def test_the_emit_action_refuses_members_of_reserved_families(member: str) -> None:
    text = (
        "nerve: 1\npack: {id: test.fake}\nrules:\n  - id: r\n    when: {event: x.go}\n"
        f"    do: [{{emit: {member}}}]\n"
    )
    pack = load_pack(text.encode(), filename="fake.yaml")
    # (at 'emit' itself: the type is written in its short form)
    assert [e.path for e in pack.errors] == ["rules[0].do[0].emit"]
    assert "events come from Nerve itself" in pack.errors[0].message


def _yaml_string(text: str) -> str:
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'


@pytest.mark.parametrize(("real", "fake"), FAKES)
def test_the_bus_refuses_an_invalid_type(real: str, fake: str) -> None:
    bus = Bus()
    seen = TypePattern(["*"])
    if valid_type(fake):  # a valid spelling is a reserved one: the bus is not the gate
        assert reserved_type(fake)
        return
    with pytest.raises(ValueError, match="not an event type"):
        bus.publish(fake, {"path": "/etc/passwd"})
    assert not seen.matches(fake)
    assert bus.published == 0


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=st.one_of(
        st.text(max_size=30),
        st.from_regex(STRICT, fullmatch=True).map(lambda t: t[:200]),
        st.builds(
            lambda t, s: SPELLINGS[s](t),
            st.sampled_from(RESERVED),
            st.integers(0, len(SPELLINGS) - 1),
        ),
    )
)
def test_valid_type_is_the_strict_whole_match(text: str) -> None:
    expected = len(text) <= 200 and STRICT.fullmatch(text) is not None
    assert valid_type(text) is expected
    if not expected:
        with pytest.raises(ValueError, match="not an event type"):
            Bus().publish(text)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    custom=st.from_regex(STRICT, fullmatch=True).filter(lambda t: not reserved_type(t)),
    pattern=st.sampled_from(
        ["file.*", "file*", "key.*", "key*", "hotkey*", "fi?e.*", "[f]ile.*", "file.c*",
         "mouse.*", "app.*", "rule.*", "process.*", "window.*", "clipboard.*", "typed*"]
    ),
)  # fmt: skip
def test_a_glob_about_nerves_events_matches_no_custom_type(custom: str, pattern: str) -> None:
    if reserved_only(pattern):
        assert not TypePattern([pattern]).matches(custom)


@pytest.mark.parametrize(
    "custom", ["filesync.done", "keyboard.set", "apple.pie", "rules.changed", "files", "filex"]
)
def test_custom_types_that_merely_begin_like_a_family_are_custom(custom: str) -> None:
    assert valid_type(custom)
    assert not reserved_type(custom)
    assert TypePattern(["*"]).matches(custom)
    assert not TypePattern(["file*"]).matches(custom)


def test_a_rule_cannot_publish_a_reserved_type_whatever_calls_it(harness: Harness) -> None:
    """The run's own gate, for any action that would try (not only ``emit``)."""
    [rule] = rules_from("  - id: r\n    when: {event: x.go}\n    do: [{emit: x.ok}]\n")
    action: Any = rule.actions[0]
    fakes = ["file.created", "file.created\n", "key.down", "FILE.created", "file.x", "hotkey"]
    for count, fake in enumerate(fakes, 1):
        action.type = fake
        harness.engine.call(harness.engine.set_rules, [rule])
        harness.publish("x.go")
        failed = harness.recorder.wait("rule.failed", count=count)
        assert "not an event type a rule may publish" in str(failed[-1].data["error"])
    assert not [e for e in harness.recorder.events if e.type.startswith(("file", "key", "hot"))]


def test_approved_rules_on_reserved_types_never_run_for_a_fake(harness: Harness) -> None:
    """The break as reported: a pack's rules on ``file.*`` and ``key.*`` (and exact
    types) must only ever see Nerve's own events."""
    harness.load(
        "  - id: files\n    when: {event: 'file.*'}\n    do: [{emit: x.file-rule-ran}]\n"
        "  - id: keys\n    when: {event: 'key*'}\n    do: [{emit: x.key-rule-ran}]\n"
        "  - id: created\n    when: {event: file.created}\n    do: [{emit: x.exact-ran}]\n"
    )
    for _, fake in FAKES:
        try:
            harness.bus.publish(fake, {"path": "/tmp/x"}, source="rule:evil/r")
        except ValueError:
            continue
        raise AssertionError(f"published {fake!r}")
    for custom in ["filex", "files.created", "keyboard.down", "keys", "x.file.created"]:
        harness.bus.publish(custom, {"path": "/tmp/x"}, source="rule:evil/r")
    harness.publish("x.done")
    harness.recorder.wait("x.done")
    ran = [e.type for e in harness.recorder.events if e.type.endswith("-ran")]
    assert ran == []
    # Nerve's own events still do.
    harness.publish("file.created", path="/tmp/y")
    harness.recorder.wait("x.exact-ran")
    harness.recorder.wait("x.file-rule-ran")


def test_replay_skips_stored_events_of_an_invalid_type() -> None:
    rules = rules_from(
        "  - id: files\n    when: {event: 'file.*'}\n    do: [{log: x}]\n"
        "  - id: exact\n    when: {event: file.created}\n    do: [{log: x}]\n"
    )
    stored = [
        Event(fake, MappingProxyType({"path": "/tmp/x"}), "rule:evil/r", i + 1, 1.0)
        for i, (_, fake) in enumerate(FAKES)
        if not valid_type(fake)
    ]
    reports = {r.key: r for r in replay(rules, stored)}
    assert all(r.matched == 0 for r in reports.values())


def test_a_pattern_matches_only_valid_types() -> None:
    everything = TypePattern(["*", "file.created", "file.*", "*.created"])
    for _, fake in FAKES:
        if not valid_type(fake):
            assert not everything.matches(fake), repr(fake)
    assert everything.matches("file.created")
    assert everything.matches("build.created")
