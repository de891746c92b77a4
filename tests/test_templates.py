"""Placeholders: parsed at load time, substituted as text at run time, never evaluated."""

from __future__ import annotations

import shlex
import time
from typing import Any

import pytest

from nerve.events import Event, freeze
from nerve.templates import Names, Scope, TemplateError, has_placeholders, parse, to_text

ANY = Names(None, frozenset({"target", "count"}))


def scope(data: dict[str, Any] | None = None, **variables: Any) -> Scope:
    event = Event("demo.ping", freeze(data or {}), "test", 42, 1.0, 0, None, 0)
    return Scope(
        event=event,
        inputs={"target": "~/Pictures", "count": 3},
        variables=variables,
        rule={"id": "r1", "name": "Rule one", "pack": "p"},
        run={"id": "abc123", "started": 12.5},
    )


def render(text: str, names: Names = ANY, **data: Any) -> str:
    return parse(text, names).render(scope(data))


def test_event_fields_inputs_rule_run() -> None:
    out = render(
        "{event.who} {event.type} #{event.id} {input.target} {rule.id} {rule.pack} {run.id}",
        who="world",
    )
    assert out == "world demo.ping #42 ~/Pictures r1 p abc123"


def test_nested_event_field() -> None:
    assert render("{event.a.b}", a={"b": "deep"}) == "deep"
    assert render("[{event.a.missing}]", a={"b": 1}) == "[]"


def test_variables_and_missing_ones() -> None:
    t = parse("{var.mode}/{var.cfg.level}/{var.nope}", ANY)
    assert t.render(scope(None, mode="work", cfg={"level": 2})) == "work/2/"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (2.5, "2.5"),
        ("x", "x"),
        ({"b": 1, "a": [1, 2]}, '{"a": [1, 2], "b": 1}'),
        ([1, "ü"], '[1, "ü"]'),
    ],
)
def test_values_become_text(value: Any, text: str) -> None:
    assert to_text(freeze({"v": value})["v"]) == text
    assert render("{event.v}", v=value) == text


def test_whole_placeholder_keeps_its_type() -> None:
    t = parse("{event.size}", ANY)
    assert t.value(scope({"size": 1024})) == 1024
    assert parse("{event.ok}", ANY).value(scope({"ok": True})) is True
    # Text around it makes it text.
    assert parse("{event.size} bytes", ANY).value(scope({"size": 1024})) == "1024 bytes"


def test_escaped_braces() -> None:
    t = parse("{{literal}} {event.x} }}", ANY)
    assert t.render(scope({"x": 1})) == "{literal} 1 }"
    assert t.names == ("event.x",)
    assert parse("{{}}", ANY).is_constant


def test_substitution_is_text_not_evaluated() -> None:
    hostile = "{event.other} $(rm -rf ~) `id` {{x}} %s {0}"
    assert render("[{event.v}]", v=hostile, other="NO") == f"[{hostile}]"


def test_now_uses_strftime() -> None:
    before = time.strftime("%Y-%m-%d")
    out = render("{now:%Y-%m-%d}")
    assert out in (before, time.strftime("%Y-%m-%d"))  # midnight may pass in between
    assert len(render("{now}")) == len("2024-01-01 00:00:00")


@pytest.mark.parametrize(
    ("offset", "seconds"),
    [("+1d", 86400), ("-2h", -7200), ("+1h30m", 5400), (" - 90m ", -5400), ("+0s", 0)],
)
def test_now_moved_by_a_duration(offset: str, seconds: int) -> None:
    fmt = "%Y-%m-%d %H:%M"
    while True:
        base = time.time()
        out = render(f"{{now{offset}:{fmt}}}")
        if int(time.time() // 60) == int(base // 60):  # not across a minute boundary
            break
    assert out == time.strftime(fmt, time.localtime(base + seconds))


@pytest.mark.parametrize(
    "bad", ["now+", "now+1x", "now*1d", "nowish", "now+-1d", "now+99999999999999999999999d"]
)
def test_a_bad_moved_now_is_a_load_error(bad: str) -> None:
    with pytest.raises(TemplateError, match=r"now|placeholder|format"):
        parse("{" + bad + "}", ANY)


def test_quote_is_applied_to_each_value_only() -> None:
    t = parse("echo {event.a} > {event.b}", ANY)
    assert t.render(scope({"a": "x y", "b": "f;g"}), quote=shlex.quote) == "echo 'x y' > 'f;g'"
    upper_then_quote = [str.upper, shlex.quote]  # one function per placeholder, in order
    assert t.render(scope({"a": "x y", "b": "f;g"}), quote=upper_then_quote) == "echo X Y > 'f;g'"


def test_pieces() -> None:
    assert parse("a {event.x} b{event.y}", ANY).pieces == ("a ", None, " b", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope}", "unknown placeholder"),
        ("{event}", "needs a name"),
        ("{event.}", "needs a name"),
        ("{event.a b}", "needs a name"),
        ("{input.missing}", "declares no input 'missing'"),
        ("{rule.owner}", "rule.id, rule.name or rule.pack"),
        ("{run.pid}", "run.id or run.started"),
        ("open {", "unmatched '{'"),
        ("close }", "unmatched '}'"),
    ],
)
def test_errors_at_load_time(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(text, ANY)


def test_event_fields_checked_against_the_trigger() -> None:
    names = Names(frozenset({"path", "name"}), frozenset(), "file.created events")
    assert parse("{event.path} {event.type} {event.id}", names).names
    with pytest.raises(TemplateError, match=r"file.created events have name, path"):
        parse("{event.combo}", names)


def test_has_placeholders() -> None:
    assert has_placeholders("a {event.x}")
    assert not has_placeholders("a {{b}} c")
    assert not has_placeholders("plain")
