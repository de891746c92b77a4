"""The settings blocks of the bridges, as JSON Schema (imported by the settings:
no asyncio here, so reading settings stays light)."""

from __future__ import annotations

from typing import Any

DEFAULT_LISTEN = "127.0.0.1:8765"
DEFAULT_MAX_BODY = 64 * 1024
MAX_BODY_LIMIT = 16 * 1024 * 1024

#: ``webhook:`` in settings.yaml (see :mod:`nerve.bridges.webhook`).
WEBHOOK: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "The inbound webhook (off unless set): POST /hook/<name> becomes webhook.<name>",
    "properties": {
        "enabled": {"type": "boolean", "description": "false: keep the hooks, accept nothing"},
        "listen": {"type": "string", "description": "host:port (default 127.0.0.1:8765)"},
        "max_body": {"type": "integer", "minimum": 1, "maximum": MAX_BODY_LIMIT},
        "hooks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"token_file": {"type": "string"}},
                "required": ["token_file"],
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
