"""A fake clock for tests: durable sleeps, signal timeouts and retry delays take no real time."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ductwork.util.durations import to_ms


class FakeClock:
    """Time moves only when a run waits on it (or the test calls advance()).

    `sleep(s)` and an unanswered `wait(event, s)` jump the clock forward by `s` at once, after
    letting other tasks run so that whatever could set the event (a signal in the same loop)
    gets its chance first."""

    def __init__(self, start: float | dt.datetime | None = None) -> None:
        if isinstance(start, dt.datetime):
            start = (start if start.tzinfo else start.replace(tzinfo=dt.UTC)).timestamp()
        self._now = time.time() if start is None else float(start)
        self.slept: list[float] = []      # every skipped wait, in seconds (for assertions)
        self.on_idle: Callable[[], Awaitable[Any]] | None = None

    def now(self) -> float:
        return self._now

    def datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._now, dt.UTC)

    def advance(self, duration: Any) -> float:
        """Move forward by a duration ("5m", a timedelta, or milliseconds); returns now()."""
        self._now += to_ms(duration, "FakeClock.advance") / 1000
        return self._now

    def advance_to(self, ts: float | None) -> float:
        if ts is not None and ts > self._now:
            self.slept.append(ts - self._now)
            self._now = float(ts)
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        if seconds > 0:
            self.slept.append(seconds)
            self._now += seconds

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        for _ in range(3):
            if event.is_set():
                return
            await asyncio.sleep(0)
        if self.on_idle is not None and not event.is_set():
            await self.on_idle()
            await asyncio.sleep(0)
        if not event.is_set() and timeout > 0:
            self.slept.append(timeout)
            self._now += timeout
