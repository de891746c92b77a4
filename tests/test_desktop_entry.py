"""``nerve install-desktop`` / ``uninstall-desktop`` and the autostart switch.

The entries are checked the way desktops read them: ``desktop-file-validate``
(Debian package desktop-file-utils) on every file written, and GLib's own
launcher (``gio launch``) running them, with program paths full of characters
the Desktop Entry spec wants quoted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import wait_until
from nerve import desktop_entry
from nerve.desktop_entry import DesktopEntryError

NERVE = [sys.executable, "-m", "nerve"]


@pytest.fixture
def desk(nerve_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home with XDG_DATA_HOME and XDG_CONFIG_HOME of its own; returns HOME."""
    home = short_tmp / "home"
    home.mkdir()
    nerve_env["HOME"] = str(home)
    monkeypatch.setenv("HOME", str(home))
    return home


def validate(*paths: Path) -> None:
    """desktop-file-validate must accept the files without a word."""
    tool = shutil.which("desktop-file-validate")
    assert tool, "install desktop-file-validate (Debian package desktop-file-utils)"
    proc = subprocess.run([tool, *map(str, paths)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def keys(path: Path, group: str = "Desktop Entry") -> dict[str, str]:
    out: dict[str, str] = {}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == group and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*NERVE, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def data_home(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"])


def config_home(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"])


# -------------------------------------------------------- the real command


def test_install_and_uninstall_from_the_command_line(nerve_env: dict[str, str], desk: Path) -> None:
    menu = data_home(nerve_env) / "applications" / "nerve.desktop"
    icon = data_home(nerve_env) / "icons" / "hicolor" / "scalable" / "apps" / "nerve.svg"
    login = config_home(nerve_env) / "autostart" / "nerve.desktop"

    proc = run_cli(nerve_env, "install-desktop")
    assert proc.returncode == 0, proc.stderr
    assert menu.is_file()
    assert icon.is_file()
    assert not login.exists()
    assert f"wrote {menu} (menu entry)" in proc.stdout
    assert "nerve install-desktop --autostart" in proc.stdout  # how to get the rest
    validate(menu)

    # `python -m nerve` in a venv: the entry runs the venv's nerve script by its path.
    script = str(Path(sys.executable).parent / "nerve")
    entry = keys(menu)
    assert entry["Exec"] == script
    assert entry["TryExec"] == script
    assert entry["Icon"] == "nerve"
    assert keys(menu, "Desktop Action pause")["Exec"] == f"{script} pause"
    # The icon is still an SVG (the mark is an XML comment) and the one shipped.
    root = ET.fromstring(icon.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    shipped = Path(__file__).resolve().parents[1] / "resources" / "nerve.svg"
    assert icon.read_bytes().endswith(shipped.read_bytes())

    proc = run_cli(nerve_env, "install-desktop", "--autostart")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {login} (start at login)" in proc.stdout
    assert "starts in the tray when you log in" in proc.stdout
    validate(menu, login)
    assert keys(login)["Exec"] == f"{script} --tray"

    # Written atomically, without backups or temporary files left over.
    for path in (menu, icon, login):
        assert [p.name for p in path.parent.iterdir()] == [path.name]

    proc = run_cli(nerve_env, "uninstall-desktop")
    assert proc.returncode == 0, proc.stderr
    for path, what in ((menu, "menu entry"), (login, "start at login"), (icon, "icon")):
        assert f"removed {path} ({what})" in proc.stdout
        assert not path.exists()
    proc = run_cli(nerve_env, "uninstall-desktop")
    assert proc.returncode == 0
    assert "nothing to remove" in proc.stdout


def test_files_nerve_did_not_write_are_never_touched(nerve_env: dict[str, str], desk: Path) -> None:
    mine = config_home(nerve_env) / "autostart" / "nerve.desktop"
    mine.parent.mkdir(parents=True)
    mine.write_text("[Desktop Entry]\nType=Application\nName=My nerve\nExec=/opt/nerve\n")
    before = mine.read_bytes()

    proc = run_cli(nerve_env, "install-desktop", "--autostart")
    assert proc.returncode == 1
    assert f"{mine} is in the way: Nerve did not write it" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (data_home(nerve_env) / "applications" / "nerve.desktop").exists()  # nothing

    assert run_cli(nerve_env, "install-desktop").returncode == 0  # no autostart: fine
    proc = run_cli(nerve_env, "uninstall-desktop")
    assert proc.returncode == 0
    assert f"left {mine} alone" in proc.stderr
    assert "menu entry" in proc.stdout
    assert mine.read_bytes() == before


def test_an_unwritable_folder_is_one_line_and_exit_1(
    nerve_env: dict[str, str], desk: Path, short_tmp: Path
) -> None:
    blocker = short_tmp / "a-file"
    blocker.write_text("")
    nerve_env["XDG_DATA_HOME"] = str(blocker)
    proc = run_cli(nerve_env, "install-desktop")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"nerve: install-desktop: cannot write {blocker}/")
    assert "Not a directory" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_other_platforms_are_told_it_is_not_supported_yet(
    nerve_env: dict[str, str], platform: str
) -> None:
    for command in ("install-desktop", "uninstall-desktop"):
        code = (
            f"import sys; sys.platform = {platform!r}\n"
            "from nerve.cli import main\n"
            f"raise SystemExit(main([{command!r}]))\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env=nerve_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 1
        assert "not supported on this platform yet" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not any(Path(nerve_env["XDG_DATA_HOME"]).iterdir())


# ------------------------------------------------------------------ quoting


def fake_nerve(folder: Path, record: Path) -> Path:
    """An executable ``nerve`` in ``folder`` that writes its arguments to ``record``."""
    folder.mkdir(parents=True)
    program = folder / "nerve"
    program.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > '{record}'\n")
    program.chmod(0o755)
    return program


NASTY = [
    "plain",
    "two words",
    'say "hi"',
    "$HOME and ${x}",
    "back\\slash",
    "tick`s`",
    "it's ~ (a) [b] {c} #1 ; & | < > * ?",
    "ünïcødé ☃",
]


@pytest.mark.parametrize("name", NASTY)
def test_exec_lines_survive_quoting_in_a_real_launcher(
    desk: Path,
    nerve_env: dict[str, str],
    short_tmp: Path,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = short_tmp / "argv.txt"
    program = fake_nerve(short_tmp / name, record)
    monkeypatch.setattr(sys, "argv", [str(program)])
    written = desktop_entry.install_desktop(autostart=True)
    menu, login = desktop_entry.menu_entry_path(), desktop_entry.autostart_path()
    assert set(written) == {menu, login, desktop_entry.icon_path()}
    validate(menu, login)
    assert keys(menu)["TryExec"].replace("\\\\", "\\") == str(program)

    gio = shutil.which("gio")
    if gio is None:
        pytest.skip("gio (Debian package libglib2.0-bin) is not installed")
    env = {**nerve_env, "HOME": str(desk)}
    for entry, expected in ((menu, [str(program)]), (login, [str(program), "--tray"])):
        record.unlink(missing_ok=True)
        proc = subprocess.run(
            [gio, "launch", str(entry)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: record.exists() and record.read_text().endswith("\n"), what="the launch")
        assert record.read_text(encoding="utf-8").splitlines() == expected


def parse_exec(value: str) -> list[str]:
    """An Exec value back to arguments, as the Desktop Entry spec describes."""
    text, i = "", 0
    while i < len(value):  # the string escapes first
        if value[i] == "\\" and i + 1 < len(value):
            text += {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(
                value[i + 1], "\\" + value[i + 1]
            )
            i += 2
        else:
            text += value[i]
            i += 1
    args: list[str] = []
    current: str | None = None
    quoted, i = False, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                assert text[i + 1] in '"`$\\', f"bad escape in {value!r}"
                current = (current or "") + text[i + 1]
                i += 1
            elif c == '"':
                quoted = False
            else:
                current = (current or "") + c
        elif c == " ":
            if current is not None:
                args.append(current)
            current = None
        elif c == '"':
            quoted = True
            current = current or ""
        else:
            assert c not in desktop_entry._RESERVED, f"unquoted {c!r} in {value!r}"
            current = (current or "") + c
        i += 1
    assert not quoted, value
    if current is not None:
        args.append(current)
    return [a.replace("%%", "\0").replace("%", "?").replace("\0", "%") for a in args]


printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"), min_size=1
)


@given(
    program=printable.filter(lambda p: "=" not in p and "%" not in p),
    args=st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs"))), max_size=3),
)
def test_exec_line_round_trips(program: str, args: list[str]) -> None:
    argv = [program, *args]
    line = desktop_entry.exec_line(argv)
    assert "\n" not in line
    assert parse_exec(line) == argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/opt/a=b/nerve"], "contains '='"),
        (["/opt/100%/nerve"], "contains '%'"),
        (["/opt/new\nline/nerve"], "control character"),
        (["/opt/\udcff/nerve"], "not valid UTF-8"),
    ],
)
def test_programs_a_desktop_cannot_run_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(DesktopEntryError, match=message):
        desktop_entry.exec_line(argv)


# -------------------------------------------------------------- which nerve


def test_the_command_is_the_nerve_being_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.touch()
    monkeypatch.setattr(sys, "executable", str(python))

    script = tmp_path / "pipx-bin" / "nerve"
    script.parent.mkdir()
    script.touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pipx-bin/nerve", "install-desktop"])
    assert desktop_entry.nerve_command() == [str(script)]  # absolute, symlinks kept

    monkeypatch.setattr(sys, "argv", ["/src/nerve/__main__.py"])  # python -m nerve
    assert desktop_entry.nerve_command() == [str(python), "-m", "nerve"]
    (bin_dir / "nerve").touch(mode=0o755)
    assert desktop_entry.nerve_command() == [str(bin_dir / "nerve")]

    monkeypatch.setattr(sys, "frozen", True, raising=False)  # a PyInstaller bundle
    assert desktop_entry.nerve_command() == [str(python)]
    monkeypatch.setenv("APPIMAGE", "/home/me/Nerve.AppImage")
    assert desktop_entry.nerve_command() == ["/home/me/Nerve.AppImage"]


def test_xdg_folders_are_honoured_and_relative_ones_ignored(
    desk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/x/data")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/x/config")
    assert desktop_entry.menu_entry_path() == Path("/x/data/applications/nerve.desktop")
    assert desktop_entry.icon_path() == Path("/x/data/icons/hicolor/scalable/apps/nerve.svg")
    assert desktop_entry.autostart_path() == Path("/x/config/autostart/nerve.desktop")
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert desktop_entry.menu_entry_path() == desk / ".local/share/applications/nerve.desktop"
    assert desktop_entry.autostart_path() == desk / ".config/autostart/nerve.desktop"


# ---------------------------------------------------------------- autostart


def test_autostart_switch(desk: Path) -> None:
    path = desktop_entry.autostart_path()
    assert not desktop_entry.autostart_enabled()
    desktop_entry.set_autostart(False)  # already off: nothing to do
    assert not path.exists()

    desktop_entry.set_autostart(True)
    assert desktop_entry.autostart_enabled()
    validate(path)
    assert keys(path)["Exec"].endswith(" --tray")
    assert not desktop_entry.menu_entry_path().exists()  # only the login entry

    # Desktops switch an entry off in place; that counts as off.
    for off in ("Hidden=true", "X-GNOME-Autostart-enabled=false"):
        text = path.read_text().replace("X-GNOME-Autostart-enabled=true", off)
        path.write_text(text)
        assert not desktop_entry.autostart_enabled()
        desktop_entry.set_autostart(True)  # and switching it on again rewrites it
        assert desktop_entry.autostart_enabled()

    desktop_entry.set_autostart(False)
    assert not path.exists()
    assert not desktop_entry.autostart_enabled()


def test_autostart_switch_leaves_a_users_own_entry_alone(desk: Path) -> None:
    path = desktop_entry.autostart_path()
    path.parent.mkdir(parents=True)
    path.write_text("[Desktop Entry]\nType=Application\nName=Mine\nExec=nerve\n")
    assert desktop_entry.autostart_enabled()  # it does start something at login
    for enabled in (True, False):
        with pytest.raises(DesktopEntryError, match="Nerve did not write it"):
            desktop_entry.set_autostart(enabled)
    assert "Name=Mine" in path.read_text()


def test_autostart_on_other_platforms(monkeypatch: pytest.MonkeyPatch, desk: Path) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not desktop_entry.supported()
    assert not desktop_entry.autostart_enabled()
    with pytest.raises(desktop_entry.Unsupported, match="not supported on this platform yet"):
        desktop_entry.set_autostart(True)
    assert not os.path.exists(desktop_entry.autostart_path())
