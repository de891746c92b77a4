"""The ``nerve`` command: arguments in, exit codes out.

Exit codes: 0 ok, 1 invalid input (or a failure), 2 usage, 3 no running instance.
No traceback reaches the user on an expected error path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from nerve import __version__, lean, logs

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_NO_INSTANCE = 0, 1, 2, 3

log = logging.getLogger("nerve")


class UsageError(Exception):
    """Wrong arguments: exit 2 with the message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} takes key=value, got {item!r}")
        out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nerve",
        description="Desktop automation: events in, rules, actions out.",
    )
    parser.add_argument("--version", action="version", version=f"nerve {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument(
        "--tray", action="store_true", help="start in the tray without opening the window"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run Nerve (--headless: without a window)")
    run.add_argument("--headless", action="store_true", help="no window, no tray")
    run.add_argument(
        "--rules",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a pack file or a folder of packs (repeatable); default: your packs",
    )
    run.add_argument("--data-dir", type=Path, help="where the event log and runs are kept")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a pack input (repeatable)"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log debug details")

    val = sub.add_parser("validate", help="check pack files; exit 1 listing every error")
    val.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    val.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    sub.add_parser("schema", help="print the JSON Schema of rule packs")

    emit = sub.add_parser("emit", help="publish an event into the running Nerve")
    emit.add_argument("type", metavar="TYPE")
    emit.add_argument(
        "fields",
        nargs="*",
        metavar="KEY=VALUE",
        help="data fields; values are read as JSON when they parse (3, true, [1])",
    )

    sub.add_parser("status", help="show the running Nerve's state")
    why = sub.add_parser("why", help="why a rule did not run: its recent near misses")
    why.add_argument("rule", metavar="RULE", help="pack/rule (or a rule id only one pack has)")
    why.add_argument("--json", action="store_true", help="the answer as one JSON object")
    pause = sub.add_parser("pause", help="pause every rule (and cancel running ones)")
    pause.add_argument("--for", dest="duration", metavar="DURATION", help="resume after (10m)")
    sub.add_parser("resume", help="resume after a pause")
    sub.add_parser("reload", help="read the packs again (also: SIGHUP)")

    events = sub.add_parser("events", help="read the event log")
    events.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new events as the running instance publishes them "
        "(waits for it, and resumes after a restart)",
    )
    events.add_argument(
        "--after",
        metavar="ID",
        type=_event_id,
        help="only events after this id (with --follow: resume exactly there)",
    )
    events.add_argument("--type", metavar="PATTERN", help="only these types (file.*)")
    events.add_argument("--since", metavar="DURATION", help="only the last DURATION (1h)")
    events.add_argument("--limit", type=_limit, default=100, help=_LIMIT_HELP)
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--data-dir", type=Path)

    runs = sub.add_parser("runs", help="rule run history with traces")
    runs.add_argument("run_id", nargs="?", metavar="RUN", help="show one run's trace")
    runs.add_argument("--rule", metavar="ID", help="only this rule (pack/rule or rule)")
    runs.add_argument("--limit", type=_limit, default=20, help=_LIMIT_HELP)
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--data-dir", type=Path)

    replay = sub.add_parser(
        "replay", help="dry run over the event log: which rules would have fired"
    )
    replay.add_argument("--since", metavar="DURATION", default="1h", help="default: 1h")
    replay.add_argument("--type", metavar="PATTERN", help="only events of these types")
    replay.add_argument(
        "--rules", action="append", type=Path, default=[], metavar="PATH",
        help="these packs instead of yours (repeatable)",
    )  # fmt: skip
    replay.add_argument("--set", action="append", default=[], metavar="K=V")
    replay.add_argument(
        "--limit", type=_limit, default=100_000, help="at most this many events (up to 10^9)"
    )
    replay.add_argument("--json", action="store_true", help="one JSON object per rule")
    replay.add_argument("--data-dir", type=Path)
    _add_pack_parser(sub)
    _add_desktop_parsers(sub)
    _verbose_everywhere(parser)
    return parser


#: The most rows a listing shows (the event log keeps at most 10^9 events).
MAX_LIMIT = 1_000_000_000
_LIMIT_HELP = "at most this many (1 to 10^9)"


