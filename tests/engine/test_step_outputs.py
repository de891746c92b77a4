"""Step outputs: ``id:`` on run/shell (wait) and http, ``{steps.ID.*}`` in later
actions, with real programs and a real HTTP server on 127.0.0.1; the load-time
check of which outputs exist where."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PACK_HEAD, Harness, wait_until
from nerve.engine.actions.network import BODY_LIMIT
from nerve.engine.actions.process import OUTPUT_LIMIT, TRACE_LIMIT
from nerve.packs.loader import load_pack
from nerve.storage import Store
from nerve.templates import Names, Scope, parse


def run_record(store: Store, rule: str = "r", count: int = 1) -> dict[str, Any]:
    runs = wait_until(
        lambda: (r := store.query_runs(rule_id=f"test.pack/{rule}")) and len(r) >= count and r,
        10,
        f"{count} run record(s) of {rule}",
    )
    return dict(runs[0])


def load_errors(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


class Answers:
    """What the server answers, by path."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, bytes]] = {}
        self.url = ""


@pytest.fixture
def server() -> Iterator[Answers]:
    answers = Answers()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.bodies.get(self.path, (404, b"{}"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    answers.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield answers
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


# ------------------------------------------------------------ run and shell


def test_shell_outputs_reach_later_actions(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - shell: {command: "printf 'one\\ntwo'; printf oops >&2; exit 3", wait: true, check: false}
        id: sh
      - run: {argv: [/bin/echo, "{steps.sh.stdout}|{steps.sh.stderr}"], wait: true}
        id: echo
      - emit: {type: t.out, data: {code: "{steps.sh.exit_code}", echoed: "{steps.echo.stdout}"}}
"""
    )
    stored.publish("t.go")
    (out,) = stored.recorder.wait("t.out")
    assert out.data["code"] == 3  # a whole placeholder keeps its type
    assert out.data["echoed"] == "one\ntwo|oops\n"
    trace = run_record(store)["trace"]["actions"]
    assert trace[0]["result"] == {"exit_code": 3, "stdout": "one\ntwo", "stderr": "oops"}


def test_a_failed_step_still_gives_its_outputs(stored: Harness, store: Store) -> None:
    stored.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - shell: {command: "echo half; exit 2", wait: true}
        id: s
        continue_on_error: true
      - emit: {type: t.out, data: {code: "{steps.s.exit_code}", out: "{steps.s.stdout}"}}
"""
    )
    stored.publish("t.go")
    (out,) = stored.recorder.wait("t.out")
    assert out.data == {"code": 2, "out": "half\n"}


def test_big_outputs_are_capped_and_the_trace_says_so(stored: Harness, store: Store) -> None:
    # More than the cap on stdout: the program is not blocked, the rest is dropped.
    size = OUTPUT_LIMIT + 300_000
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - shell: {{command: "head -c {size} /dev/zero | tr '\\\\0' a; echo err >&2", wait: true}}
        id: big
      - emit: {{type: t.out, data: {{out: "{{steps.big.stdout}}", err: "{{steps.big.stderr}}"}}}}
"""
    )
    stored.publish("t.go")
    (out,) = stored.recorder.wait("t.out", timeout=20)
    assert out.data["out"] == "a" * OUTPUT_LIMIT
    assert out.data["err"] == "err\n"
    result = run_record(store)["trace"]["actions"][0]["result"]
    assert result["stdout"] == "a" * TRACE_LIMIT
    assert result["truncated"] == {
        "stdout": {"bytes": size, "kept": OUTPUT_LIMIT, "traced": TRACE_LIMIT}
    }


def test_steps_in_a_dry_run_are_empty(harness: Harness) -> None:
    (rule,) = harness.load(
        """
  - id: r
    when: {event: t.go}
    do:
      - run: {argv: [/bin/echo, hi], wait: true}
        id: e
      - log: "got {steps.e.stdout}"
"""
    )
    from nerve.events import Event

    ctx = harness.engine.call(
        lambda: harness.engine.loop.create_task(harness.engine.dry_run(rule, Event("t.go", {})))
    )
    wait_until(ctx.done, 5, "the dry run")
    trace = ctx.result().trace.actions
    assert trace[0]["result"] == "skipped (dry run)"
    assert trace[1]["result"] == "got "


# --------------------------------------------------------------------- http


def test_http_outputs_status_body_and_json(stored: Harness, store: Store, server: Answers) -> None:
    server.bodies["/api"] = (200, json.dumps({"items": [{"name": "a"}, {"name": "b"}]}).encode())
    server.bodies["/gone"] = (410, b'{"why": "moved"}')
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - http: {server.url}/api
        id: api
      - http: {server.url}/gone
        id: gone
        continue_on_error: true
      - emit:
          type: t.out
          data:
            status: "{{steps.api.status}}"
            second: "{{steps.api.json.items.1.name}}"
            last: "{{steps.api.json.items[-1].name}}"
            first: "{{steps.api.json.items[0]}}"
            missing: "{{steps.api.json.items.7.name}}"
            text: "{{steps.api.body}}"
            gone: "{{steps.gone.status}} {{steps.gone.json.why}}"
"""
    )
    stored.publish("t.go")
    (out,) = stored.recorder.wait("t.out")
    assert out.data["status"] == 200
    assert out.data["second"] == "b"
    assert out.data["last"] == "b"
    assert out.data["first"] == {"name": "a"}
    assert out.data["missing"] is None
    assert json.loads(out.data["text"]) == {"items": [{"name": "a"}, {"name": "b"}]}
    assert out.data["gone"] == "410 moved"


def test_http_body_cap(stored: Harness, store: Store, server: Answers) -> None:
    server.bodies["/big"] = (200, b"[" + b"1," * BODY_LIMIT + b"1]")
    server.bodies["/ok"] = (200, b"[" + b"1," * 3000 + b"1]")
    stored.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - http: {server.url}/big
        id: big
      - http: {server.url}/ok
        id: ok
      - emit: {{type: t.out, data: {{big: "{{steps.big.json}}", n: "{{steps.big.body}}",
                                   ok: "{{steps.ok.json.3000}}"}}}}
"""
    )
    stored.publish("t.go")
    (out,) = stored.recorder.wait("t.out")
    assert out.data["big"] is None  # cut short: no JSON
    assert len(out.data["n"]) == BODY_LIMIT
    assert out.data["ok"] == 1
    big, ok, _ = run_record(store)["trace"]["actions"]
    assert big["result"]["truncated"] is True
    assert big["result"]["kept_bytes"] == BODY_LIMIT
    assert len(big["result"]["body"]) == 2048
    assert ok["result"]["truncated"] is True  # (the trace keeps 2048 characters)
    assert "kept_bytes" not in ok["result"]


# -------------------------------------------------- JSON paths, generated

_KEY = st.text(st.sampled_from("abcxyz_-09"), min_size=1, max_size=4)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEY, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def value_and_path(draw: st.DrawFn) -> tuple[Any, list[str | int], Any]:
    value = draw(_JSON)
    path: list[str | int] = []
    here = value
    while isinstance(here, (list, dict)) and here and draw(st.booleans()):
        if isinstance(here, list):
            index = draw(st.integers(-len(here), len(here) - 1))
            path.append(index)
            here = here[index]
        else:
            key = draw(st.sampled_from(sorted(here)))
            path.append(key)
            here = here[key]
    return value, path, here


def _written(path: list[str | int], brackets: bool) -> str:
    out = ""
    for part in path:
        if isinstance(part, int) and brackets:
            out += f"[{part}]"
        else:
            out += f".{part}"
    return out


@settings(max_examples=300, deadline=None)
@given(value_and_path(), st.booleans())
def test_json_paths_find_what_they_name(case: tuple[Any, list[str | int], Any], br: bool) -> None:
    value, path, expected = case
    names = Names(None, frozenset(), steps={"api": frozenset({"status", "body", "json"})})
    template = parse("{steps.api.json" + _written(path, br) + "}", names)
    scope = Scope(None, {}, {}, {}, {}, steps={"api": {"json": value}})
    assert template.value(scope) == expected


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value_and_path())
def test_json_paths_through_a_real_http_step(
    harness: Harness, server: Answers, case: tuple[Any, list[str | int], Any]
) -> None:
    value, path, expected = case
    server.bodies["/v"] = (200, json.dumps(value).encode())
    harness.load(
        f"""
  - id: r
    mode: queued
    when: {{event: t.go}}
    do:
      - http: {server.url}/v
        id: api
      - emit: {{type: t.out, data: {{v: "{{steps.api.json{_written(path, True)}}}"}}}}
"""
    )
    count = len(harness.recorder.of("t.out"))
    harness.publish("t.go")
    outs = harness.recorder.wait("t.out", count + 1)
    got = outs[-1].data["v"]
    from nerve.events import thaw

    assert thaw(got) == expected


# ------------------------------------------------------- load-time checks


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ('log: "{steps.nope.stdout}"', "no action with 'id: nope' runs before this point"),
        ('log: "{steps.sh.exitcode}"', "step 'sh' (shell) has no output 'exitcode'"),
        ('log: "{steps.sh}"', "step 'sh' (shell) needs an output"),
        ('log: "{steps.sh.stdout.x}"', "only json has parts"),
        ('log: "{steps.bg.stdout}"', "step 'bg' (run) gives no outputs"),
        ('log: "{steps.web.json..a}"', "an empty part"),
        ('log: "{steps.web.json[x]}"', "bad list index"),
        ('log: "{steps.web.stdout}"', "step 'web' (http) has no output 'stdout'"),
        (
            'log: "{steps.later.stdout}"',
            "no action with 'id: later' runs before this point; the one at rules[0].do[4] "
            "may not have run here",
        ),
        ('log: "{repeat.index}"', "only inside a repeat's 'do'"),
    ],
)
def test_unknown_steps_are_load_errors(action: str, message: str) -> None:
    errors = load_errors(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - shell: {{command: "true", wait: true}}
        id: sh
      - run: [/bin/true]
        id: bg
      - http: http://127.0.0.1:1/
        id: web
      - {action}
      - run: {{argv: [/bin/true], wait: true}}
        id: later
"""
    )
    assert len(errors) == 1, errors
    assert errors[0].startswith("test.yaml:")
    assert "rules[0].do[3].log" in errors[0]
    assert message in errors[0]


