"""Durations: "250ms" "5s" "5m" "1h" "1d" "1w", a timedelta, or a number of milliseconds."""

from __future__ import annotations

import datetime as dt
import re

from ductwork.errors import ConfigurationError

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_ms(value: object) -> float | None:
    """Milliseconds of a duration, or None when `value` is not one (negative included).
    A bare number is milliseconds: the original SDK's unit."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, dt.timedelta):
        ms = value.total_seconds() * 1000
    elif isinstance(value, int | float):
        ms = float(value)
    elif isinstance(value, str):
        m = _RE.match(value)
        if not m:
            return None
        ms = float(m.group(1)) * _UNITS[m.group(2) or "ms"]
    else:
        return None
    return ms if ms >= 0 else None


def to_ms(value: object, what: str = "duration") -> float:
    """Milliseconds for a duration, or a ConfigurationError that says how to write one."""
    ms = parse_ms(value)
    if ms is not None:
        return ms
    if isinstance(value, int | float | dt.timedelta) and not isinstance(value, bool):
        raise ConfigurationError(f"{what}: a duration cannot be negative ({value!r})")
    if isinstance(value, str):
        raise ConfigurationError(
            f"{what}: cannot read {value!r} as a duration; use e.g. '250ms', '5s', '5m', "
            "'1h', '1d' or a number of milliseconds")
    raise ConfigurationError(
        f"{what}: expected a duration like '5s', got {type(value).__name__}")
