"""What a running Nerve leaves unloaded, and that it still works without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)

HTTP_AFTER_LEAN_ASYNCIO = """
import sys, threading

from nerve import lean

lean.import_asyncio_without_ssl()
assert "asyncio" in sys.modules and "ssl" not in sys.modules

import asyncio
from nerve.engine.registry import load_builtin_types

load_builtin_types()  # the http action among them
assert "ssl" not in sys.modules, "loading the actions imported ssl"

from http.server import BaseHTTPRequestHandler, HTTPServer  # (imports ssl, as urllib does)


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Hello)
threading.Thread(target=server.serve_forever, daemon=True).start()

from nerve.engine.actions import network
import urllib.request

url = f"http://127.0.0.1:{server.server_port}/"
status, body = network._send(urllib.request.Request(url), 10)
assert (status, body) == (200, b"hello"), (status, body)


async def main():
    reader, writer = await asyncio.open_connection("127.0.0.1", server.server_port)
    writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


assert b"hello" in asyncio.run(main())
print("ok")
"""


def test_asyncio_and_the_http_action_work_without_ssl_loaded_first() -> None:
    out = subprocess.run(
        [sys.executable, "-c", HTTP_AFTER_LEAN_ASYNCIO],
        capture_output=True,
        text=True,
        check=False,
        timeout=50,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_it_does_nothing_when_ssl_is_already_there() -> None:
    code = (
        "import ssl, sys\n"
        "from nerve import lean\n"
        "lean.import_asyncio_without_ssl()\n"
        "import asyncio.sslproto\n"
        "assert asyncio.sslproto.ssl is ssl\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=50)
