"""Which of the user's packs may run, and bringing packs in and out.

Nerve sees every keystroke, so a pack someone shared must not read the
keyboard, type, start programs or reach the network before the user said it
may. What a pack can do is derived from its rules (:attr:`Pack.capabilities`);
what the user allowed is kept in ``approvals.yaml`` in the config folder, per
pack id: the approved capabilities, when, the file they were approved for and
the input values chosen at import.

Rules:

- A pack in the user's packs folder whose capabilities are not all approved is
  *held*: its rules are not loaded. A pack with no capabilities needs no
  approval. An update that widens the capabilities holds it again.
- An approval belongs to the file it was given for: another file claiming the
  same pack id (a copy, an import under another name) does not inherit it.
- Packs given with ``--rules`` are the user's explicit choice and are not
  checked here; the starter pack is approved when it is installed, and packs
  the user saves from the window are approved by the editor (:meth:`Approvals.approve`).
  Nothing else approves a pack: a missing or damaged ``approvals.yaml`` approves
  nothing, so a pack that moves it away gains nothing.
- ``approvals.yaml`` holds input values (tokens, paths): it is readable by the
  user only, and its read-modify-write is locked against other writers (the
  command line and the window).

Import (:func:`plan_import`, :func:`install`) and export (:func:`export_text`)
live here too: the command line and the window share them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from nerve import masking
from nerve.engine import caps as concrete
from nerve.packs.loader import (
    CAPABILITY_TEXT,
    Pack,
    is_pack_file,
    load_pack,
    load_paths,
)

__all__ = ["Approvals", "PackState", "is_pack_file", "judge", "load_folder"]
from nerve.packs.yamlsource import YamlError, load_yaml
from nerve.paths import (
    FileTooLarge,
    NotRegularFile,
    atomic_write,
    ensure_private_dir,
    read_user_file,
)

log = logging.getLogger(__name__)

APPROVALS_FILE = "approvals.yaml"
#: Taken (``flock``) around every change of the approvals file.
APPROVALS_LOCK = ".approvals.yaml.lock"
PACK_SUFFIXES = (".yaml", ".yml")
#: The largest pack file (as the loader takes them).
PACK_MAX_BYTES = 1 << 20
#: Which file holds each pack id, recorded when Nerve first sees it (see :func:`owners`).
INSTALLED_FILE = "installed.yaml"
#: Where the approved version of each pack is kept (see :meth:`Approvals.approved_version`).
APPROVED_VERSIONS = "approved"

#: Capabilities shown as dangerous when a pack is reviewed: what can leak what
#: the user types or change things outside Nerve.
DANGEROUS = frozenset(
    {
        "reads-keyboard",
        "reads-clipboard",
        "injects-input",
        "runs-programs",
        "runs-shell",
        "writes-files",
        "network",
    }
)

_HEADER = """\
# Packs you allowed to run, and what they may do. Nerve writes this file
# (`nerve pack approve`, `nerve pack import`, the window's Packs menu); a pack
# that asks for more than its entry lists is held until you approve it again.
"""


def dangerous(capability: str) -> bool:
    """Whether a capability (broad or concrete) is one to warn about."""
    return concrete.family(capability) in DANGEROUS


def capability_text(capability: str) -> str:
    """One capability in plain words."""
    return concrete.describe(capability) or CAPABILITY_TEXT.get(capability, capability)


def capability_words(capabilities: Iterable[str]) -> list[str]:
    """The capabilities in plain words, dangerous ones first.

    A broad capability whose concrete ones are listed too (``runs-programs``
    beside ``run:/usr/bin/foo``) is left out: the concrete ones say more."""
    return [capability_text(c) for c in shown_capabilities(capabilities)]


def shown_capabilities(capabilities: Iterable[str]) -> list[str]:
    """The capabilities to show, dangerous ones first; a broad one is left out
    when concrete ones of its kind are there."""
    shown = _without_covered(set(capabilities))
    return sorted(shown, key=lambda c: (not dangerous(c), concrete.family(c), c))


def file_hash(data: bytes) -> str:
    """The content hash approvals are bound to (sha256, hex).

    From CPython's own sha256 module, not ``hashlib``: hashlib maps OpenSSL's
    libcrypto into the process (megabytes a running Nerve does not need)."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found, no-redef, unused-ignore]
        except ImportError:  # a Python built without them
            from hashlib import sha256  # type: ignore[assignment, unused-ignore]
    digest: str = sha256(data).hexdigest()
    return digest


def signer_of(data: bytes) -> str | None:
    """The fingerprint of the key whose good signature ``data`` carries (embedded), else None."""
    from nerve.packs.signing import EMBEDDED_PREFIX, verify

    if EMBEDDED_PREFIX not in data:
        return None  # (cryptography is not loaded for the unsigned packs)
    sig = verify(data)
    return sig.fingerprint if sig.status == "signed" else None


