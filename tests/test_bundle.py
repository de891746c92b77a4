"""The bundled app (packaging/): built with packaging/build.sh, run without Python.

The one-folder build goes to ``build/bundle-test/`` and is reused while the
sources, the packaging files and the installed packages are unchanged (a key
file records them). Every command runs the bundle with an environment of its
own: no PYTHONPATH/PYTHONHOME/VIRTUAL_ENV, a PATH holding only ``sh``,
``touch``, ``env`` and ``mv``, and, where the test may create a mount namespace
(root, as in CI), every Python installation on the machine hidden under an
empty tmpfs: the bundle cannot lean on a Python it would not find on a user's
machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import pkgutil
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import wait_until, xdg_folders
from xserver import XServer

pytestmark = [
    pytest.mark.slow,
    # The first test builds the bundle (about 20 s on two cores, more when
    # they are busy); the others take a few seconds each.
    pytest.mark.timeout(300),
]

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "bundle-test"
PACKS = Path(__file__).parent / "packs"
BUILD_TIMEOUT = 240

EXIT_OK, EXIT_INVALID = 0, 1

# Files a lean bundle never holds (Qt modules and plugins Nerve does not use).
UNWANTED = re.compile(r"Qt6(WebEngine|Quick|Qml|Pdf|3D|Multimedia|Charts|Network)|libgtk-3|/qml/")

RULES = """\
nerve: 1
pack:
  id: test.bundle
rules:
  - id: env
    name: Write the environment a rule's program gets to the file named by the event
    when: {event: x.env}
    do:
      - run: {argv: [sh, -c, 'env > "$1.part" && mv "$1.part" "$1"', sh, "{event.path}"]}
"""


# --------------------------------------------------------------------- building


def _cache_key() -> str:
    """What the bundle is made from: sources, packaging, installed packages."""
    digest = hashlib.sha256(sys.version.encode())
    sources = [
        *sorted((ROOT / "app" / "nerve").rglob("*.py")),
        *sorted(
            p
            for p in (ROOT / "packaging").rglob("*")
            if p.is_file() and p.suffix not in (".md", ".pyc") and "__pycache__" not in p.parts
        ),
        *sorted(p for p in (ROOT / "rules").glob("*") if p.is_file()),
        *sorted(p for p in (ROOT / "resources").glob("*") if p.is_file()),
    ]
    for path in sources:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for dist in sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"] or ""):
        digest.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    return digest.hexdigest()


@dataclass
class Bundle:
    """Where build.sh put the one-folder build and the AppDir."""

    dist: Path

    @property
    def folder(self) -> Path:
        return self.dist / "nerve"

    @property
    def exe(self) -> Path:
        return self.folder / "nerve"

    @property
    def appdir(self) -> Path:
        return self.dist / "Nerve.AppDir"


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    """The one-folder build and its AppDir (built, or reused when nothing changed)."""
    pytest.importorskip("PyInstaller", reason="the bundle extra: pip install -e '.[bundle]'")
    CACHE.mkdir(parents=True, exist_ok=True)
    dist, key_file = CACHE / "dist", CACHE / "key"
    key = _cache_key()
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run building at the same time
        if (
            key_file.exists()
            and key_file.read_text() == key
            and (dist / "nerve" / "nerve").exists()
            and (dist / "Nerve.AppDir" / "AppRun").exists()
        ):
            return Bundle(dist)
        key_file.unlink(missing_ok=True)
        started = time.monotonic()
        proc = subprocess.run(
            [
                *("bash", str(ROOT / "packaging" / "build.sh"), "--appimage"),
                *("--dist", str(dist), "--work", str(CACHE / "work")),
            ],
            env={**os.environ, "PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.monotonic() - started
        assert proc.returncode == 0, f"build.sh failed:\n{proc.stdout}\n{proc.stderr}"
        key_file.write_text(key)
    print(f"\nbuilt the bundle in {seconds:.0f} s")
    return Bundle(dist)


# ------------------------------------------------------------ without Python


# What the bundle's environment may run (rules start sh; the test's pack uses the rest).
TOOLS = ("sh", "touch", "env", "mv")


def _python_homes() -> list[Path]:
    """Every folder a Python installation on this machine lives in.

    A prefix that also holds the system's programs (a venv made from Debian's
    python3 has /usr as its base) is not hidden whole: its python3.X folders
    and python programs are.
    """
    keep = [ROOT, *(Path(shutil.which(t) or "/").resolve() for t in (*TOOLS, "mount"))]
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    base = Path(sys.base_prefix).resolve()
    if base.parent.name == "versions":  # pyenv: all its versions and shims
        prefixes.add(base.parent.parent)
    found = {home for home in prefixes if not any(k.is_relative_to(home) for k in keep)}
    for prefix in (Path("/usr"), Path("/usr/local"), base):
        found.update(p for p in prefix.glob("lib/python3*") if p.is_dir())
    # A folder inside another hidden one is hidden with it.
    return sorted(p for p in found if not any(p != q and p.is_relative_to(q) for q in found))


def _python_programs() -> list[Path]:
    """python* programs in the usual places and on this process's PATH (pyenv shims...)."""
    folders = {"/usr/bin", "/bin", "/usr/local/bin", *os.environ.get("PATH", "").split(os.pathsep)}
    programs: set[Path] = set()
    for folder in filter(None, folders):
        programs.update(p.resolve() for p in Path(folder).glob("python*") if p.is_file())
    homes = _python_homes()
    return sorted(p for p in programs if not any(p.is_relative_to(h) for h in homes))


