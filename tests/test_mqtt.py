"""The MQTT bridge, end to end: a real mosquitto (started here, on a free
127.0.0.1 port, with a generated configuration) and real headless Nerve
instances, each with the XDG folders of its own user."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_until, xdg_folders
from mosquitto import MOSQUITTO, Mosquitto
from test_cli import Instance, cli_ok

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto is not installed (.ci/run installs it)"
)

#: On B: each x.* event from MQTT appends "<type> <n> <host> <source>" to {input.out}.
RECORD_PACK = """\
nerve: 1
pack:
  id: test.mqtt
  name: MQTT tests
  version: 1.0.0
  inputs:
    out: {description: where lines go, type: path}
rules:
  - id: record
    when: {event: {type: "x.*", from: mqtt}}
    mode: queued
    max: 1000
    do:
      - run:
          argv: [sh, -c, 'echo "$1 $2 $3" >> "$4"', sh, "{event.type}", "{event.n}",
                 "{event.host}", "{input.out}"]
          wait: true
"""


class Node:
    """One machine: its own XDG folders, settings.yaml, and a headless Nerve."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name
        self.root.mkdir()
        self.name = name
        self.env = dict(os.environ)
        self.env.update(xdg_folders(self.root))
        self.env.pop("DISPLAY", None)
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        self.config = Path(self.env["XDG_CONFIG_HOME"]) / "nerve"
        self.config.mkdir(mode=0o700)
        self.instance: Instance | None = None

    def settings(self, text: str) -> None:
        (self.config / "settings.yaml").write_text(text)

    def start(self, *args: object) -> Instance:
        self.instance = Instance(self.env, [str(a) for a in args], self.root / "run.out")
        self.instance.wait_ready()
        return self.instance

    @property
    def socket(self) -> Path:
        return Path(self.env["XDG_RUNTIME_DIR"]) / "nerve" / "nerve.sock"

    def status(self) -> dict[str, Any]:
        from nerve.ipc import request

        result: dict[str, Any] = request("status", path=self.socket)
        return result

    def bridge(self) -> dict[str, Any]:
        bridges = self.status()["bridges"]
        assert [b["name"] for b in bridges] == ["mqtt"], bridges
        return dict(bridges[0])

    def emit(self, type_: str, **fields: object) -> None:
        """What `nerve emit TYPE k=v...` sends (without starting a Python each time)."""
        from nerve.ipc import request

        request("emit", {"type": type_, "data": fields}, path=self.socket)

    def events(self, *args: str) -> list[dict[str, Any]]:
        out = cli_ok(self.env, "events", "--json", *args)
        return [json.loads(line) for line in out.splitlines()]

    def wait_connected(self, timeout: float = 15.0) -> dict[str, Any]:
        return dict(
            wait_until(
                lambda: (b := self.bridge())["state"] == "connected" and b,
                timeout,
                f"{self.name} connected to the broker",
            )
        )

    def stop(self) -> None:
        if self.instance is not None:
            self.instance.stop()
            out = self.instance.output()
            assert "Traceback" not in out, out