def hash_of(path: Path) -> str | None:
    try:
        return file_hash(read_user_file(path, max_bytes=PACK_MAX_BYTES))
    except OSError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------- the store


@dataclass(frozen=True)
class Approval:
    """What the user allowed one pack (by id)."""

    pack_id: str
    #: The file (a name in the packs folder) the approval was given for.
    file: str
    capabilities: frozenset[str] = frozenset()
    #: When the capabilities were approved (ISO 8601); None: never (held at import).
    approved: str | None = None
    #: Input values chosen at import (as ``--set`` takes them: text).
    values: Mapping[str, str] = field(default_factory=dict)
    #: The content hash of the file as approved (None: an approval written
    #: before capabilities were concrete; see :func:`judge`).
    sha256: str | None = None
    #: The hash of a new version imported without approval: held until approved,
    #: while the version approved before (``sha256``) keeps running.
    pending: str | None = None
    #: The fingerprint of the key that signed the approved version (None: unsigned).
    signer: str | None = None

    def as_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "capabilities": sorted(self.capabilities),
            "approved": self.approved,
        }
        if self.sha256:
            out["sha256"] = self.sha256
        if self.pending:
            out["pending"] = self.pending
        if self.signer:
            out["signer"] = self.signer
        if self.values:
            out["inputs"] = dict(self.values)
        return out


