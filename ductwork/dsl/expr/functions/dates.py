"""Date functions: now() and format_date() with YYYY-MM-DD tokens, over one date reading."""

from __future__ import annotations

import datetime as _dt
import re
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ductwork.dsl.expr.functions.registry import ArgError, fn

G = "dates"
# A date argument is ISO 8601 text ("2024-05-01", "2024-05-01T12:00:00Z", with any offset), a
# number of epoch MILLISECONDS (like JavaScript's Date.now()), or a datetime/date object. Text
# and datetimes without an offset are UTC. Results are ISO 8601 text: "2024-05-01T12:00:00.000Z"
# (milliseconds, "Z" for UTC, else the offset kept, "+02:00"), or "2024-05-01" for a date alone.
UTC = _dt.UTC
_DATE_ONLY = re.compile(r"\d{4}-\d\d-\d\d\Z")
# English names, whatever the process's locale (calendar.month_name follows it).
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def to_datetime(v: Any, what: str = "date") -> _dt.datetime:
    """An aware datetime for any date argument (UTC when the value names no offset)."""
    if isinstance(v, _dt.datetime):
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)
    if isinstance(v, _dt.date):
        return _dt.datetime(v.year, v.month, v.day, tzinfo=UTC)
    if isinstance(v, int | float | Decimal) and not isinstance(v, bool):
        try:
            return _dt.datetime(1970, 1, 1, tzinfo=UTC) + _dt.timedelta(milliseconds=float(v))
        except (OverflowError, ValueError, ArithmeticError):
            raise ArgError(f"{what}: timestamp {v} is out of range") from None
    if isinstance(v, str):
        text = v.strip()
        if len(text) <= 40:  # longer text is no ISO date; do not hand it to the parser
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                d = _dt.datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return d if d.tzinfo is not None else d.replace(tzinfo=UTC)
        raise ArgError(f"{what} must be ISO 8601 text, e.g. 2024-05-01T12:00:00Z")
    raise ArgError(f"{what} must be a date, not a {type(v).__name__}")


def _date_only(v: Any) -> bool:
    if isinstance(v, _dt.datetime):
        return False
    return isinstance(v, _dt.date) or (isinstance(v, str) and bool(_DATE_ONLY.match(v.strip())))


def iso(d: _dt.datetime) -> str:
    """ISO 8601 with milliseconds: "Z" for UTC, the offset otherwise."""
    text = (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:"
            f"{d.second:02d}.{d.microsecond // 1000:03d}")
    offset = d.utcoffset()
    return text + ("Z" if not offset else _offset(d, True))


def _offset(d: _dt.datetime, colon: bool) -> str:
    off = d.utcoffset() or _dt.timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}{':' if colon else ''}{m:02d}"


def _epoch_ms(d: _dt.datetime) -> int:
    delta = d - _dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# -- the format language ---------------------------------------------------------------------

# Longest first, so that "MMMM" is not read as "MM" twice. [text] is literal text.
_TOKEN = re.compile(r"\[[^\]]*\]|YYYY|YY|MMMM|MMM|MM|M|DD|D|dddd|ddd|HH|H|hh|h|mm|m|ss|s|SSS"
                    r"|A|a|ZZ|Z|x")
_STRFTIME = re.compile(r"%[a-zA-Z]")
MAX_FORMAT = 200


def check_format(fmt: Any) -> None:
    if _STRFTIME.search(fmt):
        raise ArgError("format uses tokens like 'YYYY-MM-DD HH:mm', not strftime codes like "
                       "'%Y' (see docs/functions.md)")
    if len(fmt) > MAX_FORMAT:
        raise ArgError(f"format must be at most {MAX_FORMAT} characters")


def _hour12(d: _dt.datetime) -> int:
    return d.hour % 12 or 12


_WRITE: dict[str, Callable[[_dt.datetime], str]] = {
    "YYYY": lambda d: f"{d.year:04d}", "YY": lambda d: f"{d.year % 100:02d}",
    "MMMM": lambda d: _MONTHS[d.month - 1], "MMM": lambda d: _MONTHS[d.month - 1][:3],
    "MM": lambda d: f"{d.month:02d}", "M": lambda d: str(d.month),
    "DD": lambda d: f"{d.day:02d}", "D": lambda d: str(d.day),
    "dddd": lambda d: _DAYS[d.weekday()], "ddd": lambda d: _DAYS[d.weekday()][:3],
    "HH": lambda d: f"{d.hour:02d}", "H": lambda d: str(d.hour),
    "hh": lambda d: f"{_hour12(d):02d}", "h": lambda d: str(_hour12(d)),
    "mm": lambda d: f"{d.minute:02d}", "m": lambda d: str(d.minute),
    "ss": lambda d: f"{d.second:02d}", "s": lambda d: str(d.second),
    "SSS": lambda d: f"{d.microsecond // 1000:03d}",
    "A": lambda d: "AM" if d.hour < 12 else "PM", "a": lambda d: "am" if d.hour < 12 else "pm",
    "Z": lambda d: _offset(d, True), "ZZ": lambda d: _offset(d, False),
    "x": lambda d: str(_epoch_ms(d)),
}


def format_with(d: _dt.datetime, fmt: str) -> str:
    return _TOKEN.sub(lambda m: m[0][1:-1] if m[0][0] == "[" else _WRITE[m[0]](d), fmt)


def _zone(name: str) -> _dt.tzinfo:
    if name.upper() == "UTC":
        return UTC
    # ZoneInfo reads files: accept only the shape of a zone name (Area/City, no dots).
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}", name):
        raise ArgError(f"unknown time zone {name[:60]!r} (use e.g. 'Europe/Paris' or 'UTC')")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ArgError(f"unknown time zone {name[:60]!r} (use e.g. 'Europe/Paris' or "
                       "'UTC')") from None


def _check_zone(name: Any) -> None:
    _zone(name)


# -- the functions ---------------------------------------------------------------------------


@fn("now() -> string", "the current time as ISO 8601 UTC text with milliseconds, e.g. "
    "2024-05-01T12:00:00.000Z (in a step's arguments or a set: it is recorded, so a replay "
    "sees the same value)", group=G, deterministic=False, example="now()")
def _now() -> str:
    return iso(_dt.datetime.now(UTC))


@fn("format_date(date: date, [format: string], [timezone: string]) -> string",
    "the date written with format tokens (YYYY MM DD HH mm ss SSS ...; see below), in the "
    "date's own offset or the given time zone; ISO 8601 by default", group=G,
    example="format_date('2024-05-01T12:30:00Z', 'DD/MM/YYYY HH:mm')",
    checks={"format": check_format, "timezone": _check_zone})
def _format_date(v: Any, fmt: str | None = None, zone: str | None = None) -> str:
    d = to_datetime(v)
    if zone is not None:
        try:
            d = d.astimezone(_zone(zone))
        except (OverflowError, ValueError):
            raise ArgError("date out of range in that time zone") from None
    if fmt is None:
        return d.date().isoformat() if _date_only(v) and zone is None else iso(d)
    return format_with(d, fmt)


