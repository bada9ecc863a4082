"""Durations: "250ms" "5s" "5m" "1h" "1d", a timedelta, or a number of milliseconds."""

from __future__ import annotations

import datetime as dt
import re

from ductwork.errors import ConfigurationError

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def to_ms(value: object, what: str = "duration") -> float:
    """Milliseconds for a duration; a bare number is milliseconds (the original SDK's unit)."""
    if isinstance(value, bool) or value is None:
        raise ConfigurationError(f"{what}: expected a duration like '5s', got {value!r}")
    if isinstance(value, dt.timedelta):
        ms = value.total_seconds() * 1000
    elif isinstance(value, int | float):
        ms = float(value)
    elif isinstance(value, str):
        m = _RE.match(value)
        if not m:
            raise ConfigurationError(
                f"{what}: cannot read {value!r} as a duration; use e.g. '250ms', '5s', '5m', "
                "'1h', '1d' or a number of milliseconds"
            )
        ms = float(m.group(1)) * _UNITS[m.group(2) or "ms"]
    else:
        raise ConfigurationError(
            f"{what}: expected a duration like '5s', got {type(value).__name__}")
    if ms < 0:
        raise ConfigurationError(f"{what}: a duration cannot be negative ({value!r})")
    return ms