@pytest.fixture
def broker(short_tmp: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(short_tmp / "broker").start()
    yield server
    server.stop()


@pytest.fixture
def nodes(short_tmp: Path) -> Iterator[Callable[[str], Node]]:
    made: list[Node] = []

    def make(name: str) -> Node:
        node = Node(short_tmp, name)
        made.append(node)
        return node

    yield make
    for node in made:
        node.stop()


def settings(broker: Mosquitto, host: str, **mqtt: Any) -> str:
    block = {"broker": broker.url, **mqtt}
    return json.dumps({"host": host, "mqtt": block})


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def record_pack(node: Node) -> tuple[Path, Path]:
    pack = node.root / "record.yaml"
    pack.write_text(RECORD_PACK)
    return pack, node.root / "got"


# ----------------------------------------------------------- one machine to another


def test_an_event_on_a_fires_a_rule_on_b(broker: Mosquitto, nodes: Callable[[str], Node]) -> None:
    a, b = nodes("a"), nodes("b")
    a.settings(settings(broker, "alpha", publish=["x.*"]))
    b.settings(settings(broker, "beta", subscribe=["nerve/+/x.*"]))
    pack, got = record_pack(b)
    a.start()
    b.start("--rules", pack, "--set", f"out={got}")
    a.wait_connected()
    b.wait_connected()

    a.emit("x.build", n=1)
    wait_until(lambda: lines(got) == ["x.build 1 alpha"], what="B's rule ran for A's event")

    # On B the event keeps its type, says where it came from, and is logged.
    (event,) = b.events("--type", "x.build")
    assert event["source"] == "mqtt"
    assert event["data"]["host"] == "alpha"
    assert event["data"]["n"] == 1
    # A published it once, B received it once; nerve status says so.
    assert a.bridge()["sent"] == 1
    assert b.bridge()["received"] == 1
    status = cli_ok(b.env, "status")
    assert "bridge mqtt: connected (mqtt://127.0.0.1:" in status
    assert "as beta)" in status


def test_key_typed_and_clipboard_events_are_not_published_by_wildcards(
    broker: Mosquitto, nodes: Callable[[str], Node], short_tmp: Path
) -> None:
    """`*` publishes everything but what the user types or copies; an exact name does."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from nerve.bridges.mqtt import MqttBridge, MqttConfig

    seen: list[str] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2)
    spy.on_message = lambda c, u, m: seen.append(m.topic)
    spy.connect("127.0.0.1", broker.port)
    spy.subscribe("nerve/#")
    spy.loop_start()
    try:
        from nerve.bus import Bus

        class FakeEngine:
            loop = None
            paused = False

        bus = Bus(1000)
        private = ["key.down", "key.up", "typed", "clipboard.changed"]
        for publish, expect in (
            (["*"], []),
            (["key.*", "typ*", "clipboard.*", "*.*"], []),
            (["key.down", "clipboard.changed"], ["key.down", "clipboard.changed"]),
        ):
            seen.clear()
            config = MqttConfig.from_settings({"broker": broker.url, "publish": publish})
            bridge = MqttBridge(config, "spyhost", bus, FakeEngine())  # type: ignore[arg-type]
            asyncio.run(bridge.start())
            wait_until(lambda b=bridge: b.state == "connected", what="the bridge connected")
            for type_ in private:
                bus.publish(type_, {"key": "a", "text": "secret"}, source="keyboard")
            bus.publish("x.marker", {}, source="cli")
            if publish == ["*"]:
                wait_until(
                    lambda: "nerve/spyhost/x.marker" in seen, what="the marker event went out"
                )
            else:
                n = len(expect)
                wait_until(lambda b=bridge, n=n: b.sent >= n, what="the exact types")
            asyncio.run(bridge.stop())  # (it waits for paho's thread)
            got = sorted(t.rsplit("/", 1)[1] for t in seen if t.count("/") == 2)
            assert [t for t in got if t in private] == sorted(expect), (publish, got)
    finally:
        spy.loop_stop()
        spy.disconnect()


def test_a_loop_between_two_instances_is_cut(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    """Both publish and subscribe to x.*: what came from MQTT never goes out
    again, and each ignores its own topics."""
    a, b = nodes("a"), nodes("b")
    for node, host in ((a, "alpha"), (b, "beta")):
        node.settings(settings(broker, host, publish=["x.*"], subscribe=["nerve/#"]))
    a.start()
    b.start()
    a.wait_connected()
    b.wait_connected()

    a.emit("x.ping", n=1)
    wait_until(lambda: b.events("--type", "x.ping"), what="B got A's event")
    b.emit("x.pong", n=2)
    wait_until(lambda: a.events("--type", "x.pong"), what="A got B's event")
    # Give a loop every chance to show: a marker sent after both has arrived.
    a.emit("x.marker", n=3)
    wait_until(lambda: b.events("--type", "x.marker"), what="B got the marker")

    for node in (a, b):
        pings = node.events("--type", "x.ping")
        pongs = node.events("--type", "x.pong")
        assert len(pings) == 1, pings
        assert len(pongs) == 1, pongs
    assert a.bridge()["sent"] == 2  # x.ping and x.marker: not B's x.pong
    assert b.bridge()["sent"] == 1  # x.pong: not A's x.ping
    assert a.events("--type", "x.ping")[0]["source"] == "cli"
    assert b.events("--type", "x.ping")[0]["source"] == "mqtt"


def test_rules_answering_each_other_across_machines_hit_the_cascade_guard(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    """A's rule answers B's pong with a ping, B's answers the ping with a pong:
    the cascade depth travels with the events, so the guard stops it."""
    a, b = nodes("a"), nodes("b")
    pack = """\
nerve: 1
pack: {{id: test.pingpong, name: pingpong, version: 1.0.0}}
rules:
  - id: answer
    when: {{event: {{type: {hear}, from: mqtt}}}}
    do: [{{emit: {{type: {say}, data: {{n: "{{event.n}}"}}}}}}]
"""
    for node, host, hear, say in (
        (a, "alpha", "x.pong", "x.ping"),
        (b, "beta", "x.ping", "x.pong"),
    ):
        node.settings(settings(broker, host, publish=[say], subscribe=[f"nerve/+/{hear}"]))
        (node.root / "p.yaml").write_text(pack.format(hear=hear, say=say))
    a.start("--rules", a.root / "p.yaml")
    b.start("--rules", b.root / "p.yaml")
    a.wait_connected()
    b.wait_connected()

    b.emit("x.pong", n=0)  # B starts it (from the command line: depth 0)

    def suspended() -> bool:
        return any(node.status()["engine"]["suspended"] for node in (a, b))

    wait_until(suspended, timeout=20, what="a rule suspended by the cascade guard")
    count = len(a.events("--type", "x.ping")) + len(b.events("--type", "x.pong"))
    assert count <= 12, count  # the default max_depth is 8


# -------------------------------------------------------------- the broker away


def test_broker_killed_and_restarted_events_queued_meanwhile_arrive_once(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    a, b = nodes("a"), nodes("b")
    a.settings(settings(broker, "alpha", publish=["x.*"]))
    b.settings(settings(broker, "beta", subscribe=["nerve/alpha/x.*"]))
    pack, got = record_pack(b)
    a.start()
    b.start("--rules", pack, "--set", f"out={got}")
    a.wait_connected()
    b.wait_connected()

    for n in range(1, 11):
        a.emit("x.seq", n=n)
    wait_until(lambda: len(lines(got)) == 10, what="the first 10 events on B")
    # B's session (its subscription) is on the broker's disk before the kill.
    db = broker.folder / "mosquitto.db"
    since = time.time()
    wait_until(lambda: db.exists() and db.stat().st_mtime > since, what="the broker saved")

    broker.kill()
    wait_until(lambda: a.bridge()["state"] == "reconnecting", what="A noticed")
    for n in range(11, 41):
        a.emit("x.seq", n=n)
    wait_until(lambda: a.bridge()["queued"] >= 30, what="A queued the events")
    assert a.bridge()["dropped"] == 0
    assert "reconnecting" in cli_ok(a.env, "status")

    broker.start()
    try:
        wait_until(lambda: len(lines(got)) >= 40, timeout=40, what="the queued events on B")
    except AssertionError:
        print("A", a.bridge(), "B", b.bridge(), lines(got))
        print(broker.log_text()[-6000:])
        raise
    # Anything redelivered would show up now.
    a.emit("x.seq", n=41)
    wait_until(lambda: len(lines(got)) >= 41, what="a last event after the restart")
    numbers = [int(line.split()[1]) for line in lines(got)]
    assert sorted(numbers) == list(range(1, 42)), numbers
    assert a.bridge()["queued"] == 0


def test_the_outgoing_queue_is_bounded_and_drops_are_counted(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    a = nodes("a")
    a.settings(settings(broker, "alpha", publish=["x.*"], queue=5))
    a.start()
    a.wait_connected()
    broker.kill()
    wait_until(lambda: a.bridge()["state"] == "reconnecting", what="A noticed")
    for n in range(8):
        a.emit("x.q", n=n)
    bridge = wait_until(lambda: (s := a.bridge())["dropped"] == 3 and s, what="3 drops")
    assert bridge["queued"] == 5
    assert "5 queued, 3 dropped" in cli_ok(a.env, "status")


# ------------------------------------------------------------------ credentials


def test_a_wrong_password_gives_a_clear_status_and_no_reconnect_storm(
    short_tmp: Path, nodes: Callable[[str], Node]
) -> None:
    server = Mosquitto(short_tmp / "secure", users={"nerve": "right-pass"}).start()
    try:
        a = nodes("a")
        secret = a.root / "mqtt.pass"
        secret.write_text("wrong-pass\n")
        secret.chmod(0o600)
        a.settings(
            settings(server, "alpha", username="nerve", password_file=str(secret), publish=["x.*"])
        )
        a.start()
        bridge = wait_until(
            lambda: (s := a.bridge())["state"] == "auth failed" and s, what="auth failed"
        )
        assert "refused the credentials" in bridge["last_error"]
        assert bridge["retry_in"] is not None
        assert bridge["retry_in"] > 30
        status = cli_ok(a.env, "status")
        assert "bridge mqtt: auth failed" in status
        # No storm: over a few seconds, no more attempts; the daemon runs on.
        first = bridge["attempts"]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert a.bridge()["attempts"] == first
            time.sleep(0.2)
        assert a.instance is not None
        assert a.instance.proc.poll() is None
        # The password is never in the log, the status, or the settings errors.
        assert "wrong-pass" not in a.instance.output()
        assert "wrong-pass" not in status

        # The right password and a reload: connected.
        secret.write_text("right-pass\n")
        cli_ok(a.env, "reload")
        a.wait_connected()
        assert "right-pass" not in a.instance.output()
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the certificates")
def test_tls_with_credentials(short_tmp: Path, nodes: Callable[[str], Node]) -> None:
    """mqtts:// with the CA from ca_file connects; without it, the certificate
    is refused and said so (no crash, no storm); the password never shows."""
    server = Mosquitto(short_tmp / "tls", users={"nerve": "tls-pass"}, tls=True).start()
    try:
        a, b = nodes("a"), nodes("b")
        secret = short_tmp / "pass"
        secret.write_text("tls-pass")
        secret.chmod(0o600)
        common = {"username": "nerve", "password_file": str(secret)}
        a.settings(settings(server, "alpha", ca_file=str(server.ca), publish=["x.*"], **common))
        b.settings(settings(server, "beta", subscribe=["nerve/+/x.*"], **common))
        a.start()
        b.start()
        a.wait_connected()
        bridge = wait_until(
            lambda: (s := b.bridge())["last_error"] and s, what="B's certificate error"
        )
        assert "certificate" in bridge["last_error"].lower(), bridge
        assert bridge["state"] == "reconnecting"
        a.emit("x.tls", n=1)
        wait_until(lambda: a.bridge()["sent"] == 1, what="A sent over TLS")
        assert a.bridge()["queued"] == 0 or wait_until(lambda: a.bridge()["queued"] == 0)
        for node in (a, b):
            assert node.instance is not None
            assert "tls-pass" not in node.instance.output()
    finally:
        server.stop()


def test_bad_mqtt_settings_name_the_file_and_field_and_nerve_runs_on(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    a = nodes("a")
    a.settings("mqtt:\n  broker: http://127.0.0.1:1\n  password: hunter2\n  subscribe: ['a/#/b']\n")
    a.start()
    out = a.instance.output() if a.instance else ""
    path = a.config / "settings.yaml"
    assert f"{path}:2:3: mqtt.broker: the broker is mqtt://HOST[:PORT]" in out
    assert f"{path}:3:3: mqtt.password: the password is never written in settings.yaml" in out
    assert f"{path}:4:15: mqtt.subscribe[0]: 'a/#/b' is not a topic filter" in out
    assert "hunter2" not in out
    assert a.status()["bridges"] == []


# --------------------------------------------------------------- Home Assistant


def test_discovery_payloads_and_the_pause_switch(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from ha_schema import check_discovery

    a = nodes("a")
    a.settings(settings(broker, "alpha", publish=["x.done", "y.*"], discovery=True))
    a.start()
    a.wait_connected()
    a.emit("y.later", n=1)  # a type first seen now gets its trigger now

    got: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        with lock:
            got[msg.topic] = bytes(msg.payload)

    ha = mqtt.Client(CallbackAPIVersion.VERSION2)
    ha.on_message = on_message
    ha.connect("127.0.0.1", broker.port)
    ha.subscribe([("homeassistant/#", 1), ("nerve/alpha/#", 1)])
    ha.loop_start()
    try:
        configs = wait_until(
            lambda: (
                (c := {t: json.loads(p) for t, p in dict(got).items() if t.endswith("/config")})
                and len(c) == 4
                and c
            ),
            what="the sensor, the switch and two triggers",
        )
        kinds = sorted(t.split("/")[1] for t in configs)
        assert kinds == ["device_automation", "device_automation", "sensor", "switch"]
        for topic, config in configs.items():
            check_discovery(topic, config)
        triggers = {
            c["stype"]: c for t, c in configs.items() if t.split("/")[1] == "device_automation"
        }
        assert set(triggers) == {"x.done", "y.later"}
        assert triggers["x.done"]["t"] == "nerve/alpha/x.done"
        assert got["nerve/alpha/status"] == b"online"
        last = json.loads(wait_until(lambda: got.get("nerve/alpha/event/last")))
        assert last["type"] == "y.later"
        wait_until(lambda: got.get("nerve/alpha/pause/state") == b"OFF", what="switch state")

        # The switch really pauses and resumes the engine.
        switch = next(c for t, c in configs.items() if "/switch/" in t)
        ha.publish(switch["cmd_t"], "ON", qos=1)
        wait_until(lambda: a.status()["engine"]["paused"], what="paused by the switch")
        assert "Home Assistant" in a.status()["engine"]["pause_reason"]
        wait_until(lambda: got.get(switch["stat_t"]) == b"ON", what="switch state ON")
        ha.publish(switch["cmd_t"], "OFF", qos=1)
        wait_until(lambda: not a.status()["engine"]["paused"], what="resumed by the switch")
        # A pause from elsewhere shows on the switch.
        cli_ok(a.env, "pause")
        wait_until(lambda: got.get(switch["stat_t"]) == b"ON", what="nerve pause on the switch")
    finally:
        ha.loop_stop()
        ha.disconnect()

    # A clean stop says offline (retained), as the last will would.
    a.stop()
    seen: list[bytes] = []
    probe = mqtt.Client(CallbackAPIVersion.VERSION2)
    probe.on_message = lambda c, u, m: seen.append(bytes(m.payload))
    probe.connect("127.0.0.1", broker.port)
    probe.subscribe("nerve/alpha/status")
    probe.loop_start()
    try:
        wait_until(lambda: seen == [b"offline"], what="offline, retained")
    finally:
        probe.loop_stop()
        probe.disconnect()


def test_the_last_will_says_offline_when_nerve_dies(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    a = nodes("a")
    a.settings(settings(broker, "alpha", keepalive=5))
    a.start()
    a.wait_connected()
    assert a.instance is not None
    a.instance.proc.kill()
    a.instance.proc.wait()
    out = subprocess.run(
        [
            "mosquitto_sub",
            "-p",
            str(broker.port),
            "-t",
            "nerve/alpha/status",
            "-C",
            "1",
            "-W",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.stdout.strip() == "offline", out


# ----------------------------------------------------------------- mqtt.publish


def test_mqtt_publish_action_sends_and_foreign_topics_become_mqtt_message(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    a, b = nodes("a"), nodes("b")
    pack = a.root / "pub.yaml"
    pack.write_text(
        """\
nerve: 1
pack: {id: test.pub, name: pub, version: 1.0.0}
rules:
  - id: publish
    when: {event: x.light}
    do:
      - mqtt.publish: {topic: "home/{event.room}/light", payload: "{event.state}", qos: 1}
"""
    )
    a.settings(settings(broker, "alpha"))
    b.settings(settings(broker, "beta", subscribe=["home/+/light"]))
    a.start("--rules", pack)
    b.start()
    a.wait_connected()
    b.wait_connected()
    a.emit("x.light", room="kitchen", state="on")
    (event,) = wait_until(lambda: b.events("--type", "mqtt.message"), what="mqtt.message on B")
    assert event["source"] == "mqtt"
    assert event["data"]["topic"] == "home/kitchen/light"
    assert event["data"]["payload"] == "on"
    assert event["data"]["host"] == "home/kitchen/light"

    # A placeholder cannot add topic levels or wildcards.
    a.emit("x.light", room="a/b", state="off")

    def failed() -> list[dict[str, Any]]:
        out = cli_ok(a.env, "runs", "--json")
        return [r for r in map(json.loads, out.splitlines()) if r["status"] == "failed"]

    (run,) = wait_until(failed, what="the failed run")
    assert "holds '/'" in run["error"], run
    assert b.events("--type", "mqtt.message") == [event]  # nothing else arrived


# ------------------------------------------------------------ with the webhook


def test_the_webhook_and_mqtt_run_side_by_side_and_reload_one_at_a_time(
    broker: Mosquitto, nodes: Callable[[str], Node]
) -> None:
    """Both bridges on one base: a webhook call goes out over MQTT, `nerve
    status` has a line for each, and a reload restarts only the bridge whose
    block changed (the other keeps its counters)."""
    from test_webhook import TOKEN, post

    a = nodes("a")
    token = a.config / "deploy.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)

    def write(publish: list[str], max_body: int) -> None:
        a.settings(
            json.dumps(
                {
                    "host": "alpha",
                    "mqtt": {"broker": broker.url, "publish": publish},
                    "webhook": {
                        "listen": "127.0.0.1:0",
                        "max_body": max_body,
                        "hooks": {"deploy": {"token_file": str(token)}},
                    },
                }
            )
        )

    def bridges() -> dict[str, dict[str, Any]]:
        return {b["name"]: b for b in a.status()["bridges"]}

    def ready() -> dict[str, dict[str, Any]] | None:
        now = bridges()
        states = {name: b["state"] for name, b in now.items()}
        return now if states == {"webhook": "listening", "mqtt": "connected"} else None

    write(["webhook.*", "x.*"], 1000)
    a.start()
    first = wait_until(ready, what="both bridges up")
    assert [b["name"] for b in a.status()["bridges"]] == ["webhook", "mqtt"]
    host, port = first["webhook"]["address"].rsplit(":", 1)
    where = (host, int(port))
    code, answer, _ = post(where)
    assert code == 202, answer
    wait_until(lambda: bridges()["mqtt"]["sent"] == 1, what="the webhook event sent over MQTT")
    status = cli_ok(a.env, "status")
    assert f"bridge webhook: listening on {host}:{port}, 1 accepted" in status
    assert "bridge mqtt: connected (mqtt://127.0.0.1:" in status
    assert "as alpha), 0 queued, 0 dropped, 1 sent, 0 received" in status

    # The mqtt block changes: MQTT starts again (its counters anew), the webhook goes on.
    write(["x.*"], 1000)
    cli_ok(a.env, "reload")
    after = wait_until(
        lambda: (now := ready()) and now["mqtt"]["sent"] == 0 and now, what="MQTT again"
    )
    assert after["webhook"]["address"] == first["webhook"]["address"]
    assert after["webhook"]["counts"]["accepted"] == 1
    a.emit("x.one")
    wait_until(lambda: bridges()["mqtt"]["sent"] == 1, what="x.one sent")

    # The webhook block changes: the webhook starts again, MQTT goes on.
    write(["x.*"], 2000)
    cli_ok(a.env, "reload")
    again = wait_until(
        lambda: (now := ready()) and not now["webhook"]["counts"] and now,
        what="the webhook again",
    )
    assert again["mqtt"]["sent"] == 1
    assert again["mqtt"]["attempts"] == after["mqtt"]["attempts"]

    # Neither block: both stop, and say nothing more.
    a.settings("{}\n")
    cli_ok(a.env, "reload")
    assert a.status()["bridges"] == []
    assert "bridge " not in cli_ok(a.env, "status")
