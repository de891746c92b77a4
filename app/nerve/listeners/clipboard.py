"""The X11 clipboard: the ``clipboard.changed`` trigger and the ``clipboard`` action.

Changes come from XFixes selection notifications (no polling): when another
client takes ownership of CLIPBOARD (or PRIMARY, the selected text), the
listener asks the owner for its TARGETS and then for the text, converted to
a property of its own window, and publishes ``clipboard.changed`` with
``selection``, ``mime``, ``text`` (text targets only, at most
:data:`MAX_TEXT_BYTES`, ``truncated`` tells) and nothing else. Large
transfers (INCR) are read up to the cap and drained. The event type is
private: its text is shown live and never written to disk.

The ``clipboard`` action sets the text the way X clipboards work: the
listener's window takes ownership of the selection and serves requests
(TARGETS, TIMESTAMP, UTF8_STRING, STRING, TEXT, text/plain) from the
listener's thread until another client takes the selection over. The action
returns once Nerve owns the selection. Changes Nerve makes itself are
recognised by the owner (its own window) and are not published, so a rule
that sets the clipboard does not trigger itself. When Nerve stops, text it
owns is gone, as with any X client (unless a clipboard manager kept a copy).
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nerve import matching
from nerve.engine.actions._common import text as render_text
from nerve.engine.registry import (
    Action,
    ActionError,
    CompileContext,
    ConfigError,
    Matcher,
    Trigger,
    actions,
    triggers,
)
from nerve.engine.runs import RunContext
from nerve.events import fields_for
from nerve.listeners.base import ListenerUnavailable, Need, listeners
from nerve.listeners.window import XListener, open_display, require_extension
from nerve.templates import Template

log = logging.getLogger(__name__)

#: Clipboard text in an event is cut at this many bytes (UTF-8).
MAX_TEXT_BYTES = 64 * 1024
#: How long the owner of a selection may take to answer one request.
FETCH_TIMEOUT_S = 2.0
#: How long the action waits for the listener to start and to own the selection.
SET_TIMEOUT_S = 3.0

SELECTIONS = {"clipboard": "CLIPBOARD", "primary": "PRIMARY"}

#: Text targets we ask for, best first.
_TEXT_TARGETS = (
    "UTF8_STRING",
    "text/plain;charset=utf-8",
    "STRING",
    "TEXT",
    "text/plain",
    "COMPOUND_TEXT",
)
#: Targets that say nothing about the content.
_META_TARGETS = frozenset(
    {"TARGETS", "MULTIPLE", "TIMESTAMP", "SAVE_TARGETS", "DELETE", "INSERT_SELECTION"}
)
#: What we serve for the text we own.
_SERVED_TEXT = ("UTF8_STRING", "text/plain;charset=utf-8", "text/plain", "STRING", "TEXT")
#: The most a paste keeps of the user's clipboard (all its targets together);
#: a target that would pass it is left out of what is put back.
MAX_SAVE_BYTES = 32 * 1024 * 1024
#: Targets not kept when the clipboard is saved: they describe the transfer,
#: not the content (or, as DELETE, change it).
_NOT_SAVED = _META_TARGETS | {"INSERT_PROPERTY", "_NET_WM_NAME"}
#: Data larger than this is served in chunks (ICCCM INCR).
INCR_CHUNK = 64 * 1024


@dataclass
class _Fetch:
    """Reading the content of one selection after another client took it."""

    selection: str  # "clipboard" | "primary"
    atom: int
    prop: int  # our window's property the owner writes to
    time: int  # the selection's timestamp (ICCCM: convert with this time)
    stage: str = "targets"  # targets | data | incr
    target: int = 0  # what we asked the owner for last
    deadline: float = 0.0
    mime: str | None = None
    encoding: str = "utf-8"
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False


#: One target's data as the owner gave it: (type atom, format 8/16/32, data:
#: bytes for format 8, a list of numbers for 16 and 32).
TargetData = tuple[int, int, Any]


@dataclass
class Saved:
    """A copy of a selection's content, target by target (empty: nobody owned it)."""

    targets: dict[int, TargetData] = field(default_factory=dict)
    owned: bool = False
    #: What it holds as text (reads for text only).
    text: str | None = None

    @property
    def size(self) -> int:
        return sum(len(d) * (f // 8) for _, f, d in self.targets.values())


@dataclass
class Ownership:
    """What Nerve owns a selection with; ``served`` is set once a client was
    given the content (a text target, or any saved one), ``lost`` once
    another client took the selection over."""

    text: str | None
    time: int = 0
    targets: dict[int, TargetData] | None = None
    served: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    #: The X clients (resource id bases) given the content, in order.
    clients: list[int] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def note_served(self, client: int) -> None:
        with self.changed:
            self.clients.append(client)
            self.served.set()
            self.changed.notify_all()

    def wait_served(self, timeout: float, client: int | None = None, after: int = 0) -> bool:
        """Wait until the content was given (to ``client`` when given), counting
        only deliveries after the first ``after``; False on timeout."""
        with self.changed:
            return self.changed.wait_for(
                lambda: any(client is None or c == client for c in self.clients[after:]),
                timeout,
            )


_Owned = Ownership


@dataclass
class _Read:
    """Reading a selection's targets on Nerve's window (to keep or to use them)."""

    atom: int
    prop: int
    future: concurrent.futures.Future[Saved]
    #: "all" (save every target) or "text" (the best text target only).
    want: str
    deadline: float = 0.0
    stage: str = "targets"  # targets | data | incr
    queue: list[int] = field(default_factory=list)
    target: int = 0
    incr: bytearray = field(default_factory=bytearray)
    incr_type: int = 0
    incr_format: int = 8
    result: Saved = field(default_factory=lambda: Saved(owned=True))


@dataclass
class _Outgoing:
    """A large target being served in chunks to one requestor (INCR)."""

    window: Any
    prop: int
    type: int
    format: int
    data: Any
    offset: int = 0
    deadline: float = 0.0


@dataclass
class _SetRequest:
    selection: str
    text: str | None
    future: concurrent.futures.Future[Any]
    deadline: float
    #: Targets to serve instead of text (a saved clipboard put back).
    targets: dict[int, TargetData] | None = None
    #: Resolve the future with the Ownership (not None).
    handle: bool = False


class _Shared:
    """Where the ``clipboard`` action finds the running listener."""

    listener: ClipboardListener | None = None
    unavailable: str | None = None
    changed = threading.Condition()


_shared = _Shared()


def _watched(needs: Sequence[Need]) -> frozenset[str]:
    return frozenset(n[1] for n in needs if isinstance(n, tuple) and n[0] == "watch")


@listeners.register
class ClipboardListener(XListener):
    """Selection changes through XFixes, and the selections Nerve owns."""

    id = "clipboard"
    description = "Clipboard changes (XFixes), and serving text the clipboard action sets"
    thread_name = "clipboard"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._commands: deque[tuple[str, Any]] = deque()
        self._watch: frozenset[str] = frozenset()
        self._fetches: dict[int, _Fetch] = {}
        self._owned: dict[int, _Owned] = {}
        self._sets: list[_SetRequest] = []
        #: Reads of a selection's content, one at a time (the first is under way).
        self._reads: deque[_Read] = deque()
        #: Large targets being served in chunks, by (requestor window, property).
        self._outgoing: dict[tuple[int, int], _Outgoing] = {}
        self._names: dict[int, str] = {}
        self.window: Any = None
        self.max_set_bytes = 0
        self._id_mask = 0

    # ------------------------------------------------------------ lifecycle

    def start(self, needs: Sequence[Need]) -> None:
        from Xlib import X

        try:
            # XWayland compositors keep the X clipboard in step with Wayland's.
            self.display = open_display("the clipboard", wayland_ok=True)
            d = self.display
            require_extension(d, "XFIXES", "watching the clipboard")
        except ListenerUnavailable as exc:
            _shared.unavailable = str(exc)
            raise
        d.xfixes_query_version()
        # python-xlib clones extension event classes per connection: match by code.
        self._owner_notify = tuple(d.extension_event.SetSelectionOwnerNotify)
        root = d.screen().root
        self.window = root.create_window(
            -10, -10, 1, 1, 0, X.CopyFromParent, X.InputOnly, X.CopyFromParent,
            event_mask=X.PropertyChangeMask,
        )  # fmt: skip
        self._atom = {name: d.intern_atom(name) for name in SELECTIONS.values()}
        self._sel_atoms = {sel: self._atom[name] for sel, name in SELECTIONS.items()}
        self._sel_names = {atom: sel for sel, atom in self._sel_atoms.items()}
        for name in (*_TEXT_TARGETS, "TARGETS", "TIMESTAMP", "INCR", "ATOM", "INTEGER"):
            self._atom[name] = d.intern_atom(name)
        self._atom["_NERVE_TIME"] = d.intern_atom("_NERVE_TIME")
        self._read_prop = d.intern_atom("_NERVE_READ")
        self._props = {
            atom: d.intern_atom(f"_NERVE_SELECTION_{sel.upper()}")
            for sel, atom in self._sel_atoms.items()
        }
        # The largest property one request can carry (the action's limit).
        self.max_set_bytes = d.display.info.max_request_length * 4 - 64
        self._id_mask = int(d.display.info.resource_id_mask)
        self._apply_watch(_watched(needs))
        _shared.unavailable = None
        self.run_thread()
        with _shared.changed:
            _shared.listener = self
            _shared.changed.notify_all()

    def reconfigure(self, needs: Sequence[Need]) -> None:
        # No restart: that would give up the selections Nerve owns.
        self._commands.append(("watch", _watched(needs)))
        self.wake()

    def stop(self) -> None:
        with _shared.changed:
            if _shared.listener is self:
                _shared.listener = None
        super().stop()
        pending: list[Any] = self._sets + list(self._reads)
        pending += [arg for command, arg in self._commands if command in ("set", "read")]
        for request in pending:
            if not request.future.done():
                request.future.set_exception(ActionError("the clipboard listener stopped"))
        self._sets.clear()
        self._reads.clear()
        self._outgoing.clear()
        self._commands.clear()

    def on_thread_failed(self, exc: BaseException) -> None:
        with _shared.changed:
            if _shared.listener is self:
                _shared.listener = None

    def detail(self) -> str:
        watching = ", ".join(sorted(self._watch)) or "nothing"
        owned = ", ".join(sorted(self._sel_names.get(a, "?") for a in self._owned))
        return f"XFixes; watching {watching}" + (f"; owns {owned}" if owned else "")

    # ------------------------------------------------------- other threads

    def set_text(self, selection: str, text: str) -> concurrent.futures.Future[None]:
        """Own ``selection`` with ``text`` (thread-safe); the future completes
        once the X server says Nerve owns it."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if len(text.encode()) > self.max_set_bytes:
            future.set_exception(
                ActionError(
                    f"clipboard text over {self.max_set_bytes // 1024} KiB is not supported"
                )
            )
            return future
        self._commands.append(("set", _SetRequest(selection, text, future, 0.0)))
        self.wake()
        return future

    def client_of(self, window: int) -> int:
        """The X client a window belongs to (its resource id base)."""
        return window & ~self._id_mask

    def own(
        self,
        selection: str,
        *,
        text: str | None = None,
        saved: Saved | None = None,
    ) -> concurrent.futures.Future[Ownership]:
        """Own ``selection`` with ``text`` or with the targets of ``saved``
        (thread-safe); the future gives the :class:`Ownership` once the X
        server says Nerve owns it. ``saved`` that nobody owned gives the
        selection up instead (the future then gives an Ownership already lost)."""
        future: concurrent.futures.Future[Ownership] = concurrent.futures.Future()
        if text is not None and len(text.encode()) > self.max_set_bytes:
            future.set_exception(
                ActionError(
                    f"clipboard text over {self.max_set_bytes // 1024} KiB is not supported"
                )
            )
            return future
        targets = saved.targets if saved is not None else None
        request = _SetRequest(selection, text, future, 0.0, targets, handle=True)
        self._commands.append(("set", request))
        self.wake()
        self._refuse_if_stopped(future)
        return future

    def restore(
        self, selection: str, ownership: Ownership, saved: Saved
    ) -> concurrent.futures.Future[Ownership | None]:
        """Put ``saved`` back on ``selection`` (give the selection up if nobody
        owned it), but only while Nerve still owns it with ``ownership``: a
        client that took it over meanwhile (the user copied) keeps it. The
        future gives the new Ownership (None: nothing to serve)."""
        future: concurrent.futures.Future[Ownership | None] = concurrent.futures.Future()
        self._commands.append(("restore", (selection, ownership, saved, future)))
        self.wake()
        self._refuse_if_stopped(future)
        return future

    def save(self, selection: str) -> concurrent.futures.Future[Saved]:
        """A copy of what ``selection`` holds now, every target of it up to
        :data:`MAX_SAVE_BYTES` (thread-safe)."""
        return self._read(selection, "all")

    def read_text(self, selection: str) -> concurrent.futures.Future[Saved]:
        """What ``selection`` holds as text (thread-safe; see :func:`saved_text`)."""
        return self._read(selection, "text")

    def _read(self, selection: str, want: str) -> concurrent.futures.Future[Saved]:
        future: concurrent.futures.Future[Saved] = concurrent.futures.Future()
        self._commands.append(("read", (selection, want, future)))
        self.wake()
        self._refuse_if_stopped(future)
        return future

    def _refuse_if_stopped(self, future: concurrent.futures.Future[Any]) -> None:
        """A request made as the listener stops fails at once (not at a timeout)."""
        if self._stopping.is_set() and not future.done():
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(ActionError("the clipboard listener stopped"))

    # ------------------------------------------------------ listener thread

    def _apply_watch(self, watch: frozenset[str]) -> None:
        from Xlib.ext import xfixes

        for sel, atom in self._sel_atoms.items():
            mask = xfixes.XFixesSetSelectionOwnerNotifyMask if sel in watch else 0
            self.display.xfixes_select_selection_input(self.window, atom, mask)
        self._watch = watch

    def handle_wake(self) -> None:
        from Xlib import X

        while self._commands:
            command, arg = self._commands.popleft()
            if command == "watch":
                self._apply_watch(arg)
            elif command == "set":
                arg.deadline = time.monotonic() + FETCH_TIMEOUT_S
                self._sets.append(arg)
                # ICCCM: own with a real timestamp, got from a property change.
                self.window.change_property(
                    self._atom["_NERVE_TIME"], self._atom["INTEGER"], 8, b"", X.PropModeAppend
                )
            elif command == "read":
                selection, want, future = arg
                atom = self._sel_atoms[selection]
                self._reads.append(_Read(atom, self._read_prop, future, want))
                if len(self._reads) == 1:
                    self._start_read()
            elif command == "restore":
                self._restore(*arg)

    def _restore(
        self,
        selection: str,
        ownership: Ownership,
        saved: Saved,
        future: concurrent.futures.Future[Ownership | None],
    ) -> None:
        from Xlib import X

        atom = self._sel_atoms[selection]
        if self._owned.get(atom) is not ownership or ownership.lost.is_set():
            future.set_result(None)  # another client has it now: theirs stays
            return
        if saved.owned:
            request = _SetRequest(
                selection, None, future, time.monotonic() + FETCH_TIMEOUT_S, saved.targets, True
            )
            self._sets.append(request)
            self.window.change_property(
                self._atom["_NERVE_TIME"], self._atom["INTEGER"], 8, b"", X.PropModeAppend
            )
            return
        from Xlib.protocol import request as xrequest

        del self._owned[atom]
        ownership.lost.set()
        # Nobody owned it before: give it up (owner None).
        xrequest.SetSelectionOwner(
            display=self.display.display, window=X.NONE, selection=atom, time=ownership.time
        )
        future.set_result(None)

    def next_timeout(self) -> float | None:
        deadlines = [f.deadline for f in self._fetches.values()]
        deadlines += [s.deadline for s in self._sets]
        deadlines += [r.deadline for r in list(self._reads)[:1]]
        deadlines += [o.deadline for o in self._outgoing.values()]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def on_timer(self) -> None:
        now = time.monotonic()
        for atom, fetch in list(self._fetches.items()):
            if fetch.deadline <= now:
                log.debug("clipboard: the owner of %s did not answer in time", fetch.selection)
                del self._fetches[atom]
                self._publish(fetch, truncated=fetch.stage == "incr")
        for request in [s for s in self._sets if s.deadline <= now]:
            self._sets.remove(request)
            if not request.future.done():
                request.future.set_exception(ActionError("the X server did not answer in time"))
        if self._reads and self._reads[0].deadline <= now:
            read = self._reads[0]
            log.debug("clipboard: the owner did not give target %d in time", read.target)
            self.window.delete_property(read.prop)
            self._next_target(read)  # leave this target out
        for key, out in list(self._outgoing.items()):
            if out.deadline <= now:
                del self._outgoing[key]  # the requestor stopped reading

    def handle_event(self, event: Any) -> None:
        from Xlib import X

        type_ = event.type & 0x7F  # without the "sent by a client" bit
        if (type_, getattr(event, "sub_code", None)) == self._owner_notify:
            self._owner_changed(event)
        elif type_ == X.SelectionNotify:
            if self._reads and _wid(event.requestor) == self.window.id:
                read = self._reads[0]
                if event.selection == read.atom and event.target == read.target:
                    self._read_answer(read, event)
                    return
            self._converted(event)
        elif type_ == X.PropertyNotify:
            if self._outgoing and self._serve_chunk(event):
                return
            if self._reads and self._read_chunk(event):
                return
            self._property(event)
        elif type_ == X.SelectionRequest:
            self._serve(event)
        elif type_ == X.SelectionClear:
            owned = self._owned.get(event.atom)
            if owned is not None and event.time >= owned.time:
                del self._owned[event.atom]
                owned.lost.set()

    # -- reading what another client put there

    def _owner_changed(self, event: Any) -> None:
        owner = _wid(event.owner)
        selection = self._sel_names.get(event.selection)
        if selection is None or selection not in self._watch or not owner:
            return
        if owner == self.window.id:
            return  # Nerve's own clipboard action: not a change to react to
        fetch = _Fetch(
            selection,
            event.selection,
            self._props[event.selection],
            event.selection_timestamp,
            deadline=time.monotonic() + FETCH_TIMEOUT_S,
        )
        self._fetches[event.selection] = fetch  # a newer change replaces a fetch in flight
        fetch.target = self._atom["TARGETS"]
        self.window.convert_selection(event.selection, fetch.target, fetch.prop, fetch.time)

    def _converted(self, event: Any) -> None:
        from Xlib import X

        fetch = self._fetches.get(event.selection)
        if (
            fetch is None
            or _wid(event.requestor) != self.window.id
            or event.target != fetch.target
            or event.time not in (fetch.time, X.CurrentTime)
        ):
            return  # an answer to a request a newer change replaced
        if fetch.stage == "targets":
            targets = self._read_targets(fetch) if event.property else []
            self._choose(fetch, targets)
            return
        if not event.property:  # the owner refused
            del self._fetches[event.selection]
            self._publish(fetch, text_failed=True)
            return
        self._read_data(fetch)

    def _read_targets(self, fetch: _Fetch) -> list[str]:
        reply = self.window.get_property(fetch.prop, self._atom["ATOM"], 0, 1024)
        self.window.delete_property(fetch.prop)
        if reply is None or reply.format != 32:
            return []
        return [self._name(int(a)) for a in reply.value]

    def _choose(self, fetch: _Fetch, targets: list[str]) -> None:
        offered = set(targets)
        text_target = next((t for t in _TEXT_TARGETS if t in offered), None)
        if not targets:
            text_target = "UTF8_STRING"  # an owner without TARGETS: just ask for text
        if text_target is None:
            typed = [t for t in targets if "/" in t and t not in _META_TARGETS]
            fetch.mime = typed[0] if typed else None
            del self._fetches[fetch.atom]
            self._publish(fetch)
            return
        fetch.stage = "data"
        fetch.mime = "text/plain"
        fetch.deadline = time.monotonic() + FETCH_TIMEOUT_S
        fetch.target = self._atom[text_target]
        self.window.convert_selection(fetch.atom, fetch.target, fetch.prop, fetch.time)

    def _read_data(self, fetch: _Fetch) -> None:
        reply = self.window.get_property(fetch.prop, 0, 0, MAX_TEXT_BYTES // 4 + 1)
        if reply is None:
            del self._fetches[fetch.atom]
            self._publish(fetch, text_failed=True)
            return
        if reply.property_type == self._atom["INCR"]:
            # Large: the owner sends chunks, each after we delete the last.
            log.debug("clipboard: %s comes in chunks (INCR)", fetch.selection)
            fetch.stage = "incr"
            fetch.deadline = time.monotonic() + FETCH_TIMEOUT_S
            self.window.delete_property(fetch.prop)
            return
        fetch.encoding = self._encoding(reply.property_type)
        self._take(fetch, reply)
        self.window.delete_property(fetch.prop)
        del self._fetches[fetch.atom]
        self._publish(fetch)

    def _take(self, fetch: _Fetch, reply: Any) -> None:
        room = MAX_TEXT_BYTES - len(fetch.data)
        chunk = bytes(reply.value) if reply.format == 8 else b""
        fetch.data += chunk[:room]
        if len(chunk) > room or reply.bytes_after:
            fetch.truncated = True

    def _property(self, event: Any) -> None:
        from Xlib import X

        if _wid(event.window) != self.window.id or event.state != X.PropertyNewValue:
            return
        if event.atom == self._atom["_NERVE_TIME"]:
            self._own(event.time)
            return
        fetch = next((f for f in self._fetches.values() if f.prop == event.atom), None)
        if fetch is None or fetch.stage != "incr":
            return
        room = MAX_TEXT_BYTES - len(fetch.data)
        # Past the cap, read one word only: enough to see the empty last chunk.
        reply = self.window.get_property(fetch.prop, 0, 0, room // 4 + 1 if room > 0 else 1)
        if reply is None:
            return
        if reply.property_type != self._atom["INCR"] and not fetch.data and not fetch.truncated:
            fetch.encoding = self._encoding(reply.property_type)
        empty = not len(reply.value) and not reply.bytes_after
        if not empty:
            self._take(fetch, reply)
        self.window.delete_property(fetch.prop)
        fetch.deadline = time.monotonic() + FETCH_TIMEOUT_S
        if empty:
            del self._fetches[fetch.atom]
            self._publish(fetch)

    def _encoding(self, type_atom: int) -> str:
        name = self._name(type_atom)
        return "latin-1" if name == "STRING" else "utf-8"

    def _publish(
        self, fetch: _Fetch, *, truncated: bool = False, text_failed: bool = False
    ) -> None:
        text: str | None = None
        if fetch.mime == "text/plain" and not text_failed:
            decoder = codecs.getincrementaldecoder(fetch.encoding)(errors="replace")
            cut = fetch.truncated or truncated
            # A cut may split a character: leave the partial one out.
            text = decoder.decode(bytes(fetch.data), final=not cut)
            truncated = cut
        self.publish(
            "clipboard.changed",
            {
                "selection": fetch.selection,
                "mime": fetch.mime if not text_failed else None,
                "text": text,
                "truncated": truncated,
            },
        )

    def _name(self, atom: int) -> str:
        name = self._names.get(atom)
        if name is None:
            try:
                name = self.display.get_atom_name(atom)
            except Exception:  # a bad atom from a confused owner
                name = ""
            if len(self._names) < 4096:
                self._names[atom] = name
        return name

    # -- owning and serving what the clipboard action set

    def _own(self, server_time: int) -> None:
        sets, self._sets = self._sets, []
        for request in sets:
            atom = self._sel_atoms[request.selection]
            self.window.set_selection_owner(atom, server_time)
            if _wid(self.display.get_selection_owner(atom)) == self.window.id:
                previous = self._owned.get(atom)
                if previous is not None:
                    previous.lost.set()
                owned = _Owned(request.text, server_time, request.targets)
                self._owned[atom] = owned
                request.future.set_result(owned if request.handle else None)
            else:
                request.future.set_exception(
                    ActionError(f"could not take the {request.selection} selection")
                )

    def _serve(self, event: Any) -> None:
        from Xlib import X, Xatom
        from Xlib.error import CatchError
        from Xlib.protocol import event as xevent

        owned = self._owned.get(event.selection)
        prop = event.property or event.target  # obsolete clients give no property
        ok = False
        if owned is not None and (event.time == X.CurrentTime or event.time >= owned.time):
            target = self._name(event.target)
            requestor = event.requestor
            catch = CatchError()
            if target == "TARGETS":
                offered = _SERVED_TEXT if owned.targets is None else ()
                atoms = [self._atom[t] for t in ("TARGETS", "TIMESTAMP", *offered)]
                atoms += [a for a in owned.targets or () if a not in atoms]
                requestor.change_property(prop, Xatom.ATOM, 32, atoms, onerror=catch)
                ok = True
            elif target == "TIMESTAMP":
                requestor.change_property(prop, Xatom.INTEGER, 32, [owned.time], onerror=catch)
                ok = True
            elif owned.targets is not None:
                ok = self._serve_saved(owned, event, prop, catch)
            elif target in _SERVED_TEXT and owned.text is not None:
                if target == "STRING":
                    data, type_ = owned.text.encode("latin-1", "replace"), Xatom.STRING
                else:
                    # TEXT lets the owner choose; UTF-8 is what clients expect today.
                    name = "UTF8_STRING" if target == "TEXT" else target
                    data, type_ = owned.text.encode(), self._atom[name]
                requestor.change_property(prop, type_, 8, data, onerror=catch)
                ok = True
                owned.note_served(self.client_of(requestor.id))
        notify = xevent.SelectionNotify(
            time=event.time,
            requestor=event.requestor,
            selection=event.selection,
            target=event.target,
            property=prop if ok else X.NONE,
        )
        event.requestor.send_event(notify, onerror=CatchError())

    def _serve_saved(self, owned: Ownership, event: Any, prop: int, catch: Any) -> bool:
        """Serve one saved target (in chunks when large); whether it was served."""
        from Xlib import X

        assert owned.targets is not None
        found = owned.targets.get(event.target)
        if found is None:
            return False
        type_, format_, data = found
        requestor = event.requestor
        if len(data) * (format_ // 8) > min(INCR_CHUNK * 4, self.max_set_bytes):
            # ICCCM INCR: announce the size, then a chunk each time the
            # requestor deletes the property, then an empty one.
            requestor.change_attributes(event_mask=X.PropertyChangeMask, onerror=catch)
            size = len(data) * (format_ // 8)
            requestor.change_property(prop, self._atom["INCR"], 32, [size], onerror=catch)
            self._outgoing[(requestor.id, prop)] = _Outgoing(
                requestor, prop, type_, format_, data, 0, time.monotonic() + FETCH_TIMEOUT_S
            )
        else:
            requestor.change_property(prop, type_, format_, data, onerror=catch)
        owned.note_served(self.client_of(requestor.id))
        return True

    def _serve_chunk(self, event: Any) -> bool:
        """The requestor of an INCR transfer deleted the property: the next chunk."""
        from Xlib import X
        from Xlib.error import CatchError

        out = self._outgoing.get((_wid(event.window), event.atom))
        if out is None:
            return False
        if event.state != X.PropertyDelete:
            return True
        items = INCR_CHUNK // (out.format // 8)
        chunk = out.data[out.offset : out.offset + items]
        out.offset += len(chunk)
        catch = CatchError()
        out.window.change_property(out.prop, out.type, out.format, chunk, onerror=catch)
        out.deadline = time.monotonic() + FETCH_TIMEOUT_S
        if not len(chunk):  # the empty chunk ends it
            window = _wid(event.window)
            del self._outgoing[(window, event.atom)]
            if not any(w == window for w, _ in self._outgoing):
                out.window.change_attributes(event_mask=0, onerror=catch)
        return True

    # -- reading a selection's content to keep it (a paste) or to use it

    def _start_read(self) -> None:
        """Ask the owner of the first read's selection for its TARGETS."""
        from Xlib import X

        while self._reads:
            read = self._reads[0]
            owner = _wid(self.display.get_selection_owner(read.atom))
            if not owner:
                self._finish_read(Saved(owned=False))
                continue
            owned = self._owned.get(read.atom)
            if owner == self.window.id and owned is not None:
                # Nerve's own: a copy of what it serves.
                if owned.targets is not None:
                    targets = dict(owned.targets)
                else:
                    targets = self._text_targets(owned.text or "")
                self._finish_read(Saved(_pick(targets, read.want, self._name), owned=True))
                continue
            read.stage = "targets"
            read.target = self._atom["TARGETS"]
            read.deadline = time.monotonic() + FETCH_TIMEOUT_S
            self.window.convert_selection(read.atom, read.target, read.prop, X.CurrentTime)
            return

    def _text_targets(self, text: str) -> dict[int, TargetData]:
        """What Nerve serves for ``text`` (see :meth:`_serve`), target by target."""
        targets: dict[int, TargetData] = {}
        for target in _SERVED_TEXT:
            if target == "STRING":
                targets[self._atom[target]] = (
                    self._atom["STRING"],
                    8,
                    text.encode("latin-1", "replace"),
                )
            else:
                name = "UTF8_STRING" if target == "TEXT" else target
                targets[self._atom[target]] = (self._atom[name], 8, text.encode())
        return targets

    def _finish_read(self, saved: Saved) -> None:
        read = self._reads.popleft()
        if read.want == "text":
            saved.text = saved_text(saved, self._name)
        if not read.future.done():
            read.future.set_result(saved)

    def _read_answer(self, read: _Read, event: Any) -> None:
        if read.stage == "targets":
            names: list[tuple[int, str]] = []
            if event.property:
                reply = self.window.get_property(read.prop, self._atom["ATOM"], 0, 4096)
                self.window.delete_property(read.prop)
                if reply is not None and reply.format == 32:
                    names = [(int(a), self._name(int(a))) for a in reply.value]
            offered = [a for a, n in names if n and n not in _NOT_SAVED]
            if read.want == "text":
                by_name = {n: a for a, n in names}
                best = next((by_name[t] for t in _TEXT_TARGETS if t in by_name), None)
                if not names:
                    best = self._atom["UTF8_STRING"]  # no TARGETS: just ask for text
                offered = [best] if best is not None else []
            read.queue = list(dict.fromkeys(offered))
            self._next_target(read)
            return
        if not event.property:  # refused: left out
            self._next_target(read)
            return
        room = MAX_SAVE_BYTES - read.result.size
        reply = self.window.get_property(read.prop, X_ANY, 0, max(room, 0) // 4 + 1)
        if reply is None:
            self._next_target(read)
            return
        if reply.property_type == self._atom["INCR"]:
            read.stage = "incr"
            read.incr = bytearray()
            read.incr_type = 0
            read.deadline = time.monotonic() + FETCH_TIMEOUT_S
            self.window.delete_property(read.prop)
            return
        self.window.delete_property(read.prop)
        if not reply.bytes_after:  # past the cap: left out
            read.result.targets[read.target] = _data(reply)
        self._next_target(read)

    def _read_chunk(self, event: Any) -> bool:
        """A chunk of an INCR transfer arrived for the read under way."""
        from Xlib import X

        read = self._reads[0]
        if (
            read.stage not in ("incr", "drain")
            or _wid(event.window) != self.window.id
            or event.atom != read.prop
        ):
            return False
        if event.state != X.PropertyNewValue:
            return True
        room = MAX_SAVE_BYTES - read.result.size - len(read.incr)
        reply = self.window.get_property(read.prop, X_ANY, 0, max(room, 0) // 4 + 1)
        self.window.delete_property(read.prop)
        read.deadline = time.monotonic() + FETCH_TIMEOUT_S
        if reply is None:
            return True
        type_, format_, data = _data(reply)
        if not len(data) and not reply.bytes_after:
            if read.incr_type:
                value = bytes(read.incr) if read.incr_format == 8 else _numbers(read)
                read.result.targets[read.target] = (read.incr_type, read.incr_format, value)
            self._next_target(read)
            return True
        if reply.bytes_after or room <= 0:
            read.incr_type = 0  # too large: drain it, keep nothing
            read.incr = bytearray()
            read.stage = "drain"
            return True
        if read.stage == "incr":
            read.incr_type, read.incr_format = type_, format_
            read.incr += _as_bytes(format_, data)
        return True

    def _next_target(self, read: _Read) -> None:
        from Xlib import X

        if read.stage == "drain":
            read.stage = "incr"
        if not read.queue:
            self._finish_read(read.result)
            self._start_read()
            return
        read.stage = "data"
        read.target = read.queue.pop(0)
        read.deadline = time.monotonic() + FETCH_TIMEOUT_S
        self.window.convert_selection(read.atom, read.target, read.prop, X.CurrentTime)


#: get_property's "any type".
X_ANY = 0


def _data(reply: Any) -> TargetData:
    """A property reply as (type, format, data)."""
    if reply.format == 8:
        return int(reply.property_type), 8, bytes(reply.value)
    return int(reply.property_type), int(reply.format), [int(v) for v in reply.value]


def _as_bytes(format_: int, data: Any) -> bytes:
    if format_ == 8:
        return bytes(data)
    import array

    return array.array("H" if format_ == 16 else "I", data).tobytes()


def _numbers(read: _Read) -> list[int]:
    import array

    values = array.array("H" if read.incr_format == 16 else "I")
    values.frombytes(bytes(read.incr))
    return list(values)


def _pick(targets: dict[int, TargetData], want: str, name: Any) -> dict[int, TargetData]:
    if want == "all":
        return targets
    by_name = {name(a): a for a in targets}
    best = next((by_name[t] for t in _TEXT_TARGETS if t in by_name), None)
    return {best: targets[best]} if best is not None else {}


def saved_text(saved: Saved, name: Any) -> str | None:
    """The text of a selection read with ``read_text`` (None: it holds no text)."""
    for type_, format_, data in saved.targets.values():
        if format_ != 8:
            continue
        encoding = "latin-1" if name(type_) == "STRING" else "utf-8"
        return bytes(data).decode(encoding, "replace")
    return None


def _wid(value: Any) -> int:
    """The id of a window field (python-xlib gives an object or a number)."""
    return int(getattr(value, "id", value) or 0)


# ---------------------------------------------------------------------------


_SELECTION_SCHEMA: dict[str, Any] = {
    "enum": list(SELECTIONS),
    "description": "clipboard (copy/paste, the default) or primary (the selected text)",
}


@triggers.register
class ClipboardChangedTrigger(Trigger):
    """Another program changed the clipboard."""

    key = "clipboard.changed"
    description = (
        "Another program put something on the clipboard (or the primary selection); "
        "optional matches on mime and text"
    )
    schema = {
        "anyOf": [
            {"type": "null"},
            {
                "type": "object",
                "properties": {
                    "selection": _SELECTION_SCHEMA,
                    "mime": {**matching.SPEC_SCHEMA, "description": "text/plain, image/*..."},
                    "text": {**matching.SPEC_SCHEMA, "description": "The copied text"},
                },
                "additionalProperties": False,
            },
        ]
    }
    capabilities = frozenset({"reads-clipboard"})

    def __init__(self, selection: str, specs: dict[str, Any]) -> None:
        self.selection = selection
        self.specs = specs
        check = matching.compile_fields(specs) if specs else None
        self.predicate = (lambda e: check(lambda n: e.get(n, matching.MISSING))) if check else None

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext) -> ClipboardChangedTrigger:
        options = dict(options or {})
        selection = options.pop("selection", "clipboard")
        for name, spec in options.items():
            try:
                matching.compile_spec(spec)
            except matching.SpecError as exc:
                raise ConfigError(str(exc), (name,)) from None
        return cls(selection, options)

    def matchers(self) -> list[Matcher]:
        return [Matcher("clipboard.changed", ("selection", self.selection), self.predicate)]

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "clipboard", ("watch", self.selection)

    def event_fields(self) -> frozenset[str] | None:
        return fields_for("clipboard.changed")

    def event_hint(self) -> str:
        return "clipboard.changed events"

    def describe(self) -> str:
        return f"clipboard.changed ({self.selection})"


@actions.register
class ClipboardAction(Action):
    """Put text on the clipboard."""

    key = "clipboard"
    description = (
        "Put text on the clipboard: text, or {text, selection: clipboard|primary}; "
        "Nerve serves it until another program takes the clipboard"
    )
    schema = {
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {"text": {"type": "string"}, "selection": _SELECTION_SCHEMA},
                "required": ["text"],
                "additionalProperties": False,
            },
        ]
    }
    capabilities = frozenset({"writes-clipboard"})

    def __init__(self, text: Template, selection: str) -> None:
        self.text = text
        self.selection = selection

    @classmethod
    def compile(
        cls, options: Any, ctx: CompileContext, siblings: Mapping[str, Any]
    ) -> ClipboardAction:
        if isinstance(options, str):
            options = {"text": options}
        text = ctx.template(options["text"], ("text",))
        return cls(text, options.get("selection", "clipboard"))

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        yield "clipboard", "serve"

    async def execute(self, run: RunContext) -> Any:
        value = render_text(self.text, run.scope)
        listener = await run.blocking(_wait_for_listener, SET_TIMEOUT_S)
        future = listener.set_text(self.selection, value)
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), SET_TIMEOUT_S)
        except TimeoutError:
            raise ActionError(f"could not take the {self.selection} selection in time") from None
        # The text itself stays out of the trace: clipboard content is private.
        return {"selection": self.selection, "chars": len(value)}