class Approvals:
    """The approvals store: ``approvals.yaml`` in the config folder.

    Every read goes to the file (the command line and the window change it
    while Nerve runs); every write is atomic.
    """

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.path = config_dir / APPROVALS_FILE

    @property
    def packs_dir(self) -> Path:
        return self.config_dir / "packs"

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> dict[str, Approval]:
        """Every approval; a damaged file is reported and counts as no approvals."""
        if not self.path.exists():
            return {}
        try:
            data = load_yaml(self.path, filename=str(self.path)).data
        except YamlError as exc:
            log.error("%s (no pack is approved)", exc)  # file:line:column: message
            return {}
        except OSError as exc:
            log.error("cannot read %s: %s (no pack is approved)", self.path, exc.strerror or exc)
            return {}
        packs = data.get("packs") if isinstance(data, dict) else None
        if not isinstance(packs, dict):
            return {}
        out: dict[str, Approval] = {}
        for pack_id, entry in packs.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                log.warning("%s: the entry of %s is damaged; it is ignored", self.path, pack_id)
                continue
            caps = entry.get("capabilities") or []
            values = entry.get("inputs") or {}
            approved = entry.get("approved")
            digest = entry.get("sha256")
            pending = entry.get("pending")
            signer = entry.get("signer")
            out[str(pack_id)] = Approval(
                pack_id=str(pack_id),
                file=entry["file"],
                capabilities=frozenset(str(c) for c in caps)
                if isinstance(caps, list)
                else frozenset(),
                approved=str(approved) if approved else None,
                values={str(k): _text(v) for k, v in values.items()}
                if isinstance(values, dict)
                else {},
                sha256=str(digest) if digest else None,
                pending=str(pending) if pending else None,
                signer=str(signer) if signer else None,
            )
        return out

    def get(self, pack_id: str) -> Approval | None:
        return self.read().get(pack_id)

    def approve(
        self,
        pack_id: str,
        capabilities: Iterable[str],
        *,
        file: str | None = None,
        values: Mapping[str, str] | None = None,
        sha256: str | None = None,
        data: bytes | None = None,
    ) -> Approval:
        """Allow pack ``pack_id`` these capabilities (what it can do now).

        ``file`` is the pack's file name in the packs folder; without it, the
        file there that holds the pack (its owner: see :func:`owners`).
        ``values`` None keeps the stored input values (when they were given
        for this file). ``sha256``: the hash of the contents reviewed; without
        it, of the file as it is now. ``data``: the contents reviewed, kept as
        the approved version (it keeps running while a later edit is held)."""
        if file is None:
            file = self._file_of(pack_id)
        if data is None:
            try:
                data = read_user_file(self.packs_dir / file, max_bytes=PACK_MAX_BYTES)
            except OSError:
                data = None
        if sha256 is None and data is not None:
            sha256 = file_hash(data)
        if data is not None and sha256 is not None and file_hash(data) == sha256:
            self._keep(sha256, data)
        with self._locked():
            entries = self.read()
            old = entries.get(pack_id)
            kept = dict(old.values) if old is not None and old.file == file else {}
            entry = Approval(
                pack_id=pack_id,
                file=file,
                capabilities=frozenset(capabilities),
                approved=_now(),
                values=dict(values) if values is not None else kept,
                sha256=sha256,
                signer=signer_of(data) if data is not None else None,
            )
            entries[pack_id] = entry
            self._write(entries)
            self._prune(entries)
        return entry

    # The approved versions: ``approved/<sha256>.yaml``, user-only.

    @property
    def versions_dir(self) -> Path:
        return self.config_dir / APPROVED_VERSIONS

    def approved_version(self, approval: Approval) -> bytes | None:
        """The contents ``approval`` was given for, if kept (and intact)."""
        if not approval.sha256 or not re.fullmatch(r"[0-9a-f]{64}", approval.sha256):
            return None
        try:
            data = read_user_file(
                self.versions_dir / f"{approval.sha256}.yaml", max_bytes=PACK_MAX_BYTES
            )
        except OSError:
            return None
        return data if file_hash(data) == approval.sha256 else None

    def _keep(self, digest: str, data: bytes) -> None:
        try:
            ensure_private_dir(self.versions_dir)
            target = self.versions_dir / f"{digest}.yaml"
            if not _holds(target, data):
                atomic_write(target, data, mode=0o600)
        except OSError as exc:
            log.warning("cannot keep the approved version in %s: %s", self.versions_dir, exc)

    def _prune(self, entries: Mapping[str, Approval]) -> None:
        """Drop kept versions no approval names any more."""
        wanted = {f"{e.sha256}.yaml" for e in entries.values() if e.sha256}
        try:
            for path in self.versions_dir.iterdir():
                if path.name.endswith(".yaml") and path.name not in wanted:
                    path.unlink()
        except OSError:
            pass

    def record(
        self, pack_id: str, *, file: str, values: Mapping[str, str], sha256: str | None = None
    ) -> Approval:
        """Note a pack imported without approval (with its input values): it is held
        until approved, even if an earlier version was approved. A new version of
        an approved file is noted as pending: the approved version keeps running."""
        with self._locked():
            entries = self.read()
            old = entries.get(pack_id)
            if (
                old is not None
                and old.approved is not None
                and old.file == file
                and old.sha256
                and sha256
            ):
                pending = None if sha256 == old.sha256 else sha256
                entry = replace(old, values=dict(values), pending=pending)
            else:
                entry = Approval(pack_id=pack_id, file=file, values=dict(values), sha256=sha256)
            entries[pack_id] = entry
            self._write(entries)
        return entry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the approvals lock: one read-modify-write at a time, across processes.

        Where there is no ``flock`` (Windows) there is no lock."""
        try:
            import fcntl
        except ImportError:
            yield
            return
        ensure_private_dir(self.config_dir)
        # Never blocks on, nor takes as a terminal, what may stand in its place.
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY
        fd = os.open(self.config_dir / APPROVALS_LOCK, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _file_of(self, pack_id: str) -> str:
        files = pack_files_with_id(self.packs_dir, pack_id)
        names = [f.name for f in files]
        if len(names) == 1:
            return names[0]
        owner = _recorded_owner(pack_id, names, self.read(), Installed(self.config_dir).read())
        if owner is None:
            where = ", ".join(names) if names else "no file"
            raise TrustError(
                f"pack {pack_id!r} is in {where} of {self.packs_dir}; "
                "approve a pack that is in exactly one file"
            )
        return owner

    def _write(self, entries: Mapping[str, Approval]) -> None:
        ensure_private_dir(self.config_dir)
        body = {"version": 1, "packs": {k: v.as_yaml() for k, v in sorted(entries.items())}}
        text = _HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
        # User-only: it holds input values. The previous one stays as approvals.yaml~.
        atomic_write(self.path, text.encode("utf-8"), mode=0o600)


class TrustError(Exception):
    """An approval, import or export that cannot be done; the message is for the user."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------- who owns a pack id


