"""Packs beyond one import, in the window, over a real started Nerve (offscreen Qt):
the update-available badge from a pack's source_url (a local HTTPS server with a
test certificate), the update dialog (inputs kept, approval kept or held with the
diff while the approved version runs), import from a URL, the library dialog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pytestqt.qtbot import QtBot

from conftest import wait_until
from https_server import HttpsServer
from nerve.bootstrap import Nerve
from nerve.gui.core import Core
from nerve.gui.pack_sharing import BADGE, LibraryDialog, PacksDialog, UpdateDialog
from nerve.gui.packs import ImportDialog
from nerve.options import Options
from nerve.packs import trust
from nerve.paths import locations

PACK = """\
nerve: 1
pack:
  id: shared.mover
  name: Mover
  version: VERSION
  source_url: URL
  inputs:
    who: {description: A name, type: text}
    EXTRA
rules:
  - id: touch
    when: {event: x.touch}
    do: [{run: {argv: [PROGRAM, "{event.path}"], wait: true}}]
"""


def text(version: str, url: str, program: str = "touch", extra: str = "") -> str:
    return (
        PACK.replace("VERSION", version)
        .replace("URL", url)
        .replace("PROGRAM", program)
        .replace("    EXTRA\n", f"    {extra}\n" if extra else "")
    )


@pytest.fixture
def server(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpsServer]:
    srv = HttpsServer(short_tmp)
    monkeypatch.setenv("SSL_CERT_FILE", str(srv.cert_file))
    yield srv
    srv.close()


@pytest.fixture
def nerve(nerve_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Nerve]:
    monkeypatch.delenv("DISPLAY", raising=False)
    app = Nerve(locations(), Options())
    app.start()
    yield app
    app.stop()


@pytest.fixture
def core(nerve: Nerve) -> Core:
    return Core.of(nerve)


def install_v1(core: Core, short_tmp: Path, url: str) -> None:
    assert core.config_dir is not None
    source = short_tmp / "v1.yaml"
    source.write_text(text("1.0.0", url))
    packs = core.config_dir / "packs"
    plan = trust.plan_import(source, packs, {"who": "Sam"})
    trust.install(plan, trust.Approvals(core.config_dir), values={"who": "Sam"}, approve=True)
    core.reload()


def approval(core: Core) -> trust.Approval:
    assert core.config_dir is not None
    found = trust.Approvals(core.config_dir).get("shared.mover")
    assert found is not None
    return found


def test_the_badge_shows_an_update_and_the_update_keeps_inputs_and_approval(
    qtbot: QtBot, core: Core, server: HttpsServer, short_tmp: Path
) -> None:
    url = server.url("/mover.yaml")
    install_v1(core, short_tmp, url)
    v2 = text("1.1.0", url, extra="tone: {type: text, default: calm}")
    server.serve("/mover.yaml", v2.encode())
    dialog = PacksDialog(core)
    qtbot.addWidget(dialog)
    assert dialog.badge("shared.mover") == ""
    server.requests.clear()
    dialog.check_updates()
    qtbot.waitUntil(lambda: dialog.badge("shared.mover") != "", timeout=20000)
    assert dialog.badge("shared.mover") == BADGE.format(version="1.1.0")
    assert server.requests == ["/mover.yaml"]
    dialog.select("shared.mover")
    update = dialog.update_current()
    assert isinstance(update, UpdateDialog)
    qtbot.addWidget(update)
    assert "1.0.0 → 1.1.0" in update.heading.text()
    assert update.signature.text() == "Signature: unsigned"
    assert update.diff_lines() == ["It asks for nothing you have not allowed."]
    assert update.held_button.isHidden()
    assert update.review.inputs.text_of("who") == "Sam"  # kept
    assert update.review.inputs.text_of("tone") == "calm"  # new, default offered
    assert update.install(approve=False)
    assert update.updated is True
    assert approval(core).values == {"who": "Sam"}  # (tone keeps its default)
    assert approval(core).pending is None
    assert core.config_dir is not None
    assert (core.config_dir / "packs" / "shared.mover.yaml").read_text() == v2
    dialog.check_updates()
    qtbot.waitUntil(lambda: dialog.badge("shared.mover") == "up to date", timeout=20000)


def test_an_update_asking_for_more_is_held_with_its_diff_and_the_old_version_runs(
    qtbot: QtBot, nerve: Nerve, core: Core, server: HttpsServer, short_tmp: Path
) -> None:
    url = server.url("/mover.yaml")
    install_v1(core, short_tmp, url)
    server.serve("/mover.yaml", text("2.0.0", url, program="mkdir").encode())
    update = UpdateDialog(core, "shared.mover", url)
    qtbot.addWidget(update)
    assert update.diff_lines() == ["~ start the program touch -> start the program mkdir"]
    assert update.held_button.isVisible() or not update.held_button.isHidden()
    assert update.approve_button.text() == "Update and approve"
    assert update.install(approve=False)
    assert update.updated is False
    assert approval(core).pending is not None
    made = short_tmp / "made"
    nerve.bus.publish("x.touch", {"path": str(made)}, source="test")
    wait_until(made.is_file, what="the approved 1.0.0 (touch) to keep running")
    dialog = PacksDialog(core)
    qtbot.addWidget(dialog)
    rows = {
        dialog.tree.topLevelItem(i).text(0): dialog.tree.topLevelItem(i)
        for i in range(dialog.tree.topLevelItemCount())
    }  # type: ignore[union-attr]
    assert rows["shared.mover"].text(2) == "held"
    # An older version is refused, by name.
    server.serve("/old.yaml", text("0.9.0", url).encode())
    old = UpdateDialog(core, "shared.mover", server.url("/old.yaml"))
    qtbot.addWidget(old)
    assert "older than the installed 2.0.0" in old.errors.toPlainText()
    assert not old.approve_button.isEnabled()


def test_import_from_a_url_shows_the_review_or_why_not(
    qtbot: QtBot, core: Core, server: HttpsServer
) -> None:
    url = server.url("/p.yaml")
    server.serve("/p.yaml", text("1.0.0", url).encode())
    server.redirect("/go", "/p.yaml")
    dialog = ImportDialog(core, None)
    qtbot.addWidget(dialog)
    dialog.load_source(server.url("/go"))
    assert dialog.signature == "unsigned"
    assert "Start the program touch" in dialog.review.capability_texts()
    assert dialog.review.inputs.missing() == ["who"]
    dialog.review.inputs.set_text("who", "Ann")
    target = dialog.import_pack(approve=True)
    assert target is not None
    assert target.read_text() == text("1.0.0", url)
    server.serve("/page", b"<!doctype html><html></html>", "text/html")
    page = ImportDialog(core, None)
    qtbot.addWidget(page)
    page.load_source(server.url("/page"))
    assert "web page (HTML)" in page.errors.toPlainText()
    assert not page.approve_button.isEnabled()


def test_the_library_dialog_lists_packs_with_descriptions_and_adds_one(
    qtbot: QtBot, core: Core
) -> None:
    dialog = LibraryDialog(core)
    qtbot.addWidget(dialog)
    assert "snippets" in dialog.names()
    assert len(dialog.names()) == 7
    described = dialog.descriptions()
    assert any(
        d.startswith("Clipboard URL cleaner\nWhen you copy a web address") for d in described
    )
    dialog.select("snippets")
    assert dialog.review.rule_ids() == ["signature", "email", "date", "time"]
    importing = dialog.add_current()
    assert importing is not None
    qtbot.addWidget(importing)
    assert (
        "Type and press keys for you (in any window, a terminal included)"
        in importing.review.capability_texts()
    )
    assert importing.import_pack(approve=False) is not None
    assert core.config_dir is not None
    data = yaml.safe_load((core.config_dir / "approvals.yaml").read_text())
    assert data["packs"]["library.snippets"]["approved"] is None  # held until approved


def test_the_import_review_shows_the_signature_and_refuses_a_bad_one(
    qtbot: QtBot, core: Core, short_tmp: Path
) -> None:
    from nerve.packs import signing

    assert core.config_dir is not None
    key = short_tmp / "k"
    _, fp = signing.keygen(key)
    source = short_tmp / "signed.yaml"
    source.write_bytes(signing.sign(text("1.0.0", "https://example.org/p.yaml").encode(), key))
    dialog = ImportDialog(core, source)
    qtbot.addWidget(dialog)
    assert dialog.signature == f"signed by {fp} (a key you have not trusted)"
    signing.TrustedKeys(core.config_dir).add(signing.read_public_key(Path(f"{key}.pub")), "k.pub")
    dialog.load(source)
    assert dialog.signature == f"signed by {fp} (a key you trust)"
    assert f"Signature: signed by {fp}" in dialog.file_label.text()
    source.write_text(source.read_text().replace("x.touch", "x.other"))
    bad = ImportDialog(core, source)
    qtbot.addWidget(bad)
    assert "BAD SIGNATURE" in bad.errors.toPlainText()
    assert not bad.approve_button.isEnabled()
    assert not bad.disabled_button.isEnabled()
