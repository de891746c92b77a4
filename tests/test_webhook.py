"""The inbound webhook, against a real headless instance over real HTTP.

Each test writes a ``webhook`` block into the fresh user's settings, starts
``nerve run --headless`` (port 0: the kernel picks a free one, ``nerve status``
says which) and talks to it with ``http.client`` and raw sockets.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve import ipc
from test_cli import PACK, Instance, StartNerve, cli_ok, events, socket_file
from test_cli import start_nerve as _start_nerve_fixture  # noqa: F401 (registers the fixture)
from test_cli import wait_for as wait_until

TOKEN = "s3cret-Token_0123456789abcdef"


def configure(env: dict[str, str], tmp: Path, *, mode: int = 0o600, extra: str = "") -> Path:
    """settings.yaml with hooks ``deploy`` (token TOKEN) and ``broken`` (no token file)."""
    token_file = tmp / "deploy.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(mode)
    config = Path(env["XDG_CONFIG_HOME"]) / "nerve"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.yaml").write_text(
        "webhook:\n"
        "  listen: 127.0.0.1:0\n"
        "  max_body: 1000\n"
        "  hooks:\n"
        f"    deploy: {{token_file: {token_file}}}\n"
        f"    broken: {{token_file: {tmp / 'missing.token'}}}\n" + extra
    )
    return token_file


def bridge(env: dict[str, str]) -> dict[str, Any]:
    status = ipc.request("status", path=socket_file(env))
    (found,) = [b for b in status["bridges"] if b["name"] == "webhook"]
    return dict(found)


def address(env: dict[str, str]) -> tuple[str, int]:
    host, port = bridge(env)["address"].rsplit(":", 1)
    return host, int(port)


def post(  # noqa: PLR0917 (the table below lists requests positionally)
    where: tuple[str, int],
    path: str = "/hook/deploy",
    body: bytes | str | None = b'{"version": "1.2"}',
    headers: dict[str, str] | None = None,
    method: str = "POST",
    token: str | None = TOKEN,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One request; (status, JSON answer, headers)."""
    sent = {"Content-Type": "application/json"}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    conn = http.client.HTTPConnection(*where, timeout=10)
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        payload = response.read()
        return response.status, json.loads(payload), dict(response.getheaders())
    finally:
        conn.close()


@pytest.fixture
def daemon(_start_nerve_fixture: StartNerve) -> StartNerve:  # noqa: F811
    """test_cli's ``start_nerve``: each daemon is stopped at teardown, none may show a traceback."""
    return _start_nerve_fixture


@pytest.fixture
def hooked(daemon: StartNerve, nerve_env: dict[str, str], short_tmp: Path) -> Instance:
    configure(nerve_env, short_tmp)
    instance = daemon("--rules", PACK)
    wait_until(lambda: bridge(nerve_env)["state"] == "listening", what="the webhook listening")
    return instance


def hook_events(env: dict[str, str]) -> list[dict[str, Any]]:
    return events(env, "--type", "webhook.*")


def test_a_good_token_makes_an_event_with_the_body_as_data(
    hooked: Instance, nerve_env: dict[str, str]
) -> None:
    where = address(nerve_env)
    assert where[0] == "127.0.0.1"  # loopback, as configured
    body = {"version": "1.2", "nested": {"list": [1, 2.5, None, True]}, "ü": "ß"}
    code, answer, _ = post(where, body=json.dumps(body))
    assert code == 202, answer
    assert answer["type"] == "webhook.deploy"
    (event,) = wait_until(lambda: hook_events(nerve_env), what="the webhook event in the log")
    assert event["id"] == answer["id"]
    assert (event["type"], event["source"], event["data"]) == ("webhook.deploy", "webhook", body)
    # The charset parameter and a +json media type are JSON too.
    assert post(where, headers={"Content-Type": "application/json; charset=utf-8"})[0] == 202
    assert post(where, headers={"Content-Type": "application/vnd.ci+json"})[0] == 202
    status = bridge(nerve_env)
    assert status["counts"]["accepted"] == 3
    out = cli_ok(nerve_env, "status")
    assert "bridge webhook: listening on 127.0.0.1:" in out
    assert "3 accepted" in out


