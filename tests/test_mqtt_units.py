"""The MQTT bridge's parts without a network: settings checks, topic filters,
what may leave, what an incoming message becomes, the mqtt.publish action and
the Home Assistant schema checker itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Harness, Recorder, rules_from
from ha_schema import check_discovery
from nerve.bridges import mqtt
from nerve.bridges.mqtt import MqttBridge, MqttConfig, _Subscription
from nerve.bus import Bus
from nerve.events import Event, freeze
from nerve.packs.loader import load_pack
from nerve.settings import Settings


class FakeEngine:
    loop = None
    paused = False


def bridge(**block: Any) -> tuple[MqttBridge, Bus, Recorder]:
    bus = Bus(10_000)
    recorder = Recorder(bus)
    config = MqttConfig.from_settings({"broker": "mqtt://127.0.0.1:1", **block})
    return MqttBridge(config, "here", bus, FakeEngine()), bus, recorder  # type: ignore[arg-type]


# ------------------------------------------------------------------ settings

PASSWORD = "s3cr3t-Pw"


@pytest.mark.parametrize(
    ("block", "where", "message"),
    [
        ("  broker: http://h\n", "2:3: mqtt.broker", "mqtt://HOST[:PORT] or mqtts://"),
        ("  broker: mqtt://\n", "2:3: mqtt.broker", "names no host"),
        ("  broker: mqtt://h:99999\n", "2:3: mqtt.broker", "not a broker address"),
        ("  broker: mqtt://h/x\n", "2:3: mqtt.broker", "nothing after"),
        (f"  broker: mqtt://u:{PASSWORD}@h\n", "2:3: mqtt.broker", "no credentials"),
        ("  broker: mqtt://h\n  password: PW\n", "3:3: mqtt.password", "never written"),
        ("  broker: mqtt://h\n  password_file: /x\n", "3:3: mqtt.password_file", "username"),
        ("  broker: mqtt://h\n  publish: [Bad.Type]\n", "3:13: mqtt.publish[0]", "pattern"),
        ("  broker: mqtt://h\n  subscribe: [a/#/b]\n", "3:15: mqtt.subscribe[0]", "'#'"),
        ("  broker: mqtt://h\n  subscribe: [a+/b]\n", "3:15: mqtt.subscribe[0]", "'+'"),
        ("  broker: mqtt://h\n  subscribe: ['']\n", "3:15: mqtt.subscribe[0]", "empty"),
        ("  broker: mqtt://h\n  queue: 0\n", "3:3: mqtt.queue", ">= 1"),
        ("  broker: mqtt://h\n  discovery: yes please\n", "3:3: mqtt.discovery", "true or"),
        ("  broker: mqtt://h\n  brokr: x\n", "3:3: mqtt.brokr", "unknown key"),
        ("  publish: [x.*]\n", "1:1: mqtt", "missing 'broker'"),
    ],
)
def test_bad_mqtt_settings_name_file_line_and_field(
    tmp_path: Path, block: str, where: str, message: str
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("mqtt:\n" + block.replace("PW", PASSWORD))
    s = Settings.load(path)
    assert s.mqtt is None  # the bridge stays off
    assert any(e.startswith(f"{path}:{where}: ") and message in e for e in s.errors), s.errors
    assert all(e.endswith("(the MQTT bridge stays off)") for e in s.errors), s.errors
    assert all(PASSWORD not in e for e in s.errors)


@pytest.mark.parametrize("host", ["lap top", "a/b", "+", "#", "", "-x", "x" * 64, "ü"])
def test_a_bad_host_name_is_reported(tmp_path: Path, host: str) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(json.dumps({"host": host}))
    s = Settings.load(path)
    assert s.host is None
    assert any(f"{path}:1:2: host: a host name is" in e for e in s.errors), s.errors


def test_good_mqtt_settings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(
        "host: lap.top\nmqtt:\n  broker: mqtts://broker.lan\n  username: me\n"
        "  password_file: ~/p\n  publish: [build.*, key.down]\n"
        "  subscribe: [nerve/+/build.*, home/#]\n  discovery: true\n"
    )
    s = Settings.load(path)
    assert s.errors == []
    assert s.mqtt is not None
    config = MqttConfig.from_settings(s.mqtt)
    assert (config.tls, config.server, config.port) == (True, "broker.lan", 8883)
    assert config.broker == "mqtts://broker.lan:8883"


# -------------------------------------------------------------- topic filters

LEVEL = st.sampled_from(["a", "b", "x.y", "", "$SYS", "nerve"])
FILTER_LEVEL = st.sampled_from(["a", "b", "x.y", "", "+", "$SYS", "nerve"])


@settings(max_examples=600, deadline=None)
@given(
    topic=st.lists(LEVEL, min_size=1, max_size=4),
    filt=st.lists(FILTER_LEVEL, min_size=1, max_size=4),
    hash_end=st.booleans(),
)
def test_subscription_matching_agrees_with_paho(
    topic: list[str], filt: list[str], hash_end: bool
) -> None:
    from paho.mqtt.client import topic_matches_sub

    text = "/".join(topic)
    pattern = "/".join([*filt, "#"] if hash_end else filt)
    assert _Subscription(pattern).matches(text) == topic_matches_sub(pattern, text), (
        pattern,
        text,
    )


@pytest.mark.parametrize(
    ("pattern", "topic", "hit"),
    [
        ("nerve/+/build.*", "nerve/a/build.done", True),
        ("nerve/+/build.*", "nerve/a/build", False),
        ("nerve/+/build.*", "nerve/a/deploy.done", False),
        ("nerve/+/build.*", "nerve/a/build.done/x", False),
        ("nerve/*/x.?", "nerve/desk/x.a", True),
        ("nerve/*/x.?", "nerve/desk/x.ab", False),
    ],
)
def test_stars_match_within_a_level(pattern: str, topic: str, hit: bool) -> None:
    sub = _Subscription(pattern)
    assert "+" in sub.filter
    assert "*" not in sub.filter
    assert sub.matches(topic) is hit


# ----------------------------------------------------------- what may leave

PRIVATE = ["key.down", "key.up", "typed", "clipboard.changed", "key-x", "typed.more"]


@settings(max_examples=200, deadline=None)
@given(
    patterns=st.lists(
        st.sampled_from(["*", "*.*", "k*", "key.*", "key*", "typ*", "t*", "clipboard.*", "c*"]),
        min_size=1,
        max_size=4,
    )
)
def test_wildcards_never_let_private_events_out(patterns: list[str]) -> None:
    b, _, rec = bridge(publish=patterns)
    try:
        for type_ in PRIVATE:
            assert not b.allowed(type_), (patterns, type_)
        assert b.allowed("x.custom")
    finally:
        rec.close()


def test_private_types_listed_by_name_may_leave() -> None:
    b, _, rec = bridge(publish=["key.down", "typed", "*"])
    try:
        assert b.allowed("key.down")
        assert b.allowed("typed")
        assert not b.allowed("key.up")
        assert not b.allowed("clipboard.changed")
        assert not b.allowed("status")  # the birth/will topic
    finally:
        rec.close()


# ------------------------------------------------------------ what comes in


def payload(type_: str, **over: Any) -> bytes:
    body = {"type": type_, "id": 7, "session": "s1", "depth": 2, "data": {"n": 1}, **over}
    return json.dumps(body).encode()


def test_another_nerves_event_keeps_its_type_once() -> None:
    b, _bus, rec = bridge(subscribe=["nerve/#"])
    try:
        b._receive("nerve/desk/build.done", payload("build.done"), 1, False)
        b._receive("nerve/desk/build.done", payload("build.done"), 1, False)  # redelivered
        _bus.publish("test.marker", {})
        rec.wait("test.marker")
        (event,) = rec.of("build.done")
        assert event.source == "mqtt"
        assert dict(event.data) == {"n": 1, "host": "desk"}
        assert event.depth == 2  # the cascade guard counts across machines
        assert b.duplicates == 1
    finally:
        rec.close()


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        ("nerve/desk/hotkey", payload("hotkey", data={"combo": "ctrl+alt+t"})),
        ("nerve/desk/file.created", payload("file.created")),
        ("nerve/desk/key.down", payload("key.down")),
        ("nerve/desk/mqtt.message", payload("mqtt.message")),
        ("nerve/desk/Build", b"{}"),
        ("nerve/desk/build.done", b"not json"),
        ("nerve/desk/build.done", b"[1, 2]"),
        ("nerve/desk/build.done", payload("other.type")),
        ("nerve/desk/build.done", payload("build.done", data=[1])),
        ("nerve/desk/status", b"online"),
        ("nerve/a b/build.done", payload("build.done")),
        ("home/door", b"open"),
        ("home/door", b"\xff\xfe"),
    ],
)
def test_anything_else_becomes_mqtt_message(topic: str, body: bytes) -> None:
    b, _bus, rec = bridge(subscribe=["#"])
    try:
        b._receive(topic, body, 0, False)
        _bus.publish("test.marker", {})
        rec.wait("test.marker")
        (event,) = rec.of("mqtt.message")
        assert event.source == "mqtt"
        assert event.data["topic"] == topic
        assert event.data["host"] == topic
        assert event.data["payload"] == body.decode("utf-8", "replace")
        assert [e.type for e in rec.events] == ["mqtt.message", "test.marker"]
    finally:
        rec.close()


def test_own_topics_and_unsubscribed_topics_are_ignored() -> None:
    b, bus, rec = bridge(subscribe=["nerve/#", "home/+"])
    try:
        b._receive("nerve/here/build.done", payload("build.done"), 1, False)
        b._receive("nerve/here/status", b"online", 1, True)
        b._receive("office/door", b"open", 1, False)  # an earlier session's subscription
        bus.publish("test.marker", {})
        rec.wait("test.marker")
        assert [e.type for e in rec.events] == ["test.marker"]
        assert b.ignored == 3
    finally:
        rec.close()


def test_a_large_payload_is_cut() -> None:
    b, _bus, rec = bridge(subscribe=["#"])
    try:
        b._receive("big", b"x" * (mqtt.MAX_PAYLOAD_TEXT + 10), 0, False)
        (event,) = rec.wait("mqtt.message")
        assert len(event.data["payload"]) == mqtt.MAX_PAYLOAD_TEXT
        assert event.data["truncated"] is True
    finally:
        rec.close()


def test_events_from_mqtt_are_never_sent_back_out() -> None:
    b, _bus, rec = bridge(publish=["*"])
    sent: list[str] = []
    b.publish = lambda topic, *a, **k: sent.append(topic) or True  # type: ignore[method-assign]

    class Client:
        batch = contextlib.nullcontext

    b._client = Client()  # type: ignore[assignment]
    try:
        events = [
            Event("x.a", freeze({}), "mqtt", 1),
            Event("x.b", freeze({}), "cli", 2),
            Event("x.c", freeze({}), "rule:p/r", 3),
        ]
        b._send_batch(events)
        assert sent == ["nerve/here/x.b", "nerve/here/x.c"]
    finally:
        rec.close()


# ------------------------------------------------------------- the action


def test_mqtt_publish_compiles_with_its_capability() -> None:
    (rule,) = rules_from(
        "  - id: r\n    when: {event: x.go}\n    do:\n"
        "      - mqtt.publish: {topic: home/lamp/set, payload: 'on', qos: 1, retain: true}\n"
        "      - mqtt.publish: {topic: 'home/{event.room}/set'}\n"
    )
    assert "mqtt:home/lamp/set" in rule.capabilities
    assert "mqtt:*" in rule.capabilities
    assert "network" in rule.capabilities


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{topic: 'home/+/set'}", "no wildcard"),
        ("{topic: 'home/#'}", "no wildcard"),
        ("{topic: ''}", "must not be empty"),
        ("{topic: x, qos: 3}", "one of"),
        ("{payload: x}", "missing 'topic'"),
        ("{topic: x, retain: maybe}", "true or false"),
        ("{topic: '{event.nope.}'}", "placeholder"),
    ],
)
def test_bad_mqtt_publish_options_are_load_errors(options: str, message: str) -> None:
    text = (
        "nerve: 1\npack: {id: t.p}\nrules:\n  - id: r\n    when: {event: x.go}\n"
        f"    do:\n      - mqtt.publish: {options}\n"
    )
    pack = load_pack(text.encode(), filename="p.yaml")
    assert pack.errors, options
    error = str(pack.errors[0])
    assert error.startswith("p.yaml:7:"), error
    assert "rules[0].do[0].mqtt.publish" in error
    assert message in error, error


def test_without_a_broker_the_action_fails_clearly_and_a_dry_run_publishes_nothing(
    harness: Harness,
) -> None:
    harness.load(
        "  - id: pub\n    when: {event: x.go}\n    do:\n"
        "      - mqtt.publish: {topic: home/lamp, payload: 'on'}\n"
    )
    harness.publish("x.go")
    (failed,) = harness.recorder.wait("rule.failed")
    assert "no MQTT broker is set up" in failed.data["error"]

    rule = harness.engine.rule("test.pack/pub")
    assert rule is not None
    event = Event("x.go", freeze({}), "test", 1, time.time(), time.monotonic_ns())
    assert harness.engine.loop is not None
    ctx = asyncio.run_coroutine_threadsafe(
        harness.engine.dry_run(rule, event), harness.engine.loop
    ).result(timeout=10)
    (step,) = ctx.trace.actions
    assert step["result"] == "skipped (dry run)"


@settings(max_examples=200, deadline=None)
@given(value=st.text(min_size=1, max_size=20))
def test_a_placeholder_fills_one_topic_level(value: str) -> None:
    from nerve.engine.actions.mqtt import MqttPublishAction
    from nerve.engine.registry import ActionError, CompileContext
    from nerve.templates import Names, Scope

    action = MqttPublishAction.compile(
        {"topic": "home/{event.room}/set"},
        CompileContext(names=Names(None, frozenset())),
        {},
    )
    event = Event("x", freeze({"room": value}), "t", 1)
    scope = Scope(event=event, inputs={}, variables={}, rule={}, run={})
    if any(c in value for c in "/+#\x00"):
        with pytest.raises(ActionError, match="change the topic's levels"):
            action.render_topic(scope)
    else:
        topic = action.render_topic(scope)
        assert topic == f"home/{value}/set"
        assert topic.count("/") == 2


# ----------------------------------------------- the schema checker can fail


def test_the_home_assistant_checker_rejects_bad_payloads() -> None:
    b, _, rec = bridge(discovery=True, publish=["x.done"])
    try:
        messages = b.discovery_messages(["x.done"])
    finally:
        rec.close()
    assert len(messages) == 3
    for topic, config in messages.items():
        check_discovery(topic, config)  # the real ones pass
    for topic, config in messages.items():
        for key in config:
            broken = {k: v for k, v in config.items() if k != key}
            required = {
                "device_automation": {"atype", "t", "stype", "type", "dev"},
                "sensor": {"stat_t"},
                "switch": {"cmd_t"},
            }[topic.split("/")[1]]
            if key in required:
                with pytest.raises(AssertionError):
                    check_discovery(topic, broken)
        with pytest.raises(AssertionError):
            check_discovery(topic, {**config, "not_an_option": 1})
        with pytest.raises(AssertionError):
            check_discovery(topic, {**config, "dev": {"name": "no identifiers"}})
        with pytest.raises(AssertionError):
            check_discovery(topic.replace("/config", "/conf"), config)
    trigger = next(c for t, c in messages.items() if "device_automation" in t)
    with pytest.raises(AssertionError):
        check_discovery("homeassistant/device_automation/n/o/config", {**trigger, "t": "a/#/b"})
