"""The filesystem listener and the file.* triggers, on real files with real
inotify (watchdog), through a live engine and listener manager."""

from __future__ import annotations

import errno
import gc
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import LiveHarness, rules_from, wait_until
from nerve.events import Event
from nerve.listeners import filesystem
from nerve.listeners.filesystem import DEFAULTS, FileTrigger, Patterns, WatchNeed, expand_path
from nerve.packs.loader import load_pack

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")

#: Every rule of these tests reports its fires as a test.fired event.
EMIT = """
    do:
      - emit:
          type: test.fired
          data: {{rule: {rule}, type: "{{event.type}}", path: "{{event.path}}",
                  name: "{{event.name}}", dir: "{{event.dir}}", is_dir: "{{event.is_dir}}",
                  src: "{{event.src_path}}"}}
"""


def rule(rule_id: str, trigger: str, extra: str = "") -> str:
    """A rule (YAML under ``rules:``) that emits test.fired when ``trigger`` fires."""
    return f"  - id: {rule_id}\n    when: {trigger}\n    mode: parallel\n{extra}" + EMIT.format(
        rule=rule_id
    )


def fired(live: LiveHarness, rule_id: str | None = None) -> list[dict[str, Any]]:
    return [
        dict(e.data)
        for e in live.recorder.of("test.fired")
        if rule_id is None or e.data["rule"] == rule_id
    ]


def wait_fired(
    live: LiveHarness, rule_id: str, count: int = 1, timeout: float = 10.0
) -> list[dict[str, Any]]:
    hits = live.recorder.wait(
        "test.fired", count, timeout, where=lambda e: e.data["rule"] == rule_id
    )
    return [dict(e.data) for e in hits]


def published(live: LiveHarness, type_: str, path: Path | str) -> list[Event]:
    return [e for e in live.recorder.of(type_) if e.data["path"] == str(path)]


def start(live: LiveHarness, rules: str) -> dict[str, Any]:
    live.load(rules)
    return live.listener("filesystem")


@pytest.fixture
def box(tmp_path: Path) -> Path:
    folder = tmp_path / "box"
    folder.mkdir()
    return folder


# --------------------------------------------------------------- triggers


def test_created_glob_and_placeholders_reach_a_run_action(live: LiveHarness, box: Path) -> None:
    out = box.parent / "out.txt"
    start(
        live,
        f"""
  - id: pdfs
    when: {{file.created: {{path: "{box}", glob: ["*.pdf", "*.PDF"]}}}}
    do:
      - run: [sh, -c, 'printf "%s|%s|%s|%s|%s" "$@" > {out}', sh,
              "{{event.path}}", "{{event.name}}", "{{event.dir}}", "{{event.is_dir}}",
              "{{event.type}}"]
""",
    )
    (box / "notes.txt").write_text("no")
    (box / 'it\'s a "report" $HOME.pdf').write_text("yes")
    text = wait_until(lambda: out.exists() and out.read_text(), what="the run's output")
    pdf = box / 'it\'s a "report" $HOME.pdf'
    assert text == f"{pdf}|{pdf.name}|{box}|false|file.created"
    # notes.txt came first and was published, but the rule did not fire for it.
    live.recorder.wait("file.created", where=lambda e: e.data["name"] == "notes.txt")
    assert live.summary("pdfs")["fired"] == 1


def test_modified_fires_once_per_write_and_while_kept_open(live: LiveHarness, box: Path) -> None:
    start(live, rule("mod", f'{{file.modified: "{box}"}}'))
    target = box / "data.txt"
    with target.open("w") as f:
        for i in range(20):
            f.write(f"line {i}\n")
            f.flush()
    (hit,) = wait_fired(live, "mod")
    assert hit["path"] == str(target)
    assert hit["type"] == "file.modified"

    # A writer that keeps the file open (a log) is reported within a second.
    with (box / "app.log").open("a") as log:
        log.write("started\n")
        log.flush()
        (hit,) = wait_fired(live, "mod", 2, timeout=5)[1:]
        assert hit["name"] == "app.log"
    time.sleep(0.3)  # prove no extra event: the 20 writes of data.txt were one
    assert len(published(live, "file.modified", target)) == 1


