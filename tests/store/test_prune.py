"""Retention on every backend: prune() deletes old finished runs and all they own, nothing else."""

from __future__ import annotations

import time

import pytest

from ductwork.errors import StoreError
from ductwork.store.protocol import TERMINAL, Batch, RunStore, StepRow
from tests.store.rows import pending, run

DAY = 86_400.0


async def _finished(store: RunStore, wid: str, status: str, age_days: float) -> None:
    """A run with a step, an event, a log line, state and a signal, finished age_days ago."""
    t = time.time() - age_days * DAY
    await store.create_run(run(wid, created_at=t - 60, updated_at=t, started_at=t - 60),
                           [(t - 60, "workflow_started", None, None)])
    await store.commit(wid, Batch(
        owner="me", steps=[StepRow(wid, "a", "a", result="1", seq=1)],
        logs=[(t, "info", "hello", None, "a")], state={"k": '"v"'},
        events=[(t, "step_completed", "a", None)]))
    await store.send_signal(wid, "go", "1")
    await store.commit(wid, Batch(owner="me", run={"status": status, "finished_at": t,
                                                   "owner": None, "lease_until": None}))


async def _gone(store: RunStore, wid: str) -> bool:
    return (await store.get_run(wid) is None and await store.load_steps(wid) == []
            and await store.events(wid) == [] and await store.logs(wid) == []
            and await store.get_state(wid) == {} and await store.find_signal(wid, ["go"]) is None)


async def test_prune_deletes_old_finished_runs_with_everything_they_own(store: RunStore) -> None:
    await _finished(store, "old-ok", "completed", 40)
    await _finished(store, "old-failed", "failed", 31)
    await _finished(store, "recent", "completed", 2)
    t_old = time.time() - 40 * DAY
    # Active runs are never deleted, however old.
    await store.create_run(run("old-running", created_at=t_old, updated_at=t_old), [])
    await store.create_run(pending("old-pending", created_at=t_old, updated_at=t_old), [])

    n = await store.prune(time.time() - 30 * DAY, sorted(TERMINAL), 10_000)

    assert n == 2
    assert await _gone(store, "old-ok") and await _gone(store, "old-failed")
    assert (await store.get_run("recent")) is not None
    assert [s.step_key for s in await store.load_steps("recent")] == ["a"]
    assert await store.get_state("recent") == {"k": '"v"'}
    assert len(await store.logs("recent")) == 1
    for wid in ("old-running", "old-pending"):
        assert await store.get_run(wid) is not None
    assert await store.prune(time.time() - 30 * DAY, sorted(TERMINAL), 10_000) == 0


async def test_prune_only_deletes_the_statuses_asked_for(store: RunStore) -> None:
    await _finished(store, "ok", "completed", 40)
    await _finished(store, "bad", "failed", 40)
    assert await store.prune(time.time() - DAY, ["failed"], 100) == 1
    assert await store.get_run("ok") is not None and await _gone(store, "bad")


async def test_prune_stops_at_its_limit_across_batches(store: RunStore,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 2 runs: a limit of 5 takes three transactions, the last one partial.
    monkeypatch.setattr(type(store).__module__ + ".PRUNE_BATCH", 2)
    for i in range(7):
        await _finished(store, f"r{i}", "completed", 40 - i)
    assert await store.prune(time.time() - DAY, ["completed"], 5) == 5
    left = [f"r{i}" for i in range(7) if await store.get_run(f"r{i}") is not None]
    assert left == ["r5", "r6"]  # the oldest went first
    assert await store.prune(time.time() - DAY, ["completed"], 5) == 2


async def test_prune_refuses_active_statuses(store: RunStore) -> None:
    t_old = time.time() - 40 * DAY
    await store.create_run(run("w1", created_at=t_old, updated_at=t_old), [])
    with pytest.raises(StoreError, match="only finished runs"):
        await store.prune(time.time(), ["completed", "running"], 100)
    assert await store.get_run("w1") is not None
