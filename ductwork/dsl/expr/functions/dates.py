"""Date functions: now, formatting and parsing with YYYY-MM-DD tokens, duration arithmetic."""

from __future__ import annotations

import calendar
import datetime as _dt
import re
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ductwork.dsl.expr.functions.registry import ArgError, fn, one_of
from ductwork.util.durations import parse_ms

G = "dates"
# A date argument is ISO 8601 text ("2024-05-01", "2024-05-01T12:00:00Z", with any offset), a
# number of epoch MILLISECONDS (like JavaScript's Date.now()), or a datetime/date object. Text
# and datetimes without an offset are UTC. Results are ISO 8601 text: "2024-05-01T12:00:00.000Z"
# (milliseconds, "Z" for UTC, else the offset kept, "+02:00"), or "2024-05-01" for a date alone.
UTC = _dt.UTC
_DAY_MS = 86_400_000
_DATE_ONLY = re.compile(r"\d{4}-\d\d-\d\d\Z")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": _DAY_MS, "w": 7 * _DAY_MS}
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


_NAMES = "|".join(_MONTHS + [m[:3] for m in _MONTHS])
_READ: dict[str, str] = {
    "YYYY": r"(?P<Y>\d{4})", "YY": r"(?P<y>\d{2})", "MMMM": rf"(?P<N>{_NAMES})",
    "MMM": rf"(?P<N>{_NAMES})", "MM": r"(?P<M>\d{2})", "M": r"(?P<M>\d{1,2})",
    "DD": r"(?P<D>\d{2})", "D": r"(?P<D>\d{1,2})",
    "dddd": "(?:" + "|".join(_DAYS) + ")", "ddd": "(?:" + "|".join(d[:3] for d in _DAYS) + ")",
    "HH": r"(?P<H>\d{2})", "H": r"(?P<H>\d{1,2})", "hh": r"(?P<h>\d{2})", "h": r"(?P<h>\d{1,2})",
    "mm": r"(?P<m>\d{2})", "m": r"(?P<m>\d{1,2})", "ss": r"(?P<s>\d{2})", "s": r"(?P<s>\d{1,2})",
    "SSS": r"(?P<S>\d{3})", "A": r"(?P<A>AM|PM)", "a": r"(?P<A>am|pm)",
    "Z": r"(?P<Z>Z|[+-]\d\d:?\d\d)", "ZZ": r"(?P<Z>Z|[+-]\d\d:?\d\d)", "x": r"(?P<x>-?\d{1,15})",
}
_TIME_GROUPS = set("HhmsSAZx")


def _pattern(fmt: str) -> re.Pattern[str]:
    parts, seen, pos = [], set(), 0
    for m in _TOKEN.finditer(fmt):
        parts.append(re.escape(fmt[pos:m.start()]))
        tok = m[0]
        if tok[0] == "[":
            parts.append(re.escape(tok[1:-1]))
        else:
            group = re.search(r"\?P<(\w)>", _READ[tok])
            if group is not None:
                if group[1] in seen:
                    raise ArgError(f"format names the same field twice ('{tok}')")
                seen.add(group[1])
            parts.append(_READ[tok])
        pos = m.end()
    parts.append(re.escape(fmt[pos:]))
    return re.compile("".join(parts), re.IGNORECASE)


def _parse_with(text: str, fmt: str) -> tuple[_dt.datetime, bool]:
    """(the datetime, whether the format had a time of day or an offset)."""
    m = _pattern(fmt).fullmatch(text.strip())
    if m is None:
        raise ArgError(f"text {text[:60]!r} does not match format {fmt!r}")
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    if "x" in g:
        return to_datetime(int(g["x"])), True
    year = 1970
    if "Y" in g:
        year = int(g["Y"])
    elif "y" in g:  # two digits: 00-68 are 2000-2068, 69-99 are 1969-1999 (as POSIX does)
        year = int(g["y"]) + (2000 if int(g["y"]) < 69 else 1900)
    month = int(g["M"]) if "M" in g else 1
    if "N" in g:
        month = next(i for i, n in enumerate(_MONTHS, 1) if n.lower().startswith(
            g["N"][:3].lower()))
    hour = int(g.get("H", 0))
    if "h" in g:
        hour = int(g["h"]) % 12 + (12 if g.get("A", "").upper() == "PM" else 0)
    tz: _dt.tzinfo = UTC
    if g.get("Z", "Z").upper() != "Z":
        z = g["Z"].replace(":", "")
        mins = int(z[1:3]) * 60 + int(z[3:5])
        tz = _dt.timezone(_dt.timedelta(minutes=-mins if z[0] == "-" else mins))
    try:
        d = _dt.datetime(year, month, int(g.get("D", 1)), hour, int(g.get("m", 0)),
                         int(g.get("s", 0)), int(g.get("S", 0)) * 1000, tzinfo=tz)
    except ValueError as exc:
        raise ArgError(f"text {text[:60]!r} is not a valid date ({exc})") from None
    return d, bool(_TIME_GROUPS & set(g))


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