class Installed:
    """``installed.yaml``: which file first held each pack id in the packs folder.

    Nerve writes it when it first sees a pack id in exactly one file that no
    approval names. It grants nothing: it only decides which of two files
    claiming one id is the first one (the other is held). Lost or damaged,
    two files with one id and no approval are both held."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.path = config_dir / INSTALLED_FILE

    def read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = load_yaml(self.path, filename=str(self.path)).data
        except (YamlError, OSError) as exc:
            log.warning("%s is unreadable (%s); no pack id is recorded", self.path, exc)
            return {}
        packs = data.get("packs") if isinstance(data, dict) else None
        if not isinstance(packs, dict):
            return {}
        out: dict[str, str] = {}
        for pack_id, entry in packs.items():
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                out[str(pack_id)] = entry["file"]
        return out

    def add(self, claims: Mapping[str, str]) -> None:
        """Record ``{pack id: file}`` (locked like the approvals file)."""
        if not claims:
            return
        with Approvals(self.config_dir)._locked():
            entries = self.read()
            entries.update(claims)
            body = {
                "version": 1,
                "packs": {k: {"file": v} for k, v in sorted(entries.items())},
            }
            text = (
                "# Which file holds each pack id (the first one Nerve saw). Nerve writes this.\n"
                + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
            )
            ensure_private_dir(self.config_dir)
            atomic_write(self.path, text.encode("utf-8"), mode=0o600)


def _recorded_owner(
    pack_id: str,
    names: Sequence[str],
    approvals: Mapping[str, Approval],
    claims: Mapping[str, str],
    unreadable: Iterable[str] = (),
) -> str | None:
    """Of the files ``names`` holding ``pack_id``, the one a record names: the
    approval's (or import's) file first, then the first one Nerve saw. A
    recorded file that is there but cannot be read now (a typo while it is
    being edited) keeps its id: another file does not take it meanwhile."""
    present = {*names, *unreadable}
    approval = approvals.get(pack_id)
    if approval is not None and approval.file in present:
        return approval.file
    claimed = claims.get(pack_id)
    if claimed is not None and claimed in present:
        return claimed
    return None


def owners(
    packs: Sequence[Pack], approvals: Mapping[str, Approval], claims: Mapping[str, str]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Which file owns each pack id of a packs folder, and the new claims to record.

    Ids are unique per packs folder; the first-installed file keeps its id:
    the file an approval (or an import) was recorded for, else the file first
    seen with it (``installed.yaml``), else the only file with it. Never the
    order of a directory listing or a modification time, which whoever writes
    a file chooses. Two or more files with one id and no record: no owner
    (None), and all of them are held until the user keeps one."""
    groups: dict[str, list[str]] = {}
    for pack in packs:
        if pack.id:
            groups.setdefault(pack.id, []).append(Path(pack.file).name)
    unreadable = [Path(p.file).name for p in packs if not p.id]
    result: dict[str, str | None] = {}
    claim: dict[str, str] = {}
    for pack_id, names in groups.items():
        owner = _recorded_owner(pack_id, names, approvals, claims, unreadable)
        if owner is None and len(names) == 1:
            owner = names[0]
            claim[pack_id] = owner
        result[pack_id] = owner
    return result, claim


# ----------------------------------------------------------------- verdicts

State = Literal["active", "held", "broken"]


@dataclass(frozen=True)
class PackState:
    """A loaded pack and whether it may run."""

    pack: Pack
    state: State
    #: Capabilities awaiting approval (held packs).
    missing: frozenset[str] = frozenset()
    #: The file an approval of this pack id was given for, when it is another file.
    approved_for: str | None = None
    #: Another file that owns this pack's id (this one is a newcomer: held).
    duplicate_of: str | None = None
    #: Other files claiming this id when none is recorded as the first (all held).
    rivals: tuple[str, ...] = ()
    #: Approved capabilities the pack no longer uses (shown with ``missing`` as a diff).
    dropped: frozenset[str] = frozenset()
    #: The file's edit is held, and the version approved before runs meanwhile.
    runs_approved: bool = False
    #: A new version imported without approval.
    pending: bool = False

    @property
    def file_name(self) -> str:
        return Path(self.pack.file).name

    @property
    def approvable(self) -> bool:
        """Whether ``nerve pack approve ID`` would approve this file."""
        return self.state == "held" and not self.duplicate_of and not self.rivals

    def diff(self) -> dict[str, list[str]]:
        """What changed against the approval: added and removed, concrete
        capabilities of one kind paired up as changed (``old -> new``)."""
        added = sorted(self.missing)
        removed = sorted(self.dropped)
        changed: list[str] = []
        for cap in list(added):
            parts = concrete.split(cap)
            if parts is None:
                continue
            same = [r for r in removed if (concrete.split(r) or ("", ""))[0] == parts[0]]
            if len(same) == 1 and len([a for a in added if a.startswith(parts[0] + ":")]) == 1:
                changed.append(f"{capability_text(same[0])} -> {capability_text(cap)}")
                added.remove(cap)
                removed.remove(same[0])
        return {
            "added": [capability_text(c) for c in _without_covered(added)],
            "removed": [capability_text(c) for c in _without_covered(removed)],
            "changed": changed,
        }

    def diff_lines(self) -> list[str]:
        """The diff as lines: ``+ added``, ``- removed``, ``~ old -> new``."""
        d = self.diff()
        return (
            [f"+ {c}" for c in d["added"]]
            + [f"~ {c}" for c in d["changed"]]
            + [f"- {c}" for c in d["removed"]]
        )

    def reason(self) -> str:
        """Why the pack is held or broken, in a sentence (empty when active)."""
        pack = self.pack
        if self.duplicate_of:
            return (
                f"pack id {pack.id!r} belongs to {self.duplicate_of} (installed first); "
                f"{self.file_name} claims the same id and is not loaded"
            )
        if self.rivals:
            return (
                f"pack id {pack.id!r} is claimed by {self.file_name} and "
                f"{', '.join(self.rivals)}, and none is recorded as installed first; "
                "none of them is loaded"
            )
        if self.state == "broken":
            first = f": {pack.errors[0]}" if pack.errors else ""
            return f"not loaded because of {len(pack.errors)} error(s){first}"
        if self.state == "active":
            return ""
        moved = (
            f" (it was approved as {self.approved_for}, and this is {self.file_name})"
            if self.approved_for
            else ""
        )
        meanwhile = "; the version you approved keeps running" if self.runs_approved else ""
        if self.pending:
            changes = "; ".join(self.diff_lines()) or "it can do nothing more"
            return f"you imported a new version and have not approved it ({changes}){meanwhile}"
        if self.dropped and not self.approved_for:
            changes = "; ".join(self.diff_lines())
            return f"what it can do changed since you approved it: {changes}{meanwhile}"
        words = "; ".join(capability_words(self.missing))
        return f"it can {words}, which you have not approved{moved}{meanwhile}"

    def hint(self) -> str:
        """What the user can do about it."""
        if self.duplicate_of:
            return (
                f"give {self.file_name} another pack id, or remove {self.duplicate_of} "
                f"and approve {self.file_name}"
            )
        if self.rivals:
            return "keep one of these files (remove or rename the others' ids)"
        return (
            f"approve it with `nerve pack approve {self.pack.id}` "
            "or in the window (Packs > Review held packs)"
        )

    def held_note(self) -> str:
        """The log line of a held pack: which pack, what it can do, how to approve."""
        return f"pack {self.pack.id} ({self.pack.file}) is held: {self.reason()}; {self.hint()}"


