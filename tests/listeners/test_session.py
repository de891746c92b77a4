"""logind's signals on a real D-Bus bus: a dbus-daemon started by the test,
python-dbusmock's logind template on it as the system bus (as GNOME's own
projects test this), and the session listener connected to it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.io.blocking import open_dbus_connection

from conftest import LiveHarness, rules_from, wait_until
from nerve.listeners import session as session_module

MOCK_PYTHON = "/usr/bin/python3"  # python3-dbusmock (Debian) needs dbus-python and GLib
LOGIN1 = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MOCK = "org.freedesktop.DBus.Mock"


def _have_dbusmock() -> bool:
    if shutil.which("dbus-daemon") is None or not os.path.exists(MOCK_PYTHON):
        return False
    probe = subprocess.run([MOCK_PYTHON, "-c", "import dbusmock"], capture_output=True, check=False)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _have_dbusmock(), reason="needs dbus-daemon and python3-dbusmock (.ci/run installs them)"
)


class Logind:
    """dbus-daemon + dbusmock's logind, and a connection to drive the mock."""

    def __init__(self, tmp: Path) -> None:
        self.daemon = subprocess.Popen(
            [
                "dbus-daemon",
                "--session",
                "--nofork",
                "--nopidfile",
                f"--address=unix:path={tmp}/system_bus_socket",
                "--print-address",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.daemon.stdout is not None
        self.address = self.daemon.stdout.readline().strip()
        assert self.address.startswith("unix:"), self.address
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        self.mock = subprocess.Popen(
            [MOCK_PYTHON, "-m", "dbusmock", "--system", "--template", "logind"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        self.conn = open_dbus_connection(bus="SYSTEM")
        wait_until(self._up, what="the logind mock on the bus")

    def _up(self) -> bool:
        bus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
        reply = self.conn.send_and_get_reply(
            new_method_call(bus, "NameHasOwner", "s", (LOGIN1,)), timeout=5
        )
        return bool(reply.body[0])

    def call(self, path: str, interface: str, method: str, signature: str = "", *args: Any) -> Any:
        message = new_method_call(
            DBusAddress(path, LOGIN1, interface), method, signature or None, args
        )
        reply = self.conn.send_and_get_reply(message, timeout=5)
        assert reply.header.message_type != MessageType.error, reply.body
        return reply.body

    def add_session(self, sid: str, uid: int, user: str) -> str:
        (path,) = self.call(
            MANAGER_PATH, MOCK, "AddSession", "ssusb", sid, "seat0", uid, user, True
        )
        return str(path)

    def inhibitors(self) -> list[Any]:
        (found,) = self.call(MANAGER_PATH, "org.freedesktop.login1.Manager", "ListInhibitors")
        return list(found)

    def emit(self, name: str, signature: str, *args: tuple[str, Any]) -> None:
        interface = "org.freedesktop.login1.Manager"
        self.call(MANAGER_PATH, MOCK, "EmitSignal", "sssav", interface, name, signature, list(args))

    def session(self, sid: str, method: str, signature: str = "", *args: Any) -> None:
        path = f"{MANAGER_PATH}/session/{sid}"
        self.call(path, "org.freedesktop.login1.Session", method, signature, *args)

    def close(self) -> None:
        self.conn.close()
        for proc in (self.mock, self.daemon):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.daemon.stdout is not None:
            self.daemon.stdout.close()


@pytest.fixture
def logind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Logind]:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "")
    monkeypatch.setenv("XDG_SESSION_ID", "c1")
    mock = Logind(tmp_path)
    mock.add_session("c1", os.getuid(), "me")
    yield mock
    mock.close()


RULES = """
  - {id: locked, mode: queued, when: {session.locked: null}, do: [{log: x}]}
  - {id: unlocked, mode: queued, when: {session.unlocked: null}, do: [{log: x}]}
  - {id: sleep, mode: queued, when: {system.suspending: null}, do: [{log: x}]}
  - {id: wake, mode: queued, when: {system.resumed: null}, do: [{log: x}]}
  - id: alice
    mode: queued
    when: {session.login: {user: alice}}
    do: [{emit: {type: test.alice, data: {uid: "{event.uid}", session: "{event.session}"}}}]
  - {id: bye, mode: queued, when: {session.logout: {uid: 1001}}, do: [{log: x}]}
"""


def fired(live: LiveHarness, *names: str) -> dict[str, int]:
    return {n: live.summary(n)["fired"] for n in names}


def test_lock_and_unlock_of_this_session(live: LiveHarness, logind: Logind) -> None:
    live.load(RULES)
    status = live.listener("session")
    assert "session c1, unlocked" in status["detail"]
    logind.session("c1", "Lock")  # what `loginctl lock-session` makes logind send
    (event,) = live.recorder.wait("session.locked", 1)
    assert event.source == "session"
    assert dict(event.data) == {"session": "c1"}
    logind.session("c1", "Unlock")
    live.recorder.wait("session.unlocked", 1)
    # Another user's session locking is not ours.
    logind.add_session("c9", 1009, "other")
    logind.session("c9", "Lock")
    logind.session("c9", "SetLockedHint", "b", True)
    # (logind's signals arrive in order: once this one is in, those were handled.)
    logind.emit("PrepareForSleep", "b", ("b", True))
    live.recorder.wait("system.suspending", 1)
    assert len(live.recorder.of("session.locked")) == 1
    # A screen locker sets LockedHint: the same events, once per change.
    logind.session("c1", "SetLockedHint", "b", True)
    (_, again) = live.recorder.wait("session.locked", 2)
    assert dict(again.data) == {"session": "c1"}
    logind.session("c1", "SetLockedHint", "b", True)
    logind.session("c1", "Lock")  # already locked: nothing new
    logind.session("c1", "SetLockedHint", "b", False)
    live.recorder.wait("session.unlocked", 2)
    assert len(live.recorder.of("session.locked")) == 2
    wait_until(lambda: fired(live, "locked", "unlocked") == {"locked": 2, "unlocked": 2})


def test_suspend_and_resume(live: LiveHarness, logind: Logind) -> None:
    live.load(RULES)
    status = live.listener("session")
    assert "delaying sleep for rules" in status["detail"]
    ours = ("sleep", "Nerve", "Rules run before the machine sleeps", "delay")
    assert [tuple(i[:4]) for i in logind.inhibitors()] == [ours]
    logind.emit("PrepareForSleep", "b", ("b", True))
    (event,) = live.recorder.wait("system.suspending", 1)
    assert dict(event.data) == {}
    # The rules get their time, then the machine may sleep.
    wait_until(lambda: logind.inhibitors() == [], what="the inhibitor released")
    held = (time.monotonic_ns() - event.mono_ns) / 1e9
    assert held >= session_module.SLEEP_GRACE_S
    logind.emit("PrepareForSleep", "b", ("b", False))
    live.recorder.wait("system.resumed", 1)
    wait_until(lambda: [tuple(i[:4]) for i in logind.inhibitors()] == [ours], what="held again")
    wait_until(lambda: fired(live, "sleep", "wake") == {"sleep": 1, "wake": 1})


def test_login_and_logout(live: LiveHarness, logind: Logind) -> None:
    live.load(RULES)
    live.listener("session")
    path = logind.add_session("c2", 1001, "alice")
    logind.emit("SessionNew", "so", ("s", "c2"), ("o", path))
    (login,) = live.recorder.wait("session.login", 1)
    assert dict(login.data) == {"session": "c2", "user": "alice", "uid": 1001, "path": path}
    (alice,) = live.recorder.wait("test.alice", 1)
    assert dict(alice.data) == {"uid": 1001, "session": "c2"}
    # Bob logs in: not alice.
    bob = logind.add_session("c3", 1002, "bob")
    logind.emit("SessionNew", "so", ("s", "c3"), ("o", bob))
    live.recorder.wait("session.login", 2)
    # Logout: the session is gone from logind, its user is remembered.
    logind.call(MANAGER_PATH, MOCK, "RemoveObject", "o", path)
    logind.emit("SessionRemoved", "so", ("s", "c2"), ("o", path))
    (logout,) = live.recorder.wait("session.logout", 1)
    assert dict(logout.data) == {"session": "c2", "user": "alice", "uid": 1001, "path": path}
    wait_until(lambda: fired(live, "alice", "bye") == {"alice": 1, "bye": 1})


def test_without_a_system_bus_the_listener_says_why(
    live: LiveHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/nothing-here")
    live.load(RULES)
    status = live.listener("session", state="unavailable")
    assert "system bus" in status["error"]


def test_the_listener_runs_only_while_a_rule_needs_it(live: LiveHarness, logind: Logind) -> None:
    live.load("\n  - {id: x, when: {event: x}, do: [{log: x}]}\n")
    assert not any(s["id"] == "session" for s in live.listeners.status())
    live.load(RULES)
    live.listener("session")
    live.load("\n  - {id: x, when: {event: x}, do: [{log: x}]}\n")
    wait_until(lambda: not any(s["id"] == "session" for s in live.listeners.status()))
    wait_until(lambda: "session" not in {t.name for t in threading.enumerate()})


def test_options_and_placeholders_are_checked_at_load() -> None:
    from nerve.packs.loader import load_pack

    for options, where in (
        ("{session.login: {name: x}}", "name"),
        ("{session.locked: {user: x}}", "session.locked"),
        ("{system.resumed: 1}", "system.resumed"),
    ):
        text = (
            "nerve: 1\npack: {id: t}\nrules:\n  - id: r\n"
            f"    when: {options}\n    do: [{{log: x}}]\n"
        )
        errors = [str(e) for e in load_pack(text.encode(), filename="p.yaml").errors]
        assert errors, options
        assert errors[0].startswith("p.yaml:5:"), errors
        assert where in errors[0], errors
    (rule,) = rules_from(
        "\n  - {id: r, when: {session.logout: null}, do: [{log: '{event.user} {event.uid}'}]}\n"
    )
    assert rule.capabilities == frozenset()
