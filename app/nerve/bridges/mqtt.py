"""The MQTT bridge: events out to a broker, topics in as events.

- Events whose type matches ``mqtt.publish`` in the settings leave as JSON on
  ``nerve/<host>/<type>``, QoS 1 (so what was queued while the broker was away
  arrives once it is back). Key, typed and clipboard events leave only when
  their type is listed by name: no wildcard matches them.
- Subscribed topics become events. ``nerve/<otherhost>/<type>`` from another
  Nerve keeps its type, with ``source: mqtt`` and ``host`` in its data; any
  other topic becomes ``mqtt.message`` (``topic``, ``payload``). An event that
  came from MQTT is never published again, and topics of this host are
  ignored, so two instances that subscribe to each other do not loop. The
  sender's cascade depth travels along, so rules that answer each other
  across machines are stopped by the cascade guard like local ones.
- Birth and last will on ``nerve/<host>/status`` (``online``/``offline``,
  retained); reconnection with back-off (a refused password waits long, and
  says ``auth failed``); a bounded outgoing queue whose drops are counted.
- Home Assistant MQTT discovery (``discovery: true``): Nerve is a device with a
  device trigger per published event type, a sensor for the last event and a
  switch that pauses and resumes it.

The network runs on a thread of paho-mqtt's (paho's loop blocks); it hands
events to the bus, whose ``publish`` is a quick, thread-safe enqueue. paho is
imported only when a broker is set up. ``start`` and ``stop`` are coroutines on
the engine loop (see :class:`nerve.bridges.base.Bridge`): ``start`` starts that
thread, ``stop`` disconnects and waits for it off the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import random
import re
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from nerve import __version__
from nerve.bridges.base import Bridge, BridgeState
from nerve.bridges.schema import MQTT as SCHEMA
from nerve.events import Event, TypePattern, reserved_type, thaw, valid_type

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from nerve.bus import Bus, Subscription
    from nerve.engine.engine import Engine

log = logging.getLogger(__name__)

#: Event families that describe what the user types or copies: published only
#: when the exact type is listed (``key.down``), never through a wildcard.
PRIVATE_FAMILIES = frozenset({"key", "typed", "clipboard"})

DEFAULT_QUEUE = 10_000
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
#: After the broker refused the credentials: try again this late (doubling).
AUTH_BACKOFF_FIRST_S = 60.0
AUTH_BACKOFF_MAX_S = 600.0
#: A connection that lasted this long resets the back-off.
STABLE_S = 5.0
#: Largest payload of an ``mqtt.message`` event (the rest is cut, ``truncated``).
MAX_PAYLOAD_TEXT = 65_536
#: How many (host, session, id) keys are remembered to drop redelivered events.
DEDUPE_WINDOW = 20_000
#: How many event types get a Home Assistant device trigger.
MAX_TRIGGERS = 500
#: Refused connections whose reason means the credentials (MQTT 3.1.1 and 5 codes).
AUTH_CODES = frozenset({4, 5, 134, 135})

HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}")
_GLOB_CHARS = frozenset("*?[")

Problem = tuple[tuple[str | int, ...], str]


def default_host() -> str:
    """This machine's name as topics carry it (``laptop`` of ``laptop.lan``)."""
    name = socket.gethostname().split(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9_\-]", "-", name).strip("-_") or "nerve"
    return name[:63]


def host_problem(host: object) -> str | None:
    if not isinstance(host, str) or not HOST_RE.fullmatch(host):
        return (
            "a host name is letters, digits, '.', '-' and '_' (at most 63, "
            "starting with a letter or digit): it is one level of MQTT topics"
        )
    return None


