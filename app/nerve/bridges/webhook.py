"""The inbound webhook: ``POST /hook/<name>`` becomes the event ``webhook.<name>``.

Off by default. Turned on by a ``webhook`` block in ``settings.yaml``::

    webhook:
      listen: 127.0.0.1:8765          # loopback by default; [::1]:8765 for IPv6
      max_body: 65536                 # bytes (default 64 KiB)
      hooks:
        deploy: {token_file: ~/.config/nerve/deploy.token}

A call ``POST /hook/deploy`` with ``Authorization: Bearer <token>`` and a JSON
object as its body (``Content-Type: application/json``) publishes
``webhook.deploy`` with the body as its data and ``source: webhook``, and is
answered ``202 {"id": <event id>}``. Everything else gets its status code and
no event: 404 (no such hook or path), 405 (not POST), 401 (no bearer token),
403 (wrong token), 411 (no Content-Length), 413 (body over ``max_body``), 415
(not JSON), 400 (malformed request, body not UTF-8 JSON, or not an object),
408 (request not complete in time), 503 (too many connections, or the hook's
token file is unusable).

Only the user's settings can open the endpoint and name its hooks: a rule pack
cannot (packs react to ``webhook.*`` events like to any other custom event).

The server is a small HTTP/1.1 reader on the engine's asyncio loop (one request
per connection, no keep-alive, no chunked bodies). It bounds what a client may
cost: the request head must arrive within :data:`HEAD_TIMEOUT_S` and hold at
most :data:`MAX_HEAD_BYTES`, the body within :data:`BODY_TIMEOUT_S`, and at most
:data:`MAX_CONNECTIONS` connections are served at once. Tokens are compared in
constant time and never logged; a token file other users can read is warned
about.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerve.bridges.base import Bridge, BridgeState
from nerve.bridges.schema import DEFAULT_LISTEN, DEFAULT_MAX_BODY
from nerve.bus import Bus
from nerve.events import valid_type

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
MAX_TOKEN_BYTES = 4096
#: How deeply a body's JSON may nest (objects and arrays).
MAX_DEPTH = 32
#: After refusing a body, how much of it is read and thrown away (so the client
#: sees the answer rather than a reset connection), and for how long at most.
_DISCARD_BYTES = 1 << 20
_DISCARD_S = 1.0

_HOOK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_METHOD = re.compile(r"[A-Z]{1,16}")
_REASONS = {
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class ConfigError(ValueError):
    """The webhook block of the settings cannot be used."""


@dataclass
class Hook:
    name: str
    token_file: Path
    token: bytes | None = None
    problem: str | None = None
    world_readable: bool = False


@dataclass
class WebhookConfig:
    host: str
    port: int
    max_body: int = DEFAULT_MAX_BODY
    hooks: dict[str, Hook] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, block: dict[str, Any]) -> WebhookConfig:
        """The settings' ``webhook`` block (already checked against :data:`SCHEMA`)."""
        host, port = parse_listen(str(block.get("listen", DEFAULT_LISTEN)))
        hooks: dict[str, Hook] = {}
        for name, spec in (block.get("hooks") or {}).items():
            if not _HOOK_NAME.fullmatch(name) or not valid_type(f"webhook.{name}"):
                raise ConfigError(
                    f"webhook.hooks: {name!r} is not a hook name "
                    "(lower-case letters, digits, '-' and '_', at most 64)"
                )
            hooks[name] = Hook(name, Path(os.path.expanduser(str(spec["token_file"]))))
        return cls(host, port, int(block.get("max_body", DEFAULT_MAX_BODY)), hooks)


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:8765``, ``[::1]:8765``, ``localhost:0`` -> (host, port)."""
    text = text.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text)
    if not match:
        raise ConfigError(f"webhook.listen: {text!r} is not host:port (e.g. 127.0.0.1:8765)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ConfigError(f"webhook.listen: port {port} is out of range (0 to 65535)")
    return host, port


def read_token(hook: Hook) -> None:
    """Load ``hook``'s token from its file; a problem is kept on the hook (never the token)."""
    path = hook.token_file
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{path} is not a regular file")
            raw = os.read(fd, MAX_TOKEN_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        hook.problem = f"token file {path}: {exc.strerror or exc}"
        return
    if len(raw) > MAX_TOKEN_BYTES:
        hook.problem = f"token file {path}: longer than {MAX_TOKEN_BYTES} bytes"
        return
    token = raw.strip()
    if not token or any(b <= 0x20 or b == 0x7F for b in token):
        hook.problem = f"token file {path}: empty, or the token has spaces or control characters"
        return
    hook.world_readable = bool(st.st_mode & stat.S_IROTH)
    if hook.world_readable:
        log.warning(
            "webhook: the token file %s of hook %r is readable by every user; "
            "make it private: chmod 600 %s",
            path,
            hook.name,
            path,
        )
    hook.token = token
    hook.problem = None


class _Refusal(Exception):
    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.headers = headers or {}


class WebhookBridge(Bridge):
    """The HTTP endpoint, on the engine's loop."""

    name = "webhook"

    def __init__(self, bus: Bus, config: WebhookConfig) -> None:
        super().__init__()
        self.bus = bus
        self.config = config
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self.warnings: list[str] = []

    # -- life -----------------------------------------------------------------

    async def start(self) -> None:
        for hook in self.config.hooks.values():
            read_token(hook)
            if hook.problem:
                self.error(f"hook {hook.name}: {hook.problem}")
                log.error("webhook: hook %r is refused: %s", hook.name, hook.problem)
            elif hook.world_readable:
                self.warnings.append(f"hook {hook.name}: token file readable by every user")
        self._server = await asyncio.start_server(
            self._on_client,
            self.config.host,
            self.config.port,
            limit=MAX_HEAD_BYTES + 2,
            reuse_address=True,
        )
        sockname = self._server.sockets[0].getsockname()
        host = sockname[0]
        self.address = f"[{host}]:{sockname[1]}" if ":" in host else f"{host}:{sockname[1]}"
        self.state = BridgeState.LISTENING
        log.info(
            "webhook: listening on http://%s/hook/ (%d hook(s))",
            self.address,
            len(self.config.hooks),
        )

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self.state = BridgeState.STOPPED

    def status(self) -> dict[str, Any]:
        status = super().status()
        status["hooks"] = sorted(self.config.hooks)
        status["connections"] = len(self._clients)
        if self.warnings:
            status["warnings"] = list(self.warnings)
        return status

    # -- requests -------------------------------------------------------------

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or self._server is None:
            writer.transport.abort()
            return
        if len(self._clients) >= MAX_CONNECTIONS:
            self.count("refused")
            self.count("busy")
            await self._respond(writer, 503, {"error": "too many connections"}, {})
            writer.transport.abort()
            return
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug: one line in the log, the client gets nothing more
            log.exception("webhook: a request failed")
            self.error(f"internal error: {exc or type(exc).__name__}")
        finally:
            self._clients.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        who = peer[0] if isinstance(peer, tuple) and peer else "?"
        try:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT_S):
                    method, target, headers = await self._read_head(reader)
            except TimeoutError:
                raise _Refusal(408, "the request head did not arrive in time") from None
            hook, length = self._check(method, target, headers)
            if headers.get("expect", "").lower() == "100-continue":
                # (curl asks before sending a body over 1 KiB: say yes at once.)
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                async with asyncio.timeout(BODY_TIMEOUT_S):
                    body = await reader.readexactly(length)
            except TimeoutError:
                raise _Refusal(408, "the request body did not arrive in time") from None
            except asyncio.IncompleteReadError:
                raise _Refusal(400, "the body is shorter than its Content-Length") from None
            data = _parse_body(body)
        except _Refusal as refusal:
            self.count("refused")
            self.count(str(refusal.code))
            log.debug("webhook: %d for a request from %s: %s", refusal.code, who, refusal)
            await self._respond(writer, refusal.code, {"error": str(refusal)}, refusal.headers)
            if refusal.code in (413, 411, 415, 401, 403, 404, 405):
                await _discard(reader)
            return
        except (ConnectionError, OSError):
            return
        event = self.bus.publish(f"webhook.{hook.name}", data, source="webhook")
        self.count("accepted")
        log.debug("webhook: hook %r -> event %d", hook.name, event.id)
        await self._respond(writer, 202, {"id": event.id, "type": event.type}, {})

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Refusal(431, f"the request head is over {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if len(exc.partial) > MAX_HEAD_BYTES:
                raise _Refusal(431, f"the request head is over {MAX_HEAD_BYTES} bytes") from None
            raise _Refusal(400, "the connection ended in the request head") from None
        if len(head) > MAX_HEAD_BYTES + 4:
            raise _Refusal(431, f"the request head is over {MAX_HEAD_BYTES} bytes")
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError:
            raise _Refusal(400, "the request head is not ASCII") from None
        lines = text[:-4].split("\r\n")
        parts = lines[0].split(" ")
        if (
            len(parts) != 3
            or not _METHOD.fullmatch(parts[0])
            or parts[2]
            not in (
                "HTTP/1.1",
                "HTTP/1.0",
            )
        ):
            raise _Refusal(400, "not an HTTP/1.x request line")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not _HEADER_NAME.fullmatch(name):
                raise _Refusal(400, "a malformed header line")
            key = name.lower()
            if key in headers and key in ("authorization", "content-length", "content-type"):
                raise _Refusal(400, f"more than one {name} header")
            headers[key] = value.strip(" \t")
        return parts[0], parts[1], headers

    def _check(self, method: str, target: str, headers: dict[str, str]) -> tuple[Hook, int]:
        """Route and authorise; returns the hook and the body length, or raises _Refusal."""
        path = target.split("?", 1)[0]
        if not path.startswith("/hook/"):
            raise _Refusal(404, "not found (hooks are at /hook/<name>)")
        name = path[len("/hook/") :]
        if method != "POST":
            raise _Refusal(405, "use POST", {"Allow": "POST"})
        hook = self.config.hooks.get(name)
        if hook is None:
            raise _Refusal(404, "no such hook")
        auth = headers.get("authorization")
        scheme, _, given = (auth or "").partition(" ")
        if auth is None or scheme.lower() != "bearer" or not given.strip():
            raise _Refusal(
                401, "a bearer token is required", {"WWW-Authenticate": 'Bearer realm="nerve"'}
            )
        if hook.token is None:
            raise _Refusal(503, "this hook has no usable token (see nerve status)")
        try:
            offered = given.strip().encode("ascii")
        except UnicodeEncodeError:
            offered = b""
        import hmac  # (here: it maps OpenSSL, which a Nerve without a webhook never needs)

        if not hmac.compare_digest(offered, hook.token):
            raise _Refusal(403, "wrong token")
        if "transfer-encoding" in headers:
            raise _Refusal(411, "send the body with a Content-Length (no chunked bodies)")
        raw_length = headers.get("content-length")
        if raw_length is None:
            raise _Refusal(411, "a Content-Length is required")
        if not raw_length.isascii() or not raw_length.isdigit() or len(raw_length) > 12:
            raise _Refusal(400, "Content-Length is not a number")
        length = int(raw_length)
        if length > self.config.max_body:
            raise _Refusal(413, f"the body is over {self.config.max_body} bytes")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise _Refusal(415, "send the body as application/json")
        return hook, length

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        code: int,
        payload: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        body = json.dumps(payload).encode("ascii") + b"\n"
        lines = [
            f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)
            async with asyncio.timeout(BODY_TIMEOUT_S):
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, TimeoutError):
            pass


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read (and drop) what the client still sends, briefly, so it sees our answer."""
    left = _DISCARD_BYTES
    try:
        async with asyncio.timeout(_DISCARD_S):
            while left > 0:
                chunk = await reader.read(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)
    except (TimeoutError, OSError):
        pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_body(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8-sig")  # (a byte order mark some tools add is no error)
    except UnicodeDecodeError:
        raise _Refusal(400, "the body is not UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _Refusal(400, "the JSON body is nested too deeply") from None
    except ValueError as exc:
        raise _Refusal(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Refusal(400, "the body must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise _Refusal(400, f"the JSON body is nested deeper than {MAX_DEPTH} levels")
    return data


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (iteratively: no recursion limit to hit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in items)
    return deepest
