"""Assembling Nerve in-process: the starter pack, start/stop, the control handler.

The folders are a fresh user's (the ``nerve_env`` fixture sets the XDG
variables for this process too); the command line itself is in test_cli.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_until as wait_for
from nerve import bootstrap
from nerve.bootstrap import Nerve, install_starter_pack
from nerve.ipc import AlreadyRunning, InstanceLock, IpcError, request, socket_path
from nerve.options import Options
from nerve.paths import Locations, locations, shipped_packs_dir
from nerve.storage import StorageError, Store

DATA = Path(__file__).parent / "cli_data"
PACK = DATA / "cli.yaml"  # x.touch path=P -> touch P
SHIPPED_STARTER = Path(__file__).resolve().parents[1] / "rules" / "starter.yaml"


@pytest.fixture
def where(nerve_env: dict[str, str]) -> Locations:
    return locations()


@pytest.fixture
def make_nerve(where: Locations) -> Iterator[Callable[..., Nerve]]:
    """Build (not start) Nerve instances; every one is stopped at teardown."""
    made: list[Nerve] = []

    def make(*rule_paths: Path, data: Path | None = None, **overrides: str) -> Nerve:
        place = where if data is None else locations(data)
        app = Nerve(place, Options(rule_paths=list(rule_paths), overrides=overrides))
        made.append(app)
        return app

    yield make
    for app in made:
        app.stop()


# ---------------------------------------------------------------- locations


def test_locations_follow_xdg_and_data_dir(
    nerve_env: dict[str, str], short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = locations()
    assert where.packs == Path(nerve_env["XDG_CONFIG_HOME"]) / "nerve" / "packs"
    assert where.database == Path(nerve_env["XDG_DATA_HOME"]) / "nerve" / "nerve.db"
    assert str(where.log_file).startswith(nerve_env["XDG_STATE_HOME"])

    assert locations(short_tmp / "d").database == short_tmp / "d" / "nerve.db"
    monkeypatch.chdir(short_tmp)
    # A relative --data-dir is made absolute: `nerve status` shows a usable path.
    assert locations(Path("rel")).data == short_tmp / "rel"
    assert locations(Path("~/x")).data == Path.home() / "x"


def test_the_starter_pack_ships_with_nerve() -> None:
    assert (shipped_packs_dir() / "starter.yaml").read_bytes() == SHIPPED_STARTER.read_bytes()


# ------------------------------------------------------------- starter pack


def test_the_starter_pack_is_installed_once(where: Locations) -> None:
    assert not where.packs.exists()
    installed = install_starter_pack(where)
    assert installed == where.packs / "starter.yaml"
    assert installed.read_bytes() == SHIPPED_STARTER.read_bytes()
    assert (where.packs.stat().st_mode & 0o777) == 0o700

    installed.write_text("# my own edits\n")
    assert install_starter_pack(where) is None
    assert installed.read_text() == "# my own edits\n"

    installed.unlink()  # deleted by the user: it stays deleted
    assert install_starter_pack(where) is None
    assert not installed.exists()


def test_a_missing_starter_pack_is_a_warning(
    where: Locations,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(bootstrap, "shipped_packs_dir", lambda: short_tmp / "no-packs-here")
    assert install_starter_pack(where) is None
    assert "starter pack is missing" in caplog.text


def test_without_rule_paths_nerve_loads_the_users_packs(
    make_nerve: Callable[..., Nerve], where: Locations
) -> None:
    app = make_nerve()
    assert app.pack_paths() == [where.packs]
    packs = app.load_packs()
    assert [(p.id, len(p.rules), p.usable) for p in packs] == [("nerve.starter", 6, True)]

    assert make_nerve(PACK).pack_paths() == [PACK]


# -------------------------------------------------------------- start, stop


def test_start_serves_the_socket_and_stop_cleans_up(
    make_nerve: Callable[..., Nerve], where: Locations, short_tmp: Path
) -> None:
    app = make_nerve(PACK)
    app.start()
    sock = socket_path()
    assert sock.exists()

    status = request("status", path=sock)
    assert status["pid"] == os.getpid()
    assert status["engine"]["paused"] is False
    assert status["engine"]["rules"] == 1
    assert status["packs"] == [
        {
            "id": "test.cli",
            "file": str(PACK),
            "loaded": True,
            "rules": 1,
            "errors": 0,
            "capabilities": ["run:touch", "runs-programs"],
        }
    ]
    assert status["data"] == str(where.data)

    target = short_tmp / "touched"
    reply = request("emit", {"type": "x.touch", "data": {"path": str(target)}}, path=sock)
    assert isinstance(reply["id"], int)
    wait_for(target.exists, what=str(target))
    # The run ends (and is recorded) a moment after its program: stop() would cancel it.
    assert app.store is not None
    wait_for(app.store.query_runs, what="the run in the history")

    app.stop()
    app.stop()  # twice is fine
    assert not sock.exists()
    assert not app.lock.held
    with InstanceLock():  # free for the next instance
        pass
    with Store.open_readonly(where.database) as store:
        types = [e["type"] for e in store.query_events()]
        runs = store.query_runs()
    assert types[0] == "app.started"
    assert "x.touch" in types
    assert types[-1] == "app.stopping"
    assert [(r["rule_id"], r["status"]) for r in runs] == [("test.cli/touch", "ok")]


def test_a_second_nerve_is_refused_and_the_first_is_untouched(
    make_nerve: Callable[..., Nerve],
) -> None:
    first = make_nerve(PACK)
    first.start()
    second = make_nerve(PACK)
    with pytest.raises(AlreadyRunning) as caught:
        second.start()
    assert caught.value.pid == os.getpid()
    assert "already running" in str(caught.value)

    assert socket_path().exists()
    assert request("ping", path=socket_path())["pid"] == os.getpid()
    second.stop()  # stopping the refused one must not touch the first's socket or lock
    assert socket_path().exists()
    assert request("ping", path=socket_path())["pid"] == os.getpid()
    assert first.lock.held


def test_a_failed_start_releases_everything(
    make_nerve: Callable[..., Nerve], short_tmp: Path
) -> None:
    bad = short_tmp / "bad-data"
    bad.mkdir()
    (bad / "nerve.db").write_bytes(b"not SQLite at all\n" * 64)
    app = make_nerve(PACK, data=bad)
    with pytest.raises(StorageError, match="not a Nerve database"):
        app.start()
    assert not app.lock.held
    assert not socket_path().exists()

    good = make_nerve(PACK)
    good.start()
    assert request("ping", path=socket_path())["pid"] == os.getpid()


def test_a_pack_in_a_fresh_packs_folder_is_held_at_the_first_start(
    make_nerve: Callable[..., Nerve],
    where: Locations,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A downloaded pack dropped into the packs folder before Nerve ever ran: no
    approvals file, and still nothing of it runs."""
    monkeypatch.delenv("DISPLAY", raising=False)  # no keyboard listener
    where.packs.mkdir(parents=True)
    (where.packs / "downloaded.yaml").write_bytes(PACK.read_bytes())
    app = make_nerve()
    app.start()
    assert [(s.pack.id, set(s.missing)) for s in app.held] == [
        ("test.cli", {"runs-programs", "run:touch"})
    ]
    assert request("status", path=socket_path())["engine"]["rules"] == 0
    assert "pack test.cli" in caplog.text
    assert "is held" in caplog.text
    assert not app.approvals.exists()  # nothing was approved for the user


