"""Actions that start programs: ``run``, ``shell`` and ``open``."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
from typing import Any

from nerve import desktop
from nerve.durations import DURATION_SCHEMA, parse_duration
from nerve.engine import caps
from nerve.engine.actions._common import ALLOW_OUTSIDE_SCHEMA, render_path, render_url, text
from nerve.engine.registry import Action, ActionError, CompileContext, ConfigError, actions
from nerve.engine.runs import RunContext
from nerve.shellscript import ShellScriptError, rewrite
from nerve.spawn import spawn_detached
from nerve.templates import Template

#: The most of each of stdout and stderr a waited-for program gives ``{steps.ID.*}``
#: (bytes; the rest is read and dropped, so a chatty program cannot fill the memory).
OUTPUT_LIMIT = 1024 * 1024
#: The most of each kept in the run's trace (characters).
TRACE_LIMIT = 4096
_CHUNK = 64 * 1024
#: Shells that read "${NAME}" as the shell action writes it.
_POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "yash", "busybox", "ash"})
_URL_START = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*://|(?:mailto|tel|sms|magnet):)")

_PROCESS_OPTIONS: dict[str, Any] = {
    "wait": {"type": "boolean", "description": "Wait for the program to end (default: no)"},
    "timeout": DURATION_SCHEMA,
    "cwd": {"type": "string", "description": "Working folder"},
    "env": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
    "check": {"type": "boolean", "description": "With wait: a non-zero exit fails the run (yes)"},
    "allow_outside": ALLOW_OUTSIDE_SCHEMA,
}


class _Spawn(Action):
    """Shared by run and shell: start detached, or wait with a timeout."""

    def __init__(self, options: dict[str, Any], ctx: CompileContext) -> None:
        self.wait = bool(options.get("wait", False))
        self.timeout = parse_duration(options["timeout"]) if "timeout" in options else None
        if self.timeout is not None and not self.wait:
            raise ConfigError("'timeout' needs 'wait: true'", ("timeout",))
        self.check = bool(options.get("check", True))
        self.cwd = ctx.template(options["cwd"], ("cwd",)) if "cwd" in options else None
        self.env = {
            str(k): ctx.template(str(v), ("env", k)) for k, v in options.get("env", {}).items()
        }
        self.allow_outside = bool(options.get("allow_outside", False))
        # What else decides which program runs and what it does: a relative
        # program is found from 'cwd', PATH and LD_PRELOAD change what starts.
        # Part of the capability, as written.
        where = [f"in {options['cwd']}"] if "cwd" in options else []
        where += [f"{k}={v}" for k, v in sorted(options.get("env", {}).items())]
        self.setting = f" ({', '.join(where)})" if where else ""

    def argv(self, run: RunContext) -> list[str]:
        raise NotImplementedError

    def outputs(self) -> frozenset[str]:
        return frozenset({"stdout", "stderr", "exit_code"}) if self.wait else frozenset()

    def extra_env(self, run: RunContext) -> dict[str, str]:
        return {}

    async def execute(self, run: RunContext) -> Any:
        scope = run.scope
        argv = self.argv(run)
        for i, arg in enumerate(argv):
            if "\x00" in arg:
                raise ActionError(
                    f"cannot start {argv[0]}: argument {i} holds a NUL character, "
                    "which a program cannot receive"
                )
        cwd = None
        if self.cwd is not None:
            cwd = str(render_path(self.cwd, scope, "cwd", allow_outside=self.allow_outside))
        env = None
        if self.env:
            env = {**os.environ}
            for k, t in self.env.items():
                value = t.render(scope)
                if "\x00" in value or "\x00" in k or "=" in k:
                    raise ActionError(
                        f"cannot start {argv[0]}: the variable {k!r} holds a NUL character"
                        if "\x00" in value
                        else f"cannot start {argv[0]}: {k!r} is not a variable name"
                    )
                env[k] = value
        env = _child_env(env, run)
        env.update(self.extra_env(run))
        if not self.wait:
            try:
                # Straight from the loop: spawning takes about 0.1 ms, less
                # than the hop to a worker thread would.
                proc = spawn_detached(argv, cwd, env)
            except FileNotFoundError:
                raise ActionError(f"program not found: {argv[0]}") from None
            except OSError as exc:
                raise ActionError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise ActionError(f"cannot start {argv[0]}: {exc}") from None
            run.note_process(proc.pid)
            run.engine.reap_later(proc)
            return {"pid": proc.pid, "argv": argv}
        return await _run_and_wait(
            argv, cwd, env, self.timeout, self.check, run=run, step=self.step_id
        )


def _child_env(env: dict[str, str] | None, run: RunContext) -> dict[str, str]:
    out = dict(os.environ) if env is None else env
    out["NERVE_RULE"] = run.rule.key
    out["NERVE_RUN"] = run.id
    return out


async def _run_and_wait(
    argv: list[str],
    cwd: str | None,
    env: dict[str, str],
    timeout: float | None,
    check: bool,
    *,
    run: RunContext,
    step: str | None = None,
) -> dict[str, Any]:
    spawning = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    )
    try:
        proc = await asyncio.shield(spawning)
    except asyncio.CancelledError:
        # Cancelled (a pause) while the program starts: let it start, then take
        # its whole group with it. (Cancelling the start itself would leave the
        # program's children running, and the run waiting for their pipes.)
        try:
            started = await spawning
        except Exception:
            raise asyncio.CancelledError from None
        _kill_group(started.pid)
        await started.wait()
        raise
    except FileNotFoundError:
        raise ActionError(f"program not found: {argv[0]}") from None
    except OSError as exc:
        raise ActionError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ActionError(f"cannot start {argv[0]}: {exc}") from None
    run.note_process(proc.pid)
    try:
        out, err = await asyncio.wait_for(_communicate(proc), timeout)
    except asyncio.CancelledError:
        _kill_group(proc.pid)  # a paused or restarted run takes its program with it
        await proc.wait()
        raise
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise ActionError(f"{argv[0]} did not finish within {timeout:g}s; stopped it") from None
    finally:
        run.engine.bus.causes.process_ended(proc.pid)
    stdout = out[0].decode("utf-8", "replace")
    stderr = err[0].decode("utf-8", "replace")
    if step is not None:
        run.steps[step] = {"stdout": stdout, "stderr": stderr, "exit_code": proc.returncode}
    result: dict[str, Any] = {
        "exit_code": proc.returncode,
        "stdout": stdout[:TRACE_LIMIT],
        "stderr": stderr[:TRACE_LIMIT],
    }
    truncated = {
        name: {"bytes": size, "kept": min(size, OUTPUT_LIMIT), "traced": TRACE_LIMIT}
        for name, size, text in (("stdout", out[1], stdout), ("stderr", err[1], stderr))
        if size > OUTPUT_LIMIT or len(text) > TRACE_LIMIT
    }
    if truncated:
        result["truncated"] = truncated
    if check and proc.returncode != 0:
        detail = result["stderr"].strip().splitlines()[-1:] or [""]
        raise ActionError(
            f"{argv[0]} exited with {proc.returncode}" + (f": {detail[0]}" if detail[0] else "")
        )
    return result


async def _communicate(proc: asyncio.subprocess.Process) -> tuple[tuple[bytes, int], ...]:
    """Each of stdout and stderr: its first ``OUTPUT_LIMIT`` bytes and its whole size."""

    async def drain(stream: asyncio.StreamReader | None) -> tuple[bytes, int]:
        kept = bytearray()
        size = 0
        while stream is not None:
            chunk = await stream.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if len(kept) < OUTPUT_LIMIT:
                kept += chunk[: OUTPUT_LIMIT - len(kept)]
        return bytes(kept), size

    out, err = await asyncio.gather(drain(proc.stdout), drain(proc.stderr))
    await proc.wait()
    return out, err


def _kill_group(pid: int) -> None:
    try:
        if sys.platform == "win32":
            os.kill(pid, signal.SIGTERM)
        else:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@actions.register
class RunAction(_Spawn):
    """Start a program with arguments; no shell, so placeholders cannot inject."""

    key = "run"
    description = "Start a program: [program, arg, ...]; each placeholder stays inside its argument"
    capabilities = frozenset({"runs-programs"})
    schema = {
        "anyOf": [
            {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 1},
            {"type": "string", "description": "A program name without arguments"},
            {
                "type": "object",
                "properties": {
                    "argv": {
                        "type": "array",
                        "items": {"type": ["string", "number"]},
                        "minItems": 1,
                    },
                    **_PROCESS_OPTIONS,
                },
                "required": ["argv"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, options: dict[str, Any], ctx: CompileContext) -> None:
        super().__init__(options, ctx)
        self.args: list[Template] = [
            ctx.template(str(a), ("argv", i)) for i, a in enumerate(options["argv"])
        ]
        # The program as written (input values filled in); a placeholder: any program.
        program = caps.static(self.args[0], ctx)
        self.concrete = frozenset({caps.cap("run", program and program + self.setting)})

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> RunAction:
        if isinstance(options, str):
            if " " in options.strip():
                raise ConfigError(
                    f"'run' takes a list: [{', '.join(shlex.split(options))}] "
                    "(or use 'shell' for a command line)"
                )
            options = [options]
        if isinstance(options, list):
            options = {"argv": options}
        return cls(options, ctx)

    def argv(self, run: RunContext) -> list[str]:
        scope = run.scope
        argv = [a.render(scope) for a in self.args]
        if self.args[0].source.startswith("~"):  # the rule's own ~, never a value's
            argv[0] = (
                os.path.expanduser(self.args[0].pieces[0] or "")
                + argv[0][len(self.args[0].pieces[0] or "") :]
            )
        return argv


@actions.register
class ShellAction(_Spawn):
    """A command line for the shell. Placeholder values reach it as data: each
    placeholder becomes a quoted reference to an environment variable
    (``"${NERVE_ARG_1}"``), never text spliced into the script."""

    key = "shell"
    description = (
        "Run a command line in /bin/sh (or 'interpreter'); placeholder values are passed "
        "as variables, never as script text"
    )
    capabilities = frozenset({"runs-programs", "runs-shell"})
    schema = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "minLength": 1},
                    "interpreter": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The shell: sh (default), bash, dash or a path",
                    },
                    **_PROCESS_OPTIONS,
                },
                "required": ["command"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, options: dict[str, Any], ctx: CompileContext) -> None:
        super().__init__(options, ctx)
        self.command = ctx.template(options["command"], ("command",))
        # The script as written: any change to its text is a new capability.
        self.concrete = frozenset({caps.cap("shell", options["command"] + self.setting)})
        try:
            self.script = rewrite(self.command.pieces)
        except ShellScriptError as exc:
            raise ConfigError(str(exc), ("command",)) from None
        interpreter = str(options.get("interpreter", "/bin/sh"))
        if (
            not (os.path.isabs(interpreter) or os.sep not in interpreter)
            or os.path.basename(interpreter) not in _POSIX_SHELLS
        ):
            raise ConfigError(
                "'interpreter' is a POSIX shell, by name or absolute path: "
                + ", ".join(sorted(_POSIX_SHELLS)),
                ("interpreter",),
            )
        self.interpreter = interpreter

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> ShellAction:
        if isinstance(options, str):
            options = {"command": options}
        return cls(options, ctx)

    def argv(self, run: RunContext) -> list[str]:
        if sys.platform == "win32":
            if self.command.names:
                raise ActionError("placeholders in 'shell' are not supported on Windows: use 'run'")
            return ["cmd", "/c", self.command.source]
        return [self.interpreter, "-c", self.script.text]

    def extra_env(self, run: RunContext) -> dict[str, str]:
        """Each placeholder's value, in the variable its reference names."""
        values = self.command.placeholder_texts(run.scope)
        labels = [f"{{{name}}}" for name in self.command.names]
        try:
            return self.script.environment(values, labels)
        except ValueError as exc:
            raise ActionError(str(exc)) from None


