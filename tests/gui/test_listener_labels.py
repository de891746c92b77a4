"""Every listener has a name and a line of its own in the Settings window."""

from __future__ import annotations

from nerve.engine.registry import load_builtin_types
from nerve.gui.settings_dialog import LISTENERS
from nerve.listeners.base import listeners


def test_every_listener_is_named_and_described_in_settings() -> None:
    load_builtin_types()
    missing = [lid for lid in listeners.ids() if lid not in LISTENERS]
    assert not missing, f"listeners without a Settings label: {missing}"
    for lid, (title, what) in LISTENERS.items():
        assert title[:1].isupper(), lid
        assert what, lid