def test_the_event_ids_continue_after_a_restart(make_nerve: Callable[..., Nerve]) -> None:
    first = make_nerve(PACK)
    first.start()
    one = request("emit", {"type": "x.one"}, path=socket_path())["id"]
    first.stop()
    second = make_nerve(PACK)
    second.start()
    two = request("emit", {"type": "x.two"}, path=socket_path())["id"]
    assert two > one


# ------------------------------------------------------------------ handler


def test_handle_answers_the_control_commands(make_nerve: Callable[..., Nerve]) -> None:
    app = make_nerve(PACK)
    with pytest.raises(IpcError, match="starting up"):
        app.handle("status", {})
    app.start()

    assert app.handle("ping", {})["pid"] == os.getpid()
    assert app.handle("pause", {}) == {"paused": True, "cancelled": 0}
    assert app.status()["engine"]["paused"] is True
    assert app.handle("resume", {}) == {"paused": False}
    assert app.status()["engine"]["paused"] is False

    assert app.handle("pause", {"for": 0.2})["paused"] is True
    wait_for(lambda: not app.status()["engine"]["paused"], what="the timed pause to end")

    [summary] = app.handle("rules", {})
    assert summary["key"] == "test.cli/touch"
    assert app.handle("emit", {"type": "x.y", "data": {"n": 3}})["id"] > 0
    assert app.handle("emit", {"type": "x.y"})["id"] > 0  # data is optional


