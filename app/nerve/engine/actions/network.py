"""``http``: call a webhook or an API."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from nerve import __version__
from nerve.durations import DURATION_SCHEMA, parse_duration
from nerve.engine import caps
from nerve.engine.actions._common import render_url, rendered, templated
from nerve.engine.registry import Action, ActionError, CompileContext, ConfigError, actions
from nerve.engine.runs import RunContext
from nerve.events import thaw
from nerve.templates import Template

if TYPE_CHECKING:
    import urllib.request

#: The most of an answer kept in the run's trace (characters).
_BODY_LIMIT = 2048
#: The most of an answer read, for ``{steps.ID.body}`` and ``.json`` (bytes; an
#: answer cut here has no ``json``).
BODY_LIMIT = 1024 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


@actions.register
class HttpAction(Action):
    """An HTTP request; a status of 400 or more fails the action."""

    key = "http"
    description = "An HTTP request: {url, method, headers, json or body, timeout}"
    capabilities = frozenset({"network"})
    schema = {
        "anyOf": [
            {"type": "string", "description": "A URL to GET"},
            {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "minLength": 1},
                    "method": {"enum": _METHODS + [m.lower() for m in _METHODS]},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "json": {},
                    "body": {"type": "string"},
                    "timeout": DURATION_SCHEMA,
                },
                "required": ["url"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, options: dict[str, Any], ctx: CompileContext) -> None:
        if "json" in options and "body" in options:
            raise ConfigError("give 'json' or 'body', not both")
        self.url: Template = ctx.template(options["url"], ("url",))
        raw = self.url.source.lower()
        if not raw.startswith(("http://", "https://", "{")):
            raise ConfigError("the URL must start with http:// or https://", ("url",))
        has_payload = "json" in options or "body" in options
        self.method = str(options.get("method", "POST" if has_payload else "GET")).upper()
        self.headers = {
            k: ctx.template(v, ("headers", k)) for k, v in options.get("headers", {}).items()
        }
        for k in self.headers:
            if not _TOKEN.fullmatch(k):
                raise ConfigError(f"{k!r} is not a header name", ("headers", k))
        self.json = templated(options["json"], ctx, ("json",)) if "json" in options else None
        self.has_json = "json" in options
        self.body = ctx.template(options["body"], ("body",)) if "body" in options else None
        self.timeout = parse_duration(options.get("timeout", 10))
        self.concrete = frozenset({caps.cap("http", caps.host_of(self.url, ctx))})

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> HttpAction:
        if isinstance(options, str):
            options = {"url": options}
        return cls(options, ctx)

    def outputs(self) -> frozenset[str]:
        return frozenset({"status", "body", "json"})

    async def execute(self, run: RunContext) -> Any:
        scope = run.scope
        url = render_url(self.url, scope)
        if not url.lower().startswith(("http://", "https://")):
            raise ActionError(f"not an http(s) URL: {url[:200]!r}")
        headers = {"User-Agent": f"Nerve/{__version__}"}
        for name, template in self.headers.items():
            value = template.render(scope)
            bad = next((c for c in value if c in "\r\n\x00"), None)
            if bad is not None:
                raise ActionError(
                    f"header {name}: the value holds {bad!r}, which a header cannot carry"
                )
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ActionError(
                    f"header {name}: the value holds characters a header cannot carry "
                    "(only Latin-1; percent-encode or base64 it)"
                ) from None
            headers[name] = value
        data: bytes | None = None
        if self.has_json:
            # A whole-placeholder value may be an event's (frozen) mapping or list.
            data = json.dumps(thaw(rendered(self.json, scope))).encode()
            headers.setdefault("Content-Type", "application/json")
        elif self.body is not None:
            data = self.body.render(scope).encode("utf-8", "surrogateescape")
        # urllib.request imports ssl (see nerve.lean): only once a request is made.
        import urllib.request

        request = urllib.request.Request(url, data=data, headers=headers, method=self.method)
        try:
            status, raw = await run.blocking(_send, request, self.timeout)
        except _HttpFailed as exc:  # (a later step may look at the status and the answer)
            if self.step_id is not None:
                cut = len(exc.body) > BODY_LIMIT
                run.steps[self.step_id] = {
                    "status": exc.status,
                    "body": exc.body[:BODY_LIMIT].decode("utf-8", "replace"),
                    "json": _json(exc.body, cut),
                }
            raise
        cut = len(raw) > BODY_LIMIT
        body = raw[:BODY_LIMIT].decode("utf-8", "replace")
        if self.step_id is not None:
            run.steps[self.step_id] = {"status": status, "body": body, "json": _json(raw, cut)}
        result: dict[str, Any] = {
            "status": status,
            "body": body[:_BODY_LIMIT],
            "truncated": len(body) > _BODY_LIMIT or cut,
        }
        if cut:
            result["kept_bytes"] = BODY_LIMIT
        return result


class _HttpFailed(ActionError):
    """An answer with a status of 400 or more."""

    def __init__(self, message: str, status: int, body: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _json(raw: bytes, cut: bool) -> Any:
    """The answer as JSON, or None (not JSON, or cut short)."""
    if cut or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(BODY_LIMIT + 1)
            status = response.status
    except urllib.error.HTTPError as exc:
        try:
            answer = exc.read(BODY_LIMIT + 1)
        except (OSError, ValueError):
            answer = b""
        detail = answer[:200].decode("utf-8", "replace").strip()
        raise _HttpFailed(
            f"{request.full_url}: HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else ""),
            exc.code,
            answer,
        ) from None
    except urllib.error.URLError as exc:
        raise ActionError(f"{request.full_url}: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise ActionError(f"{request.full_url}: {exc}") from None
    except ValueError as exc:  # http.client's checks: an invalid URL, header or port
        raise ActionError(f"{request.full_url[:200]}: {exc}") from None
    return status, body
