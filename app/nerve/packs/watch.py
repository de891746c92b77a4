"""Reloading when the user's pack files change.

Packs change behind Nerve's back: edited in a text editor, imported by
``nerve pack import``, saved by the window. :class:`PacksWatcher` watches the
packs folder (watchdog, not recursive) and, once a burst of changes has been
quiet for a moment, calls back once with the names that changed. Editor swap
and lock files, our own ``.tmp`` files and ``~`` backups are not pack files
(:func:`nerve.packs.trust.is_pack_file`) and are ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerve.packs.trust import is_pack_file

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

log = logging.getLogger(__name__)

#: How long the folder must be quiet before the packs are read again.
SETTLE_S = 0.3
POLL_INTERVAL_S = 2.0


class PacksWatcher:
    """Calls ``on_change(names)`` after pack files in ``folder`` changed and settled.

    ``on_change`` runs on the watcher's own thread, one call at a time; an
    exception in it is logged. :meth:`stop` joins the thread.
    """

    def __init__(
        self,
        folder: Path,
        on_change: Callable[[set[str]], None],
        *,
        settle: float = SETTLE_S,
    ) -> None:
        self.folder = folder
        self.on_change = on_change
        self.settle = settle
        self._cond = threading.Condition()
        self._changed: set[str] = set()
        self._deadline = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return  # reads (Nerve's own, an editor opening the file)
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path:
                        watcher.poke(Path(str(path)))

        try:
            observer: BaseObserver = Observer()
            observer.schedule(Handler(), str(self.folder), recursive=False)
            observer.start()
        except OSError as exc:
            log.warning("watching %s by polling every %gs: %s", self.folder, POLL_INTERVAL_S, exc)
            observer = PollingObserver(timeout=POLL_INTERVAL_S)
            observer.schedule(Handler(), str(self.folder), recursive=False)
            observer.start()
        observer.name = "packs-watch"
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name="packs-reload", daemon=True)
        self._thread.start()

    def poke(self, path: Path) -> None:
        """A change of ``path`` (called by watchdog's thread); pack files only count."""
        if path.parent != self.folder or not is_pack_file(path.name):
            return
        with self._cond:
            self._changed.add(path.name)
            self._deadline = time.monotonic() + self.settle
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._changed:
                        left = self._deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    else:
                        self._cond.wait()
                if self._stopping:
                    return
                changed, self._changed = self._changed, set()
            try:
                self.on_change(changed)
            except Exception:
                log.exception("reloading after a change of %s failed", ", ".join(sorted(changed)))

    def stop(self, wait: float = 0.5) -> None:
        """Stop watching; waits ``wait`` seconds at most for a reload in progress
        to end (the thread is a daemon: a reload that is slow, or stuck, never
        holds up a stopping Nerve)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            try:
                observer.stop()
                observer.join(wait)
            except Exception:
                log.exception("the packs folder watcher did not stop cleanly")
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(wait)
            if self._thread.is_alive():
                log.warning("stopping while the packs are being reloaded")
            self._thread = None