@dataclass
class Isolation:
    """How commands are kept away from the machine's Python."""

    prefix: list[str]  # runs a program in a mount namespace without Python; [] if none
    why_not: str = ""


@pytest.fixture(scope="module")
def hide_python() -> Isolation:
    """A private mount namespace with an empty tmpfs over each Python folder and
    /dev/null over each python program. Only root may make one (CI runs as root);
    otherwise the environment alone keeps Python out of reach."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if os.geteuid() != 0 or unshare is None or mount is None:
        return Isolation([], "not root, or no unshare/mount: no mount namespace")
    script = ["set -e"]
    script += [f"{mount} -t tmpfs -o size=64k no-python '{p}'" for p in _python_homes()]
    script += [f"{mount} --bind /dev/null '{p}'" for p in _python_programs()]
    script.append('exec "$@"')
    prefix = [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", "\n".join(script)]
    probe = subprocess.run(
        [*prefix, "sh", "/bin/true"], capture_output=True, text=True, timeout=10, check=False
    )
    if probe.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        why = f"no mount namespace here: {probe.stderr.strip()}"
        warnings.warn(why, stacklevel=1)
        return Isolation([], why)
    return Isolation([*prefix, "sh"])


@pytest.fixture
def user_env(short_tmp: Path) -> dict[str, str]:
    """A fresh user's environment with nothing of Python in it."""
    bin_dir = short_tmp / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed by the test"
        (bin_dir / tool).symlink_to(found)
    env = {
        "HOME": str(short_tmp / "home"),
        "PATH": str(bin_dir),
        "LANG": "C.UTF-8",
        **xdg_folders(short_tmp),
    }
    Path(env["HOME"]).mkdir()
    return env


