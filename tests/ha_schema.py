"""Home Assistant's MQTT discovery schema, for the keys Nerve uses, field by field.

Written from Home Assistant's own code (homeassistant/components/mqtt:
``abbreviations.py``, ``device_trigger.py`` TRIGGER_DISCOVERY_SCHEMA,
``sensor.py``/``switch.py`` platform schemas, ``schemas.py``
MQTT_ENTITY_DEVICE_INFO_SCHEMA and MQTT_AVAILABILITY_SCHEMA, ``discovery.py``
topic pattern) and its documentation pages (sensor.mqtt, switch.mqtt,
device_trigger.mqtt). Abbreviated keys are expanded the way Home Assistant
expands them before validating; a key Home Assistant does not know for the
component, a missing required key, or a value of the wrong type fails.
"""

from __future__ import annotations

import re
from typing import Any

#: abbreviations.py ABBREVIATIONS (the entries a Nerve payload may use).
ABBREVIATIONS = {
    "atype": "automation_type",
    "avty_t": "availability_topic",
    "cmd_t": "command_topic",
    "dev": "device",
    "dev_cla": "device_class",
    "ent_cat": "entity_category",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "name": "name",
    "obj_id": "object_id",
    "opt": "optimistic",
    "pl": "payload",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "ret": "retain",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "stype": "subtype",
    "t": "topic",
    "uniq_id": "unique_id",
    "val_tpl": "value_template",
    "e": "encoding",
    "exp_aft": "expire_after",
    "frc_upd": "force_update",
    "unit_of_meas": "unit_of_measurement",
}
#: abbreviations.py DEVICE_ABBREVIATIONS.
DEVICE_ABBREVIATIONS = {
    "cns": "connections",
    "cu": "configuration_url",
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "sw": "sw_version",
    "sa": "suggested_area",
    "hw": "hw_version",
    "sn": "serial_number",
}

STR = "string"
BOOL = "boolean"
QOS = "qos"
TOPIC = "publish topic"
FILTER = "subscribe topic"
TEMPLATE = "template"
DEVICE = "device"
POS_INT = "positive int"

# MQTT_BASE_SCHEMA: qos, encoding. MQTT_AVAILABILITY_SINGLE_SCHEMA.
_BASE = {"qos": QOS, "encoding": STR}
_AVAILABILITY = {
    "availability_topic": FILTER,
    "availability_template": TEMPLATE,
    "payload_available": STR,
    "payload_not_available": STR,
}
# MqttEntity options (entity.py / MQTT_ENTITY_COMMON_SCHEMA).
_ENTITY = {
    **_AVAILABILITY,
    "device": DEVICE,
    "enabled_by_default": BOOL,
    "entity_category": STR,
    "icon": STR,
    "json_attributes_topic": FILTER,
    "json_attributes_template": TEMPLATE,
    "object_id": STR,
    "unique_id": STR,
    "name": STR,
}

SCHEMAS: dict[str, tuple[dict[str, str], set[str]]] = {
    # device_trigger.py TRIGGER_DISCOVERY_SCHEMA (extra keys are removed, not
    # rejected there; here any key outside it fails, to be strict).
    "device_automation": (
        {
            **_BASE,
            "automation_type": STR,
            "device": DEVICE,
            "payload": STR,
            "subtype": STR,
            "topic": FILTER,
            "type": STR,
            "value_template": TEMPLATE,
        },
        {"automation_type", "device", "subtype", "topic", "type"},
    ),
    # sensor.py: MQTT_RO_SCHEMA (state_topic required, value_template) + sensor options.
    "sensor": (
        {
            **_BASE,
            **_ENTITY,
            "state_topic": FILTER,
            "value_template": TEMPLATE,
            "device_class": STR,
            "expire_after": POS_INT,
            "force_update": BOOL,
            "unit_of_measurement": STR,
        },
        {"state_topic"},
    ),
    # switch.py: MQTT_RW_SCHEMA (command_topic required; state_topic, retain) + switch options.
    "switch": (
        {
            **_BASE,
            **_ENTITY,
            "command_topic": TOPIC,
            "state_topic": FILTER,
            "retain": BOOL,
            "value_template": TEMPLATE,
            "payload_on": STR,
            "payload_off": STR,
            "state_on": STR,
            "state_off": STR,
            "optimistic": BOOL,
            "device_class": STR,
        },
        {"command_topic"},
    ),
}

