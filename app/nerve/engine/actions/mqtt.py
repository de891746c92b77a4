"""``mqtt.publish``: a message to the MQTT broker of the settings."""

from __future__ import annotations

import json
from typing import Any

from nerve.engine import caps
from nerve.engine.actions._common import rendered, templated
from nerve.engine.registry import Action, ActionError, CompileContext, ConfigError, actions
from nerve.engine.runs import RunContext
from nerve.events import thaw
from nerve.templates import Scope, Template

#: What a placeholder's value may not hold in a topic: it stays one level.
_LEVEL_BREAKERS = ("/", "+", "#", "\x00")


@actions.register
class MqttPublishAction(Action):
    """Publish a message through the MQTT bridge (settings.yaml, ``mqtt:``)."""

    key = "mqtt.publish"
    description = (
        "Publish an MQTT message through the broker of the settings: "
        "{topic, payload (text, or any value: sent as JSON), qos, retain}"
    )
    capabilities = frozenset({"network"})
    schema = {
        "type": "object",
        "properties": {
            "topic": {
                "type": "string",
                "minLength": 1,
                "description": "The topic (no wildcards; a placeholder fills one level)",
            },
            "payload": {"description": "Text as is; a mapping, list or number as JSON"},
            "qos": {"enum": [0, 1, 2], "description": "Quality of service (default 0)"},
            "retain": {"type": "boolean", "description": "The broker keeps it for new subscribers"},
        },
        "required": ["topic"],
        "additionalProperties": False,
    }

    def __init__(self, options: dict[str, Any], ctx: CompileContext) -> None:
        from nerve.bridges.mqtt import publish_topic_problem

        self.topic: Template = ctx.template(options["topic"], ("topic",))
        literal = "".join(p for p in self.topic.pieces if p is not None)
        why = publish_topic_problem(literal or "x")
        if why:
            raise ConfigError(why, ("topic",))
        self.payload = templated(options.get("payload", ""), ctx, ("payload",))
        self.qos = int(options.get("qos", 0))
        self.retain = bool(options.get("retain", False))
        static = caps.static(self.topic, ctx)
        self.concrete = frozenset({caps.cap("mqtt", static)})

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> MqttPublishAction:
        return cls(options, ctx)

    def render_topic(self, scope: Scope) -> str:
        texts = iter(self.topic.placeholder_texts(scope))
        out: list[str] = []
        for piece in self.topic.pieces:
            if piece is not None:
                out.append(piece)
                continue
            value = next(texts)
            bad = next((c for c in _LEVEL_BREAKERS if c in value), None)
            if bad is not None:
                raise ActionError(
                    f"topic {self.topic.source!r}: a placeholder's value holds {bad!r}, "
                    "which would change the topic's levels"
                )
            out.append(value)
        topic = "".join(out)
        if not topic:
            raise ActionError(f"topic {self.topic.source!r} is empty once filled in")
        return topic

    async def execute(self, run: RunContext) -> Any:
        from nerve.bridges import mqtt

        bridge = mqtt.active(run.engine)
        if bridge is None:
            raise ActionError(
                "no MQTT broker is set up: add an mqtt: block with a broker to settings.yaml"
            )
        topic = self.render_topic(run.scope)
        if topic.startswith(f"nerve/{bridge.host}/"):
            raise ActionError(
                f"{topic!r} is this machine's own namespace (events, status, the switch); "
                "publish an event with 'emit' instead"
            )
        value = rendered(self.payload, run.scope)
        if isinstance(self.payload, Template) and not isinstance(value, (dict, list)):
            # Text stays text: "{event.n}" sends 5, not a JSON document.
            payload = ("" if value is None else str(value)).encode("utf-8", "surrogateescape")
        else:
            payload = json.dumps(thaw(value), ensure_ascii=False).encode("utf-8")
        if not bridge.publish(topic, payload, qos=self.qos, retain=self.retain):
            if bridge.state != "connected" and self.qos == 0:
                raise ActionError(
                    f"not connected to {bridge.config.broker} ({bridge.state}): "
                    "a QoS 0 message is not kept; use qos: 1 to queue it"
                )
            raise ActionError(
                f"the outgoing MQTT queue is full ({bridge.config.queue} messages): dropped"
            )
        return {
            "topic": topic,
            "bytes": len(payload),
            "qos": self.qos,
            "retain": self.retain,
            "queued": bridge.state != "connected",
        }