def test_deleted_and_moved_as_the_rule_sees_them(live: LiveHarness, box: Path) -> None:
    start(
        live,
        rule("gone", f'{{file.deleted: {{path: "{box}", glob: "*.txt"}}}}')
        + rule("moved", f'{{file.moved: {{path: "{box}", glob: "*.txt"}}}}'),
    )
    (box / "a.txt").write_text("a")
    (box / "b.txt").write_text("b")
    wait_until(lambda: published(live, "file.created", box / "b.txt"))
    (box / "a.txt").rename(box / "renamed.txt")
    (hit,) = wait_fired(live, "moved")
    assert (hit["path"], hit["src"], hit["name"]) == (
        str(box / "renamed.txt"),
        str(box / "a.txt"),
        "renamed.txt",
    )
    # Renamed out of the glob: for these rules, a .txt file disappeared.
    (box / "renamed.txt").rename(box / "renamed.md")
    (hit,) = wait_fired(live, "gone")
    assert (hit["type"], hit["path"]) == ("file.deleted", str(box / "renamed.txt"))
    (box / "b.txt").unlink()
    hits = wait_fired(live, "gone", 2)
    assert (hits[1]["type"], hits[1]["path"]) == ("file.deleted", str(box / "b.txt"))
    assert len(fired(live, "moved")) == 1


def test_a_finished_download_or_atomic_save_counts_as_created(live: LiveHarness, box: Path) -> None:
    start(live, rule("new", f'{{file.created: "{box}"}}'))
    partial = box / "movie.mkv.crdownload"
    partial.write_bytes(b"x" * 1000)
    partial.rename(box / "movie.mkv")
    (hit,) = wait_fired(live, "new")
    assert hit["path"] == str(box / "movie.mkv")
    assert hit["src"] == str(partial)
    assert live.summary("new")["fired"] == 1  # the .crdownload itself never fired


def test_changed_is_any_of_the_four(live: LiveHarness, box: Path) -> None:
    start(live, rule("any", f'{{file.changed: {{path: "{box}", is_dir: false}}}}'))
    f = box / "f.txt"
    f.write_text("1")  # created, then modified
    wait_fired(live, "any", 2)
    f.rename(box / "g.txt")
    wait_fired(live, "any", 3)
    (box / "g.txt").unlink()
    hits = wait_fired(live, "any", 4)
    assert [h["type"] for h in hits] == [
        "file.created",
        "file.modified",
        "file.moved",
        "file.deleted",
    ]


def test_recursive_is_dir_and_relative_globs(live: LiveHarness, box: Path) -> None:
    start(
        live,
        rule("deep", f'{{file.created: {{path: "{box}", recursive: true, glob: "src/**/*.py"}}}}')
        + rule("flat", f'{{file.created: {{path: "{box}", glob: "*.py"}}}}')
        + rule("dirs", f'{{file.created: {{path: "{box}", is_dir: true}}}}'),
    )
    (box / "src" / "pkg").mkdir(parents=True)
    (box / "src" / "pkg" / "mod.py").write_text("")
    (box / "src" / "top.py").write_text("")
    (box / "other.py").write_text("")
    deep = wait_fired(live, "deep", 2)
    assert sorted(h["path"] for h in deep) == [
        str(box / "src" / "pkg" / "mod.py"),
        str(box / "src" / "top.py"),
    ]
    (flat,) = wait_fired(live, "flat")
    assert flat["path"] == str(box / "other.py")
    (folder,) = wait_fired(live, "dirs")
    assert (folder["path"], folder["is_dir"]) == (str(box / "src"), True)
    time.sleep(0.2)  # prove the non-recursive rules saw nothing deeper
    assert len(fired(live, "flat")) == 1
    assert len(fired(live, "dirs")) == 1
    assert len(fired(live, "deep")) == 2


def test_a_path_naming_a_file(live: LiveHarness, box: Path) -> None:
    notes = box / "notes.txt"
    start(
        live,
        rule("notes", f'{{file.changed: "{notes}"}}')
        + rule("later", f'{{file.created: "{box / "later.txt"}"}}'),
    )
    (box / "other.txt").write_text("sibling")
    notes.write_text("first")
    hits = wait_fired(live, "notes", 2)
    assert {h["type"] for h in hits} == {"file.created", "file.modified"}
    assert {h["path"] for h in hits} == {str(notes)}
    (box / "later.txt").write_text("")
    (hit,) = wait_fired(live, "later")
    assert hit["path"] == str(box / "later.txt")
    # Siblings are not even published: only what a rule names.
    assert not published(live, "file.created", box / "other.txt")
    notes.rename(box / "notes.bak")  # moved away: deleted, for this rule
    hit = wait_fired(live, "notes", 3)[2]
    assert (hit["type"], hit["path"]) == ("file.deleted", str(notes))


