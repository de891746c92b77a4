"""The session and the machine from systemd-logind over D-Bus: ``session.locked``,
``session.unlocked``, ``session.login``, ``session.logout``,
``system.suspending`` and ``system.resumed``.

The listener connects to the system bus with jeepney (pure Python, no C
library, a parser without I/O of its own, so the connection's socket is
read by the listener's thread in ``select()`` beside a wake-up pipe and
``stop()`` ends it at once; dbus-fast would bring an asyncio loop of its own
and compiled parts for six signals). It subscribes to logind's signals:

- ``PrepareForSleep(true/false)`` on the manager: ``system.suspending`` /
  ``system.resumed``. While it runs, the listener holds a *delay* inhibitor
  on sleep (as desktops do), so logind waits for it before suspending: it
  lets go :data:`SLEEP_GRACE_S` after publishing ``system.suspending``, time
  for rules to run (lock the screen, pause music, save state), and takes a
  new one on resume;
- ``SessionNew`` / ``SessionRemoved``: ``session.login`` / ``session.logout``
  with the session id and, where logind tells, the user's name and uid;
- ``Lock`` / ``Unlock`` on a session, and its ``LockedHint`` property (what
  screen lockers set): ``session.locked`` / ``session.unlocked`` of this
  session (``XDG_SESSION_ID``, else the session of this process), published
  when the state changes.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from nerve import matching
from nerve.engine.registry import CompileContext, ConfigError, Matcher, Trigger, triggers
from nerve.events import Event
from nerve.listeners.base import Listener, ListenerUnavailable, Need, listeners

log = logging.getLogger(__name__)

LOGIND = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
PROPERTIES = "org.freedesktop.DBus.Properties"
JOIN_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 2.0
#: How long the machine waits for rules after ``system.suspending`` (logind
#: caps it with InhibitDelayMaxSec, 5 s by default).
SLEEP_GRACE_S = 1.0

SESSION_FIELDS = ("session", "user", "uid", "path")


class SessionListener(Listener):
    """logind's signals on the system bus."""

    id = "session"
    description = "Screen lock, login, logout, suspend and resume (systemd-logind, D-Bus)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn: Any = None
        self._filter: Any = None
        self._queue: collections.deque[Any] = collections.deque()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r = self._wake_w = -1
        self.session_id = ""
        self.session_path = ""
        self.locked: bool | None = None
        self._sessions: dict[str, dict[str, object]] = {}
        #: The delay inhibitor on sleep (a file descriptor logind gave), if held.
        self.inhibitor: Any = None
        self._release_at: float | None = None

    # -- contract

    def start(self, needs: Sequence[Need]) -> None:
        try:
            from jeepney import MatchRule
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            raise ListenerUnavailable(
                "following logind needs jeepney: pip install jeepney"
            ) from None
        try:
            self._conn = open_dbus_connection(bus="SYSTEM", enable_fds=True)
        except (OSError, KeyError, ValueError, TimeoutError) as exc:
            raise ListenerUnavailable(f"cannot reach the D-Bus system bus: {exc}") from None
        try:
            self._filter = self._conn.filter(MatchRule(type="signal"), queue=self._queue)
            self._filter.__enter__()
            for rule in (
                MatchRule(type="signal", sender=LOGIND, interface=MANAGER, path=MANAGER_PATH),
                MatchRule(type="signal", sender=LOGIND, interface=SESSION),
                MatchRule(
                    type="signal",
                    sender=LOGIND,
                    interface=PROPERTIES,
                    member="PropertiesChanged",
                    path_namespace=f"{MANAGER_PATH}/session",
                ),
            ):
                self._call(_bus_call("AddMatch", "s", rule.serialise()))
            self._find_session()
            for sid, _uid, user, _seat, path in self._manager("ListSessions", "", ()):
                self._sessions[sid] = _session_data(sid, path, user=user, uid=_uid)
            self._inhibit()
        except ListenerUnavailable:
            self._close()
            raise
        except Exception as exc:
            self._close()
            raise ListenerUnavailable(
                f"systemd-logind does not answer on the system bus: {exc}"
            ) from None
        self._stopping.clear()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="session", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
        self._close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def detail(self) -> str:
        state = {None: "lock state not known", True: "locked", False: "unlocked"}[self.locked]
        session = f"session {self.session_id}" if self.session_id else "no session of ours"
        sleep = "delaying sleep for rules" if self.inhibitor is not None else "not delaying sleep"
        return f"logind on the system bus; {session}, {state}; {sleep}"

    def _inhibit(self) -> None:
        """Hold a delay inhibitor on sleep (without one, sleep is not delayed)."""
        if self.inhibitor is not None:
            return
        try:
            self.inhibitor = self._manager(
                "Inhibit",
                "ssss",
                ("sleep", "Nerve", "Rules run before the machine sleeps", "delay"),
            )
        except Exception as exc:  # not allowed by polkit, or no logind
            log.info("session: cannot delay sleep for rules (%s)", exc)
        self._release_at = None

    def _release(self) -> None:
        inhibitor, self.inhibitor = self.inhibitor, None
        self._release_at = None
        if inhibitor is not None:
            with contextlib.suppress(OSError):
                inhibitor.close()

    def _close(self) -> None:
        self._release()
        if self._filter is not None:
            with contextlib.suppress(Exception):
                self._filter.__exit__(None, None, None)
            self._filter = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    # -- D-Bus calls

    def _call(self, message: Any) -> tuple[Any, ...]:
        from jeepney import MessageType

        reply = self._conn.send_and_get_reply(message, timeout=CALL_TIMEOUT_S)
        if reply.header.message_type == MessageType.error:
            raise RuntimeError(f"{reply.body[0] if reply.body else 'D-Bus error'}")
        return tuple(reply.body)

    def _manager(self, method: str, signature: str, body: tuple[Any, ...]) -> Any:
        from jeepney import DBusAddress, new_method_call

        address = DBusAddress(MANAGER_PATH, bus_name=LOGIND, interface=MANAGER)
        (result,) = self._call(new_method_call(address, method, signature or None, body))
        return result

    def _property(self, path: str, name: str) -> Any:
        from jeepney import DBusAddress, new_method_call

        address = DBusAddress(path, bus_name=LOGIND, interface=PROPERTIES)
        ((_sig, value),) = self._call(new_method_call(address, "Get", "ss", (SESSION, name)))
        return value

    def _find_session(self) -> None:
        """Which session is ours: XDG_SESSION_ID, else the one of this process."""
        sid = os.environ.get("XDG_SESSION_ID", "")
        try:
            if sid:
                self.session_path = self._manager("GetSession", "s", (sid,))
            else:
                self.session_path = self._manager("GetSessionByPID", "u", (os.getpid(),))
                sid = str(self._property(self.session_path, "Id"))
            self.session_id = sid
            self.locked = bool(self._property(self.session_path, "LockedHint"))
        except Exception as exc:  # not in a logind session (a service, a container)
            log.info("session: no logind session of ours (%s); lock state not followed", exc)
            self.session_id = self.session_path = ""
            self.locked = None

    # -- the thread

    def _loop(self) -> None:
        conn = self._conn
        try:
            while not self._stopping.is_set():
                timeout = None
                if self._release_at is not None:
                    timeout = max(0.0, self._release_at - time.monotonic())
                fds = [conn.sock.fileno(), self._wake_r]
                readable, _, _ = select.select(fds, [], [], timeout)
                if self._wake_r in readable:
                    return
                if self._release_at is not None and time.monotonic() >= self._release_at:
                    self._release()  # the rules had their time: let the machine sleep
                while True:
                    try:
                        conn.recv_messages(timeout=0)
                    except TimeoutError:
                        break
                    self._handle_queue()
        except Exception as exc:
            if not self._stopping.is_set():
                self.failed(exc)

    def _handle_queue(self) -> None:
        while self._queue:
            message = self._queue.popleft()
            try:
                self.handle(message)
            except Exception:
                log.exception("session: handling a logind signal failed")

    def handle(self, message: Any) -> None:
        """One signal (on the listener's thread)."""
        from jeepney import HeaderFields

        fields = message.header.fields
        interface = fields.get(HeaderFields.interface)
        member = fields.get(HeaderFields.member)
        path = fields.get(HeaderFields.path, "")
        body = tuple(message.body)
        if interface == MANAGER and member == "PrepareForSleep" and body:
            if body[0]:
                self.publish("system.suspending", {})
                if self.inhibitor is not None:
                    self._release_at = time.monotonic() + SLEEP_GRACE_S
            else:
                self.publish("system.resumed", {})
                self._inhibit()
        elif interface == MANAGER and member in ("SessionNew", "SessionRemoved") and len(body) >= 2:
            self._login_logout(member, str(body[0]), str(body[1]))
        elif interface == SESSION and member in ("Lock", "Unlock") and self._ours(path):
            self._set_locked(member == "Lock")
        elif (
            interface == PROPERTIES
            and member == "PropertiesChanged"
            and self._ours(path)
            and len(body) >= 2
            and body[0] == SESSION
            and "LockedHint" in body[1]
        ):
            self._set_locked(bool(body[1]["LockedHint"][1]))

    def _ours(self, path: str) -> bool:
        return not self.session_path or path == self.session_path

    def _set_locked(self, locked: bool) -> None:
        if locked == self.locked:
            return
        self.locked = locked
        data: dict[str, object] = {"session": self.session_id}
        self.publish("session.locked" if locked else "session.unlocked", data)

    def _login_logout(self, member: str, sid: str, path: str) -> None:
        if member == "SessionNew":
            data = _session_data(sid, path)
            try:
                user = self._property(path, "Name")
                uid = self._property(path, "User")[0]
                data = _session_data(sid, path, user=user, uid=uid)
            except Exception as exc:  # gone already, or not allowed to read
                log.debug("session: cannot read session %s: %s", sid, exc)
            self._sessions[sid] = data
            self.publish("session.login", dict(data))
        else:
            data = self._sessions.pop(sid, {}) or _session_data(sid, path)
            self.publish("session.logout", dict(data))


