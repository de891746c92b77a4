"""Shared pieces of the GUI tests (a real engine and store with a test pack)."""

from __future__ import annotations

from dataclasses import dataclass

from nerve.bus import Bus
from nerve.engine.engine import Engine
from nerve.engine.model import Rule
from nerve.gui.core import Core
from nerve.packs.loader import load_pack
from nerve.storage import Store

PACK = """\
nerve: 1
pack:
  id: gui.test
  name: GUI tests
rules:
  - id: greet
    name: Greet on x.go
    when: {event: x.go}
    if:
      - event: {who: "ann"}
    do:
      - log: "hello {event.who}"
      - set: {greeted: "{event.who}"}
  - id: broken
    name: Always fails
    when: {event: x.fail}
    do:
      - run: {argv: ["/nonexistent/nerve-test-program"], wait: true}
"""


def compile_pack(text: str = PACK) -> list[Rule]:
    pack = load_pack(text.encode(), filename="gui.yaml")
    assert not pack.errors, "\n".join(map(str, pack.errors))
    return pack.rules


@dataclass
class Running:
    """A real bus, engine and store in a temporary folder, with the test pack."""

    bus: Bus
    engine: Engine
    store: Store
    core: Core
    rules: list[Rule]

    def summary(self, rule_id: str) -> dict[str, object]:
        for s in self.engine.call(self.engine.rules):
            if s["key"] == f"gui.test/{rule_id}":
                return dict(s)
        raise KeyError(rule_id)
