"""Group commit: the durable points that runs reach together are written in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ductwork.errors import StoreError
from ductwork.store.protocol import Batch, Event, RunRow, RunStore

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine

# (workflow_id, batch, the waiter woken once the store has answered for the batch)
_Item = tuple[str, Batch, "asyncio.Future[None]"]
# (run, its events, the waiter of (stored run, created))
_Create = tuple[RunRow, list[Event], "asyncio.Future[tuple[RunRow, bool]]"]
# Groups being written at once: SQLite writes one at a time anyway (its writes never yield the
# loop); on PostgreSQL, batches queued while a group is on the wire go out in the next one on
# another pooled connection rather than wait a round trip for it.
MAX_FLUSHES = 4


class Committer:
    """Every Journal.commit of an engine goes through here.

    While the engine drives one run, a batch is committed at once, as if this class were not
    there: a lone run pays no extra event-loop turn. While it drives several, a batch is
    queued and one flush, scheduled behind the tasks that are ready now, hands everything
    queued to store.commit_many: runs whose steps finish in the same turn of the loop share
    one transaction. A waiter is woken only after the store returned, so that no step is
    reported done before its commit is durable; a fence failure (lease lost, step conflict)
    reaches its own run only, any other store error every run of the group. Runs started
    together (concurrent execute() calls) are created in one transaction the same way."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Grouping pays only where the store writes a group in one transaction: with the
        # protocol's one-by-one defaults, concurrent runs are better off committing at once
        # (on PostgreSQL each on its own pooled connection).
        kind = type(engine.store)
        self._group_commits = kind.commit_many is not RunStore.commit_many
        self._group_creates = kind.create_runs is not RunStore.create_runs
        self._queue: list[_Item] = []
        self._creates: list[_Create] = []
        # The flush that takes everything queued when it starts (not started yet), and the
        # flushes that have started and are writing.
        self._scheduled: asyncio.Task[None] | None = None
        self._writing: set[asyncio.Task[None]] = set()
        self._closed = False
        # How many groups were handed to store.commit_many (tests, benchmarks).
        self.groups = 0

    def commit(self, workflow_id: str, batch: Batch) -> Awaitable[None]:
        """Write the batch durably: await the result, which raises the store's error for it.
        Not a coroutine itself, so that a lone run's commit costs no extra frame."""
        engine = self._engine
        # The engine-wide signal: another run driven here, or batches already waiting.
        if (len(engine.tasks) <= 1 and not self._queue) or not self._group_commits:
            return engine.store.commit(workflow_id, batch)
        if self._closed:
            raise StoreError(f"run {workflow_id}: the engine is closed, its commit was not "
                             "written")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.append((workflow_id, batch, fut))
        self._schedule(loop)
        return fut

    def create(self, run: RunRow, events: list[Event]) -> Awaitable[tuple[RunRow, bool]]:
        """store.create_run, grouped with the runs started in the same turn of the loop while
        other runs are driven here; (stored run, created) once it is durable. Not a coroutine
        itself, as commit(): a lone run's creation costs no extra frame."""
        engine = self._engine
        if (not engine.tasks and not self._creates) or not self._group_creates:
            return engine.store.create_run(run, events)
        return self._create_grouped(run, events)

    async def _create_grouped(self, run: RunRow, events: list[Event]) -> tuple[RunRow, bool]:
        if self._closed:
            raise StoreError(f"run {run.workflow_id}: the engine is closed, the run was not "
                             "created")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[RunRow, bool]] = loop.create_future()
        self._creates.append((run, events, fut))
        self._schedule(loop)
        return await fut

    @property
    def idle(self) -> bool:
        """Nothing queued, scheduled or being written."""
        return not (self._queue or self._creates or self._scheduled or self._writing)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        scheduled = self._scheduled
        if scheduled is not None and (scheduled.done() or scheduled.get_loop() is not loop):
            # Its event loop ended before it ran (asyncio.run cancels what is left): the
            # waiters it would have served ended with that loop.
            self._queue = [it for it in self._queue if it[2].get_loop() is loop]
            self._creates = [c for c in self._creates if c[2].get_loop() is loop]
            self._writing = {t for t in self._writing if t.get_loop() is loop}
            self._scheduled = scheduled = None
        if scheduled is None and len(self._writing) < MAX_FLUSHES:
            # A task's first step is scheduled with call_soon: it runs after every task that
            # is ready now, which have queued their batches by then.
            self._scheduled = loop.create_task(self._flush(), name="ductwork:group-commit")

    async def _flush(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        if self._scheduled is me:
            self._scheduled = None
        self._writing.add(me)
        try:
            # A waiter cancelled before its turn (its run is being torn down) is left out: as
            # if cancelled before the write started. Nobody else's batch is affected.
            creates = [c for c in self._creates if not c[2].done()]
            items = [it for it in self._queue if not it[2].done()]
            self._creates, self._queue = [], []
            if creates:
                await self._create(creates)
            if items:
                await self._write(items)
        finally:
            self._writing.discard(me)
        if (self._queue or self._creates) and not self._closed:  # queued while all were busy
            self._schedule(asyncio.get_running_loop())

    async def _create(self, creates: list[_Create]) -> None:
        self.groups += 1
        try:
            stored = await self._engine.store.create_runs([(r, e) for r, e, _ in creates])
        except asyncio.CancelledError:
            _fail(creates, StoreError("creating a group of runs was interrupted (the event "
                                      "loop is shutting down); its outcome is unknown"))
            raise
        except Exception as e:
            _fail(creates, e)
            return
        if len(stored) != len(creates):
            _fail(creates, StoreError(f"the store answered {len(stored)} runs for a group of "
                                      f"{len(creates)} to create"))
            return
        for (_r, _e, fut), out in zip(creates, stored, strict=True):
            if not fut.done():
                fut.set_result(out)

    async def _write(self, items: list[_Item]) -> None:
        self.groups += 1
        try:
            outcomes = await self._engine.store.commit_many([(w, b) for w, b, _ in items])
        except asyncio.CancelledError:
            # The loop is going away mid-commit: whether it landed is unknown, so no waiter
            # may take it as written.
            _fail(items, StoreError("the group commit was interrupted (the event loop is "
                                    "shutting down); its outcome is unknown"))
            raise
        except Exception as e:
            _fail(items, e)
            return
        if len(outcomes) != len(items):
            _fail(items, StoreError(f"the store answered {len(outcomes)} outcomes for a group "
                                    f"commit of {len(items)} batches"))
            return
        for (_w, _b, fut), err in zip(items, outcomes, strict=True):
            if fut.done():  # cancelled while the store was writing: the commit stands
                continue
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)

    async def close(self) -> None:
        """Let the groups being written finish, then fail what is still queued (the engine's
        run tasks were cancelled before: their waiters are gone)."""
        self._closed = True
        me = asyncio.current_task()
        flushes = [t for t in (self._scheduled, *self._writing) if t is not None and t is not me]
        if flushes:
            await asyncio.gather(*flushes, return_exceptions=True)
        self._scheduled = None
        items, self._queue = self._queue, []
        _fail(items, StoreError("the engine closed before this commit was written"))
        creates, self._creates = self._creates, []
        _fail(creates, StoreError("the engine closed before this run was created"))


def _fail(items: list[_Item] | list[_Create], err: BaseException) -> None:
    for *_, fut in items:
        if not fut.done():
            fut.set_exception(err)