def _session_data(
    sid: str, path: str, *, user: object = None, uid: object = None
) -> dict[str, object]:
    return {
        "session": sid,
        "user": str(user) if user is not None else None,
        "uid": int(uid) if isinstance(uid, int) else None,
        "path": str(path),
    }


def _bus_call(method: str, signature: str, *args: Any) -> Any:
    from jeepney import DBusAddress, new_method_call

    bus = DBusAddress(
        "/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus"
    )
    return new_method_call(bus, method, signature, args)


listeners.register(SessionListener)


# ---------------------------------------------------------------------------
# Triggers


class _SessionTrigger(Trigger):
    event_type: ClassVar[str] = ""
    listeners = frozenset({"session"})
    fields: ClassVar[tuple[str, ...]] = ()
    schema: ClassVar[dict[str, Any]] = {"type": "null"}

    def __init__(self, specs: dict[str, Any]) -> None:
        self.specs = specs
        self.check = matching.compile_fields(specs)

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> _SessionTrigger:
        specs = dict(options or {})
        for name, spec in specs.items():
            try:
                matching.compile_spec(spec)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), (name,)) from None
        return cls(specs)

    def matchers(self) -> list[Matcher]:
        if not self.specs:
            return [Matcher(self.event_type)]
        return [Matcher(self.event_type, predicate=self._matches)]

    def _matches(self, event: Event) -> bool:
        return self.check(lambda name: event.get(name, matching.MISSING))

    def event_fields(self) -> frozenset[str] | None:
        return frozenset(self.fields)

    def event_hint(self) -> str:
        return f"{self.event_type} events"

    def describe(self) -> str:
        return self.event_type


