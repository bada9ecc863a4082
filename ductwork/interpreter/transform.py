"""ctx.transform: every function of the expression library, callable from a Python handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ductwork.dsl.expr.functions import FUNCTIONS, ArgError, lookup
from ductwork.dsl.expr.runtime import Fail, close_hint
from ductwork.errors import ExpressionError
from ductwork.interpreter.input_view import plain


def call(name: str, *args: Any) -> Any:
    """Run library function `name` on Python values, as `${name(...)}` would in YAML; a bad
    argument raises the same ExpressionError text ("upper(): text must be a string, ...")."""
    entry = lookup(name)
    if entry is None:
        raise ExpressionError(f"unknown function '{name}'{close_hint(name, FUNCTIONS)}")
    info, impl, lazy = entry
    args = tuple(plain(a) for a in args)  # ctx.input parts are their plain data here
    if not info.accepts(len(args)):
        raise ExpressionError(f"{name}() takes {info.arity()}, got {len(args)}: "
                              f"{info.signature}")
    try:
        if lazy:  # default/coalesce/exists take thunks: in Python every value already exists
            return impl(*[_const(a) for a in args])
        return impl(*args)
    except ArgError as exc:
        raise ExpressionError(f"{name}(): {exc}") from None
    except Fail as exc:
        raise ExpressionError(f"{name}(): {exc.message}") from None
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        raise ExpressionError(f"{name}() failed ({type(exc).__name__})") from None


def _const(value: Any) -> Callable[[], Any]:
    return lambda: value


class Transform:
    """`ctx.transform.<name>(...)` for every name of FUNCTIONS (aliases included), with the
    semantics of the YAML functions; positional arguments only, as in expressions."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in FUNCTIONS:
            raise AttributeError(f"ctx.transform has no function '{name}'"
                                 f"{close_hint(name, FUNCTIONS)} (see docs/functions.md)")

        def bound(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                raise ExpressionError(f"ctx.transform.{name}() takes positional arguments "
                                      f"only: {FUNCTIONS[name].signature}")
            return call(name, *args)

        bound.__name__ = bound.__qualname__ = name
        bound.__doc__ = f"{FUNCTIONS[name].typed_signature()}: {FUNCTIONS[name].doc}"
        return bound

    def __dir__(self) -> list[str]:
        return sorted(FUNCTIONS)
