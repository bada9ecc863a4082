"""Times as text: epoch seconds to ISO 8601 UTC with milliseconds."""

from __future__ import annotations

import datetime as dt


def iso(ts: float | None) -> str | None:
    """'2024-05-01T12:00:00.000+00:00', or None for no time. Always milliseconds, so that the
    text has one length and sorts like the times it shows."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def iso_z(ts: float) -> str:
    """The same time ending in 'Z' ('2024-05-01T12:00:00.000Z'), as it appears in run ids."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
