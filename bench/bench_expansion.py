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

With ``--vs autokey``, AutoKey (Debian's autokey-gtk, the tool a user would
pick instead) runs the same rows on the same Xvfb and field, one tool at a
time: its phrases are written as its JSON files in a temporary
XDG_CONFIG_HOME, and it gets a D-Bus session of its own (dbus-run-session).
A table with both tools and the ratio Nerve/AutoKey ends the run.

``--methods type paste`` (the default) runs Nerve's rows both typed and pasted
(``method: paste``: through the clipboard, which holds the user's text
meanwhile and gets it back); AutoKey types.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


AUTOKEY_VERSION = "0.95.10"


def write_autokey_config(config_home: Path) -> None:
    """AutoKey's configuration, headless: one folder of phrases (abbreviation,
    fired at once on its last character, typed by keyboard) and a global
    configuration that is not a first run (which would make the sample phrases)."""
    root = config_home / "autokey"
    folder = root / "data" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    no_hotkey: dict[str, object] = {"modifiers": [], "hotKey": None}
    no_filter: dict[str, object] = {"regex": None, "isRecursive": False}
    (folder / ".folder.json").write_text(
        json.dumps(
            {
                "type": "folder",
                "title": "bench",
                "modes": [],
                "usageCount": 0,
                "showInTrayMenu": False,
                "abbreviation": {
                    "abbreviations": [],
                    "backspace": True,
                    "ignoreCase": False,
                    "immediate": False,
                    "triggerInside": False,
                    "wordChars": "[\\w]",
                },
                "hotkey": no_hotkey,
                "filter": no_filter,
            }
        )
    )
    for size, abbr in ABBREVIATIONS.items():
        (folder / f"x{size}.txt").write_text(replacement(size))
        meta = {
            "type": "phrase",
            "description": f"x{size}",
            "modes": [1],  # TriggerMode.ABBREVIATION
            "usageCount": 0,
            "prompt": False,
            "omitTrigger": False,
            "matchCase": False,
            "showInTrayMenu": False,
            "abbreviation": {
                "abbreviations": [abbr],
                "backspace": True,
                "ignoreCase": False,
                "immediate": True,  # like Nerve's: no trigger character after it
                "triggerInside": False,
                "wordChars": "[\\w]",
            },
            "hotkey": no_hotkey,
            "filter": no_filter,
            "sendMode": "kb",
        }
        (folder / f".x{size}.json").write_text(json.dumps(meta))
    off = {"modifiers": ["<super>"], "hotKey": "k", "enabled": False}
    settings = {"isFirstRun": False, "showTrayIcon": False, "serviceRunning": True}
    (root / "autokey.json").write_text(
        json.dumps(
            {
                "version": AUTOKEY_VERSION,
                "userCodeDir": str(root),
                "settings": settings,
                "folders": [],
                "toggleServiceHotkey": off,
                "configHotkey": off,
            }
        )
    )


