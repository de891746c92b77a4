"""MQTT bridge benchmarks: an event on one Nerve runs a command on another.

Run by hand, never from the test suite::

    python bench/bench_mqtt.py                       # everything (~1 minute)
    python bench/bench_mqtt.py --pings 100 --events 20000

One mosquitto (started here on a free 127.0.0.1 port, generated config) and
two ``nerve run --headless`` instances with XDG folders of their own: A
publishes ``bench.*``, B subscribes to ``nerve/alpha/bench.*`` and has one rule,
``bench.ping`` from MQTT -> ``run: [sh, -c, 'echo "$1" > "$2"', sh, N, FIFO]``.

Latency, in one run, interleaved (so both see the same machine): Nerve: the
clock starts before ``emit bench.ping n=N`` is sent to A's control socket (what
``nerve emit`` sends, without starting a Python) and stops when N comes out of
the FIFO. Shell: the same broker, ``mosquitto_sub -q 1 -t T | while read -r
line; do sh -c 'echo "$1" > "$2"' sh "$line" FIFO2; done`` in bash; the clock
starts before ``mosquitto_pub -q 1 -t T -m N`` is spawned and stops when N comes
out of FIFO2. Same command, same broker, QoS 1 both ways.

Throughput: the bench process runs the bridge (the same ``MqttBridge`` class,
as host ``gamma``) on a bus of its own and publishes ``bench.flood`` events as
fast as its bridge takes them (its queue kept under the bus capacity); B
receives them. The clock stops when B's bridge has received all of them; B's
duplicates and bus drops must be 0 and its event log must hold all of them
("nothing lost").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "app", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from mosquitto import Mosquitto  # noqa: E402
from nerve.bus import Bus  # noqa: E402
from nerve.ipc import request  # noqa: E402

TARGET_P50_RATIO = 1.3
TARGET_RATE = 10_000

PACK = """\
nerve: 1
pack: {{id: bench.mqtt, name: bench, version: 1.0.0}}
rules:
  - id: ping
    when: {{event: {{type: bench.ping, from: mqtt}}}}
    mode: parallel
    max: 1000
    do:
      - run: [sh, -c, 'echo "$1" > "$2"', sh, "{{event.n}}", "{fifo}"]
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Node:
    def __init__(self, root: Path, name: str, settings: str, *args: str) -> None:
        self.root = root / name
        self.root.mkdir()
        env = dict(os.environ)
        for var, sub in (
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_RUNTIME_DIR", "run"),
        ):
            (self.root / sub).mkdir(mode=0o700)
            env[var] = str(self.root / sub)
        env.pop("DISPLAY", None)
        config = self.root / "config" / "nerve"
        config.mkdir(mode=0o700)
        (config / "settings.yaml").write_text(settings)
        self.socket = self.root / "run" / "nerve" / "nerve.sock"
        self.database = self.root / "data" / "nerve" / "nerve.db"
        self.log = open(self.root / "out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nerve", "run", "--headless", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def bridge(self) -> dict[str, Any]:
        result: dict[str, Any] = request("status", path=self.socket)["bridges"][0]
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = request("status", path=self.socket)
        return result

    def wait_connected(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.bridge()["state"] == "connected":
                    return
            except Exception:
                pass
            time.sleep(0.05)
        raise SystemExit(f"{self.root.name} did not connect: {(self.root / 'out').read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Fifo:
    """A named pipe the commands write lines into; read with a deadline."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # never EOF, never blocks a writer
        self.buffer = b""

    def read_line(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing from {self.path}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.buffer += os.read(self.fd, 65536)
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


def latency(args: argparse.Namespace, broker: Mosquitto, a: Node, work: Path) -> dict[str, Any]:
    nerve_fifo = Fifo(work / "nerve.fifo")  # (made before B loaded its pack: see main)
    shell_fifo = Fifo(work / "shell.fifo")
    loop = (
        f"mosquitto_sub -h 127.0.0.1 -p {broker.port} -q 1 -t bench/shell | "
        f'while read -r line; do sh -c \'echo "$1" > "$2"\' sh "$line" {shell_fifo.path}; '
        "done"
    )
    shell = subprocess.Popen(["bash", "-c", loop], start_new_session=True)
    pub = [
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.port),
        "-q",
        "1",
        "-t",
        "bench/shell",
    ]
    # The subscriber is up when a message makes it through.
    deadline = time.monotonic() + 10
    while True:
        subprocess.run([*pub, "-m", "warmup"], check=True)
        try:
            if shell_fifo.read_line(0.5) == "warmup":
                break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
    request("emit", {"type": "bench.ping", "data": {"n": -1}}, path=a.socket)
    assert nerve_fifo.read_line() == "-1"

    nerve_ms: list[float] = []
    shell_ms: list[float] = []
    try:
        for i in range(args.pings):
            for side in random.sample(("nerve", "shell"), 2):
                time.sleep(random.uniform(0.01, 0.03))
                if side == "nerve":
                    t0 = time.perf_counter()
                    request("emit", {"type": "bench.ping", "data": {"n": i}}, path=a.socket)
                    got = nerve_fifo.read_line()
                    nerve_ms.append((time.perf_counter() - t0) * 1000)
                else:
                    t0 = time.perf_counter()
                    subprocess.run([*pub, "-m", str(i)], check=True)
                    got = shell_fifo.read_line()
                    shell_ms.append((time.perf_counter() - t0) * 1000)
                if got != str(i):
                    raise SystemExit(f"{side}: expected {i}, got {got!r}")
    finally:
        os.killpg(shell.pid, 15)
        shell.wait()
    result = {
        "nerve_p50": percentile(nerve_ms, 50),
        "nerve_p99": percentile(nerve_ms, 99),
        "shell_p50": percentile(shell_ms, 50),
        "shell_p99": percentile(shell_ms, 99),
    }
    result["ratio_p50"] = result["nerve_p50"] / result["shell_p50"]
    result["ratio_p99"] = result["nerve_p99"] / result["shell_p99"]
    return result


def throughput(args: argparse.Namespace, broker: Mosquitto, b: Node) -> dict[str, Any]:
    from nerve.bridges.mqtt import MqttBridge, MqttConfig

    class Engine:  # the bridge needs an engine only for the pause switch
        loop = None
        paused = False

    bus = Bus(10_000)
    config = MqttConfig.from_settings(
        {"broker": broker.url, "publish": ["bench.flood"], "queue": 1_000_000}
    )
    bridge = MqttBridge(config, "gamma", bus, Engine())  # type: ignore[arg-type]
    asyncio.run(bridge.start())
    deadline = time.monotonic() + 10
    while bridge.state != "connected":
        if time.monotonic() > deadline:
            raise SystemExit(f"the sending bridge did not connect: {bridge.status()}")
        time.sleep(0.01)
    sub = bridge._sub
    assert sub is not None
    before = b.bridge()["received"]
    n = args.events
    assert broker.proc is not None
    cpu0 = (time.process_time(), cpu_seconds(b.proc.pid), cpu_seconds(broker.proc.pid))
    t0 = time.perf_counter()
    for i in range(n):
        while sub.queued > 5_000 or bridge.queued > 20_000:
            time.sleep(0.0005)
        bus.publish("bench.flood", {"n": i})
    sent_s = time.perf_counter() - t0
    deadline = time.monotonic() + 120
    while True:
        got = b.bridge()["received"] - before
        if got >= n:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"B received {got} of {n}: {b.bridge()} / sender {bridge.status()}")
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    cpu1 = (time.process_time(), cpu_seconds(b.proc.pid), cpu_seconds(broker.proc.pid))
    sender = bridge.status()
    asyncio.run(bridge.stop())  # (it waits for paho's thread)
    status = b.status()
    # Nothing lost: every event in B's log, none twice.
    deadline = time.monotonic() + 60
    while True:
        with sqlite3.connect(f"file:{b.database}?mode=ro", uri=True) as db:
            stored, distinct = db.execute(
                "SELECT count(*), count(DISTINCT json_extract(data, '$.n')) FROM events "
                "WHERE type = 'bench.flood'"
            ).fetchone()
        if stored >= n or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {
        "events": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "publish_seconds": sent_s,
        "dropped_sender": sender["dropped"],
        "duplicates": status["bridges"][0]["duplicates"],
        "bus_dropped": sum(status["bus"]["dropped"].values()),
        "stored": stored,
        "distinct": distinct,
        # CPU time per event: what the rate would be with a core each, whatever else runs.
        "cpu_us": {
            name: (after - before_) / n * 1e6
            for name, before_, after in zip(("sender", "B", "broker"), cpu0, cpu1, strict=True)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pings", type=int, default=200, help="latency samples per side")
    parser.add_argument("--events", type=int, default=50_000, help="events in the throughput run")
    parser.add_argument("--only", choices=("latency", "throughput"), action="append")
    args = parser.parse_args()
    for tool in ("mosquitto_pub", "mosquitto_sub", "bash"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (Debian: mosquitto-clients, bash)")
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} cores" + (" (noisy)" if load > 0.5 else ""))
    sections = args.only or ["latency", "throughput"]
    with tempfile.TemporaryDirectory(prefix="nvb", dir="/tmp") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        nodes: list[Node] = []
        try:
            pack = work / "pack.yaml"
            pack.write_text(PACK.format(fifo=work / "nerve.fifo"))
            a = Node(
                work,
                "a",
                f'{{"host": "alpha", "mqtt": {{"broker": "{broker.url}", '
                '"publish": ["bench.*"]}}',
            )
            nodes.append(a)
            b = Node(
                work,
                "b",
                f'{{"host": "beta", "bus_capacity": 100000, "mqtt": {{"broker": "{broker.url}", '
                '"subscribe": ["nerve/+/bench.*"]}}',
                "--rules",
                str(pack),
            )
            nodes.append(b)
            a.wait_connected()
            b.wait_connected()
            results: dict[str, Any] = {}
            if "latency" in sections:
                lat = latency(args, broker, a, work)
                results.update(lat)
                print(
                    f"event on A -> command on B, {args.pings} each: "
                    f"nerve p50 {lat['nerve_p50']:.2f} ms p99 {lat['nerve_p99']:.2f} ms | "
                    f"shell p50 {lat['shell_p50']:.2f} ms p99 {lat['shell_p99']:.2f} ms | "
                    f"ratio p50 {lat['ratio_p50']:.2f} (target <= {TARGET_P50_RATIO}), "
                    f"p99 {lat['ratio_p99']:.2f}"
                )
            if "throughput" in sections:
                tp = throughput(args, broker, b)
                results.update(tp)
                lost = tp["events"] - tp["distinct"]
                print(
                    f"sustained through the bridge: {tp['events']} events in "
                    f"{tp['seconds']:.2f} s = {tp['rate']:,.0f} events/s "
                    f"(target >= {TARGET_RATE:,}); sender dropped {tp['dropped_sender']}, "
                    f"B duplicates {tp['duplicates']}, B bus drops {tp['bus_dropped']}, "
                    f"in B's log {tp['stored']} ({tp['distinct']} distinct, {lost} lost)"
                )
                cpu = tp["cpu_us"]
                slowest = max(cpu["sender"], cpu["B"])
                print(
                    "CPU time per event: "
                    + ", ".join(f"{k} {v:.1f} us" for k, v in cpu.items())
                    + f" -> with a free core each, about {1e6 / slowest:,.0f} events/s"
                )
        finally:
            for node in nodes:
                node.stop()
            broker.stop()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
