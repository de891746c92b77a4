"""Actions that start programs: ``run``, ``shell`` and ``open``."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from nerve import desktop
from nerve.durations import DURATION_SCHEMA, parse_duration
from nerve.engine import caps
from nerve.engine.actions._common import text
from nerve.engine.registry import Action, ActionError, CompileContext, ConfigError, actions
from nerve.engine.runs import RunContext
from nerve.spawn import spawn_detached
from nerve.templates import Template

_OUTPUT_LIMIT = 4096

_PROCESS_OPTIONS: dict[str, Any] = {
    "wait": {"type": "boolean", "description": "Wait for the program to end (default: no)"},
    "timeout": DURATION_SCHEMA,
    "cwd": {"type": "string", "description": "Working folder"},
    "env": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
    "check": {"type": "boolean", "description": "With wait: a non-zero exit fails the run (yes)"},
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
        # What else decides which program runs and what it does: a relative
        # program is found from 'cwd', PATH and LD_PRELOAD change what starts.
        # Part of the capability, as written.
        where = [f"in {options['cwd']}"] if "cwd" in options else []
        where += [f"{k}={v}" for k, v in sorted(options.get("env", {}).items())]
        self.setting = f" ({', '.join(where)})" if where else ""

    def argv(self, run: RunContext) -> list[str]:
        raise NotImplementedError

    async def execute(self, run: RunContext) -> Any:
        scope = run.scope
        argv = self.argv(run)
        cwd = os.path.expanduser(self.cwd.render(scope)) if self.cwd else None
        env = None
        if self.env:
            env = {**os.environ, **{k: t.render(scope) for k, t in self.env.items()}}
        env = _child_env(env, run)
        if not self.wait:
            try:
                # Straight from the loop: spawning takes about 0.1 ms, less
                # than the hop to a worker thread would.
                proc = spawn_detached(argv, cwd, env)
            except FileNotFoundError:
                raise ActionError(f"program not found: {argv[0]}") from None
            except OSError as exc:
                raise ActionError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
            except ValueError as exc:  # a NUL character in an argument or the environment
                raise ActionError(f"cannot start {argv[0]}: {exc}") from None
            run.note_process(proc.pid)
            run.engine.reap_later(proc)
            return {"pid": proc.pid, "argv": argv}
        return await _run_and_wait(argv, cwd, env, self.timeout, self.check, run=run)


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
) -> dict[str, Any]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ActionError(f"program not found: {argv[0]}") from None
    except OSError as exc:
        raise ActionError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    run.note_process(proc.pid)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
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
    result: dict[str, Any] = {
        "exit_code": proc.returncode,
        "stdout": out[:_OUTPUT_LIMIT].decode("utf-8", "replace"),
        "stderr": err[:_OUTPUT_LIMIT].decode("utf-8", "replace"),
    }
    if check and proc.returncode != 0:
        detail = result["stderr"].strip().splitlines()[-1:] or [""]
        raise ActionError(
            f"{argv[0]} exited with {proc.returncode}" + (f": {detail[0]}" if detail[0] else "")
        )
    return result


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
        argv[0] = os.path.expanduser(argv[0])
        return argv


@actions.register
class ShellAction(_Spawn):
    """A command line for the shell. Placeholder values are quoted for it."""

    key = "shell"
    description = "Run a command line in /bin/sh (placeholder values are shell-quoted)"
    capabilities = frozenset({"runs-programs", "runs-shell"})
    schema = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "properties": {"command": {"type": "string", "minLength": 1}, **_PROCESS_OPTIONS},
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
            self.quoters = shell_quoters(self.command.pieces)
        except ValueError as exc:
            raise ConfigError(str(exc), ("command",)) from None

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> ShellAction:
        if isinstance(options, str):
            options = {"command": options}
        return cls(options, ctx)

    def argv(self, run: RunContext) -> list[str]:
        if sys.platform == "win32":
            return ["cmd", "/c", self.command.render(run.scope)]
        return ["/bin/sh", "-c", self.command.render(run.scope, quote=self.quoters)]


def _quote_in_single(value: str) -> str:
    """For inside '...': close the quotes around each literal ' and reopen them."""
    return value.replace("'", "'\\''")