DEVICE_FIELDS = {
    "identifiers": "string list",
    "connections": "pair list",
    "manufacturer": STR,
    "model": STR,
    "name": STR,
    "hw_version": STR,
    "serial_number": STR,
    "sw_version": STR,
    "suggested_area": STR,
    "configuration_url": STR,
    "via_device": STR,
}

#: discovery.py: <prefix>/<component>/[<node_id>/]<object_id>/config
TOPIC_RE = re.compile(
    r"(?P<prefix>[^/]+(?:/[^/]+)*?)/(?P<component>\w+)/"
    r"(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config\Z"
)


def expand(config: dict[str, Any]) -> dict[str, Any]:
    """Abbreviations replaced by the full keys (as discovery.py does); a key
    given both ways fails."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        full = ABBREVIATIONS.get(key, key)
        assert full not in out, f"{full!r} given twice"
        out[full] = value
    if isinstance(out.get("device"), dict):
        device: dict[str, Any] = {}
        for key, value in out["device"].items():
            full = DEVICE_ABBREVIATIONS.get(key, key)
            assert full not in device, f"device {full!r} given twice"
            device[full] = value
        out["device"] = device
    return out


def _check_value(where: str, kind: str, value: Any) -> None:
    if kind in (STR, TEMPLATE):
        assert isinstance(value, str), f"{where}: expected a string, got {value!r}"
    elif kind == BOOL:
        assert isinstance(value, bool), f"{where}: expected a boolean, got {value!r}"
    elif kind == QOS:
        assert value in (0, 1, 2), f"{where}: qos is 0, 1 or 2, got {value!r}"
    elif kind == POS_INT:
        assert isinstance(value, int), f"{where}: expected an int"
        assert value >= 0, f"{where}: expected an int >= 0"
    elif kind == TOPIC:
        # util.valid_publish_topic: a valid topic without wildcards.
        assert isinstance(value, str), f"{where}: expected a string"
        assert value, f"{where}: empty topic"
        assert "+" not in value, f"{where}: wildcard in {value!r}"
        assert "#" not in value, f"{where}: wildcard in {value!r}"
        assert "\x00" not in value, f"{where}: NUL in topic"
    elif kind == FILTER:
        assert isinstance(value, str), f"{where}: expected a string"
        assert value, f"{where}: empty topic"
        levels = value.split("/")
        for i, level in enumerate(levels):
            assert "#" not in level or (level == "#" and i == len(levels) - 1), where
            assert "+" not in level or level == "+", where
    elif kind == DEVICE:
        assert isinstance(value, dict), f"{where}: expected a mapping"
        for key, item in value.items():
            assert key in DEVICE_FIELDS, f"{where}: unknown device key {key!r}"
            if DEVICE_FIELDS[key] == "string list":
                assert isinstance(item, list), where
                assert all(isinstance(i, str) for i in item), where
            elif DEVICE_FIELDS[key] == "pair list":
                assert all(isinstance(p, list) and len(p) == 2 for p in item), where
            else:
                assert isinstance(item, str), f"{where}.{key}: expected a string"
        # validate_device_has_at_least_one_identifier
        assert value.get("identifiers") or value.get("connections"), (
            f"{where}: a device needs identifiers or connections"
        )
    else:  # pragma: no cover
        raise AssertionError(kind)


def check_discovery(topic: str, config: dict[str, Any]) -> dict[str, Any]:
    """Check one discovery message; returns the expanded config."""
    m = TOPIC_RE.fullmatch(topic)
    assert m, f"{topic!r} is not a discovery topic"
    component = m["component"]
    assert component in SCHEMAS, f"component {component!r}"
    fields, required = SCHEMAS[component]
    full = expand(config)
    missing = required - set(full)
    assert not missing, f"{topic}: missing {sorted(missing)}"
    for key, value in full.items():
        assert key in fields, f"{topic}: {key!r} is not a {component} option"
        _check_value(f"{topic}: {key}", fields[key], value)
    if component == "device_automation":
        assert full["automation_type"] == "trigger", "automation_type must be 'trigger'"
    return full