@actions.register
class OpenAction(Action):
    """Open a file, folder or URL with the desktop's default application."""

    key = "open"
    description = (
        "Open a file, folder or URL with its default application: a target, or "
        "{target, allow_outside}"
    )
    capabilities = frozenset({"runs-programs"})
    schema = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "properties": {
                    "target": {"type": "string", "minLength": 1},
                    "allow_outside": ALLOW_OUTSIDE_SCHEMA,
                },
                "required": ["target"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, target: Template, allow_outside: bool = False) -> None:
        self.target = target
        self.allow_outside = allow_outside
        head = target.pieces[0] if target.pieces else ""
        # The rule's own text says URL (https://..., mailto:...) or not.
        self.url = head is not None and _URL_START.match(head) is not None

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> OpenAction:
        if isinstance(options, dict):
            action = cls(
                ctx.template(options["target"], ("target",)), bool(options.get("allow_outside"))
            )
        else:
            action = cls(ctx.template(options))
        action.concrete = frozenset({caps.cap("open", caps.static(action.target, ctx))})
        return action

    async def execute(self, run: RunContext) -> Any:
        if self.url:
            target = render_url(self.target, run.scope, "open")
        else:
            value = text(self.target, run.scope)
            if self.target.pieces == (None,) and _URL_START.match(value):
                # A whole URL from the event, passed on as it is: one argument.
                if any(ord(c) < 32 or ord(c) == 127 for c in value):
                    raise ActionError(f"open: the URL {value[:200]!r} holds a control character")
                target = value
            else:
                target = str(
                    render_path(
                        self.target,
                        run.scope,
                        "open",
                        allow_outside=self.allow_outside,
                        is_folder=False,
                    )
                )
        if target.startswith("-"):
            raise ActionError(f"open: {target!r} would be read as an option")
        try:
            proc = await run.blocking(desktop.open_target, target)
        except OSError as exc:
            raise ActionError(str(exc)) from None
        if proc is not None:
            run.note_process(proc.pid)
            run.engine.reap_later(proc)
        return {"opened": target}
