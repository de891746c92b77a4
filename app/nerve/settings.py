"""User settings (``settings.yaml`` in the config folder).

Every key is optional; a bad value is reported with its file:line and the
default is used, so a typo never keeps Nerve from starting.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nerve.bridges import mqtt as mqtt_bridge
from nerve.bridges import schema as bridge_schema
from nerve.engine import validation
from nerve.packs.yamlsource import YamlError, format_path, load_yaml
from nerve.paths import atomic_write, read_user_file

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
        "retention_days": {"type": "number", "exclusiveMinimum": 0, "maximum": 36500},
        "max_events": {"type": "integer", "minimum": 1000, "maximum": 1_000_000_000},
        "store_private": {
            "type": "boolean",
            "description": "Also write key presses and clipboard contents to the event log",
        },
        "disabled_listeners": {"type": "array", "items": {"type": "string"}},
        "max_depth": {"type": "integer", "minimum": 1, "maximum": 100},
        "max_loop_rounds": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
        "bus_capacity": {"type": "integer", "minimum": 100, "maximum": 10_000_000},
        "webhook": bridge_schema.WEBHOOK,
        "host": bridge_schema.HOST,
        "mqtt": bridge_schema.MQTT,
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
    #: Loop rounds one run may make, all its repeats together (the cascade guard's).
    max_loop_rounds: int = 100_000
    bus_capacity: int = 10_000
    #: The inbound webhook block (None: off); see nerve.bridges.webhook.
    webhook: dict[str, Any] | None = None
    #: This machine's name in topics and bridged events (None: the host name).
    host: str | None = None
    #: The ``mqtt:`` block as written (checked); None: no MQTT bridge.
    mqtt: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Settings from ``path``; missing file: defaults; bad values: defaults + errors."""
        settings = cls()
        if not path.exists():
            return settings
        try:
            settings._read(path)
        finally:
            for error in settings.errors:
                log.error("%s", error)
        return settings

    def _read(self, path: Path) -> None:
        try:
            doc = load_yaml(path, filename=str(path))
        except YamlError as exc:
            self.errors.append(f"{exc} (using the default settings)")
            return
        data = doc.data if doc.data is not None else {}
        if not isinstance(data, dict):
            self.errors.append(
                f"{path}:1:1: settings are a mapping of names to values (using the defaults)"
            )
            return
        bad: set[str] = set()
        for where, message in validation.check(SCHEMA, data):
            line, column = doc.position(where)
            self.errors.append(
                f"{path}:{line}:{column}: {format_path(where)}: {message} {_fallback(where)}"
            )
            if where:
                bad.add(str(where[0]))
        for key, where, message in self._semantic_problems(data, bad):
            line, column = doc.position(where)
            self.errors.append(
                f"{path}:{line}:{column}: {format_path(where)}: {message} {_fallback(where)}"
            )
            bad.add(key)
        names = {f.name for f in fields(self)} - {"errors"}
        for key, value in data.items():
            if key in names and key not in bad:
                setattr(self, key, value)

    @staticmethod
    def _semantic_problems(
        data: dict[str, Any], bad: set[str]
    ) -> list[tuple[str, tuple[str | int, ...], str]]:
        """What the schema cannot say: host names, broker addresses, topics."""
        out: list[tuple[str, tuple[str | int, ...], str]] = []
        if "host" in data and "host" not in bad:
            why = mqtt_bridge.host_problem(data["host"])
            if why:
                out.append(("host", ("host",), why))
        if isinstance(data.get("mqtt"), dict) and "mqtt" not in bad:
            for where, message in mqtt_bridge.problems(data["mqtt"]):
                out.append(("mqtt", ("mqtt", *where), message))
        return out

    def values(self) -> dict[str, Any]:
        """Every setting by its key in settings.yaml."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "errors"}

    def save(self, path: Path) -> None:
        """Write these settings to ``path`` atomically (the old file stays as ``path~``).

        The file's comments, key order and keys Nerve does not know are kept. A
        key is written when it is in the file already or differs from its
        default, so a file stays as short as the user's choices. A file that
        is not a YAML mapping is replaced (its backup keeps it). Raises OSError.
        """
        from ruamel.yaml import YAML
        from ruamel.yaml.comments import CommentedMap
        from ruamel.yaml.error import YAMLError

        yaml = YAML()
        yaml.indent(mapping=2, sequence=4, offset=2)
        yaml.representer.add_representer(
            type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
        )
        doc: Any = None
        if path.exists():
            try:
                doc = yaml.load(read_user_file(path, max_bytes=1 << 20).decode("utf-8"))
            except (YAMLError, UnicodeDecodeError, OSError) as exc:
                log.warning("%s cannot be read as YAML (%s); writing it anew", path, exc)
        if not isinstance(doc, CommentedMap):
            doc = CommentedMap()
        defaults = Settings().values()
        for key, chosen in self.values().items():
            value = _plain(chosen)
            if key in _BLOCKS:
                # None: not read (absent or not valid): the file keeps what it has.
                # Empty: switched off. The same as the file's: kept as written.
                if value is None:
                    continue
                if not value:
                    doc.pop(key, None)
                elif key not in doc or doc[key] != value:
                    doc[key] = value
                continue
            if key in doc or value != defaults[key]:
                doc[key] = value
        out = io.StringIO()
        yaml.dump(doc, out)
        atomic_write(path, out.getvalue().encode("utf-8"))


def _fallback(where: Any) -> str:
    """What Nerve does instead of a bad setting."""
    if where and where[0] == "mqtt":
        return "(the MQTT bridge stays off)"
    return "(using the default)"


#: Settings that are whole blocks the Settings window does not edit yet.
_BLOCKS = frozenset({"mqtt", "host"})


def _plain(value: Any) -> Any:
    """A value as settings.yaml shows it: 30 rather than 30.0, a fresh list."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return list(value)
    return value
