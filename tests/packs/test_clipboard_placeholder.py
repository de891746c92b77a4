"""``{clipboard}`` in rule text: the pack reads the clipboard (a capability
derived from the placeholder, so an imported pack is held until approved),
it is for actions only, and a dry run shows a placeholder, not the clipboard."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import Harness, rules_from
from nerve.bootstrap import Nerve
from nerve.events import Event, freeze
from nerve.options import Options
from nerve.packs import trust
from nerve.packs.loader import load_pack
from nerve.paths import Locations, locations


@pytest.fixture
def where(nerve_env: dict[str, str]) -> Locations:
    return locations()


def loaded(where: Locations) -> Nerve:
    """A Nerve (not started) that has loaded its packs as at start."""
    app = Nerve(where, Options())
    app.load_packs()
    return app


def keys(app: Nerve) -> set[str]:
    return {rule.key for rule in app.rules()}


def held(app: Nerve) -> dict[str, set[str]]:
    return {s.pack.id: set(s.missing) for s in app.held}


USES = {
    "type": 'type: "{clipboard}"',
    "type object": 'type: {text: "a {clipboard} b", method: paste}',
    "log": 'log: "copied {clipboard}"',
    "set": 'set: {copied: "{clipboard}"}',
    "emit": 'emit: {type: x.copied, data: {text: "{ clipboard }"}}',
    "nested if": 'if: {var: {x: 1}}\n        then: [{log: "{clipboard}"}]',
    "run argument": 'run: {argv: [echo, "{clipboard}"]}',
}


def pack_text(action: str, pack_id: str = "shared.clip") -> str:
    return f"""\
nerve: 1
pack: {{id: {pack_id}}}
rules:
  - id: r
    when: {{event: x.go}}
    do:
      - {action}
"""


@pytest.mark.parametrize("use", list(USES), ids=str)
def test_the_placeholder_gives_the_pack_reads_clipboard(use: str) -> None:
    pack = load_pack(pack_text(USES[use]).encode(), filename="clip.yaml")
    assert not pack.errors, pack.errors
    assert "reads-clipboard" in pack.capabilities
    (rule,) = pack.rules
    assert ("clipboard", "serve") in list(rule.needs())  # read through its listener
    # The same pack without it does not read the clipboard.
    plain = load_pack(pack_text(USES[use].replace("clipboard", "event.type")).encode())
    assert not plain.errors, plain.errors
    assert "reads-clipboard" not in plain.capabilities


def test_escaped_braces_are_no_placeholder() -> None:
    pack = load_pack(pack_text('type: "{{clipboard}}"').encode(), filename="clip.yaml")
    assert not pack.errors
    assert "reads-clipboard" not in pack.capabilities


def test_an_imported_pack_reading_the_clipboard_is_held_until_approved(
    where: Locations,
) -> None:
    loaded(where)  # the first start installs the starter pack
    (where.packs / "clip.yaml").write_text(pack_text(USES["log"]))
    app = loaded(where)
    assert held(app) == {"shared.clip": {"reads-clipboard"}}
    assert "shared.clip/r" not in keys(app)
    trust.Approvals(where.config).approve("shared.clip", ["reads-clipboard"])
    assert "shared.clip/r" in keys(loaded(where))


def test_a_pack_edited_to_read_the_clipboard_is_held_again(where: Locations) -> None:
    loaded(where)  # the first start installs the starter pack
    pack = where.packs / "clip.yaml"
    pack.write_text(pack_text('log: "hello {event.type}"'))
    assert "shared.clip/r" in keys(loaded(where))  # nothing to approve
    pack.write_text(pack_text('log: "hello {clipboard}"'))
    app = loaded(where)
    assert held(app) == {"shared.clip": {"reads-clipboard"}}


@pytest.mark.parametrize(
    "trigger",
    ['{file.created: {path: "/tmp/{clipboard}"}}', '{clipboard.changed: {text: "{clipboard}"}}'],
)
def test_outside_actions_it_is_an_error_naming_the_place(trigger: str) -> None:
    text = f"""\
nerve: 1
pack: {{id: shared.clip}}
rules:
  - id: r
    when: {trigger}
    do: [{{log: hi}}]
"""
    pack = load_pack(text.encode(), filename="clip.yaml")
    if "clipboard.changed" in trigger:
        # A match value is not a template: the text is matched as written.
        assert not pack.errors
        return
    assert pack.errors
    error = str(pack.errors[0])
    assert error.startswith("clip.yaml:5:")
    assert "{clipboard}" in error
    assert "actions only" in error


def test_a_dry_run_shows_a_placeholder_and_reads_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nerve.listeners import clipboard

    def read(*_: object) -> str:
        raise AssertionError("a dry run read the clipboard")

    monkeypatch.setattr(clipboard, "read_clipboard", read)
    (rule,) = harness.load("""
  - id: r
    when: {event: t.go}
    do:
      - log: "got {clipboard}"
      - set: {copied: "[{clipboard}]"}
      - type: "{clipboard}"
""")
    event = Event("t.go", freeze({}), "test", 1, time.time(), time.monotonic_ns())
    assert harness.engine.loop is not None
    ctx = asyncio.run_coroutine_threadsafe(
        harness.engine.dry_run(rule, event), harness.engine.loop
    ).result(timeout=10)
    assert ctx.status == "ok", ctx.error
    results = [a.get("result") for a in ctx.trace.actions]
    assert results == ["got <clipboard>", {"copied": "[<clipboard>]"}, "skipped (dry run)"]


def test_rules_from_accepts_it_in_every_action() -> None:
    for use in USES.values():
        (rule,) = rules_from(f"""
  - id: r
    when: {{event: x.go}}
    do:
      - {use}
""")
        assert "reads-clipboard" in rule.capabilities
