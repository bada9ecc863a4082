"""ductwork.util.timefmt: one ISO 8601 form for every time the API returns."""

from __future__ import annotations

import datetime as dt

from ductwork.util.timefmt import iso, iso_z


def test_iso_always_has_milliseconds_and_utc_offset() -> None:
    whole = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp()
    assert iso(whole) == "2024-05-01T12:00:00.000+00:00"
    assert iso(whole + 0.1239) == "2024-05-01T12:00:00.123+00:00"  # truncated, not rounded
    assert iso(None) is None


def test_iso_z_is_the_same_time_with_z() -> None:
    ts = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC).timestamp() + 0.5
    assert iso_z(ts) == "2024-05-01T12:00:00.500Z"