def _without_covered(capabilities: Iterable[str]) -> list[str]:
    caps = list(capabilities)
    covered = {concrete.family(c) for c in caps if concrete.split(c)}
    return [c for c in caps if concrete.split(c) or c not in covered]


def _legacy_allows(approval: Approval, capability: str) -> bool:
    """An approval written before capabilities were concrete allowed the broad kind."""
    return approval.sha256 is None and concrete.family(capability) in approval.capabilities


def judge(
    pack: Pack, approvals: Mapping[str, Approval], owner: str | Literal[False] | None = False
) -> PackState:
    """Whether a pack of the user's packs folder may run, given the approvals.

    ``owner``: the file owning the pack's id (:func:`owners`); None when no
    file does; False: not checked (the pack is taken as its id's owner)."""
    name = Path(pack.file).name
    if pack.id and owner is not False and owner != name:
        if owner is None:
            return PackState(pack, "held", pack.capabilities, rivals=("another file",))
        return PackState(pack, "held", pack.capabilities, duplicate_of=owner)
    if not pack.usable:
        return PackState(pack, "broken")
    caps = pack.capabilities
    if not caps:
        return PackState(pack, "active")
    approval = approvals.get(pack.id)
    if approval is None or approval.approved is None:
        return PackState(pack, "held", caps)
    if approval.file != name:
        return PackState(pack, "held", caps, approved_for=approval.file)
    missing = frozenset(
        c for c in caps if c not in approval.capabilities and not _legacy_allows(approval, c)
    )
    if approval.pending:  # imported, not approved: held whatever it asks for
        dropped = frozenset(approval.capabilities - caps)
        return PackState(pack, "held", missing, dropped=dropped, pending=True)
    if not missing:
        return PackState(pack, "active")
    dropped = frozenset(approval.capabilities - caps)
    return PackState(pack, "held", missing, dropped=dropped)


def judge_all(packs: Sequence[Pack], store: Approvals) -> list[PackState]:
    """The verdicts on the packs of the user's packs folder (ids checked for owners)."""
    approvals = store.read()
    owned, _ = owners(packs, approvals, Installed(store.config_dir).read())
    states = [judge(p, approvals, owned.get(p.id) if p.id else False) for p in packs]
    return _with_rivals(states)


def _with_rivals(states: list[PackState]) -> list[PackState]:
    """Name the other files of an id that no file owns."""
    out = []
    for state in states:
        if not state.rivals:
            out.append(state)
            continue
        others = tuple(
            s.file_name
            for s in states
            if s.pack.id == state.pack.id and s.file_name != state.file_name
        )
        out.append(PackState(state.pack, "held", state.missing, rivals=others or state.rivals))
    return out