_NULL = {"type": "null"}
_WHO = {
    "anyOf": [
        {"type": "null"},
        {
            "type": "object",
            "properties": {
                "user": {**matching.SPEC_SCHEMA, "description": "The user's name"},
                "uid": {**matching.SPEC_SCHEMA, "description": "The user's id"},
                "session": {**matching.SPEC_SCHEMA, "description": "logind's session id"},
            },
            "additionalProperties": False,
        },
    ]
}


@triggers.register
class SessionLockedTrigger(_SessionTrigger):
    key = "session.locked"
    event_type = "session.locked"
    description = "This session's screen was locked (logind). Event: session"
    schema = _NULL
    fields = ("session",)


@triggers.register
class SessionUnlockedTrigger(_SessionTrigger):
    key = "session.unlocked"
    event_type = "session.unlocked"
    description = "This session's screen was unlocked (logind). Event: session"
    schema = _NULL
    fields = ("session",)


@triggers.register
class SessionLoginTrigger(_SessionTrigger):
    key = "session.login"
    event_type = "session.login"
    description = (
        "Someone logged in (a new logind session; user, uid, session: text, glob, "
        "{regex: ...}). Event: " + ", ".join(SESSION_FIELDS)
    )
    schema = _WHO
    fields = SESSION_FIELDS


@triggers.register
class SessionLogoutTrigger(_SessionTrigger):
    key = "session.logout"
    event_type = "session.logout"
    description = (
        "A logind session ended (user, uid, session as for session.login). Event: "
        + ", ".join(SESSION_FIELDS)
    )
    schema = _WHO
    fields = SESSION_FIELDS


@triggers.register
class SystemSuspendingTrigger(_SessionTrigger):
    key = "system.suspending"
    event_type = "system.suspending"
    description = (
        "The machine is about to suspend or hibernate (logind PrepareForSleep); it waits "
        f"{SLEEP_GRACE_S:g} s for rules (a logind delay inhibitor)"
    )
    schema = _NULL


@triggers.register
class SystemResumedTrigger(_SessionTrigger):
    key = "system.resumed"
    event_type = "system.resumed"
    description = "The machine woke up from suspend or hibernation (logind PrepareForSleep)"
    schema = _NULL
