"""Sharing packs beyond one import, end to end through the real command line:
``nerve pack update`` (inputs kept, approval kept or held with a diff, downgrades
refused), import from an https:// URL served by a local HTTPS server with a
test certificate, signed packs (good, bad, missing, another key on update)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_until
from https_server import HttpsServer
from test_cli import StartNerve, cli, cli_ok, start_nerve  # noqa: F401
from test_cli_pack import approvals, list_states, packs_dir, shared, terminal

EXIT_INVALID = 1

PACK = """\
nerve: 1
pack:
  id: shared.mover
  name: Mover
  version: VERSION
  inputs:
    who: {description: A name, type: text}
    EXTRA
rules:
  - id: touch
    when: {event: x.touch}
    do: [{run: {argv: [PROGRAM, "{event.path}"], wait: true}}]
  - id: note
    when: {event: x.note}
    do: [{log: "{input.who}: {event.text}"}]
"""


def pack_text(version: str, program: str = "touch", extra: str = "") -> str:
    return (
        PACK.replace("VERSION", version)
        .replace("PROGRAM", program)
        .replace("    EXTRA\n", f"    {extra}\n" if extra else "")
    )


def installed(env: dict[str, str]) -> str:
    return (packs_dir(env) / "shared.mover.yaml").read_text()


def entry(env: dict[str, str]) -> dict[str, object]:
    found: dict[str, object] = approvals(env)["shared.mover"]  # type: ignore[assignment]
    return found


# ------------------------------------------------------------------ updates


def test_update_with_the_same_capabilities_keeps_inputs_and_approval_without_asking(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", v1, "--set", "who=Sam", "--approve")
    # A new input with a default, a changed log text: nothing it can do is new.
    text = pack_text("1.1.0", extra="tone: {type: text, default: calm}").replace(
        "{input.who}:", "{input.who} ({input.tone}):"
    )
    v2 = shared(short_tmp, text, "v2.yaml")
    out = cli_ok(nerve_env, "pack", "update", "shared.mover", v2)  # no terminal, no --approve
    assert "1.0.0 -> 1.1.0" in out
    assert "approved as before" in out
    assert "Kept your inputs: who" in out
    assert list_states(nerve_env)["shared.mover"] == "active"
    assert installed(nerve_env) == text
    assert entry(nerve_env)["inputs"] == {"who": "Sam"}
    assert "pending" not in entry(nerve_env)


def test_update_with_a_new_capability_is_held_with_the_diff_while_the_old_runs(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
    short_tmp: Path,
) -> None:
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", v1, "--set", "who=Sam", "--approve")
    start_nerve()
    v2 = shared(short_tmp, pack_text("2.0.0", program="mkdir"), "v2.yaml")
    out = cli_ok(nerve_env, "pack", "update", "shared.mover", v2)
    assert "~ start the program touch -> start the program mkdir" in out
    assert "held until you approve it" in out
    assert "1.0.0 keeps running" in out
    assert installed(nerve_env) == v2.read_text()
    status = cli_ok(nerve_env, "status")
    assert "~ start the program touch -> start the program mkdir" in status
    made = short_tmp / "made"
    cli_ok(nerve_env, "emit", "x.touch", f"path={made}")
    wait_until(made.is_file, what="the approved version 1.0.0 (touch) to run")
    made.unlink()
    cli_ok(nerve_env, "pack", "approve", "shared.mover", "--yes")
    assert entry(nerve_env)["inputs"] == {"who": "Sam"}
    cli_ok(nerve_env, "emit", "x.touch", f"path={made}")
    wait_until(made.is_dir, what="the approved 2.0.0 (mkdir) to run")


def test_update_asks_only_for_new_inputs_offering_defaults(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", v1, "--set", "who=Sam", "--approve")
    extra = "tone: {type: text, default: calm}\n    place: {type: text}"
    v2 = shared(short_tmp, pack_text("1.1.0", extra=extra), "v2.yaml")
    # Without a terminal, an input with no default needs --set.
    proc = cli(nerve_env, "pack", "update", "shared.mover", v2)
    assert proc.returncode == EXIT_INVALID
    assert "--set place=VALUE" in proc.stderr
    with terminal(nerve_env, "pack", "update", "shared.mover", v2) as term:
        term.wait_for("new input tone (text) [calm]: ")
        term.answer("")
        term.wait_for("new input place (text): ")
        term.answer("home")
        code, out, err = term.finish()
    assert code == 0, out + err
    assert "who" not in out.split("Kept your inputs")[0]  # never asked for the kept one
    assert entry(nerve_env)["inputs"] == {"who": "Sam", "place": "home"}
    v3 = shared(short_tmp, pack_text("1.2.0", extra=extra), "v3.yaml")
    cli_ok(nerve_env, "pack", "update", "shared.mover", v3, "--set", "tone=loud")
    assert entry(nerve_env)["inputs"] == {"who": "Sam", "place": "home", "tone": "loud"}


@pytest.mark.parametrize(
    ("installed_v", "new_v"),
    [
        ("1.0.0", "0.9.9"),
        ("1.0.0", "1.0.0-rc.1"),
        ("1.0.0-beta.11", "1.0.0-beta.2"),
        ("2.0.0", "1.10.0"),
        ("1.0.0-alpha.beta", "1.0.0-alpha.1"),
    ],
)
def test_a_downgrade_is_refused_unless_allowed(
    nerve_env: dict[str, str], short_tmp: Path, installed_v: str, new_v: str
) -> None:
    v1 = shared(short_tmp, pack_text(installed_v), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", v1, "--set", "who=Sam", "--approve")
    old = shared(short_tmp, pack_text(new_v), "old.yaml")
    proc = cli(nerve_env, "pack", "update", "shared.mover", old)
    assert proc.returncode == EXIT_INVALID
    assert f"older than the installed {installed_v}" in proc.stderr
    assert "--allow-downgrade" in proc.stderr
    assert installed(nerve_env) == v1.read_text()
    cli_ok(nerve_env, "pack", "update", "shared.mover", old, "--allow-downgrade")
    assert installed(nerve_env) == old.read_text()
    assert list_states(nerve_env)["shared.mover"] == "active"


def test_update_refuses_another_pack_and_a_bad_version(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", v1, "--set", "who=Sam", "--approve")
    other = shared(short_tmp, pack_text("2.0.0").replace("shared.mover", "other.pack"), "o.yaml")
    proc = cli(nerve_env, "pack", "update", "shared.mover", other)
    assert proc.returncode == EXIT_INVALID
    assert "must keep the pack id" in proc.stderr
    bad = shared(short_tmp, pack_text("2.0"), "bad.yaml").read_text().replace("2.0", "two")
    proc = cli(nerve_env, "pack", "update", "shared.mover", shared(short_tmp, bad, "b.yaml"))
    assert proc.returncode == EXIT_INVALID
    assert "not a semantic version" in proc.stderr
    proc = cli(nerve_env, "pack", "update", "no.such", v1)
    assert proc.returncode == EXIT_INVALID
    assert "is not installed" in proc.stderr
    assert installed(nerve_env) == v1.read_text()


# ------------------------------------------------------------------ from a URL


@pytest.fixture
def server(short_tmp: Path, nerve_env: dict[str, str]) -> Iterator[HttpsServer]:
    srv = HttpsServer(short_tmp)
    nerve_env["SSL_CERT_FILE"] = str(srv.cert_file)  # the test certificate is trusted
    yield srv
    srv.close()


def test_import_from_a_url_through_a_redirect_shows_it_before_writing(
    server: HttpsServer, nerve_env: dict[str, str]
) -> None:
    text = pack_text("1.0.0")
    server.serve("/packs/mover.yaml", text.encode())
    server.redirect("/latest", "/packs/mover.yaml")
    proc = cli(nerve_env, "pack", "import", server.url("/latest"), "--set", "who=Sam")
    assert proc.returncode == 0, proc.stderr
    assert "start the program touch" in proc.stdout
    assert "Signature: unsigned" in proc.stdout
    assert "held until you approve it" in proc.stdout
    assert installed(nerve_env) == text
    digest = entry(nerve_env)
    cli_ok(nerve_env, "pack", "approve", "shared.mover", "--yes")
    import hashlib

    assert entry(nerve_env)["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert digest["inputs"] == {"who": "Sam"}
    # source_url: outdated asks it once, update takes it from there.
    v2 = pack_text("1.1.0").replace(
        "  name: Mover\n", f"  name: Mover\n  source_url: {server.url('/v2')}\n"
    )
    server.serve("/v2", v2.encode(), "text/yaml; charset=utf-8")
    cli_ok(nerve_env, "pack", "update", "shared.mover", server.url("/v2"))
    v3 = v2.replace("1.1.0", "1.2.0")
    server.serve("/v2", v3.encode())
    server.requests.clear()
    out = cli_ok(nerve_env, "pack", "outdated")
    assert "shared.mover: 1.1.0 -> 1.2.0 available" in out
    assert server.requests == ["/v2"]  # one request per pack
    cli_ok(nerve_env, "pack", "update", "shared.mover")
    assert installed(nerve_env) == v3
    assert "up to date" in cli_ok(nerve_env, "pack", "outdated")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            lambda s: s.serve("/p", b"<!DOCTYPE html><html><body>Pack</body></html>", "text/html"),
            "sent a web page (HTML)",
        ),
        (
            lambda s: s.serve("/p", b"<html><head></head><body>a pack</body></html>", "text/plain"),
            "sent a web page (HTML)",
        ),
        (lambda s: s.serve("/p", b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"), "sent image/png"),
        (lambda s: s.serve("/p", b"nerve: 1\n\x00\x01", "text/plain"), "binary"),
        (lambda s: s.stream("/p", 50 * 1024 * 1024, length_header=True), "packs are limited to"),
        (lambda s: s.stream("/p", 50 * 1024 * 1024, length_header=False), "stopped reading"),
        (lambda s: s.redirect("/p", "/p"), "more than 5 redirects"),
        (lambda s: s.redirect("/p", "http://127.0.0.1:9/p.yaml"), "from HTTPS to plain HTTP"),
        (lambda s: s.redirect("/p", "/missing", 301), "answered 404"),
        (lambda s: s.serve("/p", b"just: [text", "text/plain"), ""),
    ],
)
def test_bad_answers_are_refused_clearly_and_nothing_is_written(
    server: HttpsServer, nerve_env: dict[str, str], setup: object, message: str
) -> None:
    setup(server)  # type: ignore[operator]
    proc = cli(nerve_env, "pack", "import", server.url("/p"), "--approve", timeout=60)
    assert proc.returncode == EXIT_INVALID
    assert message in proc.stderr
    assert "nothing was imported" in proc.stderr or "https://" in proc.stderr
    assert not packs_dir(nerve_env).exists() or not list(packs_dir(nerve_env).glob("shared*"))
    if "/p" in server.sent:  # a 50 MB answer is cut off, not read to its end
        assert server.sent["/p"] < 20 * 1024 * 1024


def test_plain_http_and_an_untrusted_certificate_are_refused(
    short_tmp: Path, nerve_env: dict[str, str]
) -> None:
    proc = cli(nerve_env, "pack", "import", "http://127.0.0.1:9/p.yaml")
    assert proc.returncode == EXIT_INVALID
    assert "only https://" in proc.stderr
    srv = HttpsServer(short_tmp)  # its certificate is not trusted here
    try:
        srv.serve("/p", pack_text("1.0.0").encode())
        proc = cli(nerve_env, "pack", "import", srv.url("/p"))
        assert proc.returncode == EXIT_INVALID
        assert "certificate is not trusted" in proc.stderr
    finally:
        srv.close()


# ------------------------------------------------------------------ signatures


def keypair(env: dict[str, str], where: Path, name: str) -> tuple[Path, str]:
    out = cli_ok(env, "pack", "keygen", where / name)
    fingerprint = out.split("Fingerprint: ")[1].split()[0]
    return where / name, fingerprint


def test_signatures_good_bad_missing_and_another_key_on_update(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    key, fp = keypair(nerve_env, short_tmp, "author.key")
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    cli_ok(nerve_env, "pack", "sign", "--key", key, v1)
    assert v1.read_text().startswith(pack_text("1.0.0"))  # the signature is the last line
    # Good, by a key not trusted yet; then trusted.
    proc = cli(nerve_env, "pack", "import", v1, "--set", "who=Sam")
    assert f"Signature: signed by {fp} (a key you have not trusted)" in proc.stdout
    cli_ok(nerve_env, "pack", "trust", key.with_name("author.key.pub"))
    out = cli_ok(nerve_env, "pack", "import", v1, "--set", "who=Sam", "--approve", "--replace")
    assert f"signed by {fp} (a key you trust)" in out
    assert entry(nerve_env)["signer"] == fp
    # Bad: one byte changed after signing; a damaged signature line.
    text = v1.read_text()
    for bad in (text.replace("x.note", "x.nope"), text[:-10] + "AAAAAAAAA\n", text + "extra: 1\n"):
        tampered = shared(short_tmp, bad, "tampered.yaml")
        proc = cli(nerve_env, "pack", "import", tampered, "--approve", "--replace")
        assert proc.returncode == EXIT_INVALID
        assert "BAD SIGNATURE" in proc.stderr
        proc = cli(nerve_env, "pack", "update", "shared.mover", tampered)
        assert proc.returncode == EXIT_INVALID
        assert "BAD SIGNATURE" in proc.stderr
    assert installed(nerve_env) == text
    # Same key, same capabilities: approved as before.
    v2 = shared(short_tmp, pack_text("1.1.0"), "v2.yaml")
    cli_ok(nerve_env, "pack", "sign", "--key", key, v2)
    out = cli_ok(nerve_env, "pack", "update", "shared.mover", v2)
    assert "approved as before" in out
    assert list_states(nerve_env)["shared.mover"] == "active"
    # Another key, same capabilities: flagged and held.
    other, other_fp = keypair(nerve_env, short_tmp, "stranger.key")
    v3 = shared(short_tmp, pack_text("1.2.0"), "v3.yaml")
    cli_ok(nerve_env, "pack", "sign", "--key", other, v3)
    out = cli_ok(nerve_env, "pack", "update", "shared.mover", v3)
    assert (
        "signed by another key than the version you approved "
        f"(that one: {fp}; this one: {other_fp})" in out
    )
    assert "held until you approve it" in out
    assert list_states(nerve_env)["shared.mover"] == "held"
    # Missing: an unsigned update of a signed pack is flagged too.
    v4 = shared(short_tmp, pack_text("1.3.0"), "v4.yaml")
    out = cli_ok(nerve_env, "pack", "update", "shared.mover", v4)
    assert "this one: unsigned" in out
    assert "held until you approve it" in out
    cli_ok(nerve_env, "pack", "approve", "shared.mover", "--yes")
    assert "signer" not in entry(nerve_env)


def test_a_detached_signature_is_checked_on_import(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    key, fp = keypair(nerve_env, short_tmp, "k")
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    cli_ok(nerve_env, "pack", "sign", "--detached", "--key", key, v1)
    assert v1.read_text() == pack_text("1.0.0")
    sig = v1.with_name("v1.yaml.sig")
    out = cli_ok(nerve_env, "pack", "import", v1, "--set", "who=S")
    assert f"signed by {fp}" in out
    v1.write_text(pack_text("1.0.1"))
    proc = cli(nerve_env, "pack", "import", v1, "--set", "who=S", "--replace")
    assert proc.returncode == EXIT_INVALID
    assert "BAD SIGNATURE" in proc.stderr
    sig.write_text("garbage\n")
    proc = cli(nerve_env, "pack", "import", v1, "--set", "who=S", "--replace")
    assert proc.returncode == EXIT_INVALID
    assert "BAD SIGNATURE" in proc.stderr


def test_key_files_are_checked(nerve_env: dict[str, str], short_tmp: Path) -> None:
    key, _ = keypair(nerve_env, short_tmp, "k")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    proc = cli(nerve_env, "pack", "keygen", key)
    assert proc.returncode == EXIT_INVALID
    assert "never overwritten" in proc.stderr
    proc = cli(nerve_env, "pack", "trust", key)
    assert proc.returncode == EXIT_INVALID
    assert "private key" in proc.stderr
    junk = shared(short_tmp, "hello\n", "junk.pub")
    proc = cli(nerve_env, "pack", "trust", junk)
    assert proc.returncode == EXIT_INVALID
    assert "not a Nerve public key" in proc.stderr
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    proc = cli(nerve_env, "pack", "sign", "--key", junk, v1)
    assert proc.returncode == EXIT_INVALID
    assert "private key" in proc.stderr


# ------------------------------------------------------------------ the shipped library


def test_the_library_is_listed_and_added_with_the_usual_approval(
    start_nerve: StartNerve,  # noqa: F811
    nerve_env: dict[str, str],
) -> None:
    start_nerve()  # the README's first start: only the starter pack is installed
    assert sorted(p.name for p in packs_dir(nerve_env).iterdir()) == ["starter.yaml"]
    out = cli_ok(nerve_env, "pack", "list", "--available")
    for name in ("snippets", "downloads-sorter", "clipboard-cleaner", "launcher"):
        assert f"\n{name} " in "\n" + out
    assert "Text snippets 1.0.0: Type ;sig" in out
    proc = cli(nerve_env, "pack", "add", "no-such-pack")
    assert proc.returncode == EXIT_INVALID
    assert "available: clipboard-cleaner, downloads-sorter" in proc.stderr
    out = cli_ok(nerve_env, "pack", "add", "snippets")
    assert "type and press keys for you" in out
    assert "held until you approve it" in out
    assert list_states(nerve_env)["library.snippets"] == "held"
    out = cli_ok(nerve_env, "pack", "add", "power-network", "--approve")
    assert "active" in out
    states = list_states(nerve_env)
    assert states["library.power-network"] == "active"
    assert "nerve.starter" in states
    status = cli_ok(nerve_env, "status")
    assert "held pack library.snippets" in status


def test_import_replace_of_an_installed_pack_keeps_inputs_and_shows_only_the_diff(
    nerve_env: dict[str, str], short_tmp: Path
) -> None:
    """The same weakness through `import`: a new version imported over the
    installed one keeps the input values (no terminal needed); imported without
    --approve it is held (the approved version runs), listing only what is new."""
    v1 = shared(short_tmp, pack_text("1.0.0"), "v1.yaml")
    cli_ok(nerve_env, "pack", "import", v1, "--set", "who=Sam", "--approve")
    v2 = shared(short_tmp, pack_text("1.1.0"), "v2.yaml")
    out = cli_ok(nerve_env, "pack", "import", v2, "--replace")
    assert "It asks for nothing you have not allowed" in out
    assert "held until you approve it" in out
    assert entry(nerve_env)["inputs"] == {"who": "Sam"}
    assert "it can do nothing more" in cli_ok(nerve_env, "pack", "list")
    v3 = shared(short_tmp, pack_text("1.2.0", program="mkdir"), "v3.yaml")
    out = cli_ok(nerve_env, "pack", "import", v3, "--replace")
    assert "held until you approve it" in out
    assert entry(nerve_env)["inputs"] == {"who": "Sam"}
    listing = cli_ok(nerve_env, "pack", "list")
    assert "~ start the program touch -> start the program mkdir" in listing
    assert "start the program mkdir, which you have not approved" not in listing