def with_values(
    packs: list[Pack],
    store: Approvals,
    overrides: Mapping[str, str] | None = None,
    owned: Mapping[str, str | None] | None = None,
) -> list[Pack]:
    """Packs loaded again with the input values chosen at import (``--set`` wins).

    The values belong to the file they were given for: a pack in another file
    (a copy, a newcomer claiming the id, the file renamed) gets none of them."""
    approvals = store.read()
    out = []
    for loaded in packs:
        name = Path(loaded.file).name
        approval = approvals.get(loaded.id) if loaded.id else None
        mine = (
            approval is not None
            and approval.values
            and approval.file == name
            and (owned is None or owned.get(loaded.id) == name)
        )
        if approval is not None and mine:
            values = {k: v for k, v in approval.values.items() if k in loaded.inputs}
            values.update({k: v for k, v in (overrides or {}).items() if k in loaded.inputs})
            out.append(load_pack(Path(loaded.file), overrides=values, strict_overrides=False))
        else:
            out.append(loaded)
    return out


def load_folder(
    store: Approvals, overrides: Mapping[str, str] | None = None, *, record: bool = True
) -> tuple[list[Pack], list[PackState]]:
    """The packs of the user's packs folder as Nerve loads them, with their verdicts.

    Hidden files are not loaded; each pack id has one owner (:func:`owners`),
    and only the owner gets the input values recorded for its file. With
    ``record``, ids seen for the first time are recorded (``installed.yaml``)
    and approvals written before capabilities were concrete are pinned to
    the concrete ones they cover now."""
    folder = store.packs_dir
    if not folder.is_dir():
        return [], []
    packs = load_paths([folder], overrides)
    approvals = store.read()
    installed = Installed(store.config_dir)
    owned, claims = owners(packs, approvals, installed.read())
    packs = with_values(packs, store, overrides, owned)
    states = _with_rivals([judge(p, approvals, owned.get(p.id) if p.id else False) for p in packs])
    packs, states = _approved_versions(store, approvals, packs, states, overrides)
    if record:
        try:
            installed.add(claims)
            _pin_legacy(store, approvals, states)
        except OSError as exc:
            log.warning("cannot record the packs seen in %s: %s", store.config_dir, exc)
    return packs, states


def _approved_versions(
    store: Approvals,
    approvals: Mapping[str, Approval],
    packs: list[Pack],
    states: list[PackState],
    overrides: Mapping[str, str] | None,
) -> tuple[list[Pack], list[PackState]]:
    """For a file whose edit is held, the version approved before, if it was kept.

    It is loaded in the file's place (its rules keep running, as approved) and
    the edit stays held, shown with its diff, until it is approved."""
    out_packs, out_states = list(packs), list(states)
    for i, state in enumerate(states):
        approval = approvals.get(state.pack.id)
        if not state.approvable or approval is None or approval.approved is None:
            continue
        if approval.file != state.file_name:
            continue
        data = store.approved_version(approval)
        if data is None:
            continue
        pack = state.pack
        values = dict(approval.values)
        values.update(overrides or {})
        before = load_pack(data, filename=pack.file, overrides=values, strict_overrides=False)
        beyond = [
            c
            for c in before.capabilities
            if c not in approval.capabilities and not _legacy_allows(approval, c)
        ]
        if not before.usable or beyond:
            continue
        log.info("%s: running the version approved on %s", pack.file, approval.approved)
        out_packs[i] = before
        out_states[i] = PackState(
            pack,
            "held",
            state.missing,
            dropped=state.dropped,
            runs_approved=True,
            pending=state.pending,
        )
    return out_packs, out_states


def _pin_legacy(
    store: Approvals, approvals: Mapping[str, Approval], states: list[PackState]
) -> None:
    """An active pack approved before capabilities were concrete is pinned to
    what it names now (narrower than the broad kinds approved): a later edit
    that names another program, folder or host is held."""
    for state in states:
        pack = state.pack
        approval = approvals.get(pack.id)
        if state.state != "active" or approval is None or approval.approved is None:
            continue
        if approval.sha256 is not None or approval.file != state.file_name:
            continue
        store.approve(
            pack.id,
            approval.capabilities | pack.capabilities,
            file=approval.file,
            sha256=hash_of(Path(pack.file)),
        )


def load_user_packs(store: Approvals, overrides: Mapping[str, str] | None = None) -> list[Pack]:
    """The packs of the user's packs folder as Nerve loads them (values, id owners)."""
    return load_folder(store, overrides, record=False)[0]


def register_secrets(packs: Iterable[Pack]) -> None:
    """Mask the secret input values of these packs from now on (see :mod:`nerve.masking`)."""
    masking.register(v for pack in packs for v in pack.secret_values())