# (path, method, token, headers, body) -> status code; none of them makes an event.
REFUSED: list[tuple[str, str, str | None, dict[str, str], bytes | None, int]] = [
    ("/hook/deploy", "POST", None, {}, b"{}", 401),
    ("/hook/deploy", "POST", "", {}, b"{}", 401),
    ("/hook/deploy", "POST", None, {"Authorization": f"Basic {TOKEN}"}, b"{}", 401),
    ("/hook/deploy", "POST", None, {"Authorization": TOKEN}, b"{}", 401),
    ("/hook/deploy", "POST", "wrong", {}, b"{}", 403),
    ("/hook/deploy", "POST", TOKEN[:-1], {}, b"{}", 403),
    ("/hook/deploy", "POST", TOKEN + "x", {}, b"{}", 403),
    ("/hook/deploy", "POST", TOKEN.upper(), {}, b"{}", 403),
    ("/hook/nosuch", "POST", TOKEN, {}, b"{}", 404),
    ("/hook/", "POST", TOKEN, {}, b"{}", 404),
    ("/hook/deploy/", "POST", TOKEN, {}, b"{}", 404),
    ("/hook/DEPLOY", "POST", TOKEN, {}, b"{}", 404),
    ("/other", "POST", TOKEN, {}, b"{}", 404),
    ("/hook/deploy", "GET", TOKEN, {}, None, 405),
    ("/hook/deploy", "PUT", TOKEN, {}, b"{}", 405),
    ("/hook/deploy", "DELETE", TOKEN, {}, None, 405),
    ("/hook/deploy", "POST", TOKEN, {}, b"{" + b'"a":"' + b"x" * 1000 + b'"}', 413),
    ("/hook/deploy", "POST", TOKEN, {"Content-Type": "text/plain"}, b"{}", 415),
    (
        "/hook/deploy",
        "POST",
        TOKEN,
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"",
        415,
    ),
    ("/hook/deploy", "POST", TOKEN, {}, b"{not json", 400),
    ("/hook/deploy", "POST", TOKEN, {}, b"", 400),
    ("/hook/deploy", "POST", TOKEN, {}, b"[1, 2]", 400),
    ("/hook/deploy", "POST", TOKEN, {}, b'"text"', 400),
    ("/hook/deploy", "POST", TOKEN, {}, b"42", 400),
    ("/hook/deploy", "POST", TOKEN, {}, b"null", 400),
    ("/hook/deploy", "POST", TOKEN, {}, b'{"a": NaN}', 400),
    ("/hook/deploy", "POST", TOKEN, {}, b'{"a": Infinity}', 400),
    ("/hook/deploy", "POST", TOKEN, {}, b'{"a": "\xff"}', 400),
    ("/hook/deploy", "POST", TOKEN, {}, b'{"a": 1}{"b": 2}', 400),
    ("/hook/deploy", "POST", TOKEN, {}, b'{"a":' * 40 + b"1" + b"}" * 40, 400),
    ("/hook/deploy", "POST", TOKEN, {}, b"[" * 400 + b"]" * 400, 400),
    ("/hook/broken", "POST", TOKEN, {}, b"{}", 503),
]


def test_refused_requests_get_their_status_and_make_no_event(
    hooked: Instance, nerve_env: dict[str, str]
) -> None:
    where = address(nerve_env)
    for path, method, token, headers, body, expected in REFUSED:
        code, answer, got_headers = post(where, path, body, headers, method, token)
        assert code == expected, (path, method, token, headers, body[:40] if body else body)
        assert "error" in answer
        if code == 401:
            assert got_headers.get("WWW-Authenticate", "").startswith("Bearer")
        if code == 405:
            assert got_headers.get("Allow") == "POST"
    # One good call at the end: it is the only webhook event in the log.
    code, answer, _ = post(where)
    assert code == 202
    found = wait_until(lambda: hook_events(nerve_env), what="the good call's event")
    assert [e["id"] for e in found] == [answer["id"]]
    counts = bridge(nerve_env)["counts"]
    assert counts["refused"] == len(REFUSED)
    assert counts["accepted"] == 1
    assert TOKEN not in hooked.output()  # never logged
    assert TOKEN not in cli_ok(nerve_env, "status")


def test_wrong_tokens_are_refused_whatever_they_are(
    hooked: Instance, nerve_env: dict[str, str]
) -> None:
    where = address(nerve_env)
    printable = st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(token=printable.filter(lambda t: t != TOKEN))
    def wrong(token: str) -> None:
        code, _, _ = post(where, token=token)
        assert code == 403, token

    wrong()
    assert hook_events(nerve_env) == []


