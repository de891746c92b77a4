"""Power and network triggers.

Power goes through the listener's reader seam with psutil's own ``sbattery``
tuples (this machine may have no battery; when it has none, the real reader
shows the listener unavailable). Network is tested for real on a veth pair
made for the test (root, ``ip``), and through the seam with ``snicstats``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from conftest import PACK_HEAD, LiveHarness
from nerve.engine.registry import load_builtin_types
from nerve.events import Event
from nerve.listeners import system
from nerve.packs.loader import load_pack

try:  # psutil 7 keeps its named tuples here; older versions in _common
    from psutil._ntuples import sbattery, snicstats
except ImportError:  # pragma: no cover
    from psutil._common import sbattery, snicstats

load_builtin_types()


class Reader:
    """A reader for the seam: returns what the test set, counts the reads."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.reads = 0
        self._cond = threading.Condition()

    def __call__(self) -> Any:
        with self._cond:
            self.reads += 1
            self._cond.notify_all()
            if isinstance(self.value, Exception):
                raise self.value
            return self.value

    def set(self, value: Any) -> None:
        with self._cond:
            self.value = value

    def wait_reads(self, count: int) -> None:
        """Wait until the listener has read ``count`` more times (proof it saw a value)."""
        with self._cond:
            target = self.reads + count
            assert self._cond.wait_for(lambda: self.reads >= target, 10)


def battery(percent: float, plugged: bool | None, secsleft: Any = 3600) -> Any:
    return sbattery(percent, secsleft, plugged)


def nic(up: bool) -> Any:
    flags = "up,broadcast,running,multicast" if up else "broadcast,multicast"
    return snicstats(up, psutil.NIC_DUPLEX_FULL, 1000, 1500, flags)


# -------------------------------------------------------------------- power

POWER_RULES = """
  - id: ac
    when: {power.ac: {}}
    do: [{emit: {type: t.ac, data: {percent: "{event.percent}"}}}]
  - id: battery
    when: {power.battery: }
    do: [{emit: {type: t.battery, data: {left: "{event.secsleft}"}}}]
  - id: low
    when: {power.low: {below: 15}}
    do: [{emit: {type: t.low, data: {percent: "{event.percent}", below: "{event.below}"}}}]
  - id: half
    when: {power.low: 50}
    do: [{emit: t.half}]
"""


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "POWER_INTERVAL_S", 0.01)
    monkeypatch.setattr(system, "NETWORK_INTERVAL_S", 0.02)


def test_power_changes_fire_their_rules(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch, fast: None
) -> None:
    reader = Reader(battery(80.0, False))
    monkeypatch.setattr(system, "read_battery", reader)
    live.load(POWER_RULES)
    status = live.listener("power")
    assert status["detail"] == "battery 80% on battery; read every 0.01s"

    reader.set(battery(80.0, True, psutil.POWER_TIME_UNLIMITED))
    (ac,) = live.recorder.wait("power.ac")
    assert dict(ac.data) == {"percent": 80.0, "plugged": True, "secsleft": None}
    assert ac.source == "power"
    live.recorder.wait("t.ac")

    # Unplugged at 49.5%: on battery, and below the 50% rule's threshold.
    reader.set(battery(49.5, False, 3000))
    (bat,) = live.recorder.wait("power.battery")
    assert dict(bat.data) == {"percent": 49.5, "plugged": False, "secsleft": 3000}
    (half,) = live.recorder.wait("power.low", where=lambda e: e.data["below"] == 50)
    assert dict(half.data) == {"percent": 49.5, "plugged": False, "secsleft": 3000, "below": 50}
    live.recorder.wait("t.battery")
    live.recorder.wait("t.half")

    reader.set(battery(14.0, False, 600))
    (low,) = live.recorder.wait("t.low")
    assert dict(low.data) == {"percent": 14.0, "below": 15}

    # Further down: each threshold fires once per crossing.
    reader.set(battery(13.0, False, 500))
    reader.wait_reads(3)
    assert len(live.recorder.of("power.low")) == 2

    # The charger re-arms both; unplugged again below both, both fire again.
    reader.set(battery(13.0, True))
    live.recorder.wait("power.ac", 2)
    reader.set(battery(12.0, False))
    live.recorder.wait("power.battery", 2)
    live.recorder.wait("t.low", 2)
    live.recorder.wait("t.half", 2)
    assert len(live.recorder.of("power.low")) == 4