def approve_file(config_dir: Path, path: Path) -> None:
    """Approve what the pack in ``path`` (in the packs folder) can do now (the starter pack)."""
    pack = load_pack(path)
    if pack.usable:
        Approvals(config_dir).approve(pack.id, pack.capabilities, file=path.name)


def pack_files_with_id(folder: Path, pack_id: str) -> list[Path]:
    """The pack files in ``folder`` whose header says ``pack.id: pack_id``."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir()) if is_pack_file(p.name) and _id_of(p) == pack_id]


def _id_of(path: Path) -> str | None:
    try:
        data = load_yaml(path, filename=str(path)).data
    except (YamlError, OSError):
        return None
    info = data.get("pack") if isinstance(data, dict) else None
    return str(info.get("id")) if isinstance(info, dict) and "id" in info else None


# ------------------------------------------------------------------- import


@dataclass
class ImportPlan:
    """A pack file about to be imported: what it is and what it would replace.

    ``data`` is the file as read once, when the plan was made: what the user
    reviews is what :func:`install` copies in, whatever happens to the source
    file meanwhile."""

    source: Path | str
    data: bytes
    #: Loaded with the values given so far (see ``pack.errors``).
    pack: Pack
    packs_dir: Path
    #: Inputs without a default that were not given a value.
    missing_inputs: list[str]
    #: Other pack files with this id (or at the target name), with other contents.
    conflicts: list[Path]
    #: A file in the packs folder with exactly these contents (imported before).
    same_as: Path | None

    @property
    def target(self) -> Path:
        return self.same_as or self.packs_dir / f"{self.pack.id}.yaml"

    def with_values(self, values: Mapping[str, str]) -> ImportPlan:
        """The same bytes checked again with these input values (the source is not read again)."""
        return plan_data(self.source, self.data, self.packs_dir, values)


def plan_import(
    source: Path, packs_dir: Path, values: Mapping[str, str] | None = None
) -> ImportPlan:
    """Read and check ``source`` for import into ``packs_dir``; raises TrustError if unreadable."""
    try:
        data = read_user_file(source, max_bytes=PACK_MAX_BYTES)
    except NotRegularFile as exc:
        raise TrustError(f"{source}: not a regular file but {exc.kind}") from None
    except FileTooLarge as exc:
        raise TrustError(
            f"{source}: the file is {exc.size:,} bytes; packs are limited to {exc.limit:,}"
        ) from None
    except OSError as exc:
        raise TrustError(f"{source}: {exc.strerror or exc}") from None
    return plan_data(source, data, packs_dir, values)


def plan_data(
    source: Path | str, data: bytes, packs_dir: Path, values: Mapping[str, str] | None = None
) -> ImportPlan:
    """Check ``data`` (the contents of ``source``) for import into ``packs_dir``."""
    given = dict(values or {})
    pack = load_pack(data, filename=str(source), overrides=given)
    missing = [n for n, spec in pack.inputs.items() if "default" not in spec and n not in given]
    conflicts: list[Path] = []
    same_as: Path | None = None
    if pack.id and packs_dir.is_dir():
        target = packs_dir / f"{pack.id}.yaml"
        for path in sorted(packs_dir.iterdir()):
            if not is_pack_file(path.name) or not path.is_file():
                continue
            holds_id = _id_of(path) == pack.id
            if not holds_id and path != target:
                continue
            try:
                same = read_user_file(path, max_bytes=PACK_MAX_BYTES) == data
            except OSError:
                same = False
            if same and holds_id and same_as is None:
                same_as = path
            elif not same:
                conflicts.append(path)
    return ImportPlan(source, data, pack, packs_dir, missing, conflicts, same_as)


def install(
    plan: ImportPlan,
    store: Approvals,
    *,
    values: Mapping[str, str],
    approve: bool,
    replace: bool = False,
) -> Path:
    """Copy a checked pack into the packs folder; approve it or leave it held.

    The approval (or its absence) and the input values are written before
    the pack file, so a running Nerve that sees the file sees them too. Files
    replaced are kept as ``<file>~``. Returns the pack's file."""
    pack = plan.pack
    if not pack.usable or pack.errors:
        raise TrustError(f"{plan.source}: the pack has errors; it was not imported")
    if plan.conflicts and not replace:
        names = ", ".join(p.name for p in plan.conflicts)
        raise TrustError(
            f"your packs folder already has another pack with id {pack.id!r} ({names}); "
            "replace it explicitly, or change the id"
        )
    ensure_private_dir(plan.packs_dir)
    target = plan.target
    digest = file_hash(plan.data)
    if approve:
        store.approve(pack.id, pack.capabilities, file=target.name, values=values, data=plan.data)
    else:
        store.record(pack.id, file=target.name, values=values, sha256=digest)
    if not _holds(target, plan.data):  # (``same_as`` may have changed since the plan)
        atomic_write(target, plan.data, backup=True)
    for other in plan.conflicts:
        if other != target and other.exists():
            os.replace(other, other.with_name(other.name + "~"))
    return target


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a file with exactly ``data`` in it."""
    try:
        return read_user_file(path, max_bytes=PACK_MAX_BYTES) == data
    except OSError:
        return False


# ------------------------------------------------------------------- export

_INPUT_REF = re.compile(r"\{\{|\}\}|\{\s*input\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def inputs_used(value: Any) -> set[str]:
    """The ``{input.NAME}`` placeholders in a rule's plain data."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(m.group(1) for m in _INPUT_REF.finditer(value) if m.group(1))
    elif isinstance(value, dict):
        for k, v in value.items():
            found |= inputs_used(k) | inputs_used(v)
    elif isinstance(value, list):
        for v in value:
            found |= inputs_used(v)
    return found


