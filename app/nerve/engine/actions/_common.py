"""Helpers shared by action types: templated option values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nerve.engine.registry import CompileContext, ConfigPath
from nerve.templates import Scope, Template


def templated(value: Any, ctx: CompileContext, path: ConfigPath = ()) -> Any:
    """``value`` with every string turned into a Template (checked now)."""
    if isinstance(value, str):
        return ctx.template(value, path)
    if isinstance(value, Mapping):
        return {k: templated(v, ctx, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [templated(v, ctx, (*path, i)) for i, v in enumerate(value)]
    return value


def rendered(value: Any, scope: Scope) -> Any:
    """The run-time value: a whole-placeholder string keeps its type (a number stays one)."""
    if isinstance(value, Template):
        return value.value(scope)
    if isinstance(value, Mapping):
        return {k: rendered(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [rendered(v, scope) for v in value]
    return value


def text(value: Any, scope: Scope) -> str:
    if isinstance(value, Template):
        return value.render(scope)
    return "" if value is None else str(value)