def test_an_action_cannot_use_its_own_outputs_and_ids_are_unique() -> None:
    errors = load_errors(
        """
  - id: r
    when: {event: t.go}
    do:
      - run: {argv: [/bin/echo, "{steps.a.stdout}"], wait: true}
        id: a
      - run: {argv: [/bin/true], wait: true}
        id: a
      - run: {argv: [/bin/true], wait: true}
        id: "1bad"
"""
    )
    assert len(errors) == 3, errors
    assert "rules[0].do[0].run" in errors[0]
    assert "'id: a'" in errors[0]
    assert "rules[0].do[1].id" in errors[1]
    assert "already used at rules[0].do[0]" in errors[1]
    assert "rules[0].do[2].id" in errors[2]


def test_steps_after_if_branches() -> None:
    base = """
  - id: r
    when: {event: t.go}
    do:
      - if: {var: {x: 1}}
        then:
          - run: {argv: [/bin/true], wait: true}
            id: both
          - run: {argv: [/bin/true], wait: true}
            id: one
        else:
          - shell: {command: "true", wait: true}
            id: both
      - log: "%s"
"""
    assert load_errors(base % "{steps.both.exit_code}") == []
    errors = load_errors(base % "{steps.one.exit_code}")
    assert len(errors) == 1
    assert "no action with 'id: one'" in errors[0]
    assert "the one at rules[0].do[0].then[1] may not have run here" in errors[0]


@pytest.mark.parametrize("shell", ["/bin/dash", "/bin/bash"])
def test_a_steps_output_reaches_a_shell_as_data(
    harness: Harness, tmp_path: Any, shell: str
) -> None:
    marker = tmp_path / "pwned"
    payload = f"$(touch {marker}); `touch {marker}` ' \" ;touch {marker}"
    harness.load(
        f"""
  - id: r
    when: {{event: t.go}}
    do:
      - run: {{argv: [/usr/bin/printf, "%s", "{{event.text}}"], wait: true}}
        id: p
      - shell: {{command: "printf '%s' {{steps.p.stdout}}", interpreter: {shell}, wait: true}}
        id: s
      - emit: {{type: t.out, data: {{out: "{{steps.s.stdout}}"}}}}
"""
    )
    harness.publish("t.go", text=payload)
    (out,) = harness.recorder.wait("t.out")
    assert out.data["out"] == payload
    assert not marker.exists()
