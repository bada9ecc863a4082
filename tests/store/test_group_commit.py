"""commit_many on every backend: each batch all-or-nothing, a fence failure stays in its slot."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from ductwork.store import open_store
from ductwork.store.protocol import (
    Batch,
    LeaseLostError,
    RunStore,
    StepConflictError,
    StepRow,
)
from ductwork.store.sqlite import SQLiteStore
from tests.store.rows import create_owned, run


async def test_every_batch_of_a_group_is_written(store: RunStore) -> None:
    await create_owned(store, "w1", "w2", "w3")
    out = await store.commit_many([
        ("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a", result="1", seq=1)])),
        ("w2", Batch(owner="me", run={"status": "completed", "owner": None},
                     events=[(1.0, "done", None, None)])),
        ("w3", Batch(owner="me", steps=[StepRow("w3", "a", "a", seq=1),
                                        StepRow("w3", "b", "b", seq=2)], state={"k": "2"})),
        ("w1", Batch(owner="me", steps=[StepRow("w1", "b", "b", result="2", seq=2)])),
    ])
    assert out == [None, None, None, None]
    assert [(s.step_key, s.result) for s in await store.load_steps("w1")] == [("a", "1"),
                                                                              ("b", "2")]
    assert (await store.get_run("w2")).status == "completed"  # type: ignore[union-attr]
    assert [e["type"] for e in await store.events("w2")] == ["done"]
    assert [s.step_key for s in await store.load_steps("w3")] == ["a", "b"]
    assert await store.get_state("w3") == {"k": "2"}


async def test_a_lost_lease_fails_its_batch_alone(store: RunStore) -> None:
    await create_owned(store, "w1", "w3")
    await create_owned(store, "w2", owner="other")  # taken over by another worker
    out = await store.commit_many([
        ("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a", seq=1)])),
        ("w2", Batch(owner="me", steps=[StepRow("w2", "a", "a", seq=1)])),
        ("w2", Batch(owner="me", run={"status": "completed"}, state={"k": "1"},
                     steps=[StepRow("w2", "b", "b", seq=2)])),
        ("w3", Batch(owner="me", run={"current_step": "x"},
                     steps=[StepRow("w3", "a", "a", seq=1)])),
    ])
    assert out[0] is None and out[3] is None
    assert isinstance(out[1], LeaseLostError) and isinstance(out[2], LeaseLostError)
    assert [s.step_key for s in await store.load_steps("w1")] == ["a"]
    assert await store.load_steps("w2") == [] and await store.get_state("w2") == {}
    assert (await store.get_run("w2")).status == "running"  # type: ignore[union-attr]
    assert [s.step_key for s in await store.load_steps("w3")] == ["a"]
    assert (await store.get_run("w3")).current_step == "x"  # type: ignore[union-attr]


async def test_a_step_conflict_undoes_its_batch_alone(store: RunStore) -> None:
    await create_owned(store, "w1", "w2")
    await store.commit("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a", result="1")]))
    out = await store.commit_many([
        ("w2", Batch(owner="me", steps=[StepRow("w2", "a", "a", seq=1)])),
        # Written in part (run fields, step b) before the conflict on a: all of it undone.
        ("w1", Batch(owner="me", run={"current_step": "b"}, state={"k": "1"},
                     steps=[StepRow("w1", "b", "b", seq=2),
                            StepRow("w1", "a", "a", result="2", seq=3)])),
        ("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a", result="3", seq=4)])),
        ("w2", Batch(owner="me", steps=[StepRow("w2", "b", "b", seq=2)])),
    ])
    assert out[0] is None and out[3] is None
    assert isinstance(out[1], StepConflictError) and isinstance(out[2], StepConflictError)
    assert [(s.step_key, s.result) for s in await store.load_steps("w1")] == [("a", "1")]
    assert await store.get_state("w1") == {}
    assert (await store.get_run("w1")).current_step is None  # type: ignore[union-attr]
    assert [s.step_key for s in await store.load_steps("w2")] == ["a", "b"]


async def test_an_empty_group_writes_nothing(store: RunStore) -> None:
    assert await store.commit_many([]) == []


async def test_a_store_error_is_raised_for_the_group(store: RunStore) -> None:
    """Not a fence failure (here a column that does not exist): the caller gets the error,
    for every batch, rather than outcomes."""
    await create_owned(store, "w1", "w2")
    with pytest.raises(Exception) as info:
        await store.commit_many([
            ("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a", seq=1)])),
            ("w2", Batch(owner="me", steps=[StepRow("w2", "a", "a", seq=1)],
                         step_updates=[("a", {"no_such_column": 1})])),
        ])
    assert not isinstance(info.value, LeaseLostError | StepConflictError)
    assert await store.load_steps("w2") == []


async def test_sqlite_writes_a_group_in_one_transaction(tmp_path: Any) -> None:
    """One BEGIN ... COMMIT for the group, and a store error midway leaves none of it."""
    store = open_store(f"sqlite:///{tmp_path / 'g.db'}")
    assert isinstance(store, SQLiteStore)
    await store.open()
    try:
        await create_owned(store, "w1", "w2", "w3")
        seen: list[str] = []
        store.conn.set_trace_callback(seen.append)
        items = [(w, Batch(owner="me", steps=[StepRow(w, "a", "a", seq=1)]))
                 for w in ("w1", "w2", "w3")]
        assert await store.commit_many(items) == [None, None, None]
        store.conn.set_trace_callback(None)
        assert [s.split()[0] for s in seen] == ["BEGIN", "INSERT", "INSERT", "INSERT", "COMMIT"]

        real = store._apply
        calls = 0

        def failing(workflow_id: str, batch: Batch) -> None:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise sqlite3.OperationalError("disk I/O error")
            real(workflow_id, batch)

        store._apply = failing  # type: ignore[method-assign]
        with pytest.raises(sqlite3.OperationalError):
            await store.commit_many([
                (w, Batch(owner="me", steps=[StepRow(w, "b", "b", seq=2)],
                          events=[(1.0, "x", "b", None)])) for w in ("w1", "w2", "w3")])
        store._apply = real  # type: ignore[method-assign]
        for w in ("w1", "w2", "w3"):
            assert [s.step_key for s in await store.load_steps(w)] == ["a"]
            assert await store.events(w) == []
        assert not store.conn.in_transaction
    finally:
        await store.close()


async def test_create_runs_creates_each_once(store: RunStore) -> None:
    await store.create_run(run("old", input='{"v":0}'), [])
    out = await store.create_runs([
        (run("n1", input='{"v":1}'), [(1.0, "queued", None, None)]),
        (run("old", input='{"v":2}'), [(1.0, "queued", None, None)]),
        (run("n2"), []),
        (run("n1", input='{"v":3}'), []),  # the same id twice in one group: the first wins
    ])
    assert [(r.workflow_id, created) for r, created in out] == [
        ("n1", True), ("old", False), ("n2", True), ("n1", False)]
    assert out[1][0].input == '{"v":0}' and out[3][0].input == '{"v":1}'
    assert [e["type"] for e in await store.events("n1")] == ["queued"]
    assert await store.events("old") == []
    assert await store.create_runs([]) == []
