"""Text expansion as a person types: exact expansions and latency, per typing
profile and replacement size. Run by hand; see bench/README.md.

    python bench/bench_expansion.py                       # every profile, 10/100/1000 chars
    python bench/bench_expansion.py --count 200 --sizes 10 --profiles brisk rollover

One Xvfb with openbox and a real Qt text field (tests/xclients/qt_textfield.py);
Nerve is the real ``nerve run --headless --rules PACK`` subprocess with XDG
folders in a temporary directory. A simulated person (tests/xclients/typist.py:
held keys, rollover, pace, bursts) types ``w `` and an abbreviation; the
latency is from the moment the release of the abbreviation's last key was
sent to the moment the field reported the whole replacement (both on
CLOCK_MONOTONIC), and from the moment its press was sent (Nerve expands on
the press, so with keys held longer than the expansion takes, the replacement
is there before the key comes up: a negative time). An expansion is exact
when the field holds exactly ``w `` + the replacement once it has been quiet
for a moment.

AutoKey (Debian's autokey-gtk) is the tool a user would pick instead; it is
not run here yet (see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_hotkeys import nerve_command, percentile, running, xdg_env  # noqa: E402
from xclients.qt_field import QtField  # noqa: E402
from xclients.typist import PROFILES, Typist  # noqa: E402
from xserver import XServer  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog; 42 crates, 7 keys! "
ABBREVIATIONS = {10: ";xa", 100: ";xb", 1000: ";xc"}
#: The same replacements pasted through the clipboard (``method: paste``).
PASTE_ABBREVIATIONS = {10: ";pa", 100: ";pb", 1000: ";pc"}
METHODS = {"type": ABBREVIATIONS, "paste": PASTE_ABBREVIATIONS}


def replacement(size: int) -> str:
    return (SENTENCE * (size // len(SENTENCE) + 1))[:size]


def write_pack(path: Path) -> None:
    rules = [
        {
            "id": f"{method}{size}",
            "when": {"typed": abbr},
            "do": [{"type": {"text": replacement(size), "method": method}}],
        }
        for method, abbreviations in METHODS.items()
        for size, abbr in abbreviations.items()
    ]
    pack = {"nerve": 1, "pack": {"id": "bench.expansion", "name": "bench"}, "rules": rules}
    path.write_text(json.dumps(pack))  # JSON is YAML


def trial(
    field: QtField, typist: Typist, abbr: str, text: str, profile: object
) -> tuple[bool, float]:
    """(exact?, ms from the last key's release to the whole replacement in the field)."""
    field.clear()
    events = typist.timeline("w " + abbr, profile)  # type: ignore[arg-type]
    last_key = events[-1][2] if events else 0
    release = max(i for i, (_, kind, code) in enumerate(events) if kind == 3 and code == last_key)
    press = max(i for i, (_, kind, code) in enumerate(events) if kind == 2 and code == last_key)
    start = len(field.lines)
    sent = typist.play(events)
    wanted = "w " + text
    try:
        done = field.wait(lambda m: m.get("text") == wanted, 10 + len(text) / 50, since=start)
        from_press = (float(done["t"]) - sent[press]) * 1000
        from_release = (float(done["t"]) - sent[release]) * 1000
    except AssertionError:
        from_press = from_release = math.nan
    exact = field.settle(quiet=0.15) == wanted
    return exact, from_press, from_release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count", type=int, default=0, help="expansions per row (default: by size)"
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=list(ABBREVIATIONS))
    parser.add_argument("--profiles", nargs="*", default=[p.name for p in PROFILES])
    parser.add_argument(
        "--methods", nargs="*", default=list(METHODS), choices=list(METHODS),
        help="type (keys) and/or paste (through the clipboard, which holds text meanwhile)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    default_counts = {10: 200, 100: 50, 1000: 20}
    profiles = [p for p in PROFILES if p.name in args.profiles]

    xs = XServer()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="nerve-bench-") as tmp_name:
            tmp = Path(tmp_name)
            xs.start_window_manager(tmp / "openbox")
            pack = tmp / "bench.yaml"
            write_pack(pack)
            env = xdg_env(tmp, xs.display)
            cmd = [*nerve_command(), "run", "--headless", "--rules", str(pack)]
            with running(cmd, env, tmp / "nerve.log"):
                field = QtField(xs.display)
                typist = Typist(xs.display, seed=11)
                # The user's clipboard holds text: each paste keeps and restores it.
                clip = subprocess.Popen(
                    ["xclip", "-quiet", "-selection", "clipboard", "-i"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={**os.environ, "DISPLAY": xs.display},
                )
                assert clip.stdin is not None
                clip.stdin.write("the user's clipboard ✓".encode())
                clip.stdin.close()
                try:
                    # Ready once an expansion has gone through.
                    deadline = time.monotonic() + 30
                    while True:
                        exact, _, _ = trial(field, typist, ";xa", replacement(10), PROFILES[0])
                        if exact or time.monotonic() > deadline:
                            break
                    for method, size in [(m, s) for m in args.methods for s in args.sizes]:
                        abbr, text = METHODS[method][size], replacement(size)
                        for profile in profiles:
                            count = args.count or default_counts[size]
                            results = [
                                trial(field, typist, abbr, text, profile) for _ in range(count)
                            ]
                            exact = sum(1 for ok, _, _ in results if ok)
                            pressed = [p for _, p, _ in results if not math.isnan(p)]
                            released = [r for _, _, r in results if not math.isnan(r)]
                            row = f"{profile.name:9} {method:5} {size:5} chars  "
                            row += f"exact {exact}/{count}  "
                            if released:
                                row += (
                                    f"from release p50 {percentile(released, 50):7.1f} "
                                    f"p99 {percentile(released, 99):7.1f} ms  "
                                    f"from press p50 {percentile(pressed, 50):7.1f} "
                                    f"p99 {percentile(pressed, 99):7.1f} ms"
                                )
                            else:
                                row += "no expansion arrived"
                            print(row, flush=True)
                            rows.append(row)
                finally:
                    clip.kill()
                    clip.wait()
                    typist.close()
                    field.close()
    finally:
        xs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