def test_ignore_defaults_and_own_ignores(live: LiveHarness, box: Path) -> None:
    raw = box.parent / "raw"
    raw.mkdir()
    start(
        live,
        rule(
            "tidy",
            f'{{file.created: {{path: "{box}", recursive: true, ignore: [build/, "*.log"]}}}}',
        )
        + rule("raw", f'{{file.created: {{path: "{raw}", ignore_defaults: false}}}}'),
    )
    for name in [".notes.txt.swp", "notes.txt~", ".#notes.txt", "4913", "x.part", "y.tmp"]:
        (box / name).write_text("")
        (raw / name).write_text("")
    (box / ".git" / "objects").mkdir(parents=True)
    (box / ".git" / "objects" / "ab12").write_text("")
    (box / "build").mkdir()
    (box / "build" / "out.o").write_text("")
    (box / "run.log").write_text("")
    (box / "real.txt").write_text("")
    (hit,) = wait_fired(live, "tidy")
    assert hit["path"] == str(box / "real.txt")
    hits = wait_fired(live, "raw", 6)
    assert len(hits) == 6
    time.sleep(0.3)  # prove nothing else fires
    assert len(fired(live, "tidy")) == 1
    # Default-ignored names in box were not published at all; build/ and *.log
    # were (ignoring them is the rule's own choice).
    names = {e.data["name"] for e in live.recorder.of("file.created") if e.data["dir"] == str(box)}
    assert names == {"build", "run.log", "real.txt"}


# -------------------------------------------------- folders that come and go


def test_a_folder_that_does_not_exist_yet(live: LiveHarness, tmp_path: Path) -> None:
    inbox = tmp_path / "later" / "inbox"
    status = start(live, rule("inbox", f'{{file.created: "{inbox}"}}'))
    assert "1 path(s) waiting to appear" in status["detail"]
    inbox.mkdir(parents=True)
    (inbox / "first.txt").write_text("")  # at once: may be before the watch
    (hit,) = wait_fired(live, "inbox")
    assert hit["path"] == str(inbox / "first.txt")
    (inbox / "second.txt").write_text("")
    wait_fired(live, "inbox", 2)
    time.sleep(0.3)  # prove first.txt was reported once, by the scan or by inotify
    assert [h["name"] for h in fired(live, "inbox")] == ["first.txt", "second.txt"]
    assert "waiting" not in live.listener("filesystem")["detail"]


def test_a_folder_deleted_and_recreated_keeps_working(live: LiveHarness, box: Path) -> None:
    start(live, rule("box", f'{{file.created: "{box}"}}'))
    (box / "one.txt").write_text("")
    wait_fired(live, "box")
    shutil.rmtree(box)
    wait_until(lambda: "waiting" in live.listener("filesystem")["detail"], what="box missing")
    box.mkdir()
    (box / "two.txt").write_text("")
    hit = wait_fired(live, "box", 2)[1]
    assert hit["path"] == str(box / "two.txt")
    # Moved away and replaced: the new folder is watched, not the old one.
    box.rename(box.parent / "old-box")
    box.mkdir()
    (box / "three.txt").write_text("")
    hit = wait_fired(live, "box", 3)[2]
    assert hit["path"] == str(box / "three.txt")
    (box.parent / "old-box" / "stale.txt").write_text("")
    time.sleep(0.3)  # prove the moved folder is no longer reported
    assert [h["name"] for h in fired(live, "box")] == ["one.txt", "two.txt", "three.txt"]


# ------------------------------------------------------------------ settle


def test_settle_waits_for_a_file_still_being_written(live: LiveHarness, box: Path) -> None:
    out = box.parent / "size.txt"
    start(
        live,
        f"""
  - id: settled
    when: {{file.created: {{path: "{box}", settle: 300ms}}}}
    do:
      - run: [sh, -c, 'wc -c < "$1" > {out}', sh, "{{event.path}}"]
""",
    )
    target = box / "download.bin"
    with target.open("wb") as f:
        for i in range(5):
            if i:
                time.sleep(0.1)  # a slow writer: 100 ms between chunks
            f.write(b"x" * 1000)
            f.flush()
            last_write = time.monotonic()
    size = wait_until(lambda: out.exists() and out.read_text().strip(), what="settled run")
    fired_after = time.monotonic() - last_write
    assert size == "5000"  # the whole file: it fired after the writes
    assert fired_after >= 0.25
    summary = live.summary("settled")
    assert summary["fired"] == 1


# ------------------------------------------------------------------- storms


