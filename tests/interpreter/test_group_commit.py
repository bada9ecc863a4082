"""Group commit: concurrent runs share transactions, a lone run commits directly, and no step
is ever reported done before its commit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import StoreError
from ductwork.interpreter.committer import Committer
from ductwork.store import open_store
from ductwork.store.protocol import Batch, RunStore, StepRow
from ductwork.store.sqlite import SQLiteStore
from tests.store.rows import run
from tests.support.postgres import PgServer, postgres_server  # noqa: F401 (session fixture)


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    server: PgServer = request.getfixturevalue("postgres_server")
    return server.create_database("t_" + uuid.uuid4().hex[:16])


_in_group: contextvars.ContextVar[bool] = contextvars.ContextVar("in_group", default=False)


class Spy:
    """Counts what the engine hands the store: single commits and groups (a store's
    commit_many may call its own commit: those are not counted as single commits)."""

    def __init__(self, store: RunStore) -> None:
        self.commits = 0
        self.groups: list[int] = []
        commit, commit_many = store.commit, store.commit_many

        async def spy_commit(workflow_id: str, batch: Batch) -> None:
            if not _in_group.get():
                self.commits += 1
            await commit(workflow_id, batch)

        async def spy_many(items: list[tuple[str, Batch]]) -> list[Exception | None]:
            self.groups.append(len(items))
            token = _in_group.set(True)
            try:
                return await commit_many(items)
            finally:
                _in_group.reset(token)

        store.commit = spy_commit  # type: ignore[method-assign]
        store.commit_many = spy_many  # type: ignore[method-assign]


def three_steps(dw: Ductwork, ran: Counter[str], seen: set[tuple[str, str]],
                undone: Counter[str] | None = None) -> None:
    async def undo(result: Any) -> None:
        if undone is not None:
            undone[result["wid"]] += 1

    @dw.workflows.workflow(product="p", tag="three")
    async def three(ctx: Any) -> Any:
        for tag in ("a", "b", "c"):
            async def fn(tag: str = tag) -> Any:
                ran[f"{ctx.workflow_id}/{tag}"] += 1
                return {"wid": ctx.workflow_id, "tag": tag}

            await ctx.step(tag, fn, rollback=undo if tag == "a" else None)
            seen.add((ctx.workflow_id, tag))  # the handler was told: committed
        return "ok"


async def test_concurrent_runs_share_transactions_and_record_every_step_once(
        any_store: str) -> None:
    ran: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    async with Ductwork(store=any_store) as dw:
        three_steps(dw, ran, seen)
        await dw.workflows.execute(product="p", env="dev", tag="three")  # opens the engine
        spy = Spy(dw.store)
        await dw.workflows.execute(product="p", env="dev", tag="three")
        per_run, spy.commits = spy.commits, 0  # what one run alone commits
        ran.clear()
        results = await asyncio.gather(*[
            dw.workflows.execute(product="p", env="dev", tag="three") for _ in range(200)])
        assert {r.status for r in results} == {"completed"}
        for r in results:
            steps = await dw.store.load_steps(r.workflow_id)
            assert [(s.step_key, s.status) for s in steps] == [
                ("a", "completed"), ("b", "completed"), ("c", "completed")]
            assert [ran[f"{r.workflow_id}/{t}"] for t in "abc"] == [1, 1, 1]
        # Each run's step results and final status, each written once.
        assert per_run >= 3  # at least each step
        assert sum(spy.groups) + spy.commits == 200 * per_run
        if any_store.startswith("sqlite"):
            # Runs whose steps finish in the same turn of the loop share one transaction
            # (the first run may go alone: nothing else was running when it started).
            assert spy.commits <= per_run and len(spy.groups) * 20 <= sum(spy.groups)
        elif type(dw.store).commit_many is not RunStore.commit_many:
            assert spy.groups
        else:  # the one-by-one default gains nothing from a group: each run commits at once
            assert not spy.groups


async def test_a_lone_run_commits_directly(dw: Ductwork) -> None:
    ran: Counter[str] = Counter()
    three_steps(dw, ran, set())
    await dw.workflows.execute(product="p", env="dev", tag="three")
    spy = Spy(dw.store)
    for _ in range(5):
        assert (await dw.workflows.execute(product="p", env="dev", tag="three")).status \
            == "completed"
    assert spy.groups == [] and spy.commits >= 5 * 3  # at least each step, one by one
    engine = dw._engine_obj
    assert engine is not None and engine.committer.groups == 0


async def test_a_lost_lease_stops_its_run_alone(dw: Ductwork) -> None:
    """Another worker takes one run over between its step and the step's commit: that run
    stops without recording it, the others of the same group complete."""
    store = dw.store

    @dw.workflows.workflow(product="p", tag="two")
    async def two(ctx: Any) -> Any:
        async def a() -> str:
            if ctx.input["steal"]:
                await store.update_run(ctx.workflow_id, {"owner": "another-worker"})
            return "a"

        await ctx.step("a", a)
        await ctx.step("b", lambda: "b")
        return "ok"

    await dw.workflows.execute(product="p", env="dev", tag="two", input={"steal": False})
    spy = Spy(store)
    results = await asyncio.gather(*[
        dw.workflows.execute(product="p", env="dev", tag="two", input={"steal": i == 3},
                             workflow_id=f"r{i}") for i in range(8)])
    assert spy.groups  # the stolen run's batch was in a group with the others
    for i, r in enumerate(results):
        keys = [s.step_key for s in await store.load_steps(f"r{i}")]
        if i == 3:
            assert r.status == "running" and keys == []
            assert (await store.get_run("r3")).owner == "another-worker"  # type: ignore[union-attr]
        else:
            assert r.status == "completed" and keys == ["a", "b"]


async def test_a_store_failure_mid_group_reports_no_step_done(dw: Ductwork) -> None:
    """The store fails while writing the group of the runs' second steps: none of them is
    recorded, no handler is told it was, and nothing is compensated for the store's failure:
    each run is given back and finished later from its last commit."""
    ran: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    undone: Counter[str] = Counter()
    three_steps(dw, ran, seen, undone)
    await dw.workflows.execute(product="p", env="dev", tag="three")
    store = dw.store
    assert isinstance(store, SQLiteStore)
    real_many, real_apply = store.commit_many, store._apply
    failed: list[str] = []

    async def failing_many(items: list[tuple[str, Batch]]) -> list[Exception | None]:
        if failed or not any(s.step_key == "b" for _, b in items for s in b.steps):
            return await real_many(items)
        failed.extend(w for w, _ in items)
        applied = 0

        def apply(workflow_id: str, batch: Batch) -> None:
            nonlocal applied
            applied += 1
            if applied == len(items) // 2:  # half the group is written when the disk fails
                raise sqlite3.OperationalError("disk I/O error")
            real_apply(workflow_id, batch)

        store._apply = apply  # type: ignore[method-assign]
        try:
            return await real_many(items)
        finally:
            store._apply = real_apply  # type: ignore[method-assign]

    store.commit_many = failing_many  # type: ignore[method-assign]
    seen.clear()
    wids = [f"g{i}" for i in range(10)]
    results = await asyncio.gather(*[
        dw.workflows.execute(product="p", env="dev", tag="three", workflow_id=w) for w in wids],
        return_exceptions=True)
    assert len(failed) >= 5  # the group of the b steps (a run started alone may go first)
    for wid, r in zip(wids, results, strict=True):
        done = {s.step_key for s in await store.load_steps(wid)
                if s.kind == "step" and s.status == "completed"}
        assert done == {t for w, t in seen if w == wid}
        if wid in failed:
            assert done == {"a"}
            assert isinstance(r, StoreError) and "disk I/O error" in str(r)
            assert ran[f"{wid}/b"] == 1 and ran[f"{wid}/c"] == 0
        else:
            assert done == {"a", "b", "c"} and not isinstance(r, BaseException)
            assert r.status == "completed"
    # Given back, due again after a short pause: recover() finishes them; a never runs again.
    for _ in range(100):
        await dw.workflows.recover()
        statuses = [(await dw.workflows.status(w))["status"] for w in failed]
        if statuses == ["completed"] * len(failed):
            break
        await asyncio.sleep(0.05)
    for wid in wids:
        assert (await dw.workflows.status(wid))["status"] == "completed"
        assert ran[f"{wid}/a"] == 1 and ran[f"{wid}/c"] == 1 and undone[wid] == 0
        assert ran[f"{wid}/b"] == (2 if wid in failed else 1)


async def test_a_store_failure_creating_a_group_starts_none_of_it(dw: Ductwork) -> None:
    ran: Counter[str] = Counter()
    three_steps(dw, ran, set())
    await dw.workflows.execute(product="p", env="dev", tag="three")
    store = dw.store
    assert isinstance(store, SQLiteStore)
    real_insert = store._insert_run
    inserted = 0

    def insert(run: Any, events: Any) -> bool:
        nonlocal inserted
        inserted += 1
        if inserted == 4:  # in the group: the first run is created alone, before it
            raise sqlite3.OperationalError("disk I/O error")
        return bool(real_insert(run, events))

    store._insert_run = insert  # type: ignore[method-assign]
    ran.clear()
    out = await asyncio.gather(*[dw.workflows.execute(
        product="p", env="dev", tag="three", workflow_id=f"r{i}") for i in range(8)],
        return_exceptions=True)
    store._insert_run = real_insert  # type: ignore[method-assign]
    # The whole group is told so, with the store's error saying what failed.
    failed = [i for i, r in enumerate(out)
              if isinstance(r, StoreError) and "disk I/O error" in str(r)]
    assert failed == list(range(1, 8))
    assert not isinstance(out[0], BaseException) and out[0].status == "completed"
    for i in failed:  # nothing of it was created, nothing of it ran
        assert await store.get_run(f"r{i}") is None
        assert not any(ran[f"r{i}/{t}"] for t in "abc")


async def _committer(tmp_path: Path, runs: int) -> tuple[Committer, SQLiteStore, Any]:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    assert isinstance(store, SQLiteStore)
    await store.open()
    for i in range(runs):
        await store.create_run(run(f"w{i}"), [])

    class Engine:  # what the committer reads of an engine: its store and the runs it drives
        tasks = {f"w{i}": None for i in range(runs)}

    Engine.store = store  # type: ignore[attr-defined]
    return Committer(Engine()), store, Engine  # type: ignore[arg-type]


async def _commit(committer: Committer, wid: str) -> None:
    await committer.commit(wid, Batch(owner="me", steps=[StepRow(wid, "a", "a", seq=1)]))


async def test_a_cancelled_waiter_leaves_the_other_batches_alone(tmp_path: Path) -> None:
    committer, store, _ = await _committer(tmp_path, 3)
    try:
        tasks = [asyncio.create_task(_commit(committer, f"w{i}")) for i in range(3)]
        await asyncio.sleep(0)  # all three queued, the flush not run yet
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert done[0] is None and done[2] is None
        assert isinstance(done[1], asyncio.CancelledError)
        assert [len(await store.load_steps(f"w{i}")) for i in range(3)] == [1, 0, 1]
        assert committer.groups == 1
        # The same batches again: the two written conflict, the dropped one goes in once.
        again = await asyncio.gather(*[_commit(committer, f"w{i}") for i in range(3)],
                                     return_exceptions=True)
        assert [type(e).__name__ for e in again] == [
            "StepConflictError", "NoneType", "StepConflictError"]
        assert [len(await store.load_steps(f"w{i}")) for i in range(3)] == [1, 1, 1]
    finally:
        await store.close()


async def test_close_fails_what_is_queued_and_leaves_no_task_behind(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    committer, store, _ = await _committer(tmp_path, 2)
    try:
        waiter = asyncio.create_task(_commit(committer, "w0"))
        await asyncio.sleep(0)
        # Closing while a group is scheduled: it is written (its waiter is alive), then
        # anything left is failed and a late commit is refused.
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            await committer.close()
            assert await waiter is None
            with pytest.raises(StoreError, match="engine is closed"):
                await committer.commit("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a")]))
        assert committer.idle
        assert not caplog.records
    finally:
        await store.close()


async def test_closing_the_engine_mid_group_releases_the_runs(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ran: Counter[str] = Counter()
    dw = Ductwork(store=url)
    three_steps(dw, ran, set())
    await dw.workflows.execute(product="p", env="dev", tag="three")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        calls = [asyncio.create_task(dw.workflows.execute(
            product="p", env="dev", tag="three", workflow_id=f"r{i}")) for i in range(10)]
        engine = dw._engine_obj
        assert engine is not None
        while not engine.committer._queue:
            await asyncio.sleep(0)
        await dw.aclose()
        await asyncio.gather(*calls, return_exceptions=True)
    assert engine.committer.idle
    assert not caplog.records
    async with Ductwork(store=url) as again:
        three_steps(again, ran, set())
        for i in range(10):
            steps = await again.store.load_steps(f"r{i}")
            # What was committed is recorded once; nothing ran twice.
            assert [s.step_key for s in steps] == ["a", "b", "c"][:len(steps)]
            assert all(ran[f"r{i}/{t}"] <= 1 for t in "abc")
        results = await again.workflows.recover()
        assert {r.status for r in results} == {"completed"}
        for i in range(10):
            assert [s.step_key for s in await again.store.load_steps(f"r{i}")] == ["a", "b", "c"]
