"""Keep modules Nerve does not use out of a running Nerve.

asyncio imports ``ssl`` when it is first imported, for TLS transports, and
``ssl`` maps OpenSSL (libssl and libcrypto: about 4 MB resident, over 6 MB
with the module). Nerve's own sockets are local and its ``http`` action goes
through urllib, which imports ``ssl`` itself when a request is made. So the
entry points import asyncio while ``import ssl`` fails, which asyncio handles
as "no TLS available", and then let ``ssl`` be imported normally again.
"""

from __future__ import annotations

import sys


def import_asyncio_without_ssl() -> None:
    """Import asyncio, leaving ssl unloaded (a no-op if either is loaded)."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # makes `import ssl` fail
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]
