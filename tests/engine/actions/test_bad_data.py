"""Values that an action cannot use fail the run with a reason, never an
"internal error"; values in URLs are encoded for where they sit."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Harness, wait_until
from engine.actions.test_network import Server, server  # noqa: F401 (a fixture)
from nerve.storage import Store


def fire(h: Harness, store: Store, **data: Any) -> dict[str, Any]:
    event = h.publish("t.go", **data)

    def recorded() -> dict[str, Any] | None:
        runs = [r for r in store.query_runs(rule_id="test.pack/r") if r["event_id"] == event.id]
        return runs[0] if runs else None

    run: dict[str, Any] = wait_until(recorded, 10, "the run record")
    return run


def load(h: Harness, action: str) -> None:
    h.load(f"  - id: r\n    mode: queued\n    when: {{event: t.go}}\n    do:\n      - {action}\n")


HOSTILE_URL_VALUES = [
    "x&admin=true#",
    "x&admin=true",
    "a b",
    "../admin",
    "a/b?c=d#e",
    "%2F%00",
    "\r\nX-Injected: 1",
    "\n",
    "é中😀",
    "+plus",
    "=",
    "#frag",
    "?",
    "",
]

url_values = st.one_of(
    st.sampled_from(HOSTILE_URL_VALUES),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(q=url_values, p=url_values)
def test_url_values_are_encoded_for_where_they_sit(
    stored: Harness,
    store: Store,
    server: Server,  # noqa: F811
    q: str,
    p: str,
) -> None:
    load(stored, f'http: "{server.url}/items/{{event.p}}/x?q={{event.q}}&fixed=1#top"')
    before = len(server.requests)
    run = fire(stored, store, q=q, p=p)
    assert run["status"] == "ok", run
    request = server.requests[before]
    path, _, query = request.path.partition("?")
    segments = path.split("/")
    assert segments[:2] == ["", "items"]
    assert urllib.parse.unquote(segments[2]) == p  # one segment, whatever it holds
    assert segments[3:] == ["x"]
    assert urllib.parse.parse_qs(query, keep_blank_values=True) == {"q": [q], "fixed": ["1"]}
    assert "X-Injected" not in request.headers


@pytest.mark.parametrize(
    "value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", "caf\u00e9 \u4e2d"]
)
def test_a_header_value_that_cannot_be_sent_fails_the_run_clearly(
    stored: Harness,
    store: Store,
    server: Server,  # noqa: F811
    value: str,
) -> None:
    load(stored, f'http: {{url: "{server.url}/h", headers: {{X-Thing: "{{event.v}}"}}}}')
    run = fire(stored, store, v=value)
    assert run["status"] == "failed", run
    assert "header X-Thing" in run["error"], run
    assert "internal error" not in run["error"]
    assert not server.requests


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:1/a\r\nb",
        "http://127.0.0.1:1/\x00",
        "http://127.0.0.1:99999999/",
        "http://[::1",
    ],
)
def test_a_whole_url_from_an_event_that_cannot_be_used_fails_clearly(
    stored: Harness, store: Store, value: str
) -> None:
    load(stored, 'http: "{event.url}"')
    run = fire(stored, store, url=value)
    assert run["status"] == "failed", run
    assert "internal error" not in run["error"], run


@pytest.mark.parametrize(
    "action",
    [
        'run: {argv: [echo, "{event.v}"], wait: true}',
        'run: {argv: [echo, "{event.v}"]}',
        'run: {argv: [echo], env: {X: "{event.v}"}, wait: true}',
        'run: {argv: [echo], cwd: "/tmp/{event.v}", wait: true}',
        'shell: {command: "echo {event.v}", wait: true}',
        "shell: {command: \"echo '{event.v}'\", wait: true}",
        'shell: "echo {event.v}"',
        'file.trash: "/tmp/{event.v}"',
        'open: "/tmp/{event.v}"',
        'notify: "{event.v}"',
    ],
)
def test_a_nul_fails_the_run_with_a_reason(stored: Harness, store: Store, action: str) -> None:
    load(stored, action)
    run = fire(stored, store, v="a\x00b")
    assert run["status"] == "failed" or action.startswith("notify"), run
    if run["status"] == "failed":
        assert "NUL" in run["error"] or "null" in run["error"], run
        assert "internal error" not in run["error"], run


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ('http: {url: "URL/x", body: "{event.v}"}', {"v": "\ud800"}),
        ('http: {url: "URL/x", headers: {X-A: "{event.v}"}}', {"v": "\udcff"}),
        ('shell: {command: "echo {event.v}", wait: true}', {"v": "\ud800"}),
        ('run: {argv: [echo, "{event.v}"], wait: true}', {"v": "\ud800"}),
    ],
)
def test_text_that_cannot_be_encoded_fails_the_run_with_a_reason(
    stored: Harness,
    store: Store,
    server: Server,  # noqa: F811
    action: str,
    data: dict[str, Any],
) -> None:
    load(stored, action.replace("URL", server.url))
    run = fire(stored, store, **data)
    assert run["status"] == "failed", run
    assert "internal error" not in run["error"], run


@pytest.mark.parametrize("value", ["1@evil.example", "evil.example/x", "h:1", "h?x", "h#x", "a b"])
def test_an_event_value_cannot_change_the_host_of_a_url(
    stored: Harness,
    store: Store,
    server: Server,  # noqa: F811
    value: str,
) -> None:
    port = server.url.rsplit(":", 1)[1]
    load(stored, f'http: "http://127.0.0.1:{port}{{event.v}}/x"')
    run = fire(stored, store, v=value)
    assert run["status"] == "failed", run
    assert "host part" in run["error"], run
    assert not server.requests
    load(stored, 'http: "http://127.0.0.1:{event.v}/x"')
    assert fire(stored, store, v=port)["status"] == "ok"
