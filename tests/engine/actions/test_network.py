"""``http`` against a real HTTP server on 127.0.0.1, in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import PACK_HEAD, Harness, wait_until
from nerve import __version__
from nerve.packs.loader import load_pack
from nerve.storage import Store


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(Request(self.command, self.path, dict(self.headers), body))
            if self.path.startswith("/missing"):
                self._reply(404, b"no such thing")
            elif self.path.startswith("/slow"):
                state.release.wait(10)  # until the test ends
                self._reply(200, b"late")
            elif self.path.startswith("/big"):
                self._reply(200, b"x" * 5000)
            else:
                self._reply(200, f"hello {self.command}".encode())

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def do(h: Harness, store: Store, action: str, **data: Any) -> dict[str, Any]:
    """Load one rule with ``action``, fire it once and return its run record."""
    h.load(f"  - id: r\n    when: {{event: t.go}}\n    do:\n      - {action}\n")
    event = h.publish("t.go", **data)

    def recorded() -> dict[str, Any] | None:
        runs = [r for r in store.query_runs(rule_id="test.pack/r") if r["event_id"] == event.id]
        return runs[0] if runs else None

    run: dict[str, Any] = wait_until(recorded, 10, "the run record")
    return run


def test_get(stored: Harness, store: Store, server: Server) -> None:
    run = do(stored, store, f'http: "{server.url}/status?q={{event.q}}"', q="a")
    assert run["status"] == "ok"
    assert run["trace"]["actions"][0]["result"] == {
        "status": 200,
        "body": "hello GET",
        "truncated": False,
    }
    (request,) = server.requests
    assert (request.method, request.path, request.body) == ("GET", "/status?q=a", b"")
    assert request.headers["User-Agent"] == f"Nerve/{__version__}"


def test_post_json_with_placeholders(stored: Harness, store: Store, server: Server) -> None:
    run = do(
        stored,
        store,
        f'http: {{url: "{server.url}/hook", json: {{file: "{{event.path}}", '
        'size: "{event.size}", text: "{event.size} bytes", fixed: [1, true, null], '
        'obj: "{event.meta}"}}',
        path="/x/a b.png",
        size=12,
        meta={"k": ["v"]},
    )
    assert run["status"] == "ok"
    (request,) = server.requests
    assert request.method == "POST"  # the default with a payload
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "file": "/x/a b.png",
        "size": 12,  # a whole placeholder keeps its type
        "text": "12 bytes",
        "fixed": [1, True, None],
        "obj": {"k": ["v"]},  # an event's mapping is sent as JSON (it used to crash)
    }


def test_method_headers_and_body(stored: Harness, store: Store, server: Server) -> None:
    run = do(
        stored,
        store,
        f'http: {{url: "{server.url}/put", method: put, body: "raw {{event.n}}", '
        'headers: {Authorization: "Bearer {event.token}", Content-Type: text/plain}}',
        n=1,
        token="s3cret",
    )
    assert run["status"] == "ok"
    (request,) = server.requests
    assert request.method == "PUT"
    assert request.body == b"raw 1"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Content-Type"] == "text/plain"


def test_404_fails_the_run(stored: Harness, store: Store, server: Server) -> None:
    run = do(stored, store, f'http: "{server.url}/missing"')
    assert run["status"] == "failed"
    assert run["error"] == f"{server.url}/missing: HTTP 404 Not Found: no such thing"
    (failed,) = stored.recorder.wait("rule.failed")
    assert failed.data["run"] == run["id"]


def test_timeout_fails_the_run(stored: Harness, store: Store, server: Server) -> None:
    start = time.monotonic()
    run = do(stored, store, f'http: {{url: "{server.url}/slow", timeout: 300ms}}')
    assert time.monotonic() - start < 3
    assert run["status"] == "failed"
    assert "timed out" in run["error"]
    assert run["trace"]["actions"][0]["ms"] >= 290


def test_connection_refused_fails_the_run(stored: Harness, store: Store) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = do(stored, store, f'http: {{url: "http://127.0.0.1:{port}/x", timeout: 2s}}')
    assert run["status"] == "failed"
    assert run["error"].startswith(f"http://127.0.0.1:{port}/x: ")
    assert "refused" in run["error"].lower()


def test_long_bodies_are_cut(stored: Harness, store: Store, server: Server) -> None:
    run = do(stored, store, f'http: "{server.url}/big"')
    result = run["trace"]["actions"][0]["result"]
    assert result["truncated"] is True
    assert len(result["body"]) == 2048


def test_url_from_a_placeholder_must_be_http(stored: Harness, store: Store) -> None:
    run = do(stored, store, 'http: "{event.url}"', url="file:///etc/passwd")
    assert run["status"] == "failed"
    assert "not an http(s) URL" in run["error"]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("{http: ftp://example.org}", "must start with http:// or https://"),
        ("{http: {url: 'http://x', json: {}, body: a}}", "'json' or 'body'"),
        ("{http: {url: 'http://x', method: fetch}}", "expected one of"),
    ],
)
def test_load_errors(action: str, message: str) -> None:
    pack = load_pack(
        (PACK_HEAD + f"  - id: r\n    when: {{event: t.go}}\n    do: [{action}]\n").encode(),
        filename="test.yaml",
    )
    assert any(message in str(e) for e in pack.errors), pack.errors
