"""File actions: ``file.copy``, ``file.move`` and ``file.trash``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from send2trash import send2trash

from nerve.engine import caps
from nerve.engine.actions._common import ALLOW_OUTSIDE_SCHEMA, render_path, text
from nerve.engine.registry import Action, ActionError, CompileContext, actions
from nerve.engine.runs import RunContext
from nerve.templates import Template

CONFLICTS = ("rename", "overwrite", "skip", "fail")


def free_name(target: Path) -> Path:
    """``target``, or ``name (1).ext``, ``name (2).ext``... whichever is free."""
    if not target.exists():
        return target
    stem, suffix = target.stem, target.suffix
    for n in range(1, 10_000):
        candidate = target.with_name(f"{stem} ({n}){suffix}")
        if not candidate.exists():
            return candidate
    raise ActionError(f"no free name next to {target}")


class _Transfer(Action):
    """Copy or move ``src`` into the folder ``dest`` (created if missing)."""

    capabilities = frozenset({"writes-files"})
    schema = {
        "type": "object",
        "properties": {
            "src": {"type": "string", "minLength": 1, "description": "File or folder"},
            "dest": {"type": "string", "minLength": 1, "description": "Destination folder"},
            "name": {"type": "string", "minLength": 1, "description": "New name (default: same)"},
            "on_conflict": {"enum": list(CONFLICTS), "description": "When the name is taken"},
            "allow_outside": ALLOW_OUTSIDE_SCHEMA,
        },
        "required": ["src", "dest"],
        "additionalProperties": False,
    }
    verb = ""

    def __init__(
        self,
        src: Template,
        dest: Template,
        name: Template | None,
        on_conflict: str,
        allow_outside: bool = False,
    ) -> None:
        self.src = src
        self.dest = dest
        self.name = name
        self.on_conflict = on_conflict
        self.allow_outside = allow_outside

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> _Transfer:
        action = cls(
            ctx.template(options["src"], ("src",)),
            ctx.template(options["dest"], ("dest",)),
            ctx.template(options["name"], ("name",)) if "name" in options else None,
            options.get("on_conflict", "rename"),
            bool(options.get("allow_outside", False)),
        )
        action.concrete = frozenset({caps.cap("writes", caps.static(action.dest, ctx))})
        return action

    async def execute(self, run: RunContext) -> Any:
        scope = run.scope
        outside = self.allow_outside
        src = render_path(self.src, scope, "src", allow_outside=outside, is_folder=False)
        folder = render_path(self.dest, scope, "dest", allow_outside=outside)
        name = text(self.name, scope) if self.name else src.name
        if not name or "/" in name or os.sep in name or name in (".", "..") or "\x00" in name:
            raise ActionError(f"bad file name {name!r}")
        return await run.blocking(self._transfer, src, folder / name, run)

    def _transfer(self, src: Path, target: Path, run: RunContext) -> dict[str, Any]:
        try:
            if not os.path.lexists(src):
                raise ActionError(f"{src} does not exist")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                if self.on_conflict == "skip":
                    return {"skipped": str(target)}
                if self.on_conflict == "fail":
                    raise ActionError(f"{target} already exists")
                if self.on_conflict == "rename":
                    target = free_name(target)
                elif target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
            # What the watcher sees of this comes back with this run as its
            # cause (a rule copying into the folder it watches is a loop).
            self._note(run, src, target)
            try:
                self._do(src, target)
            finally:
                self._note(run, src, target)  # (the time to live counts from the end)
        except OSError as exc:
            raise ActionError(
                f"cannot {self.verb} {src} to {target}: {exc.strerror or exc}"
            ) from None
        return {"src": str(src), "dest": str(target)}

    def _do(self, src: Path, target: Path) -> None:
        raise NotImplementedError

    def _note(self, run: RunContext, src: Path, target: Path) -> None:
        run.note_path(target, tree=True)
        run.note_path(target.parent)


@actions.register
class CopyAction(_Transfer):
    key = "file.copy"
    description = "Copy a file or folder into a folder"
    verb = "copy"

    def _do(self, src: Path, target: Path) -> None:
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target, follow_symlinks=False)


@actions.register
class MoveAction(_Transfer):
    key = "file.move"
    description = "Move a file or folder into a folder"
    verb = "move"

    def _do(self, src: Path, target: Path) -> None:
        shutil.move(src, target)

    def _note(self, run: RunContext, src: Path, target: Path) -> None:
        super()._note(run, src, target)
        run.note_path(src, tree=True)  # its leaving is the rule's doing too


@actions.register
class TrashAction(Action):
    """Move to the desktop's trash (recoverable), never a plain delete."""

    key = "file.trash"
    description = "Move a file or folder to the trash: a path, or {path, allow_outside}"
    capabilities = frozenset({"writes-files"})
    schema = {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "allow_outside": ALLOW_OUTSIDE_SCHEMA,
                },
                "required": ["path"],
                "additionalProperties": False,
            },
        ]
    }

    def __init__(self, path: Template, allow_outside: bool = False) -> None:
        self.target = path
        self.allow_outside = allow_outside

    @classmethod
    def compile(cls, options: Any, ctx: CompileContext, siblings: Any) -> TrashAction:
        if isinstance(options, dict):
            action = cls(
                ctx.template(options["path"], ("path",)), bool(options.get("allow_outside"))
            )
        else:
            action = cls(ctx.template(options))
        action.concrete = frozenset({caps.cap("trash", caps.static(action.target, ctx))})
        return action

    async def execute(self, run: RunContext) -> Any:
        path = render_path(
            self.target, run.scope, "file.trash", allow_outside=self.allow_outside, is_folder=False
        )
        run.note_path(path, tree=True)
        try:
            if not os.path.lexists(path):
                raise ActionError(f"{path} does not exist")
            await run.blocking(send2trash, str(path))
        except OSError as exc:
            raise ActionError(f"cannot trash {path}: {exc}") from None
        finally:
            run.note_path(path, tree=True)
        return {"trashed": str(path)}