def _limit(text: str) -> int:
    """``--limit``: a whole number from 1 to MAX_LIMIT (argparse reports anything else)."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 10 or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_LIMIT:,}")
    if int(value) > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"at most {MAX_LIMIT:,}, got {value}")
    return int(value)


def _event_id(text: str) -> int:
    """``--after``: an event id, 0 or more."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise argparse.ArgumentTypeError(f"expected an event id (a whole number), got {text!r}")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup_console(args.verbose)
    try:
        return _dispatch(parser, args)
    except UsageError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`nerve events | head`): stop quietly, as `cat` would.
        # Point stdout at /dev/null so the flush at exit does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    except Exception as exc:
        # A bug: the traceback goes to the log file, the user gets one line.
        print(logs.report_unexpected(exc), file=sys.stderr)
        return EXIT_INVALID


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    command = args.command
    if command == "run":  # stays running (the desktop app: once its window shows)
        lean.import_asyncio_without_ssl()
    if command is None:
        reason = gui_unavailable()
        if reason is None:
            return _run_gui([], {}, None, tray=args.tray)
        print(
            f"nerve: the desktop window cannot start here ({reason}); "
            "start Nerve with `nerve run --headless` (see `nerve --help`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    handler: Any = {
        "run": cmd_run,
        "validate": cmd_validate,
        "schema": cmd_schema,
        "emit": cmd_emit,
        "status": cmd_status,
        "why": cmd_why,
        "pause": cmd_pause,
        "resume": cmd_resume,
        "reload": cmd_reload,
        "events": cmd_events,
        "runs": cmd_runs,
        "replay": cmd_replay,
        "install-desktop": cmd_install_desktop,
        "uninstall-desktop": cmd_uninstall_desktop,
        "pack": cmd_pack,
    }[command]
    code: int = handler(args)
    return code


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` after any command too (``nerve status -v``). A command's ``-v`` has no
    default, so that it cannot undo a ``-v`` given before the command."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for command in action.choices.values():
            own = command._option_string_actions.get("--verbose")
            if own is not None:
                own.default = argparse.SUPPRESS
            else:
                taken = "-v" in command._option_string_actions
                command.add_argument(
                    *(["--verbose"] if taken else ["-v", "--verbose"]),
                    action="store_true",
                    default=argparse.SUPPRESS,
                    help="log debug details",
                )
            _verbose_everywhere(command)


# ------------------------------------------------------------------ desktop


def _add_desktop_parsers(sub: Any) -> None:
    install = sub.add_parser(
        "install-desktop", help="add Nerve to the applications menu (--autostart: and to login)"
    )
    install.add_argument(
        "--autostart", action="store_true", help="also start Nerve in the tray when you log in"
    )
    sub.add_parser("uninstall-desktop", help="remove what install-desktop added")


def cmd_install_desktop(args: argparse.Namespace) -> int:
    import shlex

    from nerve import desktop_entry

    try:
        written = desktop_entry.install_desktop(autostart=args.autostart)
    except desktop_entry.DesktopEntryError as exc:
        print(f"nerve: install-desktop: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for path in written:
        print(f"wrote {path} ({desktop_entry.label(path)})")
    command = shlex.join(desktop_entry.nerve_command())
    print(f"Nerve is in your applications menu; it runs {command}")
    if desktop_entry.autostart_enabled():
        print("It starts in the tray when you log in.")
    else:
        print("To start it when you log in: nerve install-desktop --autostart")
    return EXIT_OK


def cmd_uninstall_desktop(args: argparse.Namespace) -> int:
    from nerve import desktop_entry

    try:
        removed = desktop_entry.uninstall_desktop()
    except desktop_entry.DesktopEntryError as exc:
        print(f"nerve: uninstall-desktop: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for path in removed:
        print(f"removed {path} ({desktop_entry.label(path)})")
    if not removed:
        print("nothing to remove: no file written by `nerve install-desktop` was found")
    return EXIT_OK


# ---------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from nerve.bootstrap import Nerve
    from nerve.ipc import AlreadyRunning
    from nerve.options import Options
    from nerve.packs.loader import UnknownInput
    from nerve.paths import locations
    from nerve.storage import StorageError

    for path in args.rules:
        if not path.exists():
            raise UsageError(f"--rules {path}: no such file or folder")
    if not args.headless:
        reason = gui_unavailable()
        if reason is not None:
            raise UsageError(f"the desktop window cannot start here ({reason}); use --headless")
        return _run_gui(args.rules, _pairs(args.set, "--set"), args.data_dir, tray=args.tray)
    where = locations(args.data_dir)
    logs.add_file(where.log_file)
    logs.install_hooks()
    app = Nerve(where, Options(rule_paths=args.rules, overrides=_pairs(args.set, "--set")))

    wake = threading.Event()
    requests: set[int] = set()

    def on_signal(signum: int, frame: Any) -> None:
        requests.add(signum)
        wake.set()

    # Before start(): a signal that arrives while starting stops Nerve cleanly
    # once it is up, instead of killing it half-started.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_signal)
    try:
        app.start()
    except AlreadyRunning as exc:
        pid = f" (pid {exc.pid})" if getattr(exc, "pid", None) else ""
        print(
            f"nerve: Nerve is already running{pid}; use `nerve status`, or stop it first",
            file=sys.stderr,
        )
        return EXIT_INVALID
    except (OSError, StorageError) as exc:
        print(f"nerve: cannot start: {_os_error_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    except UnknownInput as exc:
        raise UsageError(str(exc)) from None
    # SIGHUP reloads on a thread of its own: this one only waits for signals,
    # so SIGTERM is honoured at once whatever a reload is doing.
    reloads = _Reloader(app)
    try:
        while True:
            wake.wait()
            wake.clear()
            if requests - {getattr(signal, "SIGHUP", None)}:
                break
            if requests:
                requests.clear()
                log.info("SIGHUP: reloading packs")
                reloads.request()
    finally:
        log.info("stopping")
        app.stop()
        _leave_stuck_threads()
    return EXIT_OK


class _Reloader:
    """Reloads asked for by SIGHUP, one at a time on a daemon thread; a request
    made while one runs makes one more after it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.pending = False
        self.thread: threading.Thread | None = None

    def request(self) -> None:
        with self.lock:
            self.pending = True
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="sighup-reload", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        from nerve.packs.loader import UnknownInput

        while True:
            with self.lock:
                if not self.pending or self.app.stopped.is_set():
                    self.thread = None
                    return
                self.pending = False
            try:
                self.app.reload()
            except UnknownInput as exc:
                log.error("not reloaded: %s", exc)
            except Exception:
                if self.app.stopped.is_set():  # stopped under it: nothing to reload into
                    return
                log.exception("reloading after SIGHUP failed")


def _leave_stuck_threads(code: int = EXIT_OK, grace: float = 0.5) -> None:
    """Exit now if a thread that Python would wait for at exit is stuck.

    Nerve's own threads stop with it; what can stay is a worker blocked in a
    system call on behalf of an action (a program that never ends its output,
    a file read that never returns). Python joins such threads at exit, for
    ever: a stopped Nerve would never end. They get ``grace`` seconds, then
    the process exits with ``code``."""
    from concurrent.futures import thread as executor_threads

    deadline = time.monotonic() + grace
    main = threading.main_thread()
    # Executor workers are joined at exit whether or not they are daemons (they
    # inherit the flag from the thread that made them: the engine's is one).
    joined = set(getattr(executor_threads, "_threads_queues", {}))
    stuck = []
    for thread in threading.enumerate():
        if thread is main or (thread.daemon and thread not in joined):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            stuck.append(thread.name)
    if stuck:
        log.warning("exiting without waiting for %s", ", ".join(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def gui_unavailable() -> str | None:
    """Why the desktop window cannot start here, or None if it can."""
    import importlib.util

    if importlib.util.find_spec("PySide6") is None:
        return "PySide6 is not installed"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        # QT_QPA_PLATFORM=offscreen alone does not count: nobody would see the window.
        return "no display: DISPLAY and WAYLAND_DISPLAY are not set"
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("WAYLAND_DISPLAY")
        and os.environ.get("QT_QPA_PLATFORM", "xcb").startswith("xcb")
    ):
        # Qt aborts the process when it cannot reach the X server: ask first.
        return _x_display_problem(os.environ.get("DISPLAY", ""))
    return None


def _x_display_problem(name: str) -> str | None:
    """Why the X display ``name`` cannot be reached, or None if it can."""
    import re
    import socket

    local = re.fullmatch(r"(?:unix)?:(\d+)(?:\.\d+)?", name)
    if local and sys.platform.startswith("linux"):
        # A local server: connecting to its socket is enough, and much quicker
        # than an X handshake (the window should show as soon as possible).
        number = local.group(1)
        for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                try:
                    sock.connect(address)
                except OSError:
                    continue
                return None
        return f"cannot connect to the X display {name}: no X server is listening"
    try:
        from Xlib import display
    except ImportError:
        return None
    try:
        display.Display(name).close()
    except Exception as exc:  # python-xlib raises several kinds, none of them a common base
        return f"cannot connect to the X display {name}: {getattr(exc, 'msg', exc)}"
    return None


def _run_gui(
    rules: list[Path], overrides: dict[str, str], data_dir: Path | None, *, tray: bool = False
) -> int:
    # Qt-free modules first: PySide6 reads the source of every module imported
    # after it (see nerve.gui.app.plain_imports), and the window should show fast.
    from nerve import ipc  # noqa: F401
    from nerve.gui import core  # noqa: F401
    from nerve.options import Options
    from nerve.paths import locations

    from nerve.gui import app  # isort: skip

    where = locations(data_dir)
    options = Options(rule_paths=list(rules), overrides=overrides)
    # The log file (and the hooks that log uncaught errors) are set up by the
    # app once its window is on screen.
    code = app.run(where, options, show_window=not tray)
    _leave_stuck_threads(code)
    return code


def _os_error_text(exc: BaseException) -> str:
    """``path: reason`` for an OSError about a file, ``str(exc)`` otherwise."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


# ----------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    from nerve.packs.loader import UnknownInput, duplicate_pack_errors, load_paths
    from nerve.packs.trust import capability_words

    overrides = _pairs(args.set, "--set")
    for path in args.paths:
        if not path.exists():
            print(f"{path}: no such file or folder", file=sys.stderr)
            return EXIT_INVALID
    try:
        packs = load_paths(list(args.paths), overrides)
    except UnknownInput as exc:
        raise UsageError(str(exc)) from None
    duplicate_pack_errors(packs)
    if not packs:
        print("nerve: no pack files (*.yaml, *.yml) found", file=sys.stderr)
        return EXIT_INVALID
    bad = 0
    for pack in packs:
        if pack.errors:
            bad += 1
            for error in pack.errors:
                print(error, file=sys.stderr)
        else:
            caps = "; ".join(capability_words(pack.capabilities))
            print(
                f"{pack.file}: ok, pack {pack.id}, {len(pack.rules)} rule(s)"
                + (f"; can {caps}" if caps else "")
            )
    return EXIT_INVALID if bad else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from nerve.packs.schema import pack_schema

    json.dump(pack_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


# ------------------------------------------------------------------ control


def _request(cmd: str, args: dict[str, Any] | None = None) -> Any:
    from nerve.ipc import NoInstance, request

    try:
        return request(cmd, args or {})
    except NoInstance as exc:
        raise _NoInstanceExit(str(exc)) from None


class _NoInstanceExit(Exception):
    pass


def _control(fn: Any) -> Any:
    def wrapper(args: argparse.Namespace) -> int:
        from nerve.ipc import IpcError

        try:
            result: int = fn(args)
            return result
        except _NoInstanceExit as exc:
            print(f"nerve: {exc}", file=sys.stderr)
            return EXIT_NO_INSTANCE
        except IpcError as exc:
            print(f"nerve: {exc}", file=sys.stderr)
            return EXIT_INVALID

    return wrapper


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_value(text: str) -> Any:
    """``3`` -> 3, ``true`` -> True, ``[1,2]`` -> list, anything else stays text.

    NaN, Infinity and numbers out of float range are not JSON: they stay text.
    """
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError):
        return text


@_control
def cmd_emit(args: argparse.Namespace) -> int:
    from nerve.events import valid_type

    if not valid_type(args.type):
        raise UsageError(
            f"{args.type!r} is not an event type: use lower-case dotted names such as build.done"
        )
    data = {k: parse_value(v) for k, v in _pairs(args.fields, "emit").items()}
    result = _request("emit", {"type": args.type, "data": data})
    print(f"event {result['id']} published")
    return EXIT_OK


@_control
def cmd_status(args: argparse.Namespace) -> int:
    status = _request("status")
    engine = status["engine"]
    state = "paused" if engine["paused"] else "running"
    print(f"Nerve {status['version']} (pid {status['pid']}): {state}")
    if engine["paused"] and engine.get("pause_reason"):
        print(f"  {engine['pause_reason']}")
    print(
        f"  rules: {engine['enabled']} active of {engine['rules']}, "
        f"{engine['running']} running, {engine['handled']} events handled"
    )
    for run in engine.get("runs", []):
        note = ", being cancelled" if run.get("cancelling") else ""
        print(f"  run {run['id']} of {run['rule']}: running for {_age(run['age'])}{note}")
    for key, reason in engine["suspended"].items():
        print(f"  suspended: {key}: {reason}")
    for key, counts in sorted(engine.get("counts", {}).items()):
        print(f"  rule {key}: {_counts_text(counts)}")
    held = {h["file"]: h for h in status.get("held", [])}
    for pack in status["packs"]:
        mark = (
            "ok"
            if pack["loaded"] and not pack["errors"]
            else (f"{pack['errors']} error(s)" if pack["loaded"] else "NOT LOADED")
        )
        if pack["file"] in held:
            running = held[pack["file"]].get("runs_approved")
            mark = "edit HELD, the approved version runs" if running else "HELD (not loaded)"
        print(f"  pack {pack['id'] or '?'}: {pack['rules']} rule(s), {mark} ({pack['file']})")
    for entry in held.values():
        hint = entry.get("hint") or f"approve it with `nerve pack approve {entry['id']}`"
        print(f"  held pack {entry['id']} ({Path(entry['file']).name}): {entry['reason']}; {hint}")
        for line in entry.get("diff") or []:
            print(f"    {line}")
    for listener in status.get("listeners", []):
        line = f"  listener {listener['id']}: {listener['state']}"
        if listener.get("detail"):
            line += f" ({listener['detail']})"
        if listener.get("error"):
            line += f": {listener['error']}"
        if listener.get("restarts"):
            line += f", restarted {listener['restarts']} time(s)"
        if listener.get("retry_in") is not None:
            line += f", retrying in {listener['retry_in']:g}s"
        print(line)
    for bridge in status.get("bridges", []):
        print("  " + bridge_line(bridge))
    if status.get("followers"):
        print(f"  followers: {status['followers']} (nerve events --follow and clients)")
    bus = status["bus"]
    dropped = sum(bus["dropped"].values())
    print(f"  bus: {bus['published']} published, {dropped} dropped, {bus['coalesced']} coalesced")
    if dropped:
        print("    dropped: " + ", ".join(f"{t} {n}" for t, n in bus["dropped"].items()))
    for problem in status.get("store", {}).get("problems", []):
        waiting = ", ".join(f"{n} {k}" for k, n in problem.get("pending", {}).items())
        print(
            f"  storage: {problem['message']} ({problem['failures']} failed write(s)"
            + (f"; waiting to be written: {waiting}" if waiting else "")
            + f"): {problem.get('error')}"
        )
    print(f"  data: {status['data']}")
    return EXIT_OK


def _counts_text(counts: dict[str, Any]) -> str:
    """``ran 3, skipped 5 (condition 2, cooldown 3)``."""
    skips = counts.get("skips") or {}
    text = f"ran {counts.get('ran', 0)}"
    if skips:
        text += (
            f", skipped {sum(skips.values())} ("
            + ", ".join(f"{reason} {n}" for reason, n in skips.items())
            + ")"
        )
    return text


@_control
def cmd_why(args: argparse.Namespace) -> int:
    answer = _request("why", {"rule": args.rule})
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
        return EXIT_OK
    print(f"{answer['rule']} ({answer['name']}): {answer['state']}")
    print(f"  when: {'; '.join(answer['triggers']) or '-'}")
    print(f"  started {answer['fired']} time(s); {_counts_text(answer)}")
    near = answer["near"]
    if not near:
        print("  No recent event came near starting it.")
        return EXIT_OK
    print("  Recent near misses, newest first:")
    for miss in near:
        when = time.strftime("%H:%M:%S", time.localtime(miss["time"]))
        print(f"  {when} event {miss['event']} {miss['type']}: {miss['reason']}: {miss['detail']}")
    return EXIT_OK


def bridge_line(bridge: dict[str, Any]) -> str:
    """One bridge's status as ``nerve status`` and the window's tooltip show it::

    bridge webhook: listening on 127.0.0.1:8765, 3 accepted, 1 refused (HTTP 202: 3, 401: 1)
    bridge mqtt: connected (mqtt://10.0.0.2:1883 as laptop), 0 queued, 2 sent, ...
    """
    line = f"bridge {bridge.get('name')}: {bridge.get('state')}"
    if bridge.get("broker"):
        line += f" ({bridge['broker']} as {bridge.get('host')})"
    elif bridge.get("address"):
        line += f" on {bridge['address']}"
    counts = bridge.get("counts") or {}
    shown = [f"{n} {k}" for k, n in counts.items() if not k.isdigit()]
    # A client's own counters (MQTT), when it has them.
    shown += [
        f"{bridge[k]} {k}"
        for k in ("queued", "dropped", "sent", "received", "duplicates")
        if isinstance(bridge.get(k), int) and not isinstance(bridge.get(k), bool)
    ]
    codes = [f"{k}: {n}" for k, n in sorted(counts.items()) if k.isdigit()]
    if shown:
        line += ", " + ", ".join(shown)
    if codes:
        line += f" (HTTP {', '.join(codes)})"
    if bridge.get("queue") is not None:
        line += f", queue {bridge['queue']}"
    if bridge.get("retry_in") is not None:
        line += f", retrying in {bridge['retry_in']:g}s"
    for warning in bridge.get("warnings") or []:
        line += f"; warning: {warning}"
    if bridge.get("last_error"):
        line += f"; last error: {bridge['last_error']}"
    return line


def _age(seconds: float) -> str:
    """A run's age for people: 850ms, 12.5s, 3m 20s, 2h 5m."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


@_control
def cmd_pause(args: argparse.Namespace) -> int:
    from nerve.durations import parse_duration

    request_args: dict[str, Any] = {}
    if args.duration:
        try:
            request_args["for"] = parse_duration(args.duration)
        except ValueError as exc:
            raise UsageError(f"--for: {exc}") from None
        if request_args["for"] <= 0:
            raise UsageError(f"--for: expected a time longer than 0, got {args.duration!r}")
    result = _request("pause", request_args)
    print(f"paused ({result['cancelled']} running run(s) cancelled)")
    return EXIT_OK


@_control
def cmd_resume(args: argparse.Namespace) -> int:
    _request("resume")
    print("resumed")
    return EXIT_OK


@_control
def cmd_reload(args: argparse.Namespace) -> int:
    result = _request("reload")
    for error in result["errors"]:
        print(error, file=sys.stderr)
    print(f"reloaded: {result['rules']} rule(s) running")
    return EXIT_INVALID if result["errors"] else EXIT_OK


# ------------------------------------------------------------------ history


def _open_store(data_dir: Path | None) -> Any:
    from nerve.paths import locations
    from nerve.storage import StorageError, Store

    db = locations(data_dir).database
    if not db.exists():
        print(f"nerve: no event log yet ({db} does not exist)", file=sys.stderr)
        return None
    try:
        return Store.open_readonly(db)
    except (OSError, StorageError) as exc:
        print(f"nerve: cannot read the event log: {_os_error_text(exc)}", file=sys.stderr)
        return None


def _since(text: str | None) -> float | None:
    from nerve.durations import parse_duration

    if not text:
        return None
    try:
        # As far back as the event log may keep events (settings: retention_days).
        return time.time() - parse_duration(text, maximum=36500 * 86400)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    data = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in event["data"].items())
    print(f"{_stamp(event['time'])}  #{event['id']:<6} {event['type']:<20} {data}", flush=True)


def cmd_events(args: argparse.Namespace) -> int:
    since = _since(args.since)
    if args.follow:
        if args.after is not None and since is not None:
            raise UsageError("--follow --after ID resumes after ID; leave --since out")
        try:
            return _follow_events(args, since)
        except KeyboardInterrupt:  # Ctrl-C ends a follow: that is how it ends
            return EXIT_OK
    store = _open_store(args.data_dir)
    if store is None:
        return EXIT_INVALID
    try:
        if args.after is not None:  # the oldest LIMIT after ID: page through with --after
            events = store.query_events(
                since=since, type_pattern=args.type, limit=args.limit, after_id=args.after
            )
        else:
            events = store.query_events(
                since=since, type_pattern=args.type, limit=args.limit, newest_first=True
            )
            events.reverse()
        for event in events:
            _print_event(event, args.json)
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        store.close()


def _follow_events(args: argparse.Namespace, since: float | None) -> int:
    """``events --follow``: the recent log (or everything after --after), then live,
    pushed by the running instance; across its restarts, without a hole or a repeat."""
    from nerve import client
    from nerve.ipc import IpcError
    from nerve.paths import locations

    after = args.after
    if after is None and not locations(args.data_dir).database.exists():
        after = 0  # no log yet: everything the instance will have, once it runs
    if after is None:
        store = _open_store(args.data_dir)
        if store is None:
            return EXIT_INVALID
        try:
            recent = store.query_events(
                since=since, type_pattern=args.type, limit=args.limit, newest_first=True
            )
            recent.reverse()
            for event in recent:
                _print_event(event, args.json)
            after = recent[-1]["id"] if recent else store.next_event_id() - 1
        finally:
            store.close()
    said = [""]

    def state(text: str) -> None:
        if text != said[0]:
            said[0] = text
            print(f"nerve: {text}", file=sys.stderr, flush=True)

    follower: client.Follower | None = None
    try:
        follower = client.follow(args.type or "*", after, on_state=state)
        for item in follower:
            if isinstance(item, client.Gap):
                _print_gap(item, args.json)
            else:
                _print_event(item, args.json)
    except IpcError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        if follower is not None:
            follower.close()
    return EXIT_OK


def _print_gap(gap: Any, as_json: bool) -> None:
    fields = {"first": gap.first, "last": gap.last, "count": gap.count, "reason": gap.reason}
    if as_json:
        print(json.dumps({"gap": fields}), flush=True)
        return
    print(
        f"-- gap: {gap.count} event(s) missed, ids {gap.first}..{gap.last} ({gap.reason}); "
        f"the stored ones: nerve events --after {gap.first - 1}",
        flush=True,
    )


def trust_secrets(packs: Any) -> None:
    """Mask the secret input values of ``packs`` in what this command shows."""
    from nerve import masking
    from nerve.packs import trust

    masking.install_log_masking()
    trust.register_secrets(packs)


def cmd_replay(args: argparse.Namespace) -> int:
    from nerve import replay
    from nerve.packs.loader import UnknownInput, duplicate_pack_errors, load_paths
    from nerve.paths import locations

    since = _since(args.since)
    overrides = _pairs(args.set, "--set")
    store = _open_store(args.data_dir)
    if store is None:
        return EXIT_INVALID
    try:
        # Every type: the variable changes apply whatever --type picks.
        rows = store.raw_events(since=since, limit=args.limit)
        current = store.load_variables()
        recorded = store.run_times(since - 60 if since is not None else None)
    finally:
        store.close()
    paths = list(args.rules) or [locations(args.data_dir).packs]
    for path in paths:
        if not path.exists():
            print(f"{path}: no such file or folder", file=sys.stderr)
            return EXIT_INVALID
    held: set[str] = set()
    try:
        if args.rules:
            packs = load_paths(paths, overrides)
            duplicate_pack_errors(packs)
        else:
            # The user's packs as Nerve runs them: one pack per id, held ones left out,
            # the input values given at import (secret ones masked in what is shown).
            from nerve.packs import trust

            packs, states = trust.load_folder(
                trust.Approvals(locations(args.data_dir).config), overrides, record=False
            )
            held = {s.pack.file for s in states if s.state == "held" and not s.runs_approved}
        trust_secrets(packs)
    except UnknownInput as exc:
        raise UsageError(str(exc)) from None
    for pack in packs:
        for error in pack.errors:
            print(f"nerve: {error} (skipped)", file=sys.stderr)
    for name in sorted(held):
        print(f"nerve: {name} is held (not approved): its rules are left out", file=sys.stderr)
    rules = [rule for pack in packs if pack.usable and pack.file not in held for rule in pack.rules]
    events = replay.logged_events(rows)
    variables = replay.variables_before(current, events)
    from nerve.events import TypePattern
    from nerve.settings import Settings

    settings = Settings.load(locations(args.data_dir).config / "settings.yaml")
    reports = replay.replay(
        rules,
        events,
        variables=variables,
        recorded=recorded,
        private_logged=settings.store_private,
        type_pattern=args.type,
    )
    count = len(events)
    if args.type:
        pattern = TypePattern([args.type])
        count = sum(1 for e in events if pattern.matches(e.type))
    if args.json:
        for report in reports:
            print(json.dumps(report.as_dict(), ensure_ascii=False))
        return EXIT_OK
    _print_replay(reports, count, args.since)
    return EXIT_OK


def _print_replay(reports: list[Any], count: int, since: str) -> None:
    print(
        f"Replayed {count:,} event(s) from the last {since} through {len(reports)} rule(s)."
        " Dry run: nothing was done."
    )
    replayed = [r for r in reports if r.not_replayed is None]
    fired = [r for r in replayed if r.matched]
    if fired:
        width = max(len(r.key) for r in fired)
        print(f"\n{'rule':<{width}}  matched  would run  conditions false  failed")
        for r in fired:
            line = (
                f"{r.key:<{width}}  {r.matched:>7}  {r.would_run:>9}  "
                f"{r.conditions_false:>16}  {r.failed:>6}"
            )
            print(line)
            if r.skipped:
                refused = ", ".join(f"{reason} {n}" for reason, n in r.skipped.items())
                print(f"{'':<{width}}  refused: {refused}")
            if r.suspended:
                print(f"{'':<{width}}  suspended: {r.suspended}")
            if r.first_reason:
                print(f"{'':<{width}}  first time its conditions did not hold: {r.first_reason}")
            if r.caveat:
                print(f"{'':<{width}}  note: {r.caveat}")
    quiet = [r.key for r in replayed if not r.matched]
    if quiet:
        print(f"\nNo event matched: {', '.join(quiet)}")
    skipped = [r for r in reports if r.not_replayed is not None]
    if skipped:
        print("\nNot replayed:")
        for r in skipped:
            print(f"  {r.key}: {r.not_replayed}")
    print(
        "\nVariables are the ones of each event's time; runs last as long as the"
        " recorded ones; it pauses where Nerve was paused."
    )


def cmd_runs(args: argparse.Namespace) -> int:
    store = _open_store(args.data_dir)
    if store is None:
        return EXIT_INVALID
    try:
        if args.run_id:
            try:
                run = store.get_run(args.run_id)
            except ValueError as exc:
                print(f"nerve: {exc}", file=sys.stderr)
                return EXIT_INVALID
            if run is None:
                print(f"nerve: no run {args.run_id!r}", file=sys.stderr)
                return EXIT_INVALID
            if args.json:
                print(json.dumps(run, ensure_ascii=False, indent=2))
            else:
                _print_trace(run)
            return EXIT_OK
        if args.rule and "/" not in args.rule:
            # A bare rule id: match it in any pack.
            runs = [
                r
                for r in store.query_runs(limit=None)
                if r["rule_id"].rpartition("/")[2] == args.rule
            ][: args.limit]
        else:
            runs = store.query_runs(rule_id=args.rule, limit=args.limit)
        for run in reversed(runs):
            if args.json:
                print(json.dumps(run, ensure_ascii=False))
                continue
            took = f"{(run['ended'] - run['started']) * 1000:.0f}ms" if run.get("ended") else "…"
            error = f"  {run['error']}" if run.get("error") else ""
            print(
                f"{_stamp(run['started'])}  {run['id'][:10]}  {run['rule_id']:<30} "
                f"{run['status']:<9} {took:>7}{error}"
            )
        return EXIT_OK
    finally:
        store.close()


def _print_trace(run: dict[str, Any]) -> None:
    trace = run.get("trace") or {}
    print(
        f"run {run['id']} of {run['rule_id']}: {run['status']}"
        + (f" ({run['error']})" if run.get("error") else "")
    )
    print(
        f"  started {_stamp(run['started'])}"
        + (f", took {(run['ended'] - run['started']) * 1000:.1f}ms" if run.get("ended") else "")
    )
    event = trace.get("event") or {}
    if event:
        print(f"  event #{event.get('id')} {event.get('type')} {json.dumps(event.get('data'))}")
    for cond in trace.get("conditions", []):
        mark = "yes" if cond["ok"] else "NO "
        print(f"  {mark} {cond['path']} {cond['condition']}: {cond['detail']}")
    for action in trace.get("actions", []):
        if action.get("error"):
            outcome = f"error: {action['error']}"
        else:
            outcome = json.dumps(action.get("result"), ensure_ascii=False)
        ms = action.get("ms", 0)
        print(f"  {action['path']:<14} {action['action']:<12} {ms:>8.1f}ms  {outcome}")


# -------------------------------------------------------------------- packs


def _add_pack_parser(sub: Any) -> None:
    pack = sub.add_parser("pack", help="share packs: import, export, approve, list")
    actions = pack.add_subparsers(dest="pack_command", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    imp = actions.add_parser(
        "import", help="check a pack file, show what it can do and add it to your packs"
    )
    imp.add_argument("file", metavar="FILE|URL", help="a pack file, or its https:// address")
    imp.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a pack input (repeatable)"
    )
    imp.add_argument(
        "--approve",
        action="store_true",
        help="allow what the pack can do (without it the pack is held until approved)",
    )
    imp.add_argument(
        "--replace", action="store_true", help="replace another pack of yours with the same id"
    )
    exp = actions.add_parser("export", help="write rules as a pack (to standard output)")
    exp.add_argument("--pack", metavar="ID", help="rules of this pack (all of them without --rule)")
    exp.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="ID",
        help="a rule: its id (in --pack) or PACK/RULE (repeatable)",
    )
    exp.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE")
    exp.add_argument("--id", dest="pack_id", metavar="ID", help="the exported pack's id")
    exp.add_argument("--name", help="the exported pack's name")
    approve = actions.add_parser(
        "approve", help="show what a held pack can do and, once you say yes, allow it"
    )
    approve.add_argument("pack_id", metavar="ID")
    approve.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="allow it without asking (needed when not run from a terminal)",
    )
    lst = actions.add_parser("list", help="your packs: active, held (awaiting approval) or broken")
    from nerve import pack_commands

    pack_commands.add_parsers(actions, lst)


def cmd_pack(args: argparse.Namespace) -> int:
    handler: Any = {
        "import": cmd_pack_import,
        "export": cmd_pack_export,
        "approve": cmd_pack_approve,
        "list": cmd_pack_list,
    }.get(args.pack_command)
    if handler is None:
        from nerve import pack_commands

        handler = pack_commands.HANDLERS[args.pack_command]
    code: int = handler(args)
    return code


def _ask(prompt: str) -> str | None:
    """A line from the user (the terminal); None at end of input."""
    try:
        return input(prompt).strip()
    except EOFError:
        return None


def _print_review(pack: Any, state: Any = None) -> None:
    """A pack's header, what it can do in plain words (with what changed since
    it was approved, given its ``state``), its rules and inputs."""
    from nerve.packs.trust import capability_text, dangerous, shown_capabilities

    title = f"{pack.name} ({pack.id})" if pack.name and pack.name != pack.id else pack.id
    version = f"version {pack.version}" if pack.version else ""
    extra = " ".join(part for part in (version, pack.author and f"by {pack.author}") if part)
    print(f"Pack {title}" + (f", {extra}" if extra else ""))
    if pack.description:
        print(f"  {pack.description}")
    caps = pack.capabilities
    if caps:
        print("It can:")
        for cap in shown_capabilities(caps):
            mark = "!" if dangerous(cap) else "-"
            print(f"  {mark} {capability_text(cap)}")
    else:
        print("It needs no special permissions.")
    if state is not None and (state.missing or state.dropped) and state.approvable:
        print("Changed since you approved it:")
        for line in state.diff_lines():
            print(f"  {line}")
    print(f"Rules ({len(pack.rules)}):")
    for rule in pack.rules:
        when = ", ".join(t.describe() for t in rule.triggers)
        name = f": {rule.name}" if rule.name != rule.id else ""
        print(f"  {rule.id}{name} (when: {when})")
    if pack.inputs:
        print("Inputs:")
        for name, spec in pack.inputs.items():
            value = pack.values.get(name, spec.get("default", "(no value)"))
            if pack.is_secret(name):
                value = "(secret, set)" if name in pack.values else "(secret, no value)"
            about = ", ".join(
                str(x) for x in (spec.get("description"), spec.get("type", "text")) if x
            )
            print(f"  {name} = {value}  ({about})")


def _reload_running() -> None:
    """Ask the running Nerve, if there is one, to read its packs again."""
    from nerve.ipc import IpcError, NoInstance, request

    try:
        result = request("reload", timeout=15.0)
    except NoInstance:
        print("Nerve is not running; your packs load when it starts.")
        return
    except IpcError as exc:
        print(f"nerve: the running Nerve did not reload: {exc}", file=sys.stderr)
        return
    print(f"The running Nerve reloaded its packs: {result['rules']} rule(s) running.")


def cmd_pack_import(args: argparse.Namespace) -> int:
    from nerve import pack_commands
    from nerve.bootstrap import install_starter_pack
    from nerve.packs import trust
    from nerve.paths import locations

    where = locations()
    values = _pairs(args.set, "--set")
    try:
        source = pack_commands.read_for_import(args.file)
    except pack_commands.SourceError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return EXIT_INVALID
    interactive = sys.stdin.isatty()
    # A new version of a pack installed in the same file keeps its input values
    # (its approval stays with the version approved until this one is approved).
    again = pack_commands.reimport(where.config, source, values)
    if again is not None:
        values = {**again.values, **values}
    try:
        plan = trust.plan_data(source.name, source.data, where.packs, values)
        shown = False
        if plan.missing_inputs and interactive:
            _print_review(plan.pack)
            print(f"Signature: {source.signature.text()}")
            shown = True
            print("Values for the pack's inputs:")
            for name in plan.missing_inputs:
                spec = plan.pack.inputs[name]
                hint = ", ".join(
                    str(x)
                    for x in (
                        spec.get("description"),
                        spec.get("type", "text"),
                        spec.get("choices") and f"one of {spec['choices']}",
                    )
                    if x
                )
                answer = _ask(f"  {name} ({hint}): ")
                if not answer:
                    print("nerve: no value given; nothing was imported", file=sys.stderr)
                    return EXIT_INVALID
                values[name] = answer
            plan = plan.with_values(values)  # the bytes reviewed: the file is not read again
    except trust.TrustError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return EXIT_INVALID
    pack = plan.pack
    if pack.errors:
        for error in pack.errors:
            print(error, file=sys.stderr)
        print(f"nerve: {args.file} has errors; nothing was imported", file=sys.stderr)
        return EXIT_INVALID
    if not shown:
        _print_review(pack)
        print(f"Signature: {source.signature.text()}")
    if plan.conflicts and not args.replace:
        names = ", ".join(p.name for p in plan.conflicts)
        print(
            f"nerve: your packs folder already has another pack with id {pack.id!r} ({names}); "
            "use --replace to replace it (the old file is kept with a ~ after its name)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    approve = False
    if pack.capabilities:
        approve = args.approve
        if not approve and again is not None and again.keeps_approval(plan.pack):
            print(
                "It asks for nothing you have not allowed; imported versions are held until "
                f"you approve them (`nerve pack update {plan.pack.id} FILE` keeps the approval)."
            )
        if not approve and interactive:
            answer = _ask(f"Allow {pack.id} to do all of the above? [y/N] ")
            approve = (answer or "").lower() in ("y", "yes")
    if not where.packs.exists():
        install_starter_pack(where)  # the first use of Nerve: the starter pack comes too
    try:
        target = trust.install(
            plan, trust.Approvals(where.config), values=values, approve=approve, replace=True
        )
    except (trust.TrustError, OSError) as exc:
        print(f"nerve: {_os_error_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    if not pack.capabilities or approve:
        print(f"Imported {pack.id} as {target}: active.")
    else:
        print(
            f"Imported {pack.id} as {target}: held until you approve it "
            f"(`nerve pack approve {pack.id}`)."
        )
    _reload_running()
    return EXIT_OK


def cmd_pack_approve(args: argparse.Namespace) -> int:
    from nerve.packs import trust
    from nerve.paths import locations, read_user_file

    where = locations()
    store = trust.Approvals(where.config)
    packs, states = trust.load_folder(store, record=False)
    mine = [s for s in states if s.pack.id == args.pack_id]
    if not mine:
        known = ", ".join(sorted({p.id for p in packs if p.id})) or "none"
        print(
            f"nerve: no pack with id {args.pack_id!r} in {where.packs} (packs: {known})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    # The file that owns the id; newcomers claiming it are never approved here.
    owned = [s for s in mine if not s.duplicate_of and not s.rivals]
    if len(owned) != 1:
        files = ", ".join(s.file_name for s in mine)
        print(
            f"nerve: pack id {args.pack_id!r} is in several files ({files}) and none is "
            "recorded as installed first; keep one of them and approve again",
            file=sys.stderr,
        )
        return EXIT_INVALID
    state = owned[0]
    pack = state.pack
    for other in mine:
        if other.duplicate_of:
            print(f"nerve: note: {other.file_name} is not approved: {other.reason()}")
    if not pack.usable:
        for error in pack.errors:
            print(error, file=sys.stderr)
        print(f"nerve: {pack.file} has errors; fix them first", file=sys.stderr)
        return EXIT_INVALID
    if not pack.capabilities:
        print(f"{pack.id} needs no approval: it asks for no special permissions.")
        return EXIT_OK
    try:
        reviewed = read_user_file(pack.file, max_bytes=1 << 20)
    except OSError as exc:
        print(f"nerve: cannot read {pack.file}: {_os_error_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    if not args.yes:
        _print_review(pack, state)
        from nerve import pack_commands

        for line in pack_commands.signature_lines(store, pack.id, reviewed):
            print(line)
        if not sys.stdin.isatty():
            print(
                f"nerve: not approved: without a terminal to ask in, add --yes "
                f"(`nerve pack approve {pack.id} --yes`) to allow all of the above",
                file=sys.stderr,
            )
            return EXIT_USAGE
        answer = _ask(f"Allow {pack.id} to do all of the above? [y/N] ")
        if (answer or "").lower() not in ("y", "yes"):
            print(f"nerve: not approved; {pack.id} stays held", file=sys.stderr)
            return EXIT_INVALID
    try:
        now = read_user_file(pack.file, max_bytes=1 << 20)
    except OSError:
        now = None
    if now != reviewed:
        print(
            f"nerve: {pack.file} changed while you were reviewing it; nothing was approved "
            f"(run `nerve pack approve {pack.id}` again to review the new version)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    store.approve(pack.id, pack.capabilities, file=Path(pack.file).name, data=reviewed)
    print(f"Approved {pack.id}: it may " + "; ".join(trust.capability_words(pack.capabilities)))
    _reload_running()
    return EXIT_OK


def cmd_pack_list(args: argparse.Namespace) -> int:
    from nerve.packs import trust
    from nerve.paths import locations

    if getattr(args, "available", False):
        from nerve import pack_commands

        return pack_commands.cmd_list_available(args)
    where = locations()
    store = trust.Approvals(where.config)
    packs, states = trust.load_folder(store, record=False)
    if not packs:
        print(f"no packs in {where.packs}")
        return EXIT_OK
    width = max(len(s.pack.id or "?") for s in states)
    for state in states:
        pack = state.pack
        if state.state == "held":
            if state.approvable:
                detail = f"awaiting approval: {state.reason()}; `nerve pack approve {pack.id}`"
            else:
                detail = f"{state.reason()}; {state.hint()}"
            label = "held"
        elif state.state == "broken":
            detail = state.reason()
            label = "broken"
        else:
            caps = trust.capability_words(pack.capabilities)
            errors = f", {len(pack.errors)} rule error(s)" if pack.errors else ""
            detail = f"{len(pack.rules)} rule(s){errors}" + (
                f"; can {'; '.join(caps)}" if caps else ""
            )
            label = "active"
        print(f"{pack.id or '?':<{width}}  {label:<6}  {state.file_name}: {detail}")
        if state.state == "held" and state.approvable and state.dropped:
            for line in state.diff_lines():
                print(f"{'':<{width}}  {'':<6}    {line}")
    return EXIT_OK


def cmd_pack_export(args: argparse.Namespace) -> int:
    from nerve.packs import trust
    from nerve.paths import atomic_write, locations

    if not args.pack and not args.rule:
        raise UsageError("choose rules with --pack ID and/or --rule ID (see `nerve pack list`)")
    store = trust.Approvals(locations().config)
    packs = [p for p in trust.load_user_packs(store) if p.id]
    by_id: dict[str, list[Any]] = {}
    for pack in packs:
        by_id.setdefault(pack.id, []).append(pack)

    def file_of(pack_id: str) -> Path:
        found = by_id.get(pack_id, [])
        if len(found) != 1:
            known = ", ".join(sorted(by_id)) or "none"
            problem = "is in several files" if found else "is not among your packs"
            raise trust.TrustError(f"pack {pack_id!r} {problem} (packs: {known})")
        return Path(found[0].file)

    chosen: dict[Path, list[str] | None] = {}
    try:
        if args.pack:
            chosen[file_of(args.pack)] = None if not args.rule else []
        for item in args.rule:
            pack_id, _, rule_id = item.rpartition("/")
            if not pack_id:
                pack_id = args.pack or ""
            if not pack_id:
                owners = sorted({p.id for p in packs for r in p.rules if r.id == rule_id})
                if len(owners) != 1:
                    where = f"in packs {', '.join(owners)}" if owners else "in none of your packs"
                    raise trust.TrustError(f"rule {rule_id!r} is {where}: write --rule PACK/RULE")
                pack_id = owners[0]
            ids = chosen.setdefault(file_of(pack_id), [])
            if ids is not None and rule_id not in ids:
                ids.append(rule_id)
        header = {"id": args.pack_id, "name": args.name}
        text = trust.export_text(list(chosen.items()), header)
    except trust.TrustError as exc:
        print(f"nerve: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        atomic_write(args.output, text.encode("utf-8"))
    except OSError as exc:
        print(f"nerve: cannot write {args.output}: {_os_error_text(exc)}", file=sys.stderr)
        return EXIT_INVALID
    print(f"exported to {args.output}", file=sys.stderr)
    return EXIT_OK
