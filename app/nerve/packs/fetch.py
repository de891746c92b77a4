"""Fetching a pack from a URL (``nerve pack import https://...``, updates, ``outdated``).

One GET per call, never retried. HTTPS only (a redirect from HTTPS to plain
HTTP is named as such); at most
:data:`MAX_REDIRECTS` redirects; a connect/read timeout; the answer is read in
chunks and cut off as soon as it passes the pack size limit (a 50 MB answer is
not read to the end); an HTML page or another non-text answer is refused with
a clear message, before any of it is parsed as YAML.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

#: The most redirects followed before giving up.
MAX_REDIRECTS = 5
#: Seconds to connect, and between two chunks of the answer.
TIMEOUT = 15.0
#: The largest answer taken (as the largest pack file).
MAX_BYTES = 1 << 20
_CHUNK = 64 * 1024
#: Content types a pack may come as (YAML is served under many names).
_TEXT_TYPES = (
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "text/plain",
    "application/octet-stream",
    "binary/octet-stream",
)


class FetchError(Exception):
    """The pack could not be fetched; the message is for the user."""


@dataclass(frozen=True)
class Fetched:
    #: The URL asked for.
    url: str
    #: Where the answer came from, after redirects.
    final_url: str
    data: bytes


def is_url(text: str) -> bool:
    return urlsplit(text).scheme.lower() in ("https", "http") and "://" in text


def _check_url(url: str, previous: str | None) -> None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        if not parts.hostname:
            raise FetchError(f"{url}: no host in the address")
        return
    if scheme == "http":
        if previous is not None and urlsplit(previous).scheme.lower() == "https":
            raise FetchError(f"{previous} redirects to {url}: from HTTPS to plain HTTP, refused")
        raise FetchError(f"{url}: only https:// addresses are fetched (plain http:// is not safe)")
    raise FetchError(f"{url}: only https:// addresses are fetched")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # redirects are followed (and checked) by fetch()


def fetch(
    url: str,
    *,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT,
    context: ssl.SSLContext | None = None,
) -> Fetched:
    """GET ``url`` (following checked redirects) and return the answer's bytes."""
    opener = urllib.request.build_opener(
        _NoRedirect(), urllib.request.HTTPSHandler(context=context or ssl.create_default_context())
    )
    current = url
    previous: str | None = None
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(current, previous)
        request = urllib.request.Request(
            current, headers={"User-Agent": "nerve", "Accept": "application/yaml, text/*"}
        )
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                if exc.code in (301, 302, 303, 307, 308):
                    target = exc.headers.get("Location")
                    if not target:
                        raise FetchError(
                            f"{current}: redirect ({exc.code}) without a Location"
                        ) from None
                    previous, current = current, urljoin(current, target)
                    continue
                raise FetchError(
                    f"{current}: the server answered {exc.code} {exc.reason}"
                ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                why = reason.verify_message or str(reason)
                raise FetchError(
                    f"{current}: the server's certificate is not trusted ({why})"
                ) from None
            raise FetchError(f"{current}: cannot connect: {reason}") from None
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise FetchError(f"{current}: {exc or type(exc).__name__}") from None
        with response:
            return Fetched(url, current, _read_answer(current, response, max_bytes, timeout))
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects; stopped")


def _read_answer(url: str, response: Any, max_bytes: int, timeout: float) -> bytes:
    ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        raise FetchError(
            f"{url}: the server sent a web page (HTML), not a pack file; "
            "use the address of the raw .yaml file"
        )
    if ctype and ctype not in _TEXT_TYPES and not ctype.startswith("text/"):
        raise FetchError(f"{url}: the server sent {ctype}, not a YAML pack file")
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise FetchError(
            f"{url}: the answer is {int(length):,} bytes; packs are limited to {max_bytes:,}"
        )
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + 4 * timeout  # a server dripping bytes is not waited on forever
    # read1: what has arrived (at least a byte), so the deadline is checked as it drips in.
    read = getattr(response, "read1", response.read)
    try:
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            if time.monotonic() > deadline:
                raise FetchError(f"{url}: the answer took longer than {4 * timeout:g}s; stopped")
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(
                    f"{url}: the answer is larger than {max_bytes:,} bytes "
                    "(the limit for a pack); stopped reading"
                )
            chunks.append(chunk)
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{url}: reading the answer failed: {exc or type(exc).__name__}") from None
    data = b"".join(chunks)
    head = data[:512].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith(b"<"):  # no pack starts with '<': a web page, or XML
        raise FetchError(
            f"{url}: the server sent a web page (HTML), not a pack file; "
            "use the address of the raw .yaml file"
        )
    if b"\x00" in data:
        raise FetchError(f"{url}: the answer is binary, not a YAML pack file")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError(f"{url}: the answer is not UTF-8 text, not a YAML pack file") from None
    return data
