"""What `ductwork validate` can check of a call before it runs: its arguments against the
resource's declaration (tables and columns, templates, paths, content types).

A checker sees the call's arguments as written: literal values, and `Runtime` where a value
is only known when the step runs (an expression). It returns problems like a config
validator, (path inside the arguments, message); a message may be a `Detail` that also
carries a hint, an offset inside a string value, and a severity.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]


class Detail(str):
    """A problem message that also says how to fix it and where exactly it points.

    A str, so that validators and tests that compare messages keep working unchanged.
    """

    hint: str | None
    offset: int | None  # a character inside the string value at the problem's path
    length: int
    key: bool  # point at the key of the path rather than at its value
    severity: str

    def __new__(cls, message: str, hint: str | None = None, *, offset: int | None = None,
                length: int = 1, key: bool = False, severity: str = "error") -> Detail:
        self = super().__new__(cls, message)
        self.hint, self.offset, self.length, self.key = hint, offset, length, key
        self.severity = severity
        return self


@dataclass(frozen=True)
class Runtime:
    """A value known only when the step runs. When it is a mapping whose shape is known
    (from the input schema, or a map literal), `surely` holds the keys it always has and
    `possibly` every key it can have (None: any key)."""

    surely: frozenset[str] = frozenset()
    possibly: frozenset[str] | None = None

    def __repr__(self) -> str:
        return "<runtime value>"


ANY = Runtime()

CallProblem = tuple[Path, str]
CallCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[CallProblem]]

# kind -> "module:function" (imported when first needed, like the config validators). The
# function takes the method ("insert"), the resource block and the call's arguments.
CALL_CHECKS: dict[str, str | CallCheck] = {
    "database": "ductwork.connectors.database.checks:check_call",
    "notification": "ductwork.connectors.notification.checks:check_call",
    "action": "ductwork.connectors.action_config:check_call",
    "storage": "ductwork.connectors.storage:check_call",
}


def check_call(kind: str, method: str, definition: Mapping[str, Any],
               args: Mapping[str, Any]) -> list[CallProblem]:
    """Problems of one call (`database.insert` -> kind "database", method "insert")."""
    fn = CALL_CHECKS.get(kind)
    if fn is None:
        return []
    if isinstance(fn, str):
        module, _, name = fn.partition(":")
        fn = getattr(importlib.import_module(module), name)
        CALL_CHECKS[kind] = fn
    assert callable(fn)
    return list(fn(method, definition, args))


def keys_of(value: Any) -> tuple[frozenset[str], frozenset[str] | None] | None:
    """(keys surely present, keys possibly present or None for any) of a mapping argument;
    None when the value is not a mapping or nothing is known of its keys."""
    if isinstance(value, Mapping):
        names = frozenset(str(k) for k in value)
        return names, names
    if isinstance(value, Runtime) and (value.surely or value.possibly is not None):
        return value.surely, value.possibly
    return None
