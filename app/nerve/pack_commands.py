"""``nerve pack update / outdated / sign / keygen / trust / add`` and ``list --available``.

The pack commands that share packs beyond one import: new versions, the
shipped library, signatures. (``import``, ``export``, ``approve`` and ``list``
are in :mod:`nerve.cli`, which calls these.)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerve.packs.signing import Signature

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class SourceError(Exception):
    """A pack that cannot be read or fetched; the message is for the user."""


@dataclass(frozen=True)
class Source:
    #: The file or URL (after redirects) to name.
    name: str
    data: bytes
    signature: Signature


def read_for_import(text: str, trusted: set[str] | None = None) -> Source:
    """A pack file or URL read once: its bytes and signature (a bad one is refused)."""
    from nerve.packs.fetch import FetchError
    from nerve.packs.signing import verify
    from nerve.packs.trust import TrustError
    from nerve.packs.update import read_source

    if trusted is None:
        trusted = _trusted()
    try:
        data, detached, name = read_source(text)
    except (FetchError, TrustError) as exc:
        raise SourceError(str(exc)) from None
    sig = verify(data, detached, trusted)
    if sig.status == "bad":
        raise SourceError(f"{name}: {sig.text()}; nothing was imported")
    return Source(name, data, sig)


@dataclass(frozen=True)
class Reimport:
    """What a pack installed in the import's target file had: its input values
    and its approval (capabilities, signer)."""

    values: dict[str, str]
    approved: frozenset[str]
    signer: str | None

    def keeps_approval(self, pack: Any) -> bool:
        """The new version can do nothing beyond the approval, and the same key signed it."""
        return bool(self.approved) and pack.capabilities <= self.approved


def reimport(config: Path, source: Source, given: dict[str, str]) -> Reimport | None:
    """When ``source`` is a new version of a pack installed as ``<id>.yaml``, what it had."""
    from nerve.packs import trust
    from nerve.packs.loader import load_pack

    probe = load_pack(source.data, filename=source.name, overrides={}, strict_overrides=False)
    if not probe.id:
        return None
    store = trust.Approvals(config)
    approval = store.get(probe.id)
    if approval is None or approval.file != f"{probe.id}.yaml":
        return None
    if not (store.packs_dir / approval.file).is_file():
        return None
    values = {k: v for k, v in approval.values.items() if k in probe.inputs and k not in given}
    approved = approval.capabilities if approval.approved is not None else frozenset()
    if approval.approved and approval.signer and approval.signer != source.signature.fingerprint:
        print(
            f"! It is signed by another key than the version you approved "
            f"(that one: {approval.signer}; "
            f"this one: {source.signature.fingerprint or 'unsigned'})."
        )
        approved = frozenset()
    return Reimport(values, frozenset(approved), approval.signer)


def _trusted() -> set[str]:
    from nerve.packs.signing import TrustedKeys
    from nerve.paths import locations

    return TrustedKeys(locations().config).fingerprints()


def signature_lines(store: Any, pack_id: str, data: bytes) -> list[str]:
    """The signature of a pack under review, and a warning when the key is not the
    one of the version approved before."""
    from nerve.packs.signing import verify

    sig = verify(data, trusted=_trusted())
    lines = [f"Signature: {sig.text()}"]
    approval = store.get(pack_id)
    before = approval.signer if approval is not None and approval.approved else None
    if before is not None and sig.fingerprint != before:
        lines.append(
            f"! It is signed by another key than the version you approved "
            f"(that one: {before}; this one: {sig.fingerprint or 'unsigned'})."
        )
    return lines


def add_parsers(actions: Any, list_parser: Any) -> None:
    list_parser.add_argument(
        "--available",
        action="store_true",
        help="the packs shipped with Nerve (`nerve pack add NAME`)",
    )
    upd = actions.add_parser(
        "update", help="install a new version of a pack, keeping your inputs and approval"
    )
    upd.add_argument("pack_id", metavar="PACK")
    upd.add_argument(
        "source", nargs="?", metavar="FILE|URL", help="the new version (default: its source_url)"
    )
    upd.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a pack input (repeatable)"
    )
    upd.add_argument(
        "--approve", action="store_true", help="allow what the new version asks for beyond the old"
    )
    upd.add_argument(
        "--allow-downgrade", action="store_true", help="install an older version than yours"
    )
    actions.add_parser(
        "outdated", help="ask each pack's source_url for a newer version (one request per pack)"
    )
    add = actions.add_parser("add", help="install a pack shipped with Nerve (see list --available)")
    add.add_argument("name", metavar="NAME")
    add.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a pack input (repeatable)"
    )
    add.add_argument("--approve", action="store_true", help="allow what the pack can do")
    sign = actions.add_parser("sign", help="sign a pack file with your ed25519 key")
    sign.add_argument("file", type=Path, metavar="FILE")
    sign.add_argument(
        "--key", type=Path, required=True, metavar="KEY", help="your private key file"
    )
    sign.add_argument(
        "--detached", action="store_true", help="write FILE.sig instead of a last line in FILE"
    )
    keygen = actions.add_parser("keygen", help="make a key pair for signing packs")
    keygen.add_argument(
        "key", type=Path, nargs="?", metavar="FILE", help="the private key file to write"
    )
    trust = actions.add_parser("trust", help="trust the signatures of a public key (KEY.pub)")
    trust.add_argument("keyfile", type=Path, metavar="KEYFILE")


def _cli() -> Any:
    from nerve import cli

    return cli


# ------------------------------------------------------------------ update


def cmd_update(args: argparse.Namespace) -> int:
    from nerve.packs import trust, update
    from nerve.paths import locations

    cli = _cli()
    where = locations()
    store = trust.Approvals(where.config)
    given = cli._pairs(args.set, "--set")
    interactive = sys.stdin.isatty()
    try:
        source_text = args.source
        if not source_text:
            installed = update.installed_file(store, args.pack_id)
            from nerve.packs.loader import load_pack

            source_text = load_pack(installed).source_url
            if not source_text:
                raise SourceError(
                    f"pack {args.pack_id} names no source_url; give the new version: "
                    f"`nerve pack update {args.pack_id} FILE|URL`"
                )
        source = read_for_import(source_text)
        plan = update.plan_update(
            store,
            args.pack_id,
            source.data,
            source.name,
            given,
            allow_downgrade=args.allow_downgrade,
            trusted=_trusted(),
        )
    except (SourceError, trust.TrustError) as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return EXIT_INVALID
    pack = plan.pack
    if plan.same:
        print(f"{pack.id} {pack.version or ''} is what you have installed: nothing to update.")
        return EXIT_OK
    old_v, new_v = plan.old.version or "?", pack.version or "?"
    print(f"Update {pack.id}: {old_v} -> {new_v}" + (" (a DOWNGRADE)" if plan.downgrade else ""))
    print(f"Signature: {plan.signature.text()}")
    if plan.signer_changed:
        print(
            f"! It is signed by another key than the version you approved "
            f"(that one: {plan.old_signer}; this one: {plan.signature.fingerprint or 'unsigned'})."
        )
    # Inputs: kept values stay; new ones are asked (their default offered) or taken from --set.
    values: dict[str, str] = {}
    for name in plan.new_inputs:
        if name in plan.values:
            continue
        spec = pack.inputs[name]
        default = spec.get("default")
        if interactive:
            about = spec.get("description") or spec.get("type", "text")
            offer = f" [{default}]" if default is not None else ""
            answer = cli._ask(f"  new input {name} ({about}){offer}: ")
            if answer:
                values[name] = answer
            elif default is None:
                print("nerve: no value given; nothing was updated", file=sys.stderr)
                return EXIT_INVALID
        elif default is None:
            print(
                f"nerve: the new version has an input {name!r} without a default; "
                f"give it with --set {name}=VALUE (nothing was updated)",
                file=sys.stderr,
            )
            return EXIT_INVALID
    if values:
        plan = plan.with_values(values)
        pack = plan.pack
    if pack.errors:
        for error in pack.errors:
            print(error, file=sys.stderr)
        print(f"nerve: {plan.source} has errors; nothing was updated", file=sys.stderr)
        return EXIT_INVALID
    kept = [n for n in plan.values if n not in values and n in plan.old.inputs]
    if kept:
        print("Kept your inputs: " + ", ".join(kept))
    approve = args.approve
    if plan.needs_approval:
        lines = plan.diff_lines()
        if lines:
            print("What it can do changes:")
            for line in lines:
                print(f"  {line}")
        if not approve and interactive:
            answer = cli._ask(f"Allow {pack.id} {new_v} to do this? [y/N] ")
            approve = (answer or "").lower() in ("y", "yes")
    else:
        print("It asks for nothing you have not allowed: approved as before.")
    try:
        runs = update.apply_update(plan, store, approve=approve)
    except (trust.TrustError, OSError) as exc:
        print(f"nerve: {cli._os_error_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    if runs:
        print(f"Updated {pack.id} to {new_v}: active.")
    else:
        print(
            f"Updated {pack.id} to {new_v}: held until you approve it "
            f"(`nerve pack approve {pack.id}`); version {old_v} keeps running meanwhile."
        )
    cli._reload_running()
    return EXIT_OK


def cmd_outdated(args: argparse.Namespace) -> int:
    from nerve.packs import trust, update
    from nerve.paths import locations

    store = trust.Approvals(locations().config)
    packs, _ = trust.load_folder(store, record=False)
    sourced = [p for p in packs if p.source_url and p.id]
    if not sourced:
        print("none of your packs names a source_url")
        return EXIT_OK
    newer = 0
    for pack in sourced:
        result = update.check_source(pack)
        if result.problem:
            print(f"{pack.id}: {pack.version or '?'}; cannot check: {result.problem}")
        elif result.newer:
            newer += 1
            print(
                f"{pack.id}: {pack.version or '?'} -> {result.available} available "
                f"(`nerve pack update {pack.id}`)"
            )
        else:
            print(f"{pack.id}: {pack.version or '?'}, up to date")
    return EXIT_OK


# ------------------------------------------------------------------ library


def library_dir() -> Path:
    from nerve.paths import shipped_packs_dir

    return shipped_packs_dir() / "library"


def library() -> dict[str, Path]:
    """The shipped library: name (the file's stem) -> file."""
    folder = library_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml")) if p.is_file()}


def cmd_list_available(args: argparse.Namespace) -> int:
    from nerve.packs.loader import load_pack
    from nerve.packs.trust import capability_words

    found = library()
    if not found:
        print(f"no packs are shipped in {library_dir()}")
        return EXIT_OK
    width = max(len(n) for n in found)
    for name, path in found.items():
        pack = load_pack(path, overrides={}, strict_overrides=False)
        caps = capability_words(pack.capabilities)
        print(f"{name:<{width}}  {pack.name} {pack.version}: {pack.description}")
        if caps:
            print(f"{'':<{width}}    can: {'; '.join(caps)}")
    print("Install one with `nerve pack add NAME`.")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    found = library()
    if args.name not in found:
        names = ", ".join(found) or "none"
        print(f"nerve: no shipped pack {args.name!r} (available: {names})", file=sys.stderr)
        return EXIT_INVALID
    forward = argparse.Namespace(
        file=str(found[args.name]), set=args.set, approve=args.approve, replace=False
    )
    code: int = _cli().cmd_pack_import(forward)
    return code


# ------------------------------------------------------------------ signatures


def cmd_keygen(args: argparse.Namespace) -> int:
    from nerve.packs.signing import SignatureError, keygen
    from nerve.paths import locations

    target = args.key or locations().config / "keys" / "pack-signing.key"
    try:
        if args.key is None:
            from nerve.paths import ensure_private_dir

            ensure_private_dir(target.parent)
        public, fp = keygen(target)
    except (SignatureError, OSError) as exc:
        print(f"nerve: {_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    print(f"Private key: {target} (keep it to yourself)")
    print(f"Public key:  {public} (give it to the people who use your packs)")
    print(f"Fingerprint: {fp}")
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from nerve.packs.loader import load_pack
    from nerve.packs.signing import SignatureError, sign, sign_detached, verify
    from nerve.packs.trust import TrustError
    from nerve.packs.update import _read
    from nerve.paths import atomic_write

    try:
        data = _read(args.file)
        pack = load_pack(data, filename=str(args.file), overrides={}, strict_overrides=False)
        if not pack.id:
            for error in pack.errors:
                print(error, file=sys.stderr)
            print(
                f"nerve: {args.file} is not a pack (no pack id); it was not signed", file=sys.stderr
            )
            return EXIT_INVALID
        if args.detached:
            target = args.file.with_name(args.file.name + ".sig")
            out = sign_detached(data, args.key)
            atomic_write(target, out)
            sig = verify(data, out)
        else:
            target = args.file
            out = sign(data, args.key)
            atomic_write(target, out)
            sig = verify(out)
    except (SignatureError, TrustError, OSError) as exc:
        print(f"nerve: {_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    print(f"Signed {args.file} ({sig.kind}, in {target}) with {sig.fingerprint}.")
    return EXIT_OK


def cmd_trust(args: argparse.Namespace) -> int:
    from nerve.packs.signing import SignatureError, TrustedKeys, read_public_key
    from nerve.paths import locations

    try:
        raw = read_public_key(args.keyfile)
        fp = TrustedKeys(locations().config).add(raw, args.keyfile.name)
    except (SignatureError, OSError) as exc:
        print(f"nerve: {_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    print(f"You now trust packs signed by {fp} ({args.keyfile.name}).")
    return EXIT_OK


def _text(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        return f"{name}{exc.strerror or exc}"
    return str(exc)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "update": cmd_update,
    "outdated": cmd_outdated,
    "add": cmd_add,
    "sign": cmd_sign,
    "keygen": cmd_keygen,
    "trust": cmd_trust,
}