def topic_filter_problem(topic: str) -> str | None:
    """Why ``topic`` is not an MQTT subscription filter (None: it is one)."""
    if not topic:
        return "an empty topic"
    if "\x00" in topic:
        return "a topic cannot hold NUL"
    if len(topic.encode("utf-8", "surrogatepass")) > 65535:
        return "a topic is at most 65535 bytes"
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level, the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def publish_topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to (None: it can)."""
    if not topic:
        return "an empty topic"
    if "+" in topic or "#" in topic:
        return "a topic to publish to holds no wildcard ('+', '#')"
    if "\x00" in topic:
        return "a topic cannot hold NUL"
    if len(topic.encode("utf-8", "surrogatepass")) > 65535:
        return "a topic is at most 65535 bytes"
    return None


def _type_pattern_ok(pattern: str) -> bool:
    bare = pattern.replace("*", "a").replace("?", "a").replace("[", "").replace("]", "")
    return valid_type(bare)


def problems(block: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with an ``mqtt:`` block that its JSON Schema already accepted."""
    out: list[Problem] = []
    if "password" in block:
        out.append(
            (
                ("password",),
                "the password is never written in settings.yaml: put it in a file "
                "only you can read and name that file in password_file",
            )
        )
    broker = block.get("broker", "")
    try:
        parts = urlsplit(broker)
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        out.append((("broker",), f"not a broker address: {exc}"))
    else:
        if parts.scheme not in DEFAULT_PORTS:
            out.append((("broker",), "the broker is mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"))
        elif parts.username is not None or parts.password is not None:
            out.append(
                (
                    ("broker",),
                    "no credentials in the broker address: use username and password_file",
                )
            )
        elif not hostname:
            out.append((("broker",), "the broker address names no host"))
        elif parts.path not in ("", "/") or parts.query or parts.fragment:
            out.append((("broker",), "the broker address is mqtt(s)://HOST[:PORT], nothing after"))
        elif port == 0:
            out.append((("broker",), "port 0 is not a port"))
    if "password_file" in block and "username" not in block:
        out.append((("password_file",), "a password needs a username"))
    for i, pattern in enumerate(block.get("publish", [])):
        if not _type_pattern_ok(pattern):
            out.append(
                (
                    ("publish", i),
                    f"{pattern!r} is not an event type pattern (build.*, file.created)",
                )
            )
    for i, topic in enumerate(block.get("subscribe", [])):
        why = topic_filter_problem(topic)
        if why:
            out.append((("subscribe", i), f"{topic!r} is not a topic filter: {why}"))
    prefix = block.get("discovery_prefix")
    if prefix is not None and publish_topic_problem(prefix):
        out.append((("discovery_prefix",), f"{prefix!r} cannot be a topic prefix"))
    return out


@dataclass(frozen=True)
class MqttConfig:
    """A checked ``mqtt:`` block."""

    broker: str
    tls: bool
    server: str
    port: int
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    discovery: bool = False
    discovery_prefix: str = "homeassistant"
    queue: int = DEFAULT_QUEUE
    keepalive: int = 60

    @classmethod
    def from_settings(cls, block: Mapping[str, Any]) -> MqttConfig:
        """From a block that :func:`problems` found nothing wrong with."""
        parts = urlsplit(block["broker"])
        return cls(
            broker=f"{parts.scheme}://{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}",
            tls=parts.scheme == "mqtts",
            server=parts.hostname or "",
            port=parts.port or DEFAULT_PORTS[parts.scheme],
            username=block.get("username"),
            password_file=block.get("password_file"),
            ca_file=block.get("ca_file"),
            publish=tuple(block.get("publish", ())),
            subscribe=tuple(block.get("subscribe", ())),
            discovery=bool(block.get("discovery", False)),
            discovery_prefix=str(block.get("discovery_prefix", "homeassistant")).rstrip("/"),
            queue=int(block.get("queue", DEFAULT_QUEUE)),
            keepalive=int(block.get("keepalive", 60)),
        )


class _Subscription:
    """One ``subscribe`` entry: the filter sent to the broker, and the local test
    for levels with ``*``/``?`` (MQTT has no partial-level wildcard)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.levels = text.split("/")
        self.globs: dict[int, TypePattern] = {}
        broker_levels = []
        for i, level in enumerate(self.levels):
            if any(c in level for c in _GLOB_CHARS) and level not in ("+", "#"):
                self.globs[i] = TypePattern([level])
                broker_levels.append("+")
            else:
                broker_levels.append(level)
        self.filter = "/".join(broker_levels)

    def matches(self, topic: str) -> bool:
        levels = topic.split("/")
        for i, want in enumerate(self.levels):
            if want == "#":
                # 'a/#' also matches 'a'; '#' at the top matches no '$SYS' topic.
                return not (i == 0 and topic.startswith("$"))
            if i >= len(levels):
                return False
            got = levels[i]
            if want == "+":
                if i == 0 and got.startswith("$"):
                    return False
                continue
            glob = self.globs.get(i)
            if glob is not None:
                if not glob.matches(got):
                    return False
            elif got != want:
                return False
        return len(levels) == len(self.levels)


_IGNORE = ("", "ignore")
_FOREIGN = ("", "foreign")

#: The running bridge of each engine (the ``mqtt.publish`` action finds it here).
_ACTIVE: weakref.WeakKeyDictionary[Engine, MqttBridge] = weakref.WeakKeyDictionary()


def active(engine: Engine) -> MqttBridge | None:
    return _ACTIVE.get(engine)


def _slug(text: str) -> str:
    """An id Home Assistant accepts in a discovery topic ([a-zA-Z0-9_-])."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", text)


