"""Signed packs: ed25519 signatures, the keys that make them, the keys the user trusts.

What is signed, exactly:

- An **embedded** signature is the file's last line::

      # nerve-signature: ed25519 <public key> <signature>

  (both base64, the public key its 32 raw bytes, the signature its 64 raw
  bytes). The signed bytes are the file's bytes before that line, unchanged
  (``nerve pack sign`` ends them with a newline first). Being a YAML comment,
  the line does not change what the pack means. Nothing may follow it, and a
  file has at most one.
- A **detached** signature is the file ``<pack file>.sig`` holding the same
  line (without the ``# ``); the signed bytes are the whole pack file.

The fingerprint of a key is ``ed25519:`` and the first 32 hex digits of the
sha256 of its raw bytes. A bad signature (it does not verify, or is damaged)
is refused: such a pack is not imported. A good one says who signed; whether
that key is trusted (``nerve pack trust KEYFILE``: ``trusted-keys.yaml`` in the
config folder) is shown beside it, and an update signed by another key than the
version installed is flagged before it is approved.

The cryptography is the ``cryptography`` package's (imported when needed).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from nerve.paths import atomic_write, ensure_private_dir, read_user_file

MARK = b"nerve-signature:"
EMBEDDED_PREFIX = b"# nerve-signature:"
TRUSTED_FILE = "trusted-keys.yaml"
PUBLIC_PREFIX = "nerve-ed25519"
_LINE = re.compile(rb"(?:# )?nerve-signature: ed25519 ([A-Za-z0-9+/=]+) ([A-Za-z0-9+/=]+)\n?")


class SignatureError(Exception):
    """A signature or key that cannot be used; the message is for the user."""


Status = Literal["signed", "unsigned", "bad"]


@dataclass(frozen=True)
class Signature:
    status: Status
    fingerprint: str | None = None
    trusted: bool = False
    #: embedded or detached
    kind: str = ""
    problem: str = ""

    def text(self) -> str:
        if self.status == "unsigned":
            return "unsigned"
        if self.status == "bad":
            return f"BAD SIGNATURE: {self.problem}"
        trust = "a key you trust" if self.trusted else "a key you have not trusted"
        return f"signed by {self.fingerprint} ({trust})"


def fingerprint(raw_public: bytes) -> str:
    from nerve.packs.trust import file_hash

    return "ed25519:" + file_hash(raw_public)[:32]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: bytes | str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"the {what} is not valid base64") from None
    if len(raw) != size:
        raise SignatureError(f"the {what} is {len(raw)} bytes, not {size}")
    if base64.b64encode(raw) != (text.encode("ascii") if isinstance(text, str) else text):
        raise SignatureError(f"the {what} is not in canonical base64")
    return raw


# ---------------------------------------------------------------- keys


def keygen(private_path: Path) -> tuple[Path, str]:
    """A new key pair: the private key (PEM, user-only) at ``private_path``, the
    public key beside it (``.pub``). Returns the public key file and fingerprint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if private_path.exists():
        raise SignatureError(
            f"{private_path} exists; choose another file (keys are never overwritten)"
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fp = fingerprint(raw)
    atomic_write(private_path, pem, mode=0o600)
    public = private_path.with_name(private_path.name + ".pub")
    atomic_write(public, f"{PUBLIC_PREFIX} {_b64(raw)} {fp}\n".encode(), mode=0o644)
    return public, fp


def _private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = read_user_file(path, max_bytes=64 * 1024)
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"{path}: not an unencrypted ed25519 private key (PEM): {exc}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an ed25519 private key")
    return key


def read_public_key(path: Path) -> bytes:
    """The raw public key in a ``.pub`` file (``nerve-ed25519 <base64> ...``)."""
    try:
        text = read_user_file(path, max_bytes=64 * 1024).decode("utf-8", "replace")
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror or exc}") from None
    parts = text.split()
    if len(parts) < 2 or parts[0] != PUBLIC_PREFIX:
        if "PRIVATE KEY" in text:
            raise SignatureError(f"{path}: this is a private key; trust its .pub file instead")
        raise SignatureError(f"{path}: not a Nerve public key (a line '{PUBLIC_PREFIX} <base64>')")
    return _unb64(parts[1], 32, f"public key in {path}")


