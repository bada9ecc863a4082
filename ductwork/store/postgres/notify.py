"""LISTEN/NOTIFY for the PostgreSQL store: wake idle workers and runs waiting inline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

import psycopg
from psycopg import AsyncConnection

from ductwork.store.postgres.sql import CHANNEL, RUN_SEP, WAKE_CHANNEL

# Runs announced by id and not yet taken by the worker; past this many, the ids are dropped
# and the worker's next pass looks for what is due (it claims at most its free slots anyway).
MAX_ANNOUNCED = 1000


class Listener:
    """One connection per process LISTENs on dw_due (a run may be due: payload its queue, or
    `queue RUN_SEP workflow_id` when one known run became due) and dw_wake (run <payload> may
    go on), started on first need and kept while the store is open."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._reader: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._due = asyncio.Event()
        self._due_queues: set[str] = set()
        # Runs named by announcements (workflow_id -> queue), and whether an announcement named
        # none since the last take_announced() (then only a full claim finds what is due).
        self._announced: dict[str, str] = {}
        self._unnamed = True
        self._wake_callbacks: list[Callable[[str], None]] = []

    @property
    def has_wake_callbacks(self) -> bool:
        return bool(self._wake_callbacks)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
            self._listening.clear()
        self._wake_callbacks.clear()

    def on_wake(self, callback: Callable[[str], None]) -> None:
        """Call callback(workflow_id) when another process announces that the run may go on
        (a signal sent to it, a child of it that ended): an inline wait ends at once instead of
        at its next poll. Listening starts with the first claim or signal wait."""
        self._wake_callbacks.append(callback)

    async def ensure(self) -> bool:
        """Start the background LISTEN reader; True once it listens."""
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(
                self._read_notifications(), name="ductwork-pg-listen")
        if not self._listening.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), 10)
        return self._listening.is_set()

    async def _read_notifications(self) -> None:
        """One connection per process LISTENs on both channels for as long as the store is
        open, reconnecting after a failure (then it announces work: some may have been missed)."""
        backoff = 0.0
        while True:
            try:
                async with await AsyncConnection.connect(self.conninfo, autocommit=True,
                                                         connect_timeout=10) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    self._listening.set()
                    if backoff:
                        self._announce("")
                    backoff = 0.0
                    async with contextlib.aclosing(conn.notifies()) as gen:
                        async for n in gen:
                            if n.channel == CHANNEL:
                                self._announce(n.payload)
                            else:
                                for cb in list(self._wake_callbacks):
                                    cb(n.payload)
            except psycopg.Error:
                self._listening.clear()
                backoff = min(max(backoff * 2, 0.2), 5.0)
                await asyncio.sleep(backoff)

    def _announce(self, payload: str) -> None:
        queue, sep, wid = payload.rpartition(RUN_SEP)
        if not sep:
            queue = payload
            self._unnamed = True
        elif len(self._announced) < MAX_ANNOUNCED:
            self._announced[wid] = queue
        else:
            self._unnamed = True
        self._due_queues.add(queue)
        self._due.set()

    def take_announced(self) -> list[tuple[str, str]] | None:
        """The (workflow_id, queue) of the runs announced due since the last call, oldest
        first; None when an announcement named no run, some were dropped or the connection
        was (re)established since: a full claim must look for what is due."""
        runs, self._announced = self._announced, {}
        if self._unnamed:
            self._unnamed = False
            return None
        return list(runs.items())

    async def wait_for_work(self, timeout: float, queues: Iterable[str] | None = None) -> bool:
        """Wait up to `timeout` seconds for a NOTIFY that a run became due (a dispatch, a signal,
        a released run); True when woken, False on timeout. Announcements that came while the
        caller was busy count; those for queues outside `queues` are ignored."""
        wanted = None if queues is None else set(queues)
        deadline = time.monotonic() + max(0.0, timeout)
        if not await self.ensure():
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            return False
        while True:
            seen, self._due_queues = self._due_queues, set()
            self._due.clear()
            if seen and (wanted is None or "" in seen or seen & wanted):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                # asyncio.timeout, not wait_for: no task of its own between a NOTIFY and the
                # claim it wakes.
                async with asyncio.timeout(left):
                    await self._due.wait()
            except TimeoutError:
                return False
