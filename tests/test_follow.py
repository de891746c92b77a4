"""The joinable event log: ``nerve events --after ID --follow`` and ``nerve.client``.

Against real instances: ``nerve run --headless`` subprocesses (test_cli's
``start_nerve``) for the command line and restarts, and an in-process
:class:`nerve.bootstrap.Nerve` where a test must publish what ``nerve emit``
refuses (key presses).
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerve import client, ipc
from nerve.bootstrap import Nerve
from nerve.options import Options
from nerve.paths import locations
from test_cli import NERVE, PACK, StartNerve, cli, cli_ok, events, socket_file
from test_cli import start_nerve as _start_nerve_fixture  # noqa: F401 (registers the fixture)
from test_cli import wait_for as wait_until


@pytest.fixture
def daemon(_start_nerve_fixture: StartNerve) -> StartNerve:  # noqa: F811
    """test_cli's ``start_nerve``: each daemon is stopped at teardown, none may show a traceback."""
    return _start_nerve_fixture


def emit(env: dict[str, str], type_: str, n: int, **data: Any) -> list[int]:
    """``n`` events of ``type_`` through the socket; their ids."""
    path = socket_file(env)
    return [client.emit(type_, {"i": i, **data}, path=path) for i in range(n)]


class Reader:
    """``nerve events --follow --json ARGS`` in the background, its lines parsed."""

    def __init__(self, env: dict[str, str], *args: object) -> None:
        self.proc = subprocess.Popen(
            [*NERVE, "events", "--follow", "--json", *map(str, args)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(json.loads(line))

    def ids(self, type_prefix: str = "") -> list[int]:
        with self._lock:
            return [e["id"] for e in self.lines if e.get("type", "").startswith(type_prefix)]

    def wait_ids(self, wanted: list[int], type_prefix: str = "t.") -> list[int]:
        wait_until(
            lambda: set(wanted) <= set(self.ids(type_prefix)),
            timeout=30,
            what=f"ids {wanted[:3]}..{wanted[-3:]} in the follower's output",
        )
        return self.ids(type_prefix)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self._thread.join(5)
        assert "Traceback" not in err, err
        return err


def test_after_id_resumes_exactly_there(daemon: StartNerve, nerve_env: dict[str, str]) -> None:
    daemon("--rules", PACK)
    ids = emit(nerve_env, "t.stored", 30)
    ids += emit(nerve_env, "u.other", 3)[:0]  # (other types between: not followed)
    ids += emit(nerve_env, "t.stored", 5)
    wait_until(lambda: len(events(nerve_env, "--type", "t.*", "--limit", "1000")) == 35)
    for after in (0, ids[0] - 1, ids[0], ids[7], ids[-2], ids[-1]):
        # The log alone (no --follow): the oldest after ID.
        logged = [e["id"] for e in events(nerve_env, "--after", after, "--type", "t.*")]
        assert logged == [i for i in ids if i > after], after
        # The client: the log, then live; without repeating or losing one.
        follower = client.follow("t.*", after=after, path=socket_file(nerve_env))
        items = iter(follower)
        stored = [i for i in ids if i > after]
        got = [next(items)["id"] for _ in stored]  # type: ignore[index]
        live = emit(nerve_env, "t.live", 2)  # then the next ones are live
        got += [next(items)["id"] for _ in live]  # type: ignore[index]
        assert follower.last_id == live[-1]
        follower.close()
        assert got == stored + live, after
        ids += live
    # An id in the future (a wiped data folder): from now on, as result.after says.
    result, stream = ipc.open_stream(
        "follow", {"types": ["t.*"], "after": 10**12}, path=socket_file(nerve_env)
    )
    assert result["after"] == result["next"] - 1
    later = emit(nerve_env, "t.later", 2)
    it = iter(stream)
    assert [next(it)["event"]["id"] for _ in range(2)] == later
    stream.close()


def test_follow_survives_a_restart_without_a_hole_or_a_repeat(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    first = daemon("--rules", PACK)
    before = emit(nerve_env, "t.a", 5)
    reader = Reader(nerve_env, "--after", before[1], "--type", "t.*")
    try:
        seen = reader.wait_ids(before[2:])
        assert seen == before[2:]
        during = emit(nerve_env, "t.b", 5)
        reader.wait_ids(during)
        assert first.stop() == 0
        # Started again: events published before the follower is back come
        # from the log, the rest live.
        daemon("--rules", PACK)
        after_restart = emit(nerve_env, "t.c", 5)
        time.sleep(0.01)
        more = emit(nerve_env, "t.d", 20)
        final = reader.wait_ids(after_restart + more)
        assert final == before[2:] + during + after_restart + more
        logged = [e["id"] for e in events(nerve_env, "--after", before[1], "--type", "t.*")]
        assert final == logged
        # The app's own events came along too, each once (the filter was t.*: none).
        assert reader.ids("app.") == []
    finally:
        err = reader.stop()
    assert "resuming after event" in err
    assert reader.proc.returncode == 0


def test_follow_without_after_shows_the_recent_log_then_live(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    daemon("--rules", PACK)
    old = emit(nerve_env, "t.old", 4)
    wait_until(lambda: len(events(nerve_env, "--type", "t.*")) == 4)
    reader = Reader(nerve_env, "--type", "t.*", "--limit", 2)
    try:
        reader.wait_ids(old[2:])
        new = emit(nerve_env, "t.new", 3)
        assert reader.wait_ids(new) == old[2:] + new
    finally:
        reader.stop()


def test_a_slow_follower_gets_a_gap_with_the_ids_it_missed(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    daemon("--rules", PACK)
    path = socket_file(nerve_env)
    _, stream = ipc.open_stream("follow", {"types": ["t.*"], "queue": 8}, path=path)
    # It reads nothing while a burst fills its socket and its queue of 8.
    emitted = emit(nerve_env, "t.burst", 1500, pad="x" * 400)
    events_seen: list[int] = []
    gaps: list[dict[str, Any]] = []
    deadline = time.monotonic() + 40
    for message in stream:
        if "event" in message:
            events_seen.append(message["event"]["id"])
        else:
            gaps.append(message["gap"])
            if len(gaps) == 1:  # ... and then it goes on
                emitted += emit(nerve_env, "t.after", 3)
        if emitted[-1] in events_seen or time.monotonic() > deadline:
            break
    stream.close()
    assert gaps, "no gap for a follower that fell behind"
    assert events_seen == sorted(events_seen)
    assert len(set(events_seen)) == len(events_seen)
    missed: set[int] = set()
    for gap in gaps:
        assert gap["reason"] == "the follower fell behind"
        in_range = [i for i in emitted if gap["first"] <= i <= gap["last"]]
        assert gap["first"] in in_range
        assert gap["last"] in in_range
        assert not set(in_range) & set(events_seen), gap  # a gap is exactly what was missed
        assert gap["count"] == len(in_range), gap
        missed |= set(in_range)
    assert set(events_seen) | missed == set(emitted)  # nothing silently left out
    assert emitted[-3:] == events_seen[-3:]  # and it went on after the gap
    # What a gap names can be read again from the log.
    first = gaps[0]["first"]
    again = [e["id"] for e in events(nerve_env, "--after", first - 1, "--limit", 5)]
    assert again[0] == first


def test_followers_have_places_of_their_own(daemon: StartNerve, nerve_env: dict[str, str]) -> None:
    daemon("--rules", PACK)
    path = socket_file(nerve_env)
    streams = [
        ipc.open_stream("follow", {"types": ["t.*"]}, path=path)[1]
        for _ in range(ipc.DEFAULT_MAX_STREAMS)
    ]
    try:
        with pytest.raises(ipc.IpcError, match="too many followers"):
            ipc.open_stream("follow", {}, path=path)
        # Requests still have all their places, past the idle timeout too.
        time.sleep(ipc.DEFAULT_IDLE_TIMEOUT + 0.5)
        assert client.status(path=path)["followers"] == ipc.DEFAULT_MAX_STREAMS
        assert f"followers: {ipc.DEFAULT_MAX_STREAMS}" in cli_ok(nerve_env, "status")
        (event_id,) = emit(nerve_env, "t.one", 1)
        for stream in streams:  # every follower got it, after the idle timeout
            assert next(iter(stream))["event"]["id"] == event_id
    finally:
        for stream in streams:
            stream.close()
    wait_until(lambda: client.status(path=path)["followers"] == 0, what="the followers gone")
    ipc.open_stream("follow", {}, path=path)[1].close()  # a place again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"after": -1}, "out of range"),
        ({"after": "5"}, "event id"),
        ({"after": True}, "event id"),
        ({"after": 1.5}, "event id"),
        ({"types": []}, "list of 1 to"),
        ({"types": [""]}, "list of 1 to"),
        ({"types": [3]}, "list of 1 to"),
        ({"types": ["Not A Type"]}, "not an event type pattern"),
        ({"queue": 0}, "'queue'"),
        ({"queue": 10**9}, "'queue'"),
    ],
)
def test_bad_follow_arguments_are_refused(
    daemon: StartNerve, nerve_env: dict[str, str], args: dict[str, Any], message: str
) -> None:
    daemon("--rules", PACK)
    with pytest.raises(ipc.IpcError, match=message):
        ipc.open_stream("follow", args, path=socket_file(nerve_env))


def test_the_cli_rejects_a_bad_after(nerve_env: dict[str, str]) -> None:
    for bad in ("-1", "x", "1.5", ""):
        proc = cli(nerve_env, "events", "--after", bad)
        assert proc.returncode == 2, bad
    proc = cli(nerve_env, "events", "--follow", "--after", "3", "--since", "1h")
    assert proc.returncode == 2
    assert "--since" in proc.stderr


@pytest.fixture
def inproc(nerve_env: dict[str, str]) -> Iterator[Nerve]:
    app = Nerve(locations(), Options(rule_paths=[PACK]))
    app.start()
    yield app
    app.stop()


def test_private_events_are_live_only_and_only_when_named(inproc: Nerve) -> None:
    bus, store, writer = inproc.bus, inproc.store, inproc.writer
    assert bus is not None
    assert store is not None
    assert writer is not None
    path = ipc.socket_path()

    def follower(*types: str, after: int | None = None) -> Iterator[dict[str, Any]]:
        _, stream = ipc.open_stream("follow", {"types": list(types), "after": after}, path=path)
        opened.append(stream)
        return iter(stream)

    opened: list[ipc.StreamMessages] = []
    try:
        everything = follower("*")
        keys = follower("key.*")
        key_down = follower("key.down")
        unnamed = follower("k*", "*.down", "t.*")  # globs that match, but do not name them
        key = {"key": "a", "modifiers": [], "injected": False}
        down = bus.publish("key.down", key, source="t")
        up = bus.publish("key.up", key, source="t")
        clip = bus.publish("clipboard.changed", {"mime": "text/plain", "text": "pw"}, source="t")
        done = client.emit("t.done", path=path)
        assert [next(keys)["event"]["id"] for _ in range(2)] == [down.id, up.id]
        assert next(key_down)["event"]["id"] == down.id
        assert next(everything)["event"]["id"] == done  # `*` left them out
        assert next(unnamed)["event"]["id"] == done
        clips = follower("clipboard.changed", after=0)
        # From the log: never (they are not in it); live: yes.
        late = bus.publish("clipboard.changed", {"mime": "text/plain", "text": "x"}, source="t")
        assert next(clips)["event"]["id"] == late.id
        assert writer.wait_through(late.id, 5)
        assert store.query_events(type_pattern="key.*") == []
        assert store.query_events(type_pattern="clipboard.*") == []
        assert clip.id < late.id
    finally:
        for stream in opened:
            stream.close()


def test_the_text_output_shows_events_and_ctrl_c_ends_it(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    daemon("--rules", PACK)
    follow = subprocess.Popen(
        [*NERVE, "events", "--follow", "--type", "t.*"],
        env=nerve_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.2)
        (event_id,) = emit(nerve_env, "t.text", 1)
        assert follow.stdout is not None
        ready, _, _ = select.select([follow.stdout], [], [], 20)
        assert ready
        line = follow.stdout.readline()
        assert f"#{event_id}" in line
        assert "t.text" in line
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=10)
    assert follow.returncode == 0
    assert cli_ok(nerve_env, "status")


def test_follow_waits_for_an_instance_to_start(
    daemon: StartNerve, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    reader = Reader(nerve_env, "--type", "t.*")
    try:
        time.sleep(0.3)
        daemon("--rules", PACK)
        wait_until(lambda: client.status(path=socket_file(nerve_env))["followers"] == 1, 20)
        ids = emit(nerve_env, "t.x", 2)
        assert reader.wait_ids(ids) == ids
    finally:
        err = reader.stop()
    assert "waiting for Nerve to start" in err


def test_joining_while_the_log_writer_is_behind_loses_nothing(inproc: Nerve) -> None:
    """Events published just before a follower joins are not in the log yet
    (it writes in batches): they must come from it all the same, once each."""
    bus = inproc.bus
    assert bus is not None
    path = ipc.socket_path()
    for round_, count in enumerate((1, 2, 7, 50, 300, 1000, 3, 120)):
        published = [bus.publish(f"t.r{round_}", {"i": i}, source="t").id for i in range(count)]
        _, stream = ipc.open_stream(
            "follow", {"types": [f"t.r{round_}"], "after": published[0] - 1}, path=path
        )
        live = [bus.publish(f"t.r{round_}", {"i": -1}, source="t").id for _ in range(3)]
        try:
            it = iter(stream)
            got = [next(it)["event"]["id"] for _ in published + live]
        finally:
            stream.close()
        assert got == published + live, count


def test_a_full_queue_becomes_one_gap_after_what_was_queued() -> None:
    """GapSubscription on its own: the order a follower sees is queued events,
    then the gap of what did not fit, then what came after."""
    from nerve.bus import Bus
    from nerve.follow import Filter, GapSubscription

    bus = Bus(100)
    sub = bus.subscribe("t.*", wake=lambda: None, capacity=3, kind=GapSubscription)
    assert isinstance(sub, GapSubscription)
    sub.accept = Filter(["t.*"], store_private=False)
    ids = [bus.publish("t.a", {"i": i}).id for i in range(10)]
    bus.publish("u.other")  # not followed: in no gap
    assert [e.id for e in sub.drain()] == ids[:3]
    stored, live = sub.take_gaps()
    assert live is None
    assert stored is not None
    assert (stored.first, stored.last, stored.count) == (ids[3], ids[9], 7)
    assert sub.take_gaps() == (None, None)  # taken once
    after = bus.publish("t.a").id
    assert [e.id for e in sub.drain()] == [after]
    assert sub.stats()["gaps"] == 7
    sub.close()


def test_a_follower_that_stops_reading_is_dropped_and_one_that_talks_ends(
    short_tmp: Path,
) -> None:
    """The stream's lifetime rules, with the real server and a stream that floods."""
    import asyncio

    class Flood:
        closed = threading.Event()

        async def open(self) -> dict[str, Any]:
            return {"flood": True}

        async def messages(self) -> Any:
            while True:
                yield [{"event": {"id": 0, "pad": "x" * 60_000}}]
                await asyncio.sleep(0)

        def too_large(self, message: dict[str, Any]) -> dict[str, Any]:
            return {"gap": {}}

        def close(self) -> None:
            self.closed.set()

    def handler(cmd: str, args: dict[str, Any]) -> Any:
        return {"cmd": cmd}

    class Broken(Flood):
        async def messages(self) -> Any:
            yield [{"event": {"id": 1}}]
            raise OSError("disk on fire")

    path = short_tmp / "s.sock"
    server = ipc.IpcServer(
        path,
        handler,
        streams={"flood": lambda args: Flood(), "broken": lambda args: Broken()},
        stall_timeout=0.5,
    )
    server.start()
    try:
        result, stream = ipc.open_stream("flood", path=path)
        assert result == {"flood": True}
        # It reads nothing: dropped after the stall timeout, the stream closed.
        assert Flood.closed.wait(10)
        wait_until(lambda: server.streams == 0, what="the stalled follower dropped")
        stream.close()
        assert ipc.request("ping", path=path) == {"cmd": "ping"}
        # One that sends anything after its request ends its stream.
        Flood.closed = threading.Event()
        raw = socket_connect(path)
        raw.sendall(b'{"v": 1, "id": 1, "cmd": "flood"}\n')
        raw.recv(100)
        wait_until(lambda: server.streams == 1, what="the stream running")
        raw.sendall(b"more\n")
        assert Flood.closed.wait(10)
        raw.close()
        # A stream that fails says so (one error line) and ends; the server goes on.
        _, broken = ipc.open_stream("broken", path=path)
        it = iter(broken)
        assert next(it)["event"] == {"id": 1}
        with pytest.raises(ipc.IpcError, match="the stream failed: disk on fire"):
            next(it)
        assert ipc.request("ping", path=path) == {"cmd": "ping"}
    finally:
        server.stop()


def socket_connect(path: Path) -> Any:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


def test_a_gap_prints_as_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from nerve.cli import _print_gap

    gap = client.Gap(1001, 1090, 40, "the follower fell behind")
    _print_gap(gap, as_json=False)
    _print_gap(gap, as_json=True)
    text, as_json = capsys.readouterr().out.splitlines()
    assert text == (
        "-- gap: 40 event(s) missed, ids 1001..1090 (the follower fell behind); "
        "the stored ones: nerve events --after 1000"
    )
    assert json.loads(as_json) == {
        "gap": {"first": 1001, "last": 1090, "count": 40, "reason": "the follower fell behind"}
    }


def test_an_event_too_large_for_a_line_is_a_gap_and_the_stream_goes_on(
    daemon: StartNerve, nerve_env: dict[str, str]
) -> None:
    daemon("--rules", PACK)
    path = socket_file(nerve_env)
    _, stream = ipc.open_stream("follow", {"types": ["t.*"]}, path=path)
    try:
        # The request fits in a line; the event, with its id, time and source, does not.
        big = client.emit("t.big", {"p": "x" * (ipc.MAX_LINE_BYTES - 80)}, path=path)
        (small,) = emit(nerve_env, "t.small", 1)
        it = iter(stream)
        first = next(it)
        assert first["gap"] == {
            "first": big,
            "last": big,
            "count": 1,
            "reason": "the event is too large to send (limit 1 MiB)",
        }
        assert next(it)["event"]["id"] == small
    finally:
        stream.close()


def test_resume_after_any_id_with_any_pattern_matches_the_log(inproc: Nerve) -> None:
    """For random ids and patterns: what a follower gets after ID is exactly what
    the log holds after ID for that pattern, then the live events, once each."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    bus, store, writer = inproc.bus, inproc.store, inproc.writer
    assert bus is not None
    assert store is not None
    assert writer is not None
    types = ["a.one", "a.two", "b.one", "b.two.deep"]
    published = [bus.publish(types[i % 4], {"i": i}, source="t").id for i in range(80)]
    assert writer.wait_through(published[-1], 10)
    path = ipc.socket_path()
    patterns = st.sampled_from(["*", "a.*", "b.*", "*.one", "a.one", "b.two.*", "c.*"])

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(after=st.integers(0, published[-1] + 3), pattern=patterns)
    def check(after: int, pattern: str) -> None:
        assert writer.wait_through(bus.next_id - 1, 10)  # (the last example's live ones too)
        stored = [
            e["id"] for e in store.query_events(after_id=after, type_pattern=pattern, limit=None)
        ]
        _, stream = ipc.open_stream("follow", {"types": [pattern], "after": after}, path=path)
        try:
            live = bus.publish("a.one", {"live": True}, source="t").id
            expected = stored + ([live] if pattern in ("*", "a.*", "*.one", "a.one") else [])
            marker = bus.publish("c.end", {}, source="t").id  # ends what this pattern reads
            it = iter(stream)
            got: list[int] = []
            if pattern in ("*", "c.*"):
                expected.append(marker)
            for _ in expected:
                got.append(next(it)["event"]["id"])
            assert got == expected, (after, pattern)
        finally:
            stream.close()

    check()