#: How long a paste waits for the user's clipboard to be read, and for Nerve
#: to own the clipboard.
SAVE_TIMEOUT_S = 5.0


class PasteBoard:
    """The clipboard as :meth:`nerve.injection.Injector.paste` uses it: keep
    the user's CLIPBOARD (every target), own it with the text to paste, and
    put the user's back afterwards (see :meth:`hold`)."""

    def __init__(self, listener: ClipboardListener) -> None:
        self.listener = listener

    @contextlib.contextmanager
    def hold(self, text: str) -> Iterator[Ownership]:
        """The clipboard holds ``text`` inside the block; the user's content
        (or no owner) is back after it, unless another client took the
        clipboard meanwhile (then theirs stays)."""
        listener = self.listener
        try:
            saved = listener.save("clipboard").result(SAVE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise ActionError(
                "the program that owns the clipboard did not give its content in time, "
                "so it could not be kept: not pasting"
            ) from None
        try:
            ownership = listener.own("clipboard", text=text).result(SAVE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise ActionError("could not take the clipboard in time to paste") from None
        try:
            yield ownership
        finally:
            try:
                listener.restore("clipboard", ownership, saved).result(SAVE_TIMEOUT_S)
            except (concurrent.futures.TimeoutError, ActionError):
                log.warning("clipboard: the user's clipboard could not be put back")

    def client_of(self, window: int) -> int:
        return self.listener.client_of(window)


def paste_board(timeout: float = SET_TIMEOUT_S) -> PasteBoard:
    """The running clipboard listener as a paste board (ActionError if none)."""
    return PasteBoard(_wait_for_listener(timeout))


#: ``{clipboard}`` gives at most this many characters of the clipboard's text.
MAX_PLACEHOLDER_CHARS = 1_000_000


def read_clipboard(timeout: float = SAVE_TIMEOUT_S) -> str:
    """The text the CLIPBOARD holds now ('' when none; at most
    :data:`MAX_PLACEHOLDER_CHARS`); blocking (a worker thread)."""
    listener = _wait_for_listener(SET_TIMEOUT_S)
    try:
        saved = listener.read_text("clipboard").result(timeout)
    except concurrent.futures.TimeoutError:
        raise ActionError("the program that owns the clipboard did not answer in time") from None
    return (saved.text or "")[:MAX_PLACEHOLDER_CHARS]


def _wait_for_listener(timeout: float) -> ClipboardListener:
    """The running clipboard listener; it starts when the rule loads, so wait a little."""
    deadline = time.monotonic() + timeout
    with _shared.changed:
        while _shared.listener is None:
            left = deadline - time.monotonic()
            if left <= 0 or _shared.unavailable:
                why = _shared.unavailable or "the clipboard listener is not running"
                raise ActionError(f"cannot set the clipboard: {why}")
            _shared.changed.wait(left)
        return _shared.listener
