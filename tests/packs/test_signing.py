"""Pack signatures: exactly the documented bytes are signed; any change is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerve.packs import signing

PACK = b"""nerve: 1
pack: {id: t.signed, version: 1.0.0}
rules:
  - id: a
    when: {event: x.a}
    do: [{log: hi}]
"""


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("keys") / "k"
    _, fp = signing.keygen(path)
    return path, fp


def test_the_signed_bytes_are_the_file_before_the_signature_line(key: tuple[Path, str]) -> None:
    path, fp = key
    signed = signing.sign(PACK, path)
    body, line = signing.split_embedded(signed)
    assert body == PACK
    assert line is not None
    assert line.startswith(b"# nerve-signature: ed25519 ")
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    sig = signing.verify(signed, trusted={fp})
    assert (sig.status, sig.fingerprint, sig.trusted, sig.kind) == ("signed", fp, True, "embedded")
    assert signing.sign(signed, path) == signed  # signing again replaces, never stacks
    no_newline = signing.sign(PACK.rstrip(b"\n"), path)
    assert signing.verify(no_newline).status == "signed"
    assert signing.verify(PACK).status == "unsigned"
    detached = signing.sign_detached(PACK, path)
    assert signing.verify(PACK, detached).status == "signed"
    assert signing.verify(PACK + b"#\n", detached).status == "bad"
    assert signing.verify(signed, detached).status == "bad"  # both at once: refused


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_one_byte_change_is_never_a_good_signature(
    key: tuple[Path, str], data: st.DataObject
) -> None:
    signed = signing.sign(PACK, key[0])
    at = data.draw(st.integers(0, len(signed) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != signed[at]))
    changed = signed[:at] + bytes([new]) + signed[at + 1 :]
    assert signing.verify(changed).status != "signed"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=64), st.integers(0, 400))
def test_inserted_or_appended_bytes_are_never_a_good_signature(
    key: tuple[Path, str], extra: bytes, where: int
) -> None:
    signed = signing.sign(PACK, key[0])
    at = min(where, len(signed))
    changed = signed[:at] + extra + signed[at:]
    if changed == signed:
        return
    assert signing.verify(changed).status != "signed"


def test_another_key_gives_another_fingerprint(tmp_path: Path, key: tuple[Path, str]) -> None:
    _, other = signing.keygen(tmp_path / "other")
    assert other != key[1]
    assert signing.verify(signing.sign(PACK, tmp_path / "other")).fingerprint == other
