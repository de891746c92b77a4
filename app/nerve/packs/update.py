"""Updating an installed pack to a new version, and finding packs with a newer one.

An update (:func:`plan_update`, :func:`apply_update`) replaces the file that
holds the pack id, keeping what the user chose for the old version:

- the input values given at import (inputs the new version dropped are
  forgotten; new inputs take a value given now or their default);
- the approval of capabilities that did not change: a new version that can do
  nothing it was not allowed before, signed by the same key, is approved as it
  is written; one that asks for more (a new program, folder, host...) or is
  signed by another key is held with the difference shown, and the version
  approved before keeps running (``approved/<sha256>.yaml``) until the user
  approves the new one.

A version older than the installed one is refused unless the caller allows a
downgrade. Versions compare as semantic versions (:mod:`nerve.packs.semver`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nerve.packs import semver
from nerve.packs.loader import Pack, load_pack
from nerve.packs.signing import Signature, verify
from nerve.packs.trust import (
    PACK_MAX_BYTES,
    Approval,
    Approvals,
    PackState,
    TrustError,
    file_hash,
    pack_files_with_id,
)
from nerve.paths import atomic_write, ensure_private_dir, read_user_file


@dataclass
class UpdatePlan:
    pack_id: str
    #: Where the new version came from (a file or a URL).
    source: str
    data: bytes
    #: The new version, loaded with the values it will get.
    pack: Pack
    #: The installed file the update replaces.
    target: Path
    #: The installed version as the file holds it now.
    old: Pack
    approval: Approval | None
    #: The input values the new version gets (kept and given).
    values: dict[str, str]
    #: Inputs the installed version does not have.
    new_inputs: list[str]
    #: Inputs without a default and without a value yet.
    missing_inputs: list[str]
    #: Capabilities the approval does not cover, and approved ones no longer used.
    added: frozenset[str]
    removed: frozenset[str]
    signature: Signature
    #: The key that signed the approved version (None: unsigned or never approved).
    old_signer: str | None
    downgrade: bool = False
    #: The new bytes are the installed bytes.
    same: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def signer_changed(self) -> bool:
        """Signed by another key than the version approved (or no longer signed)."""
        return self.old_signer is not None and self.signature.fingerprint != self.old_signer

    @property
    def needs_approval(self) -> bool:
        approved = self.approval is not None and self.approval.approved is not None
        if self.pack.capabilities and not approved:
            return True
        return bool(self.added) or self.signer_changed

    def state(self) -> PackState:
        """The new version as a held pack, for its diff (:meth:`PackState.diff_lines`)."""
        return PackState(self.pack, "held", self.added, dropped=self.removed)

    def diff_lines(self) -> list[str]:
        return self.state().diff_lines()

    def with_values(self, values: Mapping[str, str]) -> UpdatePlan:
        """The same bytes checked again with more input values."""
        return _plan(
            self.pack_id,
            self.source,
            self.data,
            self.target,
            self.old,
            self.approval,
            self.signature,
            {**self.values, **values},
            allow_downgrade=True,
        )


def installed_file(store: Approvals, pack_id: str) -> Path:
    """The file in the packs folder that holds ``pack_id`` (its owner)."""
    files = pack_files_with_id(store.packs_dir, pack_id)
    if not files:
        raise TrustError(f"pack {pack_id!r} is not installed (see `nerve pack list`)")
    if len(files) == 1:
        return files[0]
    approval = store.get(pack_id)
    for path in files:
        if approval is not None and approval.file == path.name:
            return path
    names = ", ".join(p.name for p in files)
    raise TrustError(f"pack {pack_id!r} is in several files ({names}); keep one first")


def plan_update(
    store: Approvals,
    pack_id: str,
    data: bytes,
    source: str,
    values: Mapping[str, str] | None = None,
    *,
    detached: bytes | None = None,
    allow_downgrade: bool = False,
    trusted: set[str] | None = None,
) -> UpdatePlan:
    """Check ``data`` as the new version of installed pack ``pack_id``; raises TrustError."""
    target = installed_file(store, pack_id)
    old = load_pack(target)
    approval = store.get(pack_id)
    signature = verify(data, detached, trusted)
    if signature.status == "bad":
        raise TrustError(f"{source}: {signature.text()}; the update was refused")
    kept: dict[str, str] = {}
    if approval is not None and approval.file == target.name:
        kept = dict(approval.values)
    return _plan(
        pack_id,
        source,
        data,
        target,
        old,
        approval,
        signature,
        {**kept, **dict(values or {})},
        allow_downgrade=allow_downgrade,
    )


def _plan(  # noqa: PLR0917 (one call site each, in this module)
    pack_id: str,
    source: str,
    data: bytes,
    target: Path,
    old: Pack,
    approval: Approval | None,
    signature: Signature,
    values: dict[str, str],
    *,
    allow_downgrade: bool,
) -> UpdatePlan:
    probe = load_pack(data, filename=source, overrides={}, strict_overrides=False)
    if probe.id != pack_id:
        raise TrustError(
            f"{source} is pack {probe.id or '(no id)'!r}, not {pack_id!r}; "
            "an update must keep the pack id"
        )
    values = {k: v for k, v in values.items() if k in probe.inputs}
    pack = load_pack(data, filename=source, overrides=values, strict_overrides=False)
    new_v = semver.try_parse(pack.version)
    if pack.version and new_v is None:
        raise TrustError(f"{source}: {_version_problem(pack.version)}")
    old_v = semver.try_parse(old.version)
    downgrade = new_v is not None and old_v is not None and new_v < old_v
    if downgrade and not allow_downgrade:
        raise TrustError(
            f"{source} is version {new_v}, older than the installed {old_v}; "
            "a downgrade needs --allow-downgrade"
        )
    approved = (
        approval.capabilities
        if approval is not None and approval.approved is not None and approval.file == target.name
        else frozenset()
    )
    try:
        same = read_user_file(target, max_bytes=PACK_MAX_BYTES) == data
    except OSError:
        same = False
    missing = [n for n, spec in pack.inputs.items() if "default" not in spec and n not in values]
    return UpdatePlan(
        pack_id=pack_id,
        source=source,
        data=data,
        pack=pack,
        target=target,
        old=old,
        approval=approval,
        values=values,
        new_inputs=[n for n in pack.inputs if n not in old.inputs],
        missing_inputs=missing,
        added=frozenset(pack.capabilities - approved),
        removed=frozenset(approved - pack.capabilities),
        signature=signature,
        old_signer=approval.signer if approval is not None and approval.approved else None,
        downgrade=downgrade,
        same=same,
    )


def _version_problem(version: str) -> str:
    try:
        semver.parse(version)
    except semver.InvalidVersion as exc:
        return str(exc)
    return ""


def apply_update(plan: UpdatePlan, store: Approvals, *, approve: bool) -> bool:
    """Write the new version over the installed file. Returns whether it runs now
    (approved, or needing no approval); otherwise it is held and the version
    approved before keeps running."""
    pack = plan.pack
    if not pack.usable or pack.errors:
        raise TrustError(f"{plan.source}: the pack has errors; it was not updated")
    if plan.missing_inputs:
        raise TrustError(
            f"{plan.source}: no value for the new input(s) {', '.join(plan.missing_inputs)} "
            "(give them with --set NAME=VALUE)"
        )
    ensure_private_dir(store.packs_dir)
    runs = approve or not plan.needs_approval
    if runs:
        store.approve(
            pack.id, pack.capabilities, file=plan.target.name, values=plan.values, data=plan.data
        )
    else:
        store.record(
            pack.id, file=plan.target.name, values=plan.values, sha256=file_hash(plan.data)
        )
    atomic_write(plan.target, plan.data, backup=True)
    return runs


# ------------------------------------------------------------------ outdated


@dataclass(frozen=True)
class Outdated:
    pack_id: str
    installed: str
    source_url: str
    #: The version found at the source ("" when the check failed).
    available: str = ""
    newer: bool = False
    problem: str = ""


def check_source(pack: Pack, fetcher: object = None) -> Outdated:
    """Ask ``pack``'s ``source_url`` (one request) for the version published there."""
    from nerve.packs.fetch import FetchError, fetch

    get = fetcher if callable(fetcher) else fetch
    url = pack.source_url
    try:
        got = get(url)
    except FetchError as exc:
        return Outdated(pack.id, pack.version, url, problem=str(exc))
    there = load_pack(got.data, filename=url, overrides={}, strict_overrides=False)
    if there.id != pack.id:
        return Outdated(
            pack.id,
            pack.version,
            url,
            problem=f"{url} holds pack {there.id or '?'!r}, not {pack.id!r}",
        )
    new_v, old_v = semver.try_parse(there.version), semver.try_parse(pack.version)
    if new_v is None:
        return Outdated(
            pack.id,
            pack.version,
            url,
            there.version,
            problem=f"{url}: {_version_problem(there.version) or 'no version'}",
        )
    newer = old_v is None or new_v > old_v
    return Outdated(pack.id, pack.version, url, str(there.version), newer)


def read_source(source: str) -> tuple[bytes, bytes | None, str]:
    """The bytes of a pack given as a file or an https:// URL, a detached
    signature beside a file (``FILE.sig``), and the name to show."""
    from nerve.packs.fetch import fetch, is_url

    if is_url(source):
        got = fetch(source)
        return got.data, None, got.final_url
    path = Path(source).expanduser()
    data = _read(path)
    sig_path = path.with_name(path.name + ".sig")
    detached = _read(sig_path, limit=4096) if sig_path.exists() else None
    return data, detached, str(path)


def _read(path: Path, limit: int = PACK_MAX_BYTES) -> bytes:
    from nerve.paths import FileTooLarge, NotRegularFile

    try:
        return read_user_file(path, max_bytes=limit)
    except NotRegularFile as exc:
        raise TrustError(f"{path}: not a regular file but {exc.kind}") from None
    except FileTooLarge as exc:
        raise TrustError(
            f"{path}: the file is {exc.size:,} bytes; the limit is {exc.limit:,}"
        ) from None
    except OSError as exc:
        raise TrustError(f"{path}: {exc.strerror or exc}") from None