@dataclass
class Runner:
    """Runs the bundle's ``nerve`` (or another program) the no-Python way."""

    prefix: list[str]
    env: dict[str, str]
    exe: Path

    def argv(self, args: Sequence[object], program: Path | None = None) -> list[str]:
        return [*self.prefix, str(program or self.exe), *map(str, args)]

    def run(
        self, *args: object, program: Path | None = None, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(args, program),
            env={**self.env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc

    def ok(self, *args: object, **kw: Any) -> str:
        proc = self.run(*args, **kw)
        assert proc.returncode == EXIT_OK, (
            f"nerve {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}"
            f"{proc.stderr}"
        )
        return proc.stdout

    @contextlib.contextmanager
    def background(self, *args: object, out: Path) -> Iterator[subprocess.Popen[bytes]]:
        """``nerve ARGS`` running; stopped (SIGTERM, then SIGKILL) when the block ends."""
        with open(out, "wb") as fh:
            proc = subprocess.Popen(
                self.argv(args),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def wait_answering(self, proc: subprocess.Popen[bytes], out: Path) -> str:
        """Poll ``nerve status`` (from the bundle) until the instance answers."""

        def answered() -> str | None:
            assert proc.poll() is None, f"nerve exited {proc.returncode}:\n{out.read_text()}"
            status = self.run("status")
            return status.stdout if status.returncode == EXIT_OK else None

        status: str = wait_until(answered, 20, "nerve status to answer")
        return status


@pytest.fixture
def nerve(bundle: Bundle, hide_python: Isolation, user_env: dict[str, str]) -> Runner:
    return Runner(hide_python.prefix, user_env, bundle.exe)


# ------------------------------------------------------------------------ tests


def test_the_bundle_is_lean(bundle: Bundle) -> None:
    files = [p for p in bundle.folder.rglob("*") if not p.is_dir()]
    size = sum(p.stat().st_size for p in files if not p.is_symlink())
    print(f"\nbundle: {size / 1e6:.0f} MB in {len(files)} files")
    assert size < 200e6, f"the bundle grew to {size / 1e6:.0f} MB"
    unwanted = sorted(str(p.relative_to(bundle.folder)) for p in files if UNWANTED.search(str(p)))
    assert not unwanted, f"unused Qt parts in the bundle: {unwanted}"
    broken = [str(p) for p in files if p.is_symlink() and not p.exists()]
    assert not broken, f"dangling links: {broken}"


def test_no_python_is_reachable_from_the_test_environment(
    nerve: Runner, hide_python: Isolation
) -> None:
    if not nerve.prefix:
        pytest.skip(f"{hide_python.why_not}; only the environment keeps Python away")
    probe = [
        "command -v python3 python || true",
        *(f"ls -A '{p}'" for p in _python_homes()),
        *(f"test -s '{p}' && echo '{p}' || true" for p in _python_programs()),
    ]
    proc = subprocess.run(
        [*nerve.prefix, "/bin/sh", "-c", "\n".join(probe)],
        env=nerve.env,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    assert proc.stdout == "", f"Python is still visible:\n{proc.stdout}"


def test_version(nerve: Runner) -> None:
    from nerve import __version__

    assert nerve.ok("--version").strip() == f"nerve {__version__}"


def test_what_the_frozen_app_finds(nerve: Runner, bundle: Bundle) -> None:
    """The parts found at run time by name: listeners, entry points, data, Qt plugins."""
    user_libs = "/opt/nerve-test/lib"  # the user's own LD_LIBRARY_PATH, given back to programs
    report = json.loads(
        nerve.ok(extra={"NERVE_BUNDLE_SELFTEST": "1", "LD_LIBRARY_PATH": user_libs})
    )
    assert report["frozen"]
    assert Path(report["executable"]) == bundle.exe
    internal = str(bundle.folder)
    assert all(p.startswith(internal) for p in report["sys_path"]), report["sys_path"]

    # load_builtin_types() walks nerve.listeners with pkgutil: every module is found.
    listeners = ROOT / "app" / "nerve" / "listeners"
    expected = {f"nerve.listeners.{m.name}" for m in pkgutil.iter_modules([str(listeners)])}
    assert expected - {"nerve.listeners.manager"} <= set(report["listener_modules"])
    assert {"hotkey", "typed", "file.created", "window.focused", "schedule"} <= set(
        report["triggers"]
    )

    assert report["shipped_packs"] == sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))
    # The files of resources/, as setup.py ships them (not its sub-folders).
    shipped = sorted(p.name for p in (ROOT / "resources").iterdir() if p.is_file())
    assert report["resources"] == shipped
    assert {"cron", "date", "interval"} <= set(report["entry_points"]["apscheduler.triggers"])
    assert report["cron_by_alias"] == "CronTrigger"
    assert report["pack_schema_checked"]
    assert report["watchdog_observer"] == "InotifyObserver"
    assert "_xorg" in report["pynput_backends"]["keyboard"]
    assert report["legacy_keysyms"] > 500
    assert "svg" in report["qt"]["image_formats"]
    assert report["qt"]["svg_icon_drawn"]
    # What programs started by rules inherit: the user's values, nothing of the bundle.
    assert report["environment"] == {
        "LD_LIBRARY_PATH": user_libs,
        "QML2_IMPORT_PATH": None,
        "QT_PLUGIN_PATH": None,
    }


def test_validate_good_and_broken_packs(nerve: Runner) -> None:
    good = sorted((PACKS / "good").glob("*.yaml"))
    out = nerve.ok("validate", *good)
    assert out.count(": ok, pack ") == len(good), out

    broken = nerve.run(
        "validate", PACKS / "broken" / "bad_cron.yaml", PACKS / "broken" / "unknown_trigger.yaml"
    )
    assert broken.returncode == EXIT_INVALID
    assert "bad_cron.yaml:7:18: rules[0].when.schedule.cron: bad cron expression" in broken.stderr
    assert (
        "unknown_trigger.yaml:7:9: rules[0].when[0].evnt: unknown trigger 'evnt'; "
        "did you mean 'event'?"
    ) in broken.stderr


def test_headless_run_status_emit_and_sigterm(
    nerve: Runner, bundle: Bundle, short_tmp: Path
) -> None:
    pack = short_tmp / "bundle.yaml"
    pack.write_text(RULES)
    out = short_tmp / "nerve-run.out"
    with nerve.background("run", "--headless", "--rules", pack, out=out) as proc:
        status = nerve.wait_answering(proc, out)
        assert f"(pid {proc.pid}): running" in status
        assert "pack test.bundle: 1 rule(s), ok" in status

        # The process is the bundle's own Python, not one of the machine's.
        libs = {m.path for m in psutil.Process(proc.pid).memory_maps() if "libpython" in m.path}
        assert libs
        assert all(lib.startswith(str(bundle.folder)) for lib in libs), libs

        target = short_tmp / "env-of-a-rule"
        assert "published" in nerve.ok("emit", "x.env", f"path={target}")
        wait_until(target.exists, 15, f"{target} written by the rule")
        seen = dict(line.split("=", 1) for line in target.read_text().splitlines() if "=" in line)
        leaked = {k: v for k, v in seen.items() if str(bundle.folder) in v or k.startswith("_PYI")}
        assert not leaked, f"a rule's program inherits the bundle's environment: {leaked}"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == EXIT_OK, out.read_text()
    text = out.read_text()
    assert "Traceback" not in text, text
    assert "stopping" in text
    assert nerve.run("status").returncode == 3  # no running instance


def test_desktop_app_starts_under_x_and_quits(
    nerve: Runner, xserver_wm: XServer, short_tmp: Path
) -> None:
    nerve.env["DISPLAY"] = xserver_wm.display
    out = short_tmp / "nerve-gui.out"
    with nerve.background(out=out) as proc:
        status = nerve.wait_answering(proc, out)
        assert f"(pid {proc.pid}): running" in status

        def window() -> str:
            found = subprocess.run(
                [
                    *("xdotool", "search", "--all", "--onlyvisible"),
                    *("--pid", str(proc.pid), "--name", "^Nerve$"),
                ],
                env={**os.environ, "DISPLAY": xserver_wm.display},
                capture_output=True,
                text=True,
                check=False,
            )
            return found.stdout.split()[0] if found.stdout.split() else ""

        wid = wait_until(window, 20, "the Nerve window")
        # Quit as a person would: Ctrl+Q in the focused window. The window
        # manager may report the window active before Qt has taken the focus
        # in, and a shortcut pressed then goes nowhere: press it again, as a
        # person would when nothing happens.
        for _ in range(5):
            subprocess.run(
                ["xdotool", "windowactivate", "--sync", wid, "key", "--clearmodifiers", "ctrl+q"],
                env={**os.environ, "DISPLAY": xserver_wm.display},
                timeout=10,
                check=False,
            )
            try:
                code = proc.wait(3)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            code = proc.wait(15)
        assert code == EXIT_OK, out.read_text()
    text = out.read_text()
    assert "Traceback" not in text, text
    assert not (Path(nerve.env["XDG_RUNTIME_DIR"]) / "nerve" / "nerve.sock").exists()


def test_appdir_runs_through_apprun(nerve: Runner, bundle: Bundle) -> None:
    """The AppImage's contents (packing them needs appimagetool, not available here)."""
    apprun = bundle.appdir / "AppRun"
    assert nerve.ok("--version", program=apprun).startswith("nerve ")
    assert nerve.ok("validate", PACKS / "good" / "composite.yaml", program=apprun)
    desktop = (bundle.appdir / "nerve.desktop").read_text()
    assert "Exec=nerve" in desktop
    assert "Icon=nerve" in desktop
    assert (bundle.appdir / "nerve.svg").is_file()
    assert (bundle.appdir / ".DirIcon").resolve() == (bundle.appdir / "nerve.svg").resolve()