@contextlib.contextmanager
def autokey_running(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """autokey-gtk in a D-Bus session of its own (its process group ends with it)."""
    with log.open("ab") as err:
        proc = subprocess.Popen(
            ["dbus-run-session", "--", "autokey-gtk", "--verbose"],
            env=env,
            stdout=err,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def trial(
    field: QtField, typist: Typist, abbr: str, text: str, profile: object
) -> tuple[bool, float, float]:
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
    parser.add_argument(
        "--vs", choices=["autokey"], default=None, help="run the same rows with AutoKey too"
    )
    args = parser.parse_args(argv)
    default_counts = {10: 200, 100: 50, 1000: 20}
    profiles = [p for p in PROFILES if p.name in args.profiles]
    tools = ["nerve"] + ([args.vs] if args.vs else [])
    #: What runs in each round: Nerve by each method; the other tool types.
    runs = {"nerve": [("nerve" if m == "type" else f"nerve/{m}", m) for m in args.methods]}
    if args.vs:
        runs[args.vs] = [(args.vs, "type")]

    xs = XServer()
    #: (tool, profile, size) -> (exact, count, from release, from press)
    results: dict[tuple[str, str, int], tuple[int, int, list[float], list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="nerve-bench-") as tmp_name:
            tmp = Path(tmp_name)
            xs.start_window_manager(tmp / "openbox")
            pack = tmp / "bench.yaml"
            write_pack(pack)
            env = xdg_env(tmp, xs.display)
            write_autokey_config(Path(env["XDG_CONFIG_HOME"]))
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
                for size in args.sizes:
                    for tool in tools:  # one at a time: both would expand
                        if tool == "nerve":
                            cmd = [*nerve_command(), "run", "--headless", "--rules", str(pack)]
                            runner = running(cmd, env, tmp / "nerve.log")
                        else:
                            runner = autokey_running(env, tmp / "autokey.log")
                        with runner:
                            # Ready once an expansion has gone through.
                            deadline = time.monotonic() + 60
                            while True:
                                ok, _, _ = trial(field, typist, ";xa", replacement(10), PROFILES[0])
                                if ok or time.monotonic() > deadline:
                                    break
                            for (label, method), profile in [
                                (r, p) for r in runs[tool] for p in profiles
                            ]:
                                count = args.count or default_counts[size]
                                abbr, text = METHODS[method][size], replacement(size)
                                got = [
                                    trial(field, typist, abbr, text, profile) for _ in range(count)
                                ]
                                exact = sum(1 for ok, _, _ in got if ok)
                                released = [r for _, _, r in got if not math.isnan(r)]
                                pressed = [p for _, p, _ in got if not math.isnan(p)]
                                results[label, profile.name, size] = (
                                    exact,
                                    count,
                                    released,
                                    pressed,
                                )
                                print(row(label, profile.name, size, results), flush=True)
            finally:
                clip.kill()
                clip.wait()
                typist.close()
                field.close()
    finally:
        xs.stop()
    if args.vs:
        print(table(args.vs, [p.name for p in profiles], args.sizes, results))
    return 0


def row(
    tool: str,
    profile: str,
    size: int,
    results: dict[tuple[str, str, int], tuple[int, int, list[float], list[float]]],
) -> str:
    exact, count, released, pressed = results[tool, profile, size]
    out = f"{tool:12} {profile:9} {size:5} chars  exact {exact}/{count}  "
    if not released:
        return out + "no expansion arrived"
    return out + (
        f"from release p50 {percentile(released, 50):7.1f} "
        f"p99 {percentile(released, 99):7.1f} ms  "
        f"from press p50 {percentile(pressed, 50):7.1f} "
        f"p99 {percentile(pressed, 99):7.1f} ms"
    )


def table(
    other: str,
    profiles: list[str],
    sizes: list[int],
    results: dict[tuple[str, str, int], tuple[int, int, list[float], list[float]]],
) -> str:
    """Markdown: each row for Nerve and the other tool, and Nerve/other at p50 and p99
    (times from the release of the abbreviation's last key)."""

    def times(values: list[float]) -> tuple[str, float, float]:
        if not values:
            return "none arrived", math.nan, math.nan
        p50, p99 = percentile(values, 50), percentile(values, 99)
        return f"{p50:.1f} / {p99:.1f}", p50, p99

    def ratio(a: float, b: float) -> str:
        if math.isnan(a) or math.isnan(b):
            return "n/a"
        if a <= 0 or b <= 0:
            # A replacement was in before the key came up: no ratio of times.
            return "both < 0" if a <= 0 and b <= 0 else ("Nerve < 0" if a <= 0 else "other < 0")
        return f"{a / b:.2f}"

    lines = [
        f"| profile | size | exact Nerve / {other} | from release p50 / p99 ms, Nerve | "
        f"{other} | ratio p50 | ratio p99 | from press p50 ms, Nerve / {other} | ratio p50 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        for profile in profiles:
            if ("nerve", profile, size) not in results or (other, profile, size) not in results:
                continue
            ne, nc, nrel, npress = results["nerve", profile, size]
            oe, oc, orel, opress = results[other, profile, size]
            nt, n50, n99 = times(nrel)
            ot, o50, o99 = times(orel)
            _, np50, _ = times(npress)
            _, op50, _ = times(opress)
            lines.append(
                f"| {profile} | {size} | {ne}/{nc} / {oe}/{oc} | {nt} | {ot} | "
                f"{ratio(n50, o50)} | {ratio(n99, o99)} | {np50:.1f} / {op50:.1f} | "
                f"{ratio(np50, op50)} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