def test_a_head_too_large_or_garbage_is_refused(
    hooked: Instance, nerve_env: dict[str, str]
) -> None:
    where = address(nerve_env)
    for raw, expected in [
        (b"POST /hook/deploy HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n", b" 431 "),
        (b"garbage\r\n\r\n", b" 400 "),
        (b"POST /hook/deploy HTTP/1.1\r\nbad header\r\n\r\n", b" 400 "),
        (
            b"POST /hook/deploy HTTP/1.1\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\n\r\n{}",
            b" 411 ",
        ),
        (
            b"POST /hook/deploy HTTP/1.1\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            + b"Content-Length: 2\r\n\r\n{}",
            b" 400 ",
        ),
        (
            b"POST /hook/deploy HTTP/1.1\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"2\r\n{}\r\n0\r\n\r\n",
            b" 411 ",
        ),
    ]:
        with socket.create_connection(where, timeout=10) as sock:
            sock.sendall(raw)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1"), answer
        assert expected in answer.split(b"\r\n")[0], answer
    assert hook_events(nerve_env) == []


def test_slow_clients_are_cut_off_and_do_not_hold_up_others(
    hooked: Instance, nerve_env: dict[str, str]
) -> None:
    where = address(nerve_env)
    head_only = socket.create_connection(where, timeout=30)
    head_only.sendall(b"POST /hook/deploy HTTP/1.1\r\nHost: x\r\n")  # ...and nothing more
    body_late = socket.create_connection(where, timeout=30)
    body_late.sendall(
        b"POST /hook/deploy HTTP/1.1\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b'\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"a"'
    )
    started = time.monotonic()
    # Meanwhile a normal call goes through at once.
    assert post(where)[0] == 202
    assert time.monotonic() - started < 3
    for sock, limit in ((head_only, 5.0), (body_late, 10.0)):
        with sock:
            answer = sock.recv(4096)  # blocks until the server answers and closes
            assert b" 408 " in answer.split(b"\r\n")[0], answer
            assert sock.recv(4096) == b""
        assert time.monotonic() - started < limit + 3
    found = hook_events(nerve_env)
    assert len(found) == 1  # the normal call only
    assert bridge(nerve_env)["counts"]["408"] == 2


