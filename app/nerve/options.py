"""What the user chose on the command line, shared by the headless runner and
the desktop app. A module of its own so the desktop app can read it before it
imports the engine (its window shows first)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Options:
    """What the user chose on the command line."""

    rule_paths: list[Path] = field(default_factory=list)
    overrides: Mapping[str, str] = field(default_factory=dict)