HEADER_KEYS = ("id", "name", "version", "author", "description", "homepage")


def export_text(
    sources: Sequence[tuple[Path, Sequence[str] | None]], header: Mapping[str, Any] | None = None
) -> str:
    """A pack of the chosen rules: ``(pack file, rule ids)`` pairs (None: all), in order.

    The header is the source pack's (one source) or a generic one, updated by
    ``header``; the inputs the rules use are carried over with their
    declarations; rules keep their comments. The result is checked by loading
    it; a problem raises TrustError."""
    from nerve.packs.writer import PackDocument, PackWriteError

    chosen: list[tuple[Any, str]] = []
    owner: dict[str, Path] = {}
    inputs: dict[str, Any] = {}
    head: dict[str, Any] = {}
    try:
        for path, rule_ids in sources:
            doc = PackDocument.load(path)
            known = doc.rule_ids()
            source_inputs = doc.header().get("inputs") or {}
            for rule_id in known if rule_ids is None else rule_ids:
                if rule_id not in known:
                    raise TrustError(
                        f"{path}: no rule {rule_id!r} (rules: {', '.join(known) or 'none'})"
                    )
                if rule_id in owner:
                    raise TrustError(
                        f"rule id {rule_id!r} is in {owner[rule_id]} and {path}: "
                        "export them separately"
                    )
                owner[rule_id] = path
                chosen.append((doc, rule_id))
                for name in sorted(inputs_used(doc.rule(rule_id))):
                    spec = source_inputs.get(name)
                    if spec is None:
                        continue
                    if name in inputs and inputs[name] != spec:
                        raise TrustError(
                            f"input {name!r} is declared differently in the packs of the chosen "
                            "rules: export them separately"
                        )
                    inputs[name] = spec
        if not chosen:
            raise TrustError("no rules chosen")
        if len({str(owner[rule_id]) for _, rule_id in chosen}) == 1:
            first = chosen[0][0].header()
            head = {k: first[k] for k in HEADER_KEYS if k in first}
        else:
            head = {"id": "exported.rules", "name": "Exported rules"}
        head.update({k: v for k, v in (header or {}).items() if v not in (None, "")})
        if inputs:
            head["inputs"] = inputs
        text = "nerve: 1\n" + yaml.safe_dump(
            {"pack": head}, sort_keys=False, allow_unicode=True, width=4096
        )
        out = PackDocument(Path(f"{head.get('id', 'exported')}.yaml"), text + "rules: []\n")
        for doc, rule_id in chosen:
            plain = doc.rule(rule_id)
            out.set_rule_text(rule_id, doc.rule_text(rule_id))
            if out.rule(rule_id) != plain:  # comments kept, but never at the cost of meaning
                out.set_rule(rule_id, plain)
        result = out.dumps()
    except PackWriteError as exc:
        raise TrustError(str(exc)) from None
    # Inputs without a default get a value for the check only: the importer chooses theirs.
    stand_ins = {
        name: _stand_in(spec)
        for name, spec in inputs.items()
        if isinstance(spec, dict) and "default" not in spec
    }
    check = load_pack(
        result.encode("utf-8"),
        filename=f"{head.get('id', 'exported')}.yaml",
        overrides=stand_ins,
    )
    problems = [str(e) for e in check.errors]
    if [r.id for r in check.rules] != [rule_id for _, rule_id in chosen] and not problems:
        problems.append("the exported pack does not hold exactly the chosen rules")
    if problems:
        raise TrustError("the exported pack would not load:\n" + "\n".join(problems))
    return result


def _stand_in(spec: Mapping[str, Any]) -> str:
    """A value of an input's type (for checking a pack whose input has no default)."""
    choices = spec.get("choices")
    if isinstance(choices, list) and choices:
        return str(choices[0])
    return {"number": "0", "boolean": "true"}.get(str(spec.get("type", "text")), "x")
