"""The one function library of `${...}` expressions and ctx.transform: pure, size-capped."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

# The themes register their functions when imported; the order is the order of the docs.
from ductwork.dsl.expr.functions import data, dates, lists, text  # noqa: F401
from ductwork.dsl.expr.functions.lists import MAX_RANGE
from ductwork.dsl.expr.functions.registry import TABLE, ArgError, FunctionInfo, Param

__all__ = ["FUNCTIONS", "MAX_RANGE", "ArgError", "FunctionInfo", "Param", "lookup"]

FUNCTIONS: MappingProxyType[str, FunctionInfo] = MappingProxyType(
    {k: v[0] for k, v in TABLE.items()})


def lookup(name: str) -> tuple[FunctionInfo, Callable[..., Any], bool] | None:
    """(info, implementation that checks its arguments, lazy) of a function, or None."""
    return TABLE.get(name)