@pytest.mark.parametrize(
    ("cmd", "args", "message"),
    [
        ("emit", {}, "not an event type"),
        ("emit", {"type": "Bad Type"}, "not an event type"),
        ("emit", {"type": 3}, "not an event type"),
        ("emit", {"type": "x.y", "data": [1, 2]}, "must be an object"),
        ("emit", {"type": "x.y", "data": "text"}, "must be an object"),
        ("pause", {"for": "10m"}, "positive number of seconds"),
        ("pause", {"for": 0}, "positive number of seconds"),
        ("pause", {"for": -5}, "positive number of seconds"),
        ("pause", {"for": True}, "positive number of seconds"),
        # Past the longest duration Nerve takes (366 days), or past float's range.
        ("pause", {"for": 366 * 86400 + 1}, "at most 31,622,400"),
        ("pause", {"for": 1e308}, "at most 31,622,400"),
        ("pause", {"for": 10**400}, "at most 31,622,400"),
        ("emit", {"type": "file.created\n"}, "not an event type"),
        ("emit", {"type": "FILE.created"}, "not an event type"),
        ("emit", {"type": "\uff46ile.created"}, "not an event type"),
        ("launch-missiles", {}, "unknown command"),
    ],
)
def test_handle_rejects_bad_arguments(
    make_nerve: Callable[..., Nerve], cmd: str, args: dict[str, Any], message: str
) -> None:
    app = make_nerve(PACK)
    app.start()
    with pytest.raises(IpcError, match=message):
        app.handle(cmd, args)
    assert app.status()["engine"]["paused"] is False


def test_reload_reads_the_packs_again(make_nerve: Callable[..., Nerve], short_tmp: Path) -> None:
    pack = short_tmp / "mine.yaml"
    pack.write_text(PACK.read_text())
    app = make_nerve(pack)
    app.start()
    assert app.status()["engine"]["rules"] == 1

    pack.write_text(
        PACK.read_text() + "  - id: second\n    when: {event: x.two}\n    do: [{log: two}]\n"
    )
    assert app.handle("reload", {}) == {"rules": 2, "errors": []}
    assert app.status()["engine"]["rules"] == 2

    pack.write_text(PACK.read_text() + "  - id: broken\n    when: {event: x.y}\n")
    result = app.handle("reload", {})
    assert result["rules"] == 1
    assert len(result["errors"]) == 1
    assert "mine.yaml" in result["errors"][0]


def test_reload_applies_changed_settings(
    make_nerve: Callable[..., Nerve], where: Locations, short_tmp: Path
) -> None:
    pack = short_tmp / "mine.yaml"
    pack.write_text(PACK.read_text())
    app = make_nerve(pack)
    app.start()
    assert app.store is not None
    assert app.engine is not None
    assert app.store.retention_days == 30
    where.config.mkdir(parents=True, exist_ok=True)
    (where.config / "settings.yaml").write_text(
        "retention_days: 3\nmax_events: 5000\nstore_private: true\nmax_depth: 3\n"
        "max_loop_rounds: 40\n"
    )
    assert app.engine.max_iterations == 100_000
    app.reload()
    assert app.store.retention_days == 3
    assert app.store.max_events == 5000
    assert app.store.store_private is True
    assert app.engine.max_depth == 3
    assert app.engine.max_iterations == 40
