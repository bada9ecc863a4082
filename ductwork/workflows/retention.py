"""Retention: delete finished runs older than a cutoff (workflows.prune, `ductwork runs prune`)."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError
from ductwork.store.protocol import TERMINAL
from ductwork.util.durations import parse_ms
from ductwork.util.text import brief, shown

if TYPE_CHECKING:
    from ductwork.interpreter.runtime import LazyEngine

FINISHED = tuple(sorted(TERMINAL))


def cutoff(older_than: Any) -> float:
    """Epoch seconds before which runs count as old: a duration ago ('30d', a timedelta) or an
    absolute time (a datetime, an ISO string)."""
    if isinstance(older_than, dt.datetime):
        aware = older_than if older_than.tzinfo else older_than.replace(tzinfo=dt.UTC)
        return aware.timestamp()
    if isinstance(older_than, str | dt.timedelta) and not isinstance(older_than, bool):
        ms = parse_ms(older_than)
        # A bare number in a string would read as milliseconds: surely not what was meant.
        if ms is not None and not (isinstance(older_than, str)
                                   and older_than.strip().replace(".", "").isdigit()):
            return time.time() - ms / 1000
        if isinstance(older_than, str):
            try:
                return cutoff(dt.datetime.fromisoformat(older_than.replace("Z", "+00:00")))
            except ValueError:
                pass
    raise ConfigurationError(
        f"prune(): cannot read older_than={brief(older_than)}; give how long ago ('30d', '12h', "
        "'2w', a timedelta) or a time (a datetime, '2024-05-01T00:00:00Z')")


def statuses(status: str | list[str] | None) -> list[str]:
    if status is None:
        return list(FINISHED)
    if not isinstance(status, str | list | tuple):
        raise ConfigurationError(f"prune(): status must be a status or a list of them, got "
                                 f"{shown(status)}")
    sts = [status] if isinstance(status, str) else list(status)
    bad = [s for s in sts if not isinstance(s, str) or s not in TERMINAL]
    if bad or not sts:
        raise ConfigurationError(
            f"prune(): only finished runs can be deleted; status {shown(bad or sts)} is not one of "
            f"{', '.join(FINISHED)} (leave status out for all of them)")
    return sts


async def prune(engines: LazyEngine, *, older_than: Any, status: str | list[str] | None = None,
                limit: int = 10_000) -> dict[str, Any]:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"prune(): limit must be a positive integer, got {shown(limit)}")
    before = cutoff(older_than)
    sts = statuses(status)
    engine = await engines.get()
    return {"deleted": await engine.store.prune(before, sts, limit)}