def test_a_token_file_others_can_read_is_warned_about(
    daemon: StartNerve,
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    configure(nerve_env, short_tmp, mode=0o644)
    instance = daemon("--rules", PACK)
    status = bridge(nerve_env)
    assert any("readable by every user" in w for w in status["warnings"])
    assert "readable by every user" in instance.output()
    assert "missing.token" in (status["last_error"] or "")  # the broken hook is reported
    assert TOKEN not in instance.output()
    assert post(address(nerve_env))[0] == 202  # it still works


def test_no_webhook_block_no_endpoint(daemon: StartNerve, nerve_env: dict[str, str]) -> None:
    daemon("--rules", PACK)
    status = ipc.request("status", path=socket_file(nerve_env))
    assert status["bridges"] == []


def test_a_bad_webhook_block_is_reported_and_nerve_runs(
    daemon: StartNerve,
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    config = Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve"
    config.mkdir(parents=True, exist_ok=True)
    for block, message in [
        ("webhook:\n  listen: nowhere\n", "is not host:port"),
        ("webhook:\n  hooks: {Bad.Name: {token_file: /x}}\n", "is not a hook name"),
        ("webhook:\n  hooks: {deploy: {}}\n", "token_file"),
        ("webhook:\n  max_body: -1\n", "max_body"),
    ]:
        (config / "settings.yaml").write_text(block)
        instance = daemon("--rules", PACK)
        assert message in instance.output()
        instance.stop()
        assert "Traceback" not in instance.output()


def test_the_port_in_use_is_a_clear_status(
    daemon: StartNerve,
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        configure(nerve_env, short_tmp)
        settings_file = Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve" / "settings.yaml"
        settings_file.write_text(settings_file.read_text().replace(":0\n", f":{port}\n"))
        daemon("--rules", PACK)
        status = bridge(nerve_env)
        assert status["state"] == "failed"
        assert "could not start" in status["last_error"]
        assert "bridge webhook: failed" in cli_ok(nerve_env, "status")
    assert os.environ  # (the instance keeps running; the fixture stops it)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_any_json_object_arrives_as_the_event_data(
    hooked: Instance, nerve_env: dict[str, str]
) -> None:
    from nerve import client

    where = address(nerve_env)
    follower = client.follow("webhook.*", path=socket_file(nerve_env), reconnect=False)
    items = iter(follower)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
    def roundtrip(body: dict[str, Any]) -> None:
        text = json.dumps(body)
        if len(text.encode()) > 1000:  # (max_body in these settings)
            assert post(where, body=text)[0] == 413
            return
        code, answer, _ = post(where, body=text)
        assert code == 202
        event = next(items)
        assert isinstance(event, dict)
        assert event["id"] == answer["id"]
        assert event["data"] == body
        assert event["source"] == "webhook"

    try:
        roundtrip()
    finally:
        follower.close()


def test_expect_100_continue_is_answered(hooked: Instance, nerve_env: dict[str, str]) -> None:
    """curl sends ``Expect: 100-continue`` before a body over 1 KiB and waits for it."""
    where = address(nerve_env)
    body = json.dumps({"pad": "x" * 900}).encode()
    head = (
        "POST /hook/deploy HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(where, timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.split(b"\r\n")[0] == b"HTTP/1.1 202 Accepted", answer
    # A refused one gets its final answer instead, and sends no body.
    with socket.create_connection(where, timeout=10) as sock:
        sock.sendall(head.replace(TOKEN.encode(), b"wrong"))
        assert sock.recv(100).startswith(b"HTTP/1.1 403 ")


def test_reload_applies_a_changed_webhook_block(
    daemon: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    settings_file = Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve" / "settings.yaml"
    daemon("--rules", PACK)  # no webhook yet
    assert ipc.request("status", path=socket_file(nerve_env))["bridges"] == []
    configure(nerve_env, short_tmp)
    cli_ok(nerve_env, "reload")
    assert bridge(nerve_env)["state"] == "listening"
    assert post(address(nerve_env))[0] == 202
    settings_file.write_text(settings_file.read_text().replace("    broken:", "    other:"))
    cli_ok(nerve_env, "reload")
    assert bridge(nerve_env)["hooks"] == ["deploy", "other"]
    assert post(address(nerve_env))[0] == 202
    settings_file.write_text("")
    cli_ok(nerve_env, "reload")
    assert ipc.request("status", path=socket_file(nerve_env))["bridges"] == []


def test_listen_addresses_parse_or_say_why() -> None:
    from nerve.bridges.webhook import ConfigError, parse_listen

    assert parse_listen("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_listen(" localhost:0 ") == ("localhost", 0)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8765", "127.0.0.1", ":80", "host:70000", "::1:80", "[::1]", "a b:1", "h:-1"):
        with pytest.raises(ConfigError, match=r"webhook\.listen"):
            parse_listen(bad)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=30))
    def anything(text: str) -> None:
        try:
            host, port = parse_listen(text)
        except ConfigError:
            return
        assert host
        assert 0 <= port <= 65535

    anything()


def test_connections_beyond_the_limit_are_told_busy_and_idle_ones_expire(
    hooked: Instance, nerve_env: dict[str, str]
) -> None:
    from nerve.bridges.webhook import HEAD_TIMEOUT_S, MAX_CONNECTIONS

    where = address(nerve_env)
    idle = [socket.create_connection(where, timeout=30) for _ in range(MAX_CONNECTIONS)]
    try:
        wait_until(lambda: bridge(nerve_env)["connections"] == MAX_CONNECTIONS, timeout=20)
        with socket.create_connection(where, timeout=10) as extra:
            assert b" 503 " in extra.recv(4096).split(b"\r\n")[0]
        # The idle ones are cut off after the head timeout; then calls go through again.
        for sock in idle:
            sock.settimeout(HEAD_TIMEOUT_S + 20)
            assert b" 408 " in sock.recv(4096).split(b"\r\n")[0]
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: bridge(nerve_env)["connections"] == 0, timeout=20)
    code, _, _ = post(where, body=("\ufeff" + json.dumps({"bom": True})).encode())
    assert code == 202  # (and a byte order mark is no error)
    assert hook_events(nerve_env)[-1]["data"] == {"bom": True}