def test_a_storm_of_20000_files_fires_a_debounced_rule_once(live: LiveHarness, box: Path) -> None:
    start(
        live,
        f"""
  - id: storm
    when: {{file.created: "{box}"}}
    debounce: 1s
    do: [{{emit: {{type: test.fired, data: {{rule: storm, path: "{{event.path}}"}}}}}}]
""",
    )
    proc = psutil.Process()
    gc.collect()
    baseline = proc.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        # Another process, as a `tar x` would be: 20,000 files as fast as it can.
        subprocess.run(["sh", "-c", "seq -f f%05.0f 0 19999 | xargs touch"], cwd=box, check=True)
        (hit,) = wait_fired(live, "storm", timeout=30)
    finally:
        done.set()
        sampler.join()
    created = [e for e in live.recorder.of("file.created") if e.data["dir"] == str(box)]
    assert hit["path"] == created[-1].data["path"]  # debounced: the last event
    # Nothing is lost silently: all 20,000 arrive (the bus holds 10,000 per
    # subscriber and the engine and recorder keep up), or the kernel's inotify
    # queue overflowed under a starved CPU, and the listener says so.
    status = live.listener("filesystem")["detail"]
    assert len(created) == 20_000 or "overflow" in status, (len(created), status)
    assert not live.bus.stats()["dropped"]
    growth_mb = (peak[0] - baseline) / 1e6
    # Measured: 14-18 MB, most of it the recorder's 20,000 events.
    assert growth_mb < 100, f"RSS grew by {growth_mb:.0f} MB"
    time.sleep(0.3)  # prove it fired once
    assert live.summary("storm")["fired"] == 1


# ---------------------------------------------------------------- backends