@fn("parse_date(text: string, [format: string]) -> string",
    "the date that text writes in format (the tokens of format_date), as ISO 8601 text; a "
    "format without a time of day gives a date alone; without a format, text is ISO 8601",
    group=G, example="parse_date('01/05/2024', 'DD/MM/YYYY')", checks={"format": check_format})
def _parse_date(text: str, fmt: str | None = None) -> str:
    if fmt is None:
        return _format_date(text)
    d, timed = _parse_with(text, fmt)
    return iso(d) if timed else d.date().isoformat()


def duration_ms(v: Any, what: str = "duration") -> float:
    """Milliseconds of a signed duration: "1d", "-2h", "90m", a timedelta, or a number."""
    if isinstance(v, _dt.timedelta):
        return v.total_seconds() * 1000
    if isinstance(v, int | float | Decimal) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        text = v.strip()
        negative = text.startswith("-")
        ms = parse_ms(text[1:] if negative else text)
        if ms is not None:
            return -ms if negative else ms
    raise ArgError(f"{what} must be like '1d', '2h', '30m', '-1w' or milliseconds, not "
                   f"{str(v)[:40]!r}")


def _check_duration(v: Any) -> None:
    duration_ms(v)


def _shifted(d: _dt.datetime, ms: float) -> _dt.datetime:
    try:
        return d + _dt.timedelta(milliseconds=ms)
    except (OverflowError, ValueError):
        raise ArgError("the result is out of the range of dates") from None


@fn("add(date: date, duration: duration) -> string",
    "the date moved by a duration ('1d', '-2h', '90m', '1w', or milliseconds); a date "
    "alone plus whole days stays a date alone", group=G, example="add('2024-05-01', '1d')",
    checks={"duration": _check_duration})
def _add(v: Any, duration: Any) -> str:
    ms = duration_ms(duration)
    d = _shifted(to_datetime(v), ms)
    return d.date().isoformat() if _date_only(v) and ms % _DAY_MS == 0 else iso(d)


@fn("add_months(date: date, months: integer) -> string",
    "the date moved by whole calendar months (negative: back), the day clamped to the end of "
    "a shorter month", group=G, example="add_months('2024-01-31', 1)")
def _add_months(v: Any, months: int) -> str:
    d = to_datetime(v)
    total = d.year * 12 + d.month - 1 + months
    year, month = divmod(total, 12)
    if not 1 <= year <= 9999:
        raise ArgError("the result is out of the range of dates")
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    out = d.replace(year=year, month=month + 1, day=day)
    return out.date().isoformat() if _date_only(v) else iso(out)


@fn("diff(a: date, b: date, [unit: string]) -> integer",
    "a - b in whole units (truncated toward zero): 'ms' (default), 's', 'm', 'h', 'd', 'w'",
    group=G, example="diff('2024-05-03', '2024-05-01', 'd')",
    checks={"unit": one_of("unit", tuple(_UNITS))})
def _diff(a: Any, b: Any, unit: str | None = None) -> int:
    delta = to_datetime(a, "a") - to_datetime(b, "b")
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    size = _UNITS[unit or "ms"] * 1000
    q = abs(micros) // size
    return -q if micros < 0 else q


@fn("timestamp(date: date) -> integer", "the date as epoch milliseconds", group=G,
    example="timestamp('2024-05-01T00:00:00Z')")
def _timestamp(v: Any) -> int:
    return _epoch_ms(to_datetime(v))
