"""The panic hotkey of the assembled app: a real Xvfb, a real key press."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import wait_until
from nerve.bootstrap import Nerve
from nerve.options import Options
from nerve.paths import locations
from nerve.settings import DEFAULT_PANIC_HOTKEY
from xserver import XServer

PACK = """\
nerve: 1
pack: {id: test.panic}
rules:
  - id: slow
    when: {event: x.slow}
    do:
      - delay: 30s
      - log: never
"""


def test_the_panic_hotkey_pauses_and_cancels_a_running_rule(
    xserver: XServer, nerve_env: dict[str, str], short_tmp: Path
) -> None:
    pack = short_tmp / "panic.yaml"
    pack.write_text(PACK)
    app = Nerve(locations(), Options(rule_paths=[pack]))
    app.start()
    try:
        assert app.engine is not None
        assert app.listeners is not None
        assert app.bus is not None
        engine = app.engine
        # No rule uses the keyboard, yet the panic combo is grabbed (one passive
        # grab, not a keyboard hook).
        wait_until(lambda: "hotkeys" in app.listeners.running() if app.listeners else False)
        assert "keyboard" not in app.listeners.running()
        app.bus.publish("x.slow", {}, source="test")
        wait_until(lambda: engine.call(engine.status)["running"] == 1, what="the slow run")

        combo = DEFAULT_PANIC_HOTKEY.replace("ctrl", "Control_L").replace("alt", "Alt_L")
        combo = combo.replace("shift", "Shift_L")
        subprocess.run(["xdotool", "key", "--clearmodifiers", combo], check=True, env=xserver.env())

        status = wait_until(lambda: (s := engine.call(engine.status))["paused"] and s, 10)
        assert "panic hotkey" in status["pause_reason"]
        wait_until(lambda: engine.call(engine.status)["running"] == 0, what="the run cancelled")
        (summary,) = engine.call(engine.rules)
        assert summary["last_run"]["status"] == "cancelled"
    finally:
        app.stop()
