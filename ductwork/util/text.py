"""Checks of the names and ids callers pass to the public API: text a store can hold."""

from __future__ import annotations

import reprlib
from typing import Any

from ductwork.errors import ConfigurationError

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40


def brief(value: Any) -> str:
    """repr() cut short: safe on any value (a long text, a value nested 100,000 deep)."""
    return _short.repr(value)


def shown(value: Any) -> str:
    """A short description of a bad argument for an error message: its type and value."""
    return f"{type(value).__name__} {_short.repr(value)}"


def valid_unicode(text: str) -> int | None:
    """The position of the first lone surrogate (not valid Unicode, no store can hold it)."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def check_text(value: Any, what: str, where: str, *, optional: bool = False) -> None:
    """A non-empty str of valid Unicode, or a ConfigurationError naming the argument."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: {what} must be a non-empty string, got "
                                 f"{shown(value)}")
    bad = valid_unicode(value)
    if bad is not None:
        raise ConfigurationError(
            f"{where}: {what}: the text has a lone surrogate at position {bad}, which is not "
            "valid Unicode (decode bytes with errors='replace')")