class MqttBridge(Bridge):
    """One broker connection, started and stopped with Nerve."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, host: str, bus: Bus, engine: Engine) -> None:
        super().__init__()
        self.config = config
        self.address = config.broker
        self.host = host
        self.bus = bus
        self.engine = engine
        self.session = f"{random.getrandbits(64):016x}"
        base = f"nerve/{host}"
        self.status_topic = f"{base}/status"
        self.pause_state_topic = f"{base}/pause/state"
        self.pause_command_topic = f"{base}/pause/set"
        self.last_event_topic = f"{base}/event/last"
        self.node = _slug(host)
        self._subs = [_Subscription(t) for t in config.subscribe]
        self._exact = frozenset(p for p in config.publish if not any(c in p for c in _GLOB_CHARS))
        self._allowed: dict[str, bool] = {}
        self._client: paho.Client | None = None
        self._sub: Subscription | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.attempts = 0
        self.connected_since: float | None = None
        self.retry_at: float | None = None
        self.auth_failed = False
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.duplicates = 0
        self.ignored = 0
        self._seen: set[tuple[str, str, int]] = set()
        self._seen_order: collections.deque[tuple[str, str, int]] = collections.deque()
        self._announced: set[str] = set()
        self._topics: dict[str, tuple[str, str]] = {}
        self._pause_shown: bool | None = None
        self._pause_timer: asyncio.TimerHandle | None = None
        self._warned_status_type = False

    # ------------------------------------------------------------- life

    async def start(self) -> None:
        """On the engine loop: set up the client and connect in the background
        (on paho's thread; nothing here waits for the network)."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        config = self.config
        client = _client_class()(
            CallbackAPIVersion.VERSION2,
            client_id=f"nerve-{self.host}",
            # The broker keeps this machine's subscriptions (and the QoS 1
            # messages for them) while it is away or reconnecting.
            clean_session=False,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        client.max_queued_messages_set(config.queue)
        client.max_inflight_messages_set(0)  # (bounded by the queue)
        client.connect_timeout = 10.0
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        if config.username is not None:
            client.username_pw_set(config.username, self._password())
        if config.tls:
            client.tls_set(ca_certs=config.ca_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        self._sub = self.bus.subscribe(
            list(config.publish) or ["nothing.published"],
            self._send_batch,
            name="mqtt",
        )
        _ACTIVE[self.engine] = self
        self.state = BridgeState.CONNECTING
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()
        if config.discovery:
            self._watch_pause()

    def _password(self) -> str | None:
        """The password from ``password_file`` (its first line); never logged."""
        if self.config.password_file is None:
            return None
        path = Path(self.config.password_file).expanduser()
        try:
            if path.stat().st_mode & 0o077:
                log.warning("mqtt: the password file %s can be read by others; chmod 600 it", path)
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            message = f"cannot read the password file {path}: {reason}"
            self.error(message)
            log.error("mqtt: %s", message)
            return None
        return text.splitlines()[0] if text else ""

    async def stop(self) -> None:
        """Say ``offline`` (retained), disconnect, and wait (off the loop) for
        the network thread to end."""
        self._stop()
        await asyncio.to_thread(self.join)

    def _stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._pause_timer is not None:
            self._pause_timer.cancel()
        if self._sub is not None:
            self._sub.close()
        client = self._client
        if client is not None and self.state == BridgeState.CONNECTED:
            try:
                client.publish(self.status_topic, "offline", qos=1, retain=True)
            except Exception:  # pragma: no cover - a closing socket
                log.debug("mqtt: could not say offline", exc_info=True)
        if client is not None:
            client.disconnect()
        if _ACTIVE.get(self.engine) is self:
            del _ACTIVE[self.engine]
        self.state = BridgeState.STOPPED

    def join(self, timeout: float = 3.0) -> None:
        """Wait for the network thread to end (after :meth:`stop`)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        """The network thread: connect, serve, wait, again, until stopped."""
        client = self._client
        assert client is not None
        delay = BACKOFF_FIRST_S
        auth_delay = AUTH_BACKOFF_FIRST_S
        while not self._stopping.is_set():
            self.attempts += 1
            self.retry_at = None
            if not self.auth_failed:
                self.state = "connecting" if self.attempts == 1 else "reconnecting"
            try:
                client.connect(self.config.server, self.config.port, self.config.keepalive)
            except (OSError, ValueError) as exc:
                self._note_error(_describe(exc))
            else:
                try:
                    client.loop_forever(retry_first_connection=False)
                except Exception as exc:
                    log.exception("mqtt: the connection failed")
                    self._note_error(_describe(exc))
                if self.connected_since is not None:
                    if time.monotonic() - self.connected_since >= STABLE_S:
                        delay = BACKOFF_FIRST_S
                    self.connected_since = None
            if self._stopping.is_set():
                break
            if self.auth_failed:
                wait = auth_delay
                auth_delay = min(auth_delay * 2, AUTH_BACKOFF_MAX_S)
            else:
                self.state = "reconnecting"
                wait = delay * random.uniform(0.8, 1.2)
                delay = min(delay * 2, BACKOFF_MAX_S)
            self.retry_at = time.monotonic() + wait
            self._stopping.wait(wait)
        self.state = "stopped"

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("mqtt: %s: %s", self.config.broker, message)
        self.error(message)

    # ------------------------------------------------------- paho callbacks

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            code = reason.value
            if code in AUTH_CODES:
                self.auth_failed = True
                self.state = "auth failed"
                who = f"user {self.config.username!r}" if self.config.username else "no user"
                self._note_error(f"the broker refused the credentials ({who}): {reason}")
            else:
                self._note_error(f"the broker refused the connection: {reason}")
            return
        self.auth_failed = False
        self.state = "connected"
        self.connected_since = time.monotonic()
        self.last_error = None
        log.info("mqtt: connected to %s as %s", self.config.broker, self.host)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        filters = sorted({s.filter for s in self._subs})
        if self.config.discovery:
            filters += [self.pause_command_topic, f"{self.config.discovery_prefix}/status"]
        if filters:
            client.subscribe([(f, 1) for f in filters])
        if self.config.discovery:
            self._announce_all()
            self._pause_shown = None  # say it again on this connection

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self._stopping.is_set():
            return
        if not self.auth_failed:
            self.state = "reconnecting"
            if reason.is_failure:
                self._note_error(f"connection lost: {reason}")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            self._receive(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
        except Exception:
            log.exception("mqtt: a message on %r could not be handled", msg.topic[:200])

    # ------------------------------------------------------------ incoming

    def _receive(self, topic: str, payload: bytes, qos: int, retained: bool) -> None:
        if self.config.discovery:
            if topic == self.pause_command_topic:
                self._pause_command(payload, retained)
                return
            if topic == f"{self.config.discovery_prefix}/status":
                if payload == b"online":  # Home Assistant restarted: say it all again
                    self._announce_all()
                return
        kind = self._topics.get(topic)
        if kind is None:
            kind = self._topic_kind(topic)
            if len(self._topics) < 4096:
                self._topics[topic] = kind
        if kind is _IGNORE:
            self.ignored += 1
            return
        if kind is not _FOREIGN and self._from_nerve(kind[0], kind[1], payload):
            return
        text = payload[:MAX_PAYLOAD_TEXT].decode("utf-8", "replace")
        data: dict[str, Any] = {
            "topic": topic,
            "payload": text,
            "host": topic,
            "qos": qos,
            "retained": retained,
        }
        if len(payload) > MAX_PAYLOAD_TEXT:
            data["truncated"] = True
        self.received += 1
        self.bus.publish("mqtt.message", data, source="mqtt")

    def _topic_kind(self, topic: str) -> tuple[str, str]:
        """What messages on ``topic`` are: ``_IGNORE``, ``_FOREIGN`` (an
        mqtt.message), or (host, type) of another Nerve's events."""
        if not any(s.matches(topic) for s in self._subs):
            return _IGNORE  # (a subscription of an earlier session)
        levels = topic.split("/")
        if levels[0] == "nerve" and len(levels) >= 2 and levels[1] == self.host:
            return _IGNORE  # this machine's own topics: never back in
        if len(levels) != 3 or levels[0] != "nerve":
            return _FOREIGN
        host, type_ = levels[1], levels[2]
        if not valid_type(type_) or type_ == "status" or host_problem(host):
            return _FOREIGN
        if reserved_type(type_):
            # Another machine's file.created or hotkey must not fire the rules
            # meant for this one's: it arrives as an mqtt.message.
            return _FOREIGN
        return (host, type_)

    def _from_nerve(self, host: str, type_: str, payload: bytes) -> bool:
        """An event another Nerve published: onto the bus with its type. False:
        not one (its payload is not an event's JSON)."""
        try:
            body = json.loads(payload)
        except (ValueError, RecursionError):
            return False
        if not isinstance(body, dict) or body.get("type", type_) != type_:
            return False
        data = body.get("data", {})
        if not isinstance(data, dict):
            return False
        key = body.get("id")
        session = body.get("session")
        if isinstance(key, int) and isinstance(session, str):
            seen = (host, session, key)
            if seen in self._seen:
                self.duplicates += 1
                return True
            self._seen.add(seen)
            self._seen_order.append(seen)
            if len(self._seen_order) > DEDUPE_WINDOW:
                self._seen.discard(self._seen_order.popleft())
        depth = body.get("depth", 0)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            depth = 0
        self.received += 1
        self.bus.publish(type_, {**data, "host": host}, source="mqtt", depth=min(depth, 1000))
        return True

    def _pause_command(self, payload: bytes, retained: bool) -> None:
        """The Home Assistant switch: ON pauses Nerve, OFF resumes it."""
        loop = self.engine.loop
        if retained or loop is None:
            return  # a retained command would pause Nerve at every start
        command = payload.decode("utf-8", "replace").strip().upper()
        if command == "ON":
            loop.call_soon_threadsafe(self.engine.pause, "the Home Assistant switch (MQTT)")
        elif command == "OFF":
            loop.call_soon_threadsafe(self.engine.resume)
        else:
            log.warning("mqtt: %s: not ON or OFF: %r", self.pause_command_topic, command[:40])
            return
        loop.call_soon_threadsafe(self._show_pause)

    # ------------------------------------------------------------ outgoing

    def allowed(self, type_: str) -> bool:
        """Whether events of ``type_`` (matched by the patterns) may leave."""
        hit = self._allowed.get(type_)
        if hit is None:
            family = re.split(r"[.\-]", type_, maxsplit=1)[0]
            hit = type_ in self._exact if family in PRIVATE_FAMILIES else True
            if type_ == "status":
                hit = False  # nerve/<host>/status is the birth and last will
                if not self._warned_status_type:
                    self._warned_status_type = True
                    log.warning(
                        "mqtt: events of type 'status' are not published (its topic "
                        "is this machine's online/offline status)"
                    )
            if len(self._allowed) < 4096:
                self._allowed[type_] = hit
        return hit

    def encode(self, event: Event) -> bytes:
        return json.dumps(
            {
                "type": event.type,
                "id": event.id,
                "time": event.time,
                "host": self.host,
                "session": self.session,
                "source": event.source,
                "depth": event.depth,
                "data": thaw(event.data),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")

    def _send_batch(self, batch: list[Event]) -> None:
        """Bus events to the broker (the subscription's delivery thread)."""
        client = self._client
        if client is None:
            return
        last: Event | None = None
        with client.batch():  # type: ignore[attr-defined]  # (see _client_class)
            for event in batch:
                if event.source == "mqtt" or not self.allowed(event.type):
                    continue  # what came from MQTT never goes back: no loops
                self.publish(f"nerve/{self.host}/{event.type}", self.encode(event), qos=1)
                last = event
                if self.config.discovery and event.type not in self._announced:
                    self._announce_trigger(event.type)
            if last is not None and self.config.discovery:
                self.publish(
                    self.last_event_topic, self.encode(last), qos=0, retain=True, count=False
                )

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, *, count: bool = True
    ) -> bool:
        """Hand a message to the client; False (and counted) when it was dropped."""
        from paho.mqtt.enums import MQTTErrorCode

        client = self._client
        if client is None or self._stopping.is_set():
            return False
        rc = client.publish(topic, payload, qos=qos, retain=retain).rc
        ok = rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0
        )
        if count:
            with self._lock:
                if ok:
                    self.sent += 1
                else:
                    self.dropped += 1
        return ok

    @property
    def queued(self) -> int:
        """Messages waiting for the broker (QoS 1 and 2 until acknowledged)."""
        client = self._client
        return len(client._out_messages) if client is not None else 0

    # ----------------------------------------------------- Home Assistant

    @property
    def device(self) -> dict[str, Any]:
        return {
            "ids": [f"nerve_{self.node}"],
            "name": f"Nerve ({self.host})",
            "mf": "Nerve",
            "mdl": "Nerve desktop automation",
            "sw": __version__,
        }

    def _availability(self) -> dict[str, Any]:
        return {"avty_t": self.status_topic, "pl_avail": "online", "pl_not_avail": "offline"}

    def discovery_messages(self, types: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config, for the sensor, the switch and the triggers."""
        prefix = self.config.discovery_prefix
        node = self.node
        out: dict[str, dict[str, Any]] = {
            f"{prefix}/sensor/{node}/last_event/config": {
                "name": "Last event",
                "uniq_id": f"nerve_{node}_last_event",
                "stat_t": self.last_event_topic,
                "val_tpl": "{{ value_json.type }}",
                "json_attr_t": self.last_event_topic,
                "json_attr_tpl": "{{ value_json.data | tojson }}",
                "ic": "mdi:lightning-bolt",
                **self._availability(),
                "dev": self.device,
            },
            f"{prefix}/switch/{node}/paused/config": {
                "name": "Paused",
                "uniq_id": f"nerve_{node}_paused",
                "cmd_t": self.pause_command_topic,
                "stat_t": self.pause_state_topic,
                "pl_on": "ON",
                "pl_off": "OFF",
                "ic": "mdi:pause",
                **self._availability(),
                "dev": self.device,
            },
        }
        with self._lock:
            chosen = sorted(self._announced) if types is None else list(types)
        for type_ in chosen:
            out[self._trigger_topic(type_)] = self._trigger_config(type_)
        return out

    def _trigger_topic(self, type_: str) -> str:
        import hashlib  # (libcrypto: only once a broker is set up)

        digest = hashlib.sha1(type_.encode(), usedforsecurity=False).hexdigest()[:8]
        object_id = f"{_slug(type_)}_{digest}"
        return f"{self.config.discovery_prefix}/device_automation/{self.node}/{object_id}/config"

    def _trigger_config(self, type_: str) -> dict[str, Any]:
        return {
            "atype": "trigger",
            "t": f"nerve/{self.host}/{type_}",
            "type": "event",
            "stype": type_,
            "qos": 1,
            "dev": self.device,
        }

    def _announce_all(self) -> None:
        with self._lock:
            for type_ in sorted(self._exact):
                if self.allowed(type_) and len(self._announced) < MAX_TRIGGERS:
                    self._announced.add(type_)
        for topic, config in self.discovery_messages().items():
            self.publish(topic, json.dumps(config).encode(), qos=1, retain=True, count=False)

    def _announce_trigger(self, type_: str) -> None:
        with self._lock:
            if len(self._announced) >= MAX_TRIGGERS:
                return
            self._announced.add(type_)
        config = json.dumps(self._trigger_config(type_)).encode()
        self.publish(self._trigger_topic(type_), config, qos=1, retain=True, count=False)

    def _watch_pause(self) -> None:
        """On the engine loop: keep the switch's state in step with the engine."""
        if self._stopping.is_set():
            return
        self._show_pause()
        loop = self.engine.loop
        if loop is not None:
            self._pause_timer = loop.call_later(0.5, self._watch_pause)

    def _show_pause(self) -> None:
        paused = bool(self.engine.paused)
        if paused != self._pause_shown and self.state == "connected":
            payload = b"ON" if paused else b"OFF"
            if self.publish(self.pause_state_topic, payload, qos=1, retain=True, count=False):
                self._pause_shown = paused

    # -------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """The base's keys (``address`` is the broker) and the broker's own."""
        retry_in = None
        retry_at = self.retry_at
        if retry_at is not None and self.state != BridgeState.CONNECTED:
            retry_in = round(max(0.0, retry_at - time.monotonic()), 1)
        status = super().status()
        status.update(
            broker=self.config.broker,
            host=self.host,
            queued=self.queued,
            dropped=self.dropped,
            sent=self.sent,
            received=self.received,
            duplicates=self.duplicates,
            attempts=self.attempts,
            retry_in=retry_in,
        )
        return status


class _BufferedSocket:
    """The broker's TCP socket as paho sees it: read 64 KiB at a time (paho
    reads a packet a few bytes at a time: three system calls per message), and
    what paho sends gathered and written at once when it is done sending."""

    __slots__ = ("_rbuf", "_rpos", "_sock", "_wbuf")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._rbuf = b""
        self._rpos = 0
        self._wbuf = bytearray()

    def recv(self, size: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = self._sock.recv(max(size, 65536))  # BlockingIOError, b"" at EOF
            if len(data) <= size:
                return bytes(data)
            self._rbuf, self._rpos = data, 0
        chunk = self._rbuf[self._rpos : self._rpos + size]
        self._rpos += len(chunk)
        return chunk

    def pending(self) -> int:
        """Bytes read but not yet taken (paho then reads on without waiting)."""
        return len(self._rbuf) - self._rpos

    def send(self, data: bytes | bytearray) -> int:
        self._wbuf += data
        return len(data)

    def waiting(self) -> bool:
        return bool(self._wbuf)

    def flush(self) -> None:
        """Write what was gathered; raises BlockingIOError (the rest waits) or OSError."""
        while self._wbuf:
            sent = self._sock.send(self._wbuf)
            del self._wbuf[:sent]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@functools.cache
def _client_class() -> Any:
    """paho's Client, with writes from any thread serialised and buffered
    socket I/O on plain TCP (TLS sockets stay as paho makes them)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import MQTTErrorCode

    class Client(mqtt.Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # publish() on another thread writes from that thread (no loop_start):
            # one writer at a time, or two could interleave their packets.
            self._nerve_write = threading.RLock()
            self._nerve_reading = False
            #: Writes gathered by a batch of publish() calls (see ``batch``).
            self._nerve_held = 0

        @contextlib.contextmanager
        def batch(self) -> Iterator[None]:
            """publish() calls inside leave in one write when it ends."""
            with self._nerve_write:
                self._nerve_held += 1
            try:
                yield
            finally:
                with self._nerve_write:
                    self._nerve_held -= 1
                if self._sock is not None and self.want_write():
                    self.loop_write()

        def _create_socket(self) -> Any:
            sock = super()._create_socket()
            if self._ssl or self._transport != "tcp":
                return sock
            return _BufferedSocket(sock)

        def loop_write(self) -> MQTTErrorCode:
            with self._nerve_write:
                rc = super().loop_write()
                sock = self._sock
                if (
                    rc
                    or self._nerve_reading
                    or self._nerve_held
                    or not isinstance(sock, _BufferedSocket)
                ):
                    return rc
                try:
                    sock.flush()
                except BlockingIOError:
                    pass  # want_write() says so; the loop waits until it can write
                except OSError:
                    return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
                return rc

        def want_write(self) -> bool:
            sock = self._sock
            return super().want_write() or (isinstance(sock, _BufferedSocket) and sock.waiting())

        def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
            # Every packet already read, not one per pass of the loop; the
            # acknowledgements they cause leave together afterwards. (No lock
            # held here: handling an acknowledgement takes paho's own locks,
            # which a publishing thread holds while it writes.)
            self._nerve_reading = True
            try:
                rc = super().loop_read(max_packets)
                for _ in range(10_000):
                    sock = self._sock
                    if rc or not isinstance(sock, _BufferedSocket) or not sock.pending():
                        break
                    rc = super().loop_read(max_packets)
            finally:
                self._nerve_reading = False
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self.want_write():
                return self.loop_write()
            return rc

    return Client


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


__all__ = [
    "SCHEMA",
    "MqttBridge",
    "MqttConfig",
    "active",
    "default_host",
    "host_problem",
    "problems",
    "publish_topic_problem",
]