def test_low_battery_at_start_does_not_fire(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch, fast: None
) -> None:
    reader = Reader(battery(10.0, False))
    monkeypatch.setattr(system, "read_battery", reader)
    live.load(POWER_RULES)
    live.listener("power")
    reader.wait_reads(3)
    assert live.recorder.of("power.low") == []
    reader.set(battery(30.0, True))  # charged past 15%: armed again
    live.recorder.wait("power.ac")
    reader.set(battery(14.5, False))
    live.recorder.wait("t.low")


def test_no_battery_makes_power_rules_unavailable_and_the_rest_runs(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch, fast: None
) -> None:
    if psutil.sensors_battery() is not None:  # this machine has one: use the seam
        monkeypatch.setattr(system, "read_battery", Reader(None))
    monkeypatch.setattr(system, "read_interfaces", Reader({"lo": nic(True)}))
    live.load(
        POWER_RULES
        + """
  - id: net
    when: {network.down: lo}
    do: [{emit: t.net}]
  - id: ping
    when: {event: t.ping}
    do: [{emit: t.pong}]
"""
    )
    status = live.listener("power", "unavailable")
    assert status["error"] == "no battery found"
    live.listener("network")
    live.publish("t.ping")
    live.recorder.wait("t.pong")


def test_a_reader_that_fails_is_reported(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch, fast: None
) -> None:
    reader = Reader(battery(50.0, True))
    monkeypatch.setattr(system, "read_battery", reader)
    live.load(POWER_RULES)
    live.listener("power")
    reader.set(OSError("cannot read /sys/class/power_supply"))
    status = live.listener("power", "failed")
    assert status["error"] == "cannot read /sys/class/power_supply"


# ------------------------------------------------------------------ network

NETWORK_RULES = """
  - id: up
    when: {{network.up: {{interface: {a}}}}}
    do: [{{emit: {{type: t.up, data: {{interface: "{{event.interface}}"}}}}}}]
  - id: down-any
    mode: queued  # both ends of a pair go down at once
    when: {{network.down: {{}}}}
    do: [{{emit: {{type: t.down-any, data: {{interface: "{{event.interface}}"}}}}}}]
  - id: down-glob
    mode: queued
    when: {{network.down: "{prefix}*"}}
    do: [{{emit: {{type: t.down-glob, data: {{interface: "{{event.interface}}"}}}}}}]
"""


def on(interface: str) -> Callable[[Event], bool]:
    return lambda e: e.data["interface"] == interface


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    """A veth pair made for this test (deleted after it)."""
    prefix = f"nrv{uuid.uuid4().hex[:6]}"
    a, b = f"{prefix}a", f"{prefix}b"
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command")
    try:
        ip("link", "add", a, "type", "veth", "peer", "name", b)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a veth pair here: {exc.stderr.decode().strip()}")
    try:
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], check=False, capture_output=True, timeout=10)


