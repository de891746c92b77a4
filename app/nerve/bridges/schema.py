"""The settings blocks of the bridges, as JSON Schema (imported by the settings:
no asyncio here, so reading settings stays light): ``webhook:``, ``mqtt:`` and
``host:`` (this machine's name in MQTT topics and bridged events)."""

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


#: ``host:`` in settings.yaml (checked further by ``nerve.bridges.mqtt.host_problem``).
HOST: dict[str, Any] = {
    "type": "string",
    "description": "This machine's name in MQTT topics and bridged events",
}

#: ``mqtt:`` in settings.yaml (see :mod:`nerve.bridges.mqtt`; what JSON Schema
#: cannot say is checked by ``nerve.bridges.mqtt.problems``).
MQTT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "broker": {
            "type": "string",
            "minLength": 1,
            "description": "mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)",
        },
        "username": {"type": "string", "minLength": 1},
        "password_file": {
            "type": "string",
            "minLength": 1,
            "description": "A file holding the password (never the password itself)",
        },
        # Named so that mqtt.problems() can say what to do instead.
        "password": {},
        "ca_file": {"type": "string", "minLength": 1, "description": "CA certificates (PEM)"},
        "publish": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Event type patterns sent out (key, typed, clipboard: by exact name)",
        },
        "subscribe": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Topics turned into events (MQTT filters; '*' matches within a level)",
        },
        "discovery": {"type": "boolean", "description": "Home Assistant MQTT discovery"},
        "discovery_prefix": {"type": "string", "minLength": 1},
        "queue": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10_000_000,
            "description": "Messages kept while the broker is away; more are dropped",
        },
        "keepalive": {"type": "integer", "minimum": 5, "maximum": 3600},
    },
    "required": ["broker"],
    "additionalProperties": False,
}
