"""Named queues: concurrency (across all workers, per worker) and rate limits, kept by the store."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ductwork.errors import ConfigurationError
from ductwork.store.protocol import QueueLimit, RunStore
from ductwork.util.durations import to_ms

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\S+)\s*$")


class Queues:
    """`dw.queues.configure("emails", concurrency=5, worker_concurrency=2, rate_limit=(100, "1m"))`.

    A run goes to the queue named by its `queue` option (define(options=) or dispatch(options=);
    "default" otherwise). Workers claim runs of a limited queue only while the limits allow,
    counted in the store under a per-queue lock, so they hold across every worker process and
    machine sharing the store; a process that drives a run of the queue itself (result(), a
    parent running its child) takes a slot the same way. Every worker must configure the same
    limits (put the calls in the module that defines the workflows). Runs started inline by
    execute() are counted but never held back.
    """

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._limits: dict[str, QueueLimit] = {}

    def configure(self, name: str, *, concurrency: int | None = None,
                  worker_concurrency: int | None = None,
                  rate_limit: tuple[int, Any] | str | None = None) -> QueueLimit:
        """Set (replace) the limits of queue `name`; all None removes them.

        concurrency: runs of the queue held at once by all workers together.
        worker_concurrency: ... by one worker process.
        rate_limit: at most `limit` runs picked up per `period`, as (100, "1m") or "100/1m";
        every pick-up counts (a first start, a resume after a sleep or a crash).
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError("queues.configure(): the queue name must be a non-empty "
                                     "string such as 'emails'")
        where = f"queues.configure({name!r})"
        for what, val in (("concurrency", concurrency),
                          ("worker_concurrency", worker_concurrency)):
            if val is not None and (isinstance(val, bool) or not isinstance(val, int)
                                    or val < 1):
                raise ConfigurationError(f"{where}: {what} must be a whole number >= 1, "
                                         f"got {val!r}")
        lim = QueueLimit(concurrency, worker_concurrency, _rate(rate_limit, where))
        if lim.limited:
            self._limits[name] = lim
        else:
            self._limits.pop(name, None)
        self._store.set_queue_limits(self._limits)
        return lim

    def get(self, name: str) -> QueueLimit | None:
        return self._limits.get(name)

    def limits(self) -> Mapping[str, QueueLimit]:
        return dict(self._limits)


def _rate(value: tuple[int, Any] | str | None, where: str) -> tuple[int, float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        m = _RATE.match(value)
        if not m:
            raise ConfigurationError(f"{where}: rate_limit {value!r} should read like '100/1m' "
                                     "(runs per period)")
        limit, period = int(m.group(1)), m.group(2)
    elif isinstance(value, tuple | list) and len(value) == 2:
        limit, period = value
    else:
        raise ConfigurationError(f"{where}: rate_limit must be (limit, period) such as "
                                 f"(100, '1m'), or '100/1m'; got {value!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"{where}: the rate limit must be a whole number >= 1, "
                                 f"got {limit!r}")
    seconds = to_ms(period, f"{where} rate_limit period") / 1000
    if seconds <= 0:
        raise ConfigurationError(f"{where}: the rate limit period must be longer than 0")
    return limit, seconds