def test_network_up_and_down_for_real(live: LiveHarness, veth: tuple[str, str], fast: None) -> None:
    a, b = veth
    prefix = a[:-1]
    live.load(NETWORK_RULES.format(a=a, prefix=prefix))
    live.listener("network")

    ip("link", "set", a, "up")
    ip("link", "set", b, "up")  # both ends up: each has a carrier
    for name in (a, b):
        live.recorder.wait("network.up", where=on(name))
    (up,) = live.recorder.wait("t.up")
    assert dict(up.data) == {"interface": a}  # only the rule's interface

    ip("link", "set", b, "down")  # a loses its carrier, b is down
    for name in (a, b):
        live.recorder.wait("t.down-any", where=on(name))
        live.recorder.wait("t.down-glob", where=on(name))
    downs = [e for e in live.recorder.of("network.down") if e.data["interface"].startswith(prefix)]
    assert sorted(e.data["interface"] for e in downs) == [a, b]
    assert [e.data["interface"] for e in live.recorder.of("t.up")] == [a]


def test_network_through_the_seam(
    live: LiveHarness, monkeypatch: pytest.MonkeyPatch, fast: None
) -> None:
    reader = Reader({"lo": nic(True), "wlan0": nic(False)})
    monkeypatch.setattr(system, "read_interfaces", reader)
    live.load(NETWORK_RULES.format(a="wlan0", prefix="wl"))
    status = live.listener("network")
    assert status["detail"] == "up: lo; read every 0.02s"

    reader.set({"lo": nic(True), "wlan0": nic(True)})
    (up,) = live.recorder.wait("t.up")
    assert up.data["interface"] == "wlan0"
    # An interface that disappears while up went down.
    reader.set({"lo": nic(True)})
    (down,) = live.recorder.wait("t.down-glob")
    assert down.data["interface"] == "wlan0"
    live.recorder.wait("t.down-any")
    # One that appears already up came up.
    reader.set({"lo": nic(True), "wlan1": nic(True)})
    live.recorder.wait("network.up", where=lambda e: e.data["interface"] == "wlan1")
    assert len(live.recorder.of("t.up")) == 1


def test_the_default_readers_are_psutil() -> None:
    stats = system.read_interfaces()
    assert "lo" in stats
    assert stats["lo"].isup
    assert system.read_battery() == psutil.sensors_battery()


# --------------------------------------------------------------- validation


def errors_of(yaml_rules: str) -> list[str]:
    pack = load_pack((PACK_HEAD + yaml_rules).encode(), filename="test.yaml")
    return [str(e) for e in pack.errors]


def trigger_of(when: str) -> Any:
    pack = load_pack(
        (PACK_HEAD + f"  - id: r\n    when: {when}\n    do: [{{log: x}}]\n").encode(),
        filename="test.yaml",
    )
    assert not pack.errors, pack.errors
    return pack.rules[0].triggers[0]


def test_option_shapes() -> None:
    assert trigger_of("{power.low: }").below == system.DEFAULT_LOW_PERCENT
    assert trigger_of("{power.low: 12.5}").below == 12.5
    low = trigger_of("{power.low: {below: 15}}")
    assert low.matchers()[0].index == ("below", 15)
    assert list(low.needs()) == [("power", ("low", 15))]
    assert list(trigger_of("{power.ac: }").needs()) == [("power", None)]
    eth = trigger_of("{network.up: eth0}")
    assert eth.matchers()[0].index == ("interface", "eth0")
    assert eth.describe() == "network.up interface eth0"
    wl = trigger_of('{network.down: {interface: "wl*"}}')
    assert wl.matchers()[0].index is None
    assert trigger_of("{network.down: {}}").describe() == "network.down any interface"


def test_bad_options_are_reported() -> None:
    errors = errors_of("""
  - id: a
    when: {power.low: {below: 150}}
    do: [{log: x}]
  - id: b
    when: {power.ac: {when: now}}
    do: [{log: x}]
  - id: c
    when: {network.up: {iface: eth0}}
    do: [{log: x}]
  - id: d
    when: {power.battery: {}}
    do: [{log: "{event.interface}"}]
""")
    assert len(errors) == 4, errors
    assert "rules[0].when.power.low" in errors[0]
    assert "rules[1].when.power.ac" in errors[1]
    assert "rules[2].when.network.up" in errors[2]
    assert "interface" in errors[3]