def test_polling_fallback_says_why(
    live: LiveHarness, box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(filesystem.BACKEND_ENV, "polling")
    monkeypatch.setattr(filesystem, "POLL_INTERVAL_S", 0.1)
    status = start(live, rule("polled", f'{{file.created: "{box}"}}'))
    assert status["detail"].startswith("polling:")
    assert "NERVE_FILE_BACKEND=polling" in status["detail"]
    (box / "seen.txt").write_text("")
    (hit,) = wait_fired(live, "polled")
    assert hit["path"] == str(box / "seen.txt")


def test_inotify_limit_falls_back_to_polling_and_logs_why(
    live: LiveHarness, box: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from watchdog.observers.inotify import InotifyEmitter

    def no_more_watches(self: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(InotifyEmitter, "on_thread_start", no_more_watches)
    monkeypatch.setattr(filesystem, "POLL_INTERVAL_S", 0.1)
    status = start(live, rule("limited", f'{{file.created: "{box}"}}'))
    assert status["detail"].startswith("polling:")
    assert "max_user_watches" in status["detail"]
    assert "watching files by polling" in caplog.text
    (box / "still-seen.txt").write_text("")
    (hit,) = wait_fired(live, "limited")
    assert hit["name"] == "still-seen.txt"


def test_the_listener_watches_only_what_rules_need(live: LiveHarness, tmp_path: Path) -> None:
    folders = [tmp_path / f"d{i}" for i in range(3)]
    for f in folders:
        f.mkdir()
    rules = "".join(rule(f"r{i}", f'{{file.created: "{f}"}}') for i, f in enumerate(folders))
    status = start(live, rules)
    # Three folders and their common parent (to see them deleted or recreated).
    assert status["detail"] == "inotify: 4 folder(s) watched"
    live.load(rule("r0", f'{{file.created: "{folders[0]}"}}'))
    wait_until(
        lambda: live.listener("filesystem")["detail"] == "inotify: 2 folder(s) watched",
        what="fewer watches",
    )
    live.load(rule("x", '{event: "x.y"}'))  # no file rule left: the listener stops
    wait_until(lambda: not live.listeners.status(), what="the listener to stop")


# ------------------------------------------------------ compile and matching


def compile_errors(yaml_rules: str) -> list[str]:
    pack = load_pack(
        ("nerve: 1\npack:\n  id: t\nrules:\n" + yaml_rules).encode(), filename="t.yaml"
    )
    return [str(e) for e in pack.errors]


def test_options_are_checked_when_the_pack_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NERVE_NO_SUCH_VAR", raising=False)
    errors = compile_errors(
        """
  - id: a
    when: {file.created: relative/path}
    do: [{log: x}]
  - id: b
    when: {file.created: "$NERVE_NO_SUCH_VAR/x"}
    do: [{log: x}]
  - id: c
    when: {file.deleted: {path: /tmp, settle: 1s}}
    do: [{log: x}]
  - id: d
    when: {file.created: {path: /tmp, recursive: yes-please}}
    do: [{log: x}]
  - id: e
    when: {file.created: /tmp}
    do: [{log: "{event.size}"}]
"""
    )
    joined = "\n".join(errors)
    assert "rules[0].when.file.created: 'relative/path' is not an absolute path" in joined
    assert "environment variable $NERVE_NO_SUCH_VAR is not set" in joined
    assert "rules[2].when.file.deleted.settle:" in joined
    assert "rules[3].when.file.created.recursive" in joined
    assert "{event.size}" in joined
    assert len(errors) == 5


def test_paths_expand_home_variables_and_inputs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NERVE_TEST_DIR", "projects")
    assert expand_path("~/Downloads/") == str(tmp_path / "Downloads")
    assert expand_path("$HOME/${NERVE_TEST_DIR}/../x") == str(tmp_path / "x")
    head = (
        "nerve: 1\npack:\n  id: t\n  inputs:\n"
        "    target: {description: where, type: path, default: ~/Screens}\nrules:\n"
    )
    (r,) = rules_from(
        "  - id: a\n    when: {file.created: '{input.target}/new'}\n    do: [{log: x}]\n",
        pack_head=head,
    )
    (trigger,) = r.triggers
    assert isinstance(trigger, FileTrigger)
    assert trigger.root == str(tmp_path / "Screens" / "new")
    assert list(r.needs()) == [
        ("filesystem", WatchNeed(str(tmp_path / "Screens" / "new"), False, False, False))
    ]


def test_non_recursive_rules_are_indexed() -> None:
    """1,000 folder rules cost an event one dict lookup per indexed field, not
    1,000 predicate calls: every matcher of a non-recursive trigger is indexed."""
    rules = rules_from(
        "".join(
            f"  - id: r{i}\n    when: {{file.changed: /data/d{i}}}\n    do: [{{log: x}}]\n"
            for i in range(1000)
        )
    )
    matchers = [m for r in rules for t in r.triggers for m in t.matchers()]
    assert all(m.index is not None and m.predicate is None for m in matchers)
    assert {m.index[0] for m in matchers if m.index} == {"dir", "path", "src_dir", "src_path"}


@pytest.mark.parametrize(
    ("patterns", "rel", "is_dir", "expected"),
    [
        (["*.py"], "a.py", False, True),
        (["*.py"], "src/a.py", False, True),  # a name pattern: the name
        (["src/*.py"], "src/a.py", False, True),
        (["src/*.py"], "src/pkg/a.py", False, False),
        (["src/**/*.py"], "src/a.py", False, True),
        (["src/**/*.py"], "src/pkg/deep/a.py", False, True),
        (["**/test_*.py"], "tests/x/test_a.py", False, True),
        (["[!.]*"], ".hidden", False, False),
        (["build/"], "build", False, False),  # folders only
        (["build/"], "build", True, True),
    ],
)
def test_glob_patterns(patterns: list[str], rel: str, is_dir: bool, expected: bool) -> None:
    assert Patterns(patterns, anywhere=False).match(rel, is_dir) is expected


@pytest.mark.parametrize(
    ("rel", "is_dir", "ignored"),
    [
        (".report.txt.swp", False, True),
        ("report.txt~", False, True),
        (".#report.txt", False, True),
        ("4913", False, True),
        (".git", True, True),
        (".git/objects/ab/cdef", False, True),
        ("sub/.git/HEAD", False, True),
        (".gitignore", False, False),
        ("film.mkv.part", False, True),
        ("Unconfirmed 1.crdownload", False, True),
        ("x.tmp", False, True),
        (".goutputstream-ABC123", False, True),
        (".~lock.sheet.ods#", False, True),
        ("~$report.docx", False, True),
        ("report.txt", False, False),
        ("dir.tmp/inside.txt", False, True),  # like .gitignore: any part of the path
    ],
)
def test_default_ignores(rel: str, is_dir: bool, ignored: bool) -> None:
    assert DEFAULTS.match(rel, is_dir) is ignored


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Every listener thread is joined when the listener stops."""
    before = set(threading.enumerate())
    yield
    wait_until(
        lambda: (
            not [
                t
                for t in set(threading.enumerate()) - before
                if t.name.startswith(("files", "Thread")) and t.is_alive()
            ]
        ),
        timeout=5,
        what="the file watcher threads to end",
    )
