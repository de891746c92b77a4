"""The wheel, installed into a fresh virtual environment, works the way a user gets it.

What the slow tests prove: the wheel built from this tree (``pip wheel``, as
``pipx install`` would build it) holds the package, its data (icons, the desktop
entry templates, the shipped starter pack, the pack JSON Schema) and the
``nerve`` command; and that ``nerve`` from a venv that is not this checkout finds
its data inside the installed package: ``--version``, ``schema``, ``validate``
of the installed starter pack, ``install-desktop --autostart`` (checked with
desktop-file-validate) and ``uninstall-desktop``, and a headless run answering
``status`` and stopping on SIGTERM.

What they do not prove: that the wheel's dependencies install from PyPI (the
fresh venv borrows this venv's third-party packages through a ``.pth`` file, so
nothing is downloaded but the build backend, as for ``pip install -e``), other
Python versions, or the desktop window (it needs a display).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import wait_until, xdg_folders
from nerve import __version__
from nerve.packs.schema import pack_schema

ROOT = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip"]
SCHEMA_FILE = ROOT / "resources" / "nerve-pack.schema.json"
#: What setup.py and pyproject.toml need to build the wheel.
SOURCES = ["app", "rules", "resources", "setup.py", "pyproject.toml", "README.md", "LICENSE"]
PACKAGE_DATA = [
    "resources/nerve.svg",
    "resources/nerve-paused.svg",
    "resources/nerve-error.svg",
    "resources/nerve.desktop.in",
    "resources/nerve-autostart.desktop.in",
    "resources/nerve-pack.schema.json",
    "rules/starter.yaml",
    "rules/library/snippets.yaml",
    "rules/library/clipboard-cleaner.yaml",
]
TINY_PACK = """\
nerve: 1
pack: {id: test.wheel}
rules:
  - id: note
    when: {event: x.note}
    do: [{log: noted}]
"""


def test_the_shipped_schema_file_is_current() -> None:
    """resources/nerve-pack.schema.json ships with the package for editors; it is
    what `nerve schema` prints."""
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == pack_schema(), (
        "resources/nerve-pack.schema.json is stale: "
        "regenerate it with `nerve schema > resources/nerve-pack.schema.json`"
    )


# -------------------------------------------------------------- the wheel


@dataclass
class Installed:
    venv: Path
    env: dict[str, str]
    home: Path

    @property
    def nerve(self) -> Path:
        return self.venv / "bin" / "nerve"

    def run(self, *args: object, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.nerve), *map(str, args)],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc

    def python(self, code: str) -> str:
        proc = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return proc.stdout


def _step(argv: list[str], what: str, cwd: Path) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=50, check=False)
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel built from a copy of this tree, installed alone into a new venv."""
    work = tmp_path_factory.mktemp("wheel")
    # A copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=ignore)
        else:
            shutil.copy2(item, src / name)
    dist = work / "dist"
    _step(
        [*PIP, "wheel", str(src), "--no-deps", "-q", "-w", str(dist)],
        "building the wheel",
        work,
    )
    (wheel,) = dist.glob("nerve-*.whl")

    venv = work / "venv"
    _step([sys.executable, "-m", "venv", "--without-pip", str(venv)], "creating a venv", work)
    python = venv / "bin" / "python"
    _step(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        "installing the wheel",
        work,
    )
    # Third-party packages from this venv, appended after the new venv's own
    # site-packages (a plain path line: this venv's .pth files, among them the
    # editable nerve, are not processed).
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_dev_venv_packages.pth").write_text("\n".join(sorted(borrowed)) + "\n")

    home = Path(tempfile.mkdtemp(prefix="nvw", dir="/tmp"))  # short: the socket path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("DISPLAY", None)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    env["HOME"] = str(home)
    env.update(xdg_folders(home))
    yield Installed(venv, env, home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_the_package_and_its_data_come_from_the_wheel(installed: Installed) -> None:
    found = json.loads(
        installed.python(
            "import json, nerve\n"
            "from nerve.paths import resources_dir, shipped_packs_dir\n"
            "print(json.dumps({'module': nerve.__file__, 'resources': str(resources_dir()),"
            " 'packs': str(shipped_packs_dir())}))\n"
        )
    )
    venv = str(installed.venv) + os.sep
    for key in ("module", "resources", "packs"):
        assert found[key].startswith(venv), f"{key} is not from the new venv: {found[key]}"
    data = Path(found["module"]).parent / "data"
    for name in PACKAGE_DATA:
        assert (data / name).is_file(), f"{name} is missing from the wheel"
        assert (data / name).read_bytes() == (ROOT / name).read_bytes()

    proc = installed.run("--version")
    assert proc.stdout.strip() == f"nerve {__version__}"

    proc = installed.run("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == json.loads(
        (data / "resources/nerve-pack.schema.json").read_text()
    )

    starter = data / "rules" / "starter.yaml"
    proc = installed.run("validate", starter)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{starter}: ok, pack nerve.starter")
    proc = installed.run("pack", "list", "--available")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": ") >= 7  # the shipped library, from the installed package
    assert "snippets" in proc.stdout


@pytest.mark.slow
def test_the_installed_nerve_installs_desktop_entries(installed: Installed) -> None:
    proc = installed.run("install-desktop", "--autostart")
    assert proc.returncode == 0, proc.stderr
    data, config = Path(installed.env["XDG_DATA_HOME"]), Path(installed.env["XDG_CONFIG_HOME"])
    menu = data / "applications" / "nerve.desktop"
    login = config / "autostart" / "nerve.desktop"
    icon = data / "icons" / "hicolor" / "scalable" / "apps" / "nerve.svg"
    tool = shutil.which("desktop-file-validate")
    assert tool, "install desktop-file-validate (Debian package desktop-file-utils)"
    check = subprocess.run(
        [tool, str(menu), str(login)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The entries run the nerve that installed them: this venv's, by its path.
    assert f"\nExec={installed.nerve}\n" in menu.read_text()
    assert f"\nExec={installed.nerve} --tray\n" in login.read_text()
    assert icon.is_file()

    proc = installed.run("uninstall-desktop")
    assert proc.returncode == 0, proc.stderr
    assert not menu.exists()
    assert not login.exists()
    assert not icon.exists()


@pytest.mark.slow
def test_the_installed_nerve_runs_headless(installed: Installed) -> None:
    pack = installed.home / "tiny.yaml"
    pack.write_text(TINY_PACK)
    out = installed.home / "run.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [str(installed.nerve), "run", "--headless", "--rules", str(pack)],
            env=installed.env,
            cwd=installed.home,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        status = wait_until(
            lambda: proc.poll() is not None or installed.run("status").returncode == 0,
            timeout=20,
            what="nerve status to answer",
        )
        assert proc.poll() is None, out.read_text()
        assert status
        text = installed.run("status").stdout
        assert f"Nerve {__version__} (pid {proc.pid}): running" in text
        assert f"pack test.wheel: 1 rule(s), ok ({pack})" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, out.read_text()
    assert "Traceback" not in out.read_text()
    log = Path(installed.env["XDG_STATE_HOME"]) / "nerve" / "log" / "nerve.log"
    assert "running: 1 rule(s) from 1 pack(s)" in log.read_text()
    assert installed.run("status").returncode == 3
