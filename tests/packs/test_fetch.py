"""Fetching packs over HTTPS (in-process, a local server with a test certificate):
every redirect code and Location spelling, every scheme a redirect may name,
size limits with and without Content-Length, markup and binary answers, a
server that never answers or drips its answer."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from https_server import HttpsServer
from nerve.packs import fetch as fetching
from nerve.packs.fetch import FetchError, fetch

PACK = b"nerve: 1\npack: {id: t.p, version: 1.0.0}\nrules: []\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HttpsServer]:
    srv = HttpsServer(tmp_path)
    yield srv
    srv.close()


def get(server: HttpsServer, path: str, **kw: float) -> fetching.Fetched:
    return fetch(server.url(path), context=server.context(), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("spelling", ["relative", "absolute", "scheme-relative", "dot"])
def test_redirects_are_followed(server: HttpsServer, code: int, spelling: str) -> None:
    server.serve("/packs/p.yaml", PACK)
    location = {
        "relative": "/packs/p.yaml",
        "absolute": server.url("/packs/p.yaml"),
        "scheme-relative": f"//127.0.0.1:{server.port}/packs/p.yaml",
        "dot": "packs/./p.yaml",
    }[spelling]
    server.redirect("/start", location, code)
    got = get(server, "/start")
    assert got.data == PACK
    assert got.final_url.endswith("/packs/p.yaml")


def test_a_chain_of_redirects_is_bounded(server: HttpsServer) -> None:
    server.serve("/p.yaml", PACK)
    for i in range(fetching.MAX_REDIRECTS):
        server.redirect(f"/r{i}", f"/r{i + 1}" if i + 1 < fetching.MAX_REDIRECTS else "/p.yaml")
    assert get(server, "/r0").data == PACK  # exactly the limit: followed
    server.redirect("/r-1", "/r0")
    server.requests.clear()
    with pytest.raises(FetchError, match="more than 5 redirects"):
        get(server, "/r-1")
    assert len(server.requests) == fetching.MAX_REDIRECTS + 1  # and never asked again


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://127.0.0.1:9/p.yaml", "from HTTPS to plain HTTP"),
        ("HTTP://127.0.0.1:9/p.yaml", "from HTTPS to plain HTTP"),
        ("ftp://127.0.0.1/p.yaml", "only https://"),
        ("file:///etc/passwd", "only https://"),
        ("data:text/plain,nerve:%201", "only https://"),
        ("javascript:alert(1)", "only https://"),
    ],
)
def test_redirects_to_other_schemes_are_refused(
    server: HttpsServer, location: str, message: str
) -> None:
    server.redirect("/p", location)
    with pytest.raises(FetchError, match=message):
        get(server, "/p")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/p", "ftp://x/p", "file:///etc/hosts", "p.yaml"]
)
def test_only_https_is_asked(url: str) -> None:
    with pytest.raises(FetchError, match="only https://"):
        fetch(url)


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (b"<!DOCTYPE html><html></html>", "text/html", "web page"),
        (b"<html></html>", "text/html; charset=utf-8", "web page"),
        (b"nerve: 1", "TEXT/HTML", "web page"),
        (b"nerve: 1", "application/xhtml+xml", "web page"),
        (b"\n\n  <!doctype html>", "text/plain", "web page"),
        (b"\xef\xbb\xbf<html>", "text/plain", "web page"),
        (b"<?xml version='1.0'?><a/>", "application/octet-stream", "web page"),
        (b"<!-- a comment --><html>", "text/yaml", "web page"),
        (b"nerve: 1", "image/png", "sent image/png"),
        (b"nerve: 1", "application/json", "sent application/json"),
        (b"nerve: 1\n\x00", "text/plain", "binary"),
        (b"nerve: '\xff\xfe'", "text/plain", "not UTF-8"),
    ],
)
def test_answers_that_are_not_packs_are_refused_by_name(
    server: HttpsServer, body: bytes, ctype: str, message: str
) -> None:
    server.serve("/p", body, ctype)
    with pytest.raises(FetchError, match=message):
        get(server, "/p")


@pytest.mark.parametrize(
    "ctype",
    [
        "application/yaml",
        "text/yaml",
        "text/x-yaml",
        "text/plain",
        "application/x-yaml",
        "application/octet-stream",
        "",
    ],
)
def test_yaml_under_its_many_names_is_taken(server: HttpsServer, ctype: str) -> None:
    server.serve("/p", PACK, ctype)
    assert get(server, "/p").data == PACK


@pytest.mark.parametrize("length_header", [True, False])
def test_a_50_mb_answer_is_cut_off_early(server: HttpsServer, length_header: bool) -> None:
    server.stream("/big", 50 * 1024 * 1024, length_header=length_header)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"limited to|larger than"):
        get(server, "/big")
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert server.sent.get("/big", 0) < 20 * 1024 * 1024


def test_the_limit_is_exact(server: HttpsServer) -> None:
    body = b"#" * (fetching.MAX_BYTES - 1) + b"\n"
    server.serve("/at", body, "text/plain")
    assert get(server, "/at").data == body
    server.serve("/over", body + b"\n", "text/plain")
    with pytest.raises(FetchError, match="limited to"):
        get(server, "/over")


def test_http_errors_are_named(server: HttpsServer) -> None:
    with pytest.raises(FetchError, match="answered 404"):
        get(server, "/nothing")


@pytest.fixture
def silent_tls(server: HttpsServer) -> Iterator[int]:
    """A TLS server that accepts and then says nothing, or drips a byte at a time."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server.cert_file, server.cert_file.with_name("test-key.pem"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/silent":
                stop.wait(10)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            while not stop.is_set():
                self.wfile.write(b"#")
                self.wfile.flush()
                stop.wait(0.1)

        def log_message(self, *args: object) -> None:
            pass

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                tls = ctx.wrap_socket(conn, server_side=True)
                threading.Thread(
                    target=Drip, args=(tls, ("127.0.0.1", 0), None), daemon=True
                ).start()
            except (OSError, ssl.SSLError):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


@pytest.mark.parametrize("path", ["/silent", "/drip"])
def test_a_server_that_does_not_answer_in_time_is_given_up(
    server: HttpsServer, silent_tls: int, path: str
) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError):
        fetch(f"https://127.0.0.1:{silent_tls}{path}", context=server.context(), timeout=0.5)
    assert time.monotonic() - started < 5
