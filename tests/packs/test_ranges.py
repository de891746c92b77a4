"""Every number and duration has a range, and a value outside it is a located
error of its rule: never an OverflowError, never a stuck loader, the pack's
other rules still load. Generated with hypothesis over every numeric option."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import Harness
from nerve.durations import MAX_DURATION_S, parse_duration
from nerve.engine.registry import ActionError, triggers
from nerve.packs.loader import load_pack
from nerve.packs.schema import pack_schema
from nerve.ranges import MAX_SAFE_INTEGER
from nerve.settings import SCHEMA as SETTINGS_SCHEMA
from nerve.settings import Settings

HEAD = "nerve: 1\npack: {id: test.ranges, name: Ranges}\nrules:\n"
GOOD = "  - id: ok\n    when: {event: x.ok}\n    do: [{log: fine}]\n"

#: (label, the bad rule's lines with {n} for the number, its kind).
#: kind: "duration" (seconds or text), "count" (a whole number with its own
#: range), "any" (a number no option gives a meaning to: the pack-wide range).
ON_A = "when: {event: a}\n    "  # a rule on custom events, for its options and actions
TWO_STEPS = "steps: [{event: a}, {event: b}]"
OPTIONS: list[tuple[str, str, str]] = [
    ("schedule.every", "when: {schedule: {every: {n}}}", "duration"),
    ("sequence.within", "when: {sequence: {within: {n}, " + TWO_STEPS + "}}", "duration"),
    ("count.within", "when: {count: {times: 2, within: {n}, of: {event: a}}}", "duration"),
    ("for.duration", "when: {for: {start: {event: a}, stop: {event: b}, duration: {n}}}", "duration"),  # noqa: E501
    ("idle", "when: {idle: {n}}", "duration"),
    ("file.created.settle", "when: {file.created: {path: /tmp, settle: {n}}}", "duration"),
    ("debounce", ON_A + "debounce: {n}", "duration"),
    ("throttle", ON_A + "throttle: {n}", "duration"),
    ("cooldown", ON_A + "cooldown: {n}", "duration"),
    ("delay", ON_A + "do: [{delay: {n}}]", "duration"),
    ("wait_for.timeout", ON_A + "do: [{wait_for: {event: b, timeout: {n}}}]", "duration"),
    ("run.timeout", ON_A + "do: [{run: {argv: ['true'], wait: true, timeout: {n}}}]", "duration"),
    ("shell.timeout", ON_A + "do: [{shell: {command: 'true', wait: true, timeout: {n}}}]", "duration"),  # noqa: E501
    ("http.timeout", ON_A + "do: [{http: {url: 'http://127.0.0.1/', timeout: {n}}}]", "duration"),
    ("pause.for", ON_A + "do: [{pause: {for: {n}}}]", "duration"),
    ("count.times", "when: {count: {times: {n}, within: 1s, of: {event: a}}}", "count"),
    ("max", ON_A + "mode: queued\n    max: {n}", "count"),
    ("click.count", ON_A + "do: [{click: {count: {n}}}]", "count"),
    ("click.x", ON_A + "do: [{click: {x: {n}, y: 1}}]", "count"),
    ("click.button", ON_A + "do: [{click: {button: {n}}}]", "count"),
    ("mouse.move.y", ON_A + "do: [{mouse.move: {x: 1, y: {n}}}]", "count"),
    ("mouse.click.button", "when: {mouse.click: {button: {n}}}", "count"),
    ("region.width", "when: {mouse.click: {region: {x: 0, y: 0, width: {n}, height: 5}}}", "count"),
    ("region.x", "when: {mouse.scroll: {region: {x: {n}, y: 0, width: 5, height: 5}}}", "count"),
    ("power.low", "when: {power.low: {below: {n}}}", "count"),
    ("event.data.gt", "when: {event: {type: a, data: {n: {gt: {n}}}}}", "any"),
    ("event.data.equals", "when: {event: {type: a, data: {n: {n}}}}", "any"),
    ("event.data.in", "when: {event: {type: a, data: {n: {in: [1, {n}]}}}}", "any"),
    ("var.le", ON_A + "if: [{var: {v: {le: {n}}}}]", "any"),
    ("run.argv", ON_A + "do: [{run: [echo, {n}]}]", "any"),
    ("run.env", ON_A + "do: [{run: {argv: [env], env: {N: {n}}}}]", "any"),
    ("set", ON_A + "do: [{set: {v: {n}}}]", "any"),
    ("emit.data", ON_A + "do: [{emit: {type: x.b, data: {n: {n}}}}]", "any"),
    ("wait_for.data", ON_A + "do: [{wait_for: {event: {type: b, data: {n: {n}}}, timeout: 1s}}]", "any"),  # noqa: E501
]  # fmt: skip


def load_bad(template: str, number: str) -> Any:
    text = template.replace("{n}", number)
    body = HEAD + GOOD + "  - id: bad\n    " + text + "\n"
    if "do:" not in text:
        body += "    do: [{log: never}]\n"
    return load_pack(body.encode(), filename="ranges.yaml")


def yaml_number(value: int | float) -> str:
    """``value`` as YAML 1.1 reads it back as a number (floats need a dot and a signed exponent)."""
    if isinstance(value, int):
        return str(value)
    mantissa, _, exponent = f"{value:.6e}".partition("e")
    return f"{mantissa}e{exponent[0]}{exponent[1:]}"


def assert_located(pack: Any, number: str) -> None:
    """One or more errors, each at the bad rule (line 7 on), the good rule loaded."""
    assert pack.errors, f"{number} was accepted"
    for error in pack.errors:
        assert error.file == "ranges.yaml"
        assert error.line >= 7, str(error)
        assert error.path.startswith("rules[1]"), str(error)
        assert "internal" not in error.message
    assert [r.id for r in pack.rules] == ["ok"]


huge_ints = st.one_of(
    st.integers(min_value=MAX_SAFE_INTEGER + 1, max_value=10**60),
    st.integers(min_value=-(10**60), max_value=-(MAX_SAFE_INTEGER + 1)),
    st.integers(min_value=60, max_value=4000).map(lambda digits: 10**digits - 1),
)
huge_floats = st.floats(min_value=1e16, max_value=1e308).map(yaml_number)
too_long = st.one_of(
    st.integers(min_value=367, max_value=10**30).map(lambda d: f"{d}d"),
    st.integers(min_value=MAX_DURATION_S + 1, max_value=10**40).map(lambda s: f"{s}s"),
    st.integers(min_value=9000, max_value=10**40).map(lambda h: f'"{h}h 30m"'),
    st.integers(min_value=MAX_DURATION_S * 1000 + 1, max_value=10**50).map(lambda ms: f"{ms}ms"),
    st.integers(min_value=30, max_value=190).map(lambda digits: "9" * digits + "d"),
)


@pytest.mark.parametrize(("label", "template", "kind"), OPTIONS, ids=[o[0] for o in OPTIONS])
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_number_out_of_range_is_a_located_error(
    label: str, template: str, kind: str, data: st.DataObject
) -> None:
    strategies = [huge_ints.map(str), huge_floats]
    if kind == "duration":
        strategies.append(too_long)
    number = data.draw(st.one_of(strategies))
    assert_located(load_bad(template, number), number)


@pytest.mark.parametrize(("label", "template", "kind"), OPTIONS, ids=[o[0] for o in OPTIONS])
def test_an_ordinary_number_loads(label: str, template: str, kind: str) -> None:
    number = {"duration": "90", "count": "2", "any": "42"}[kind]
    pack = load_bad(template, number)
    assert not pack.errors, [str(e) for e in pack.errors]
    assert [r.id for r in pack.rules] == ["ok", "bad"]


@settings(max_examples=60, deadline=None)
@given(seconds=st.floats(min_value=0, max_value=MAX_DURATION_S))
def test_durations_within_the_range_load(seconds: float) -> None:
    pack = load_bad("when: {schedule: {every: {n}}}", yaml_number(max(seconds, 0.1)))
    assert not pack.errors, [str(e) for e in pack.errors]


def test_the_reported_place_is_the_option() -> None:
    pack = load_bad('when: {schedule: {every: "9999999999d"}}', "")
    [error] = pack.errors
    assert str(error) == (
        "ranges.yaml:8:23: rules[1].when.schedule.every: a duration is at most 366d, "
        "got '9999999999d'"
    )
    pack = load_bad("when: {count: {times: {n}, within: 1s, of: {event: a}}}", "10" * 20)
    assert str(pack.errors[0]).startswith("ranges.yaml:8:20: rules[1].when.count.times: must be <=")


def test_numbers_in_the_pack_header_are_in_range_too() -> None:
    text = (
        "nerve: 1\npack:\n  id: test.ranges\n  version: 1" + "0" * 30 + "\n"
        "  inputs:\n    n: {type: number, default: 1.0e+300}\nrules:\n" + GOOD
    )
    pack = load_pack(text.encode(), filename="ranges.yaml")
    assert {(e.line, e.path) for e in pack.errors} == {
        (4, "pack.version"),
        (6, "pack.inputs.n.default"),
    }
    assert not pack.usable


@pytest.mark.parametrize("raw", ["1e999", "1" * 400, "-1e300", "nan", "inf"])
def test_a_set_number_input_out_of_range_is_refused(raw: str) -> None:
    text = HEAD.replace("name: Ranges}", "name: Ranges, inputs: {n: {type: number, default: 1}}}")
    pack = load_pack((text + GOOD).encode(), filename="ranges.yaml", overrides={"n": raw})
    assert pack.errors
    assert pack.errors[0].path == "pack.inputs.n"


# ------------------------------------------------------------ every option has a range


def _numeric_nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            found.append((path, node))
        for key, value in node.items():
            found += _numeric_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _numeric_nodes(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("schema", ["pack", "settings"])
def test_every_number_option_in_the_schemas_has_a_range(schema: str) -> None:
    """An option that is a number (and nothing else) says its own range; numbers
    that may also be text (match values, arguments) have the pack-wide one."""
    tree = pack_schema() if schema == "pack" else SETTINGS_SCHEMA
    nodes = _numeric_nodes(tree)
    assert len(nodes) > (20 if schema == "pack" else 3)
    for path, node in nodes:
        assert "minimum" in node or "exclusiveMinimum" in node, path
        assert "maximum" in node or "exclusiveMaximum" in node, path


# ------------------------------------------------------------------ durations


@settings(max_examples=400, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=60),
        st.from_regex(r"\A\s*(\d{1,30}(\.\d{1,5})?\s*(ms|s|m|h|d)\s*){1,4}\Z"),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
    )
)
@example(value="9999999999d")
@example(value="9" * 400 + "s")
@example(value="1e999")
@example(value=10**30)
@example(value="\u0661\u0662s")  # Arabic-Indic digits: not a duration
@example(value="2s\n")
def test_parse_duration_returns_a_duration_in_range_or_says_why(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        message = str(exc)
        assert message
        return
    assert isinstance(seconds, float)
    assert math.isfinite(seconds)
    assert 0 <= seconds <= MAX_DURATION_S


@pytest.mark.timeout(30)
@pytest.mark.parametrize("value", ["in", "9999999999d", "9" * 400, "1e999", "inf", "-5s", "soon"])
def test_a_rendered_duration_out_of_range_fails_the_run_clearly(
    harness: Harness, value: str
) -> None:
    harness.load(
        "  - id: wait\n    when: {event: x.remind}\n    do:\n      - delay: '{event.in}'\n"
        "      - emit: x.after\n"
    )
    harness.publish("x.remind", **{"in": value if value != "in" else 10**400})
    [failed] = harness.recorder.wait("rule.failed")
    error = str(failed.data["error"])
    assert "duration" in error, error
    assert "internal error" not in error
    assert not harness.recorder.of("x.after")


@pytest.mark.parametrize("value", ["1e400", "99999999", "-40000", "nan", "inf", "x"])
def test_a_rendered_coordinate_out_of_range_is_an_action_error(value: str) -> None:
    from nerve.engine.actions.input import _resolve
    from nerve.templates import Names, parse

    class Run:
        scope: Any = None

    template = parse(value, Names(None, frozenset()))
    with pytest.raises(ActionError, match="x is"):
        _resolve(template, Run(), "x")  # type: ignore[arg-type]


# ------------------------------------------------------------------- settings


SETTINGS_NUMBERS = ["retention_days", "max_events", "max_depth", "bus_capacity"]


@pytest.mark.parametrize("key", SETTINGS_NUMBERS)
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(number=st.one_of(huge_ints.map(str), huge_floats))
def test_a_setting_out_of_range_is_reported_and_the_default_kept(
    key: str, number: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("settings") / "settings.yaml"
    path.write_text(f"store_private: false\n{key}: {number}\n")
    loaded = Settings.load(path)
    assert getattr(loaded, key) == getattr(Settings(), key)
    [error] = loaded.errors
    assert error.startswith(f"{path}:2:1: {key}: "), error


# ---------------------------------------------- a rule that fails to compile at all


@pytest.mark.parametrize(
    "exc", [RuntimeError("kaput"), OverflowError("too big"), RecursionError(), KeyError("k")]
)
def test_an_unexpected_error_compiling_a_rule_is_located_and_skips_that_rule(
    monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    cls = triggers.get("schedule")
    assert cls is not None

    def broken(options: Any, ctx: Any) -> Any:
        raise exc

    monkeypatch.setattr(cls, "compile", broken)
    pack = load_bad('when: {schedule: {every: "1h"}}', "")
    assert_located(pack, "schedule")
    [error] = pack.errors
    # At the trigger when it says what went wrong (an overflow), else at the rule.
    assert (error.line, error.path) in {(7, "rules[1]"), (8, "rules[1].when.schedule")}


def test_an_unexpected_error_anywhere_in_a_pack_is_an_error_of_that_pack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nerve.packs import loader

    def broken(self: Any) -> None:
        raise MemoryError("no more")

    monkeypatch.setattr(loader._Loader, "resolve_inputs", broken)
    pack = load_pack((HEAD + GOOD).encode(), filename="ranges.yaml")
    assert not pack.usable
    assert [str(e) for e in pack.errors] == [
        "ranges.yaml:1:1: cannot load this pack: MemoryError: no more"
    ]


# ------------------------------------------------------------------------ cron


NEVER = [
    "0 0 31 2 *",
    "0 0 30 2 *",
    "* * 30-31 2 *",
    "0 0 31 4,6,9,11 *",
    "0 12 31 apr *",
    "0 0 31 2 mon",
    "*/5 * 30 feb *",
    "0 0 30,31 2 mon-fri",
]
SOMETIMES = ["0 0 29 2 *", "0 0 29 2 mon", "0 0 31 * *", "0 9 last 2 *", "0 0 28-31 2 *"]


@pytest.mark.parametrize("cron", NEVER)
def test_a_cron_that_never_fires_is_a_located_error(cron: str) -> None:
    pack = load_bad(f"when: {{schedule: {{cron: '{cron}'}}}}", "")
    assert_located(pack, cron)
    assert "never fires" in pack.errors[0].message, pack.errors[0]
    assert pack.errors[0].path == "rules[1].when.schedule.cron"


@pytest.mark.parametrize("cron", SOMETIMES)
def test_a_rare_cron_loads(cron: str) -> None:
    pack = load_bad(f"when: {{schedule: {{cron: '{cron}'}}}}", "")
    assert not pack.errors, [str(e) for e in pack.errors]


def test_many_impossible_crons_are_checked_quickly() -> None:
    rules = "".join(
        f"  - id: r{i}\n    when: {{schedule: {{cron: '{i % 60} 0 31 2 *'}}}}\n"
        "    do: [{log: x}]\n"
        for i in range(200)
    )
    start = time.monotonic()
    pack = load_pack((HEAD + rules).encode(), filename="ranges.yaml")
    assert len(pack.errors) == 200
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("moment", ["0001-01-01 00:00", "0001-01-01T23:59:59"])
def test_a_moment_out_of_the_range_of_dates_is_a_located_error(moment: str) -> None:
    pack = load_bad(f"when: {{schedule: {{at: '{moment}'}}}}", "")
    assert_located(pack, moment)
    assert pack.errors[0].path == "rules[1].when.schedule.at"


@pytest.mark.parametrize(
    "when",
    ["{schedule: {at: '9999-12-31 23:59'}}", "{schedule: {every: 366d}}", "{idle: 366d}",
     "{schedule: {cron: '0 0 29 2 *'}}"],
)  # fmt: skip
def test_the_far_ends_of_the_ranges_start_on_an_engine(
    harness: Harness, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nerve"):
        harness.load(
            f"  - id: far\n    when: {when}\n    debounce: 366d\n    do: [{{delay: 366d}}]\n"
        )
        assert harness.summary("far")["enabled"]
    assert not caplog.records, [r.getMessage() for r in caplog.records]
