"""Compiled rules and packs: what the engine runs."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nerve.engine.registry import Action, Condition, Trigger

MODES = ("single", "restart", "queued", "parallel")
DEFAULT_MAX = 10


@dataclass
class Rule:
    """One compiled rule. ``key`` (``pack/rule``) is unique across packs."""

    id: str
    pack: str
    name: str
    triggers: list[Trigger]
    conditions: list[Condition]
    actions: list[Action]
    mode: str = "single"
    max: int = DEFAULT_MAX
    debounce: float | None = None
    throttle: float | None = None
    cooldown: float | None = None
    enabled: bool = True
    description: str = ""
    source: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.pack}/{self.id}"

    def all_actions(self) -> Iterator[Action]:
        stack = list(self.actions)
        while stack:
            action = stack.pop(0)
            yield action
            stack[:0] = list(action.children())

    @property
    def capabilities(self) -> frozenset[str]:
        caps: set[str] = set()
        for trigger in self.triggers:
            caps |= _trigger_caps(trigger)
        for action in self.all_actions():
            caps |= action.action_capabilities()
        return frozenset(caps)

    def needs(self) -> Iterator[tuple[str, Hashable]]:
        """What this rule asks of listeners while it is enabled."""
        for trigger in self.triggers:
            yield from trigger.needs()
        for cond in self.conditions:
            yield from cond.needs()
        for action in self.all_actions():
            yield from action.needs()
            if action.reads_clipboard:
                yield "clipboard", "serve"  # {clipboard} is read through its listener

    @property
    def listeners(self) -> frozenset[str]:
        return frozenset(lid for lid, _ in self.needs())


def _children(trigger: Trigger) -> list[Trigger]:
    return list(getattr(trigger, "children", []))


def _trigger_caps(trigger: Trigger) -> set[str]:
    caps = set(trigger.trigger_capabilities())
    for child in _children(trigger):
        caps |= _trigger_caps(child)
    return caps