# ---------------------------------------------------------------- signing


def split_embedded(data: bytes) -> tuple[bytes, bytes | None]:
    """``(signed bytes, signature line and what follows)``; the line is None when
    no line starts with ``# nerve-signature:``."""
    if data.startswith(EMBEDDED_PREFIX):
        return b"", data
    at = data.rfind(b"\n" + EMBEDDED_PREFIX)
    if at < 0:
        return data, None
    return data[: at + 1], data[at + 1 :]


def sign(data: bytes, key_path: Path) -> bytes:
    """``data`` (a pack file) with an embedded signature by the key in ``key_path``;
    an embedded signature already there is replaced."""
    from cryptography.hazmat.primitives import serialization

    key = _private_key(key_path)
    body, line = split_embedded(data)
    if line is not None:
        data = body
    if data and not data.endswith(b"\n"):
        data += b"\n"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = key.sign(data)
    return data + f"# nerve-signature: ed25519 {_b64(raw)} {_b64(sig)}\n".encode()


def sign_detached(data: bytes, key_path: Path) -> bytes:
    """The contents of a detached ``.sig`` file for ``data``."""
    from cryptography.hazmat.primitives import serialization

    key = _private_key(key_path)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"nerve-signature: ed25519 {_b64(raw)} {_b64(key.sign(data))}\n".encode()


def _verify(signed: bytes, line: bytes, kind: str, trusted: set[str]) -> Signature:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    match = _LINE.fullmatch(line)
    if match is None:
        what = "the last line" if kind == "embedded" else "the .sig file"
        return Signature(
            "bad",
            kind=kind,
            problem=f"the signature line is damaged or not {what}",
        )
    try:
        raw = _unb64(match.group(1), 32, "public key")
        sig = _unb64(match.group(2), 64, "signature")
    except SignatureError as exc:
        return Signature("bad", kind=kind, problem=str(exc))
    fp = fingerprint(raw)
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(sig, signed)
    except (InvalidSignature, ValueError):
        return Signature(
            "bad",
            fp,
            kind=kind,
            problem=f"the pack was changed after {fp} signed it (or the signature is forged)",
        )
    return Signature("signed", fp, fp in trusted, kind)


def verify(
    data: bytes, detached: bytes | None = None, trusted: set[str] | None = None
) -> Signature:
    """The signature of a pack file's bytes (embedded, or ``detached``: a .sig file)."""
    keys = trusted or set()
    body, line = split_embedded(data)
    if detached is not None:
        if line is not None:
            return Signature("bad", problem="the pack has an embedded signature and a .sig file")
        return _verify(data, detached, "detached", keys)
    if line is None:
        return Signature("unsigned")
    if body.startswith(EMBEDDED_PREFIX) or b"\n" + EMBEDDED_PREFIX in body:
        return Signature(
            "bad", kind="embedded", problem="the pack has more than one signature line"
        )
    return _verify(body, line, "embedded", keys)


# ---------------------------------------------------------------- trusted keys


class TrustedKeys:
    """``trusted-keys.yaml``: the keys whose signatures the user trusts."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.path = config_dir / TRUSTED_FILE

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            data = yaml.safe_load(read_user_file(self.path, max_bytes=1 << 20))
        except (OSError, yaml.YAMLError):
            return {}
        keys = data.get("keys") if isinstance(data, dict) else None
        return (
            {str(k): v for k, v in keys.items() if isinstance(v, dict)}
            if isinstance(keys, dict)
            else {}
        )

    def fingerprints(self) -> set[str]:
        return set(self.read())

    def add(self, raw: bytes, name: str) -> str:
        from nerve.packs.trust import Approvals

        fp = fingerprint(raw)
        with Approvals(self.config_dir)._locked():
            keys = self.read()
            keys[fp] = {
                "key": _b64(raw),
                "name": name,
                "added": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
            }
            ensure_private_dir(self.config_dir)
            text = "# Keys whose pack signatures you trust (`nerve pack trust KEYFILE`).\n"
            text += yaml.safe_dump({"version": 1, "keys": keys}, sort_keys=True)
            atomic_write(self.path, text.encode("utf-8"), mode=0o600)
        return fp
