"""User settings (``settings.yaml`` in the config folder).

Every key is optional; a bad value is reported with its file:line and the
default is used, so a typo never keeps Nerve from starting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nerve.engine import validation
from nerve.packs.yamlsource import YamlError, format_path, load_yaml

log = logging.getLogger(__name__)

#: Pauses everything and cancels running runs. Away from Ctrl+Alt+F-keys
#: (VT switching) and from combos applications commonly use.
DEFAULT_PANIC_HOTKEY = "ctrl+alt+shift+p"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "panic_hotkey": {
            "type": ["string", "null"],
            "description": "Pauses every rule and cancels running runs; null turns it off",
        },
        "retention_days": {"type": "number", "exclusiveMinimum": 0},
        "max_events": {"type": "integer", "minimum": 1000},
        "store_private": {
            "type": "boolean",
            "description": "Also write key presses and clipboard contents to the event log",
        },
        "disabled_listeners": {"type": "array", "items": {"type": "string"}},
        "max_depth": {"type": "integer", "minimum": 1, "maximum": 100},
        "bus_capacity": {"type": "integer", "minimum": 100},
    },
    "additionalProperties": False,
}


@dataclass
class Settings:
    """What the user chose; the defaults are what Nerve does out of the box."""

    panic_hotkey: str | None = DEFAULT_PANIC_HOTKEY
    retention_days: float = 30
    max_events: int = 200_000
    store_private: bool = False
    disabled_listeners: list[str] = field(default_factory=list)
    max_depth: int = 8
    bus_capacity: int = 10_000
    errors: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Settings from ``path``; missing file: defaults; bad values: defaults + errors."""
        settings = cls()
        if not path.exists():
            return settings
        try:
            doc = load_yaml(path, filename=str(path))
        except YamlError as exc:
            settings.errors.append(str(exc))
            return settings
        data = doc.data if doc.data is not None else {}
        if not isinstance(data, dict):
            settings.errors.append(f"{path}:1:1: settings are a mapping of names to values")
            return settings
        bad: set[str] = set()
        for where, message in validation.check(SCHEMA, data):
            line, column = doc.position(where)
            settings.errors.append(f"{path}:{line}:{column}: {format_path(where)}: {message}")
            if where:
                bad.add(str(where[0]))
        names = {f.name for f in fields(cls)} - {"errors"}
        for key, value in data.items():
            if key in names and key not in bad:
                setattr(settings, key, value)
        for error in settings.errors:
            log.error("%s (using the default)", error)
        return settings