_SPECIAL_IN_DOUBLE = re.compile(r'([\\$`"])')


def _quote_in_double(value: str) -> str:
    """For inside "...": escape the characters that stay special there."""
    return _SPECIAL_IN_DOUBLE.sub(r"\\\1", value)


def _quote_in_comment(value: str) -> str:
    """For inside a # comment: a line break would end it."""
    return value.replace("\r", " ").replace("\n", " ")


_QUOTERS: dict[str, Callable[[str], str]] = {
    "'": _quote_in_single,
    '"': _quote_in_double,
    "#": _quote_in_comment,
}
_WORD_BREAKS = frozenset(" \t\n;&|()<>")


def shell_quoters(pieces: Sequence[str | None]) -> list[Callable[[str], str]]:
    """How to quote each placeholder (None in ``pieces``) of a command line.

    Users quote placeholders out of habit (``cp "{event.path}" ~/x``), so the
    quoting follows the quotes around each one: unquoted, the value is
    shell-quoted; inside '...' or "...", the characters special there are
    escaped. Either way the value arrives as literal text, never as code.
    ``$(...)`` and backticks start a new unquoted context. Raises ValueError
    where a value cannot be made safe (after a backslash, in a here-document).
    """
    # Innermost context last: "" unquoted, "'", '"', "#" (a comment), or
    # "$(", "(", "`" (unquoted again, until their end).
    stack = [""]
    out: list[Callable[[str], str]] = []
    escaped = heredoc = False
    prev = "\n"
    for piece in pieces:
        if piece is None:
            if escaped:
                raise ValueError("a placeholder cannot follow a backslash in a shell command")
            if heredoc:
                raise ValueError(
                    "a placeholder cannot go into a here-document (<<); "
                    "pass it as an argument or use 'run'"
                )
            out.append(_QUOTERS.get(stack[-1], shlex.quote))
            prev = "x"  # the value is (part of) a word
            continue
        i = 0
        while i < len(piece):
            c, top = piece[i], stack[-1]
            if escaped:
                escaped = False
            elif top == "#":
                if c == "\n":
                    stack.pop()
            elif top == "'":
                if c == "'":
                    stack.pop()
            elif c == "\\":
                escaped = True
            elif c == "`":
                if top == "`":
                    stack.pop()
                else:
                    stack.append("`")
            elif c == "$" and piece.startswith("(", i + 1):
                stack.append("$(")
                i += 1
            elif top == '"':
                if c == '"':
                    stack.pop()
            elif c in "'\"":
                stack.append(c)
            elif c == "#" and prev in _WORD_BREAKS:
                stack.append("#")
            elif c == "(":
                stack.append("(")
            elif c == ")" and top in ("(", "$("):
                stack.pop()
            elif c == "<" and piece.startswith("<", i + 1):
                heredoc = True
            prev = c
            i += 1
    return out


@actions.register
class OpenAction(Action):
    """Open a file, folder or URL with the desktop's default application."""

    key = "open"
    description = "Open a file, folder or URL with its default application"
    capabilities = frozenset({"runs-programs"})
    schema = {"type": "string", "minLength": 1}

    def __init__(self, target: Template) -> None:
        self.target = target

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> OpenAction:
        action = cls(ctx.template(options))
        action.concrete = frozenset({caps.cap("open", caps.static(action.target, ctx))})
        return action

    async def execute(self, run: RunContext) -> Any:
        target = text(self.target, run.scope)
        if "://" not in target:
            target = os.path.expanduser(target)
        try:
            proc = await run.blocking(desktop.open_target, target)
        except OSError as exc:
            raise ActionError(str(exc)) from None
        if proc is not None:
            run.note_process(proc.pid)
            run.engine.reap_later(proc)
        return {"opened": target}
