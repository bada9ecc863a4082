"""Run-store behaviour every backend must share: idempotent create, fences, claims, signals."""

from __future__ import annotations

import time

import pytest

from ductwork.store.protocol import (
    Batch,
    LeaseLostError,
    RunStore,
    StepConflictError,
    StepRow,
)
from tests.store.rows import run


async def test_create_is_idempotent_on_workflow_id(store: RunStore) -> None:
    _, created = await store.create_run(run("w1", input='{"a":1}'), [(1.0, "x", None, None)])
    again, created2 = await store.create_run(run("w1", input='{"a":2}'), [])
    assert created and not created2
    assert again.input == '{"a":1}'
    assert [e["type"] for e in await store.events("w1")] == ["x"]


async def test_a_step_is_recorded_at_most_once(store: RunStore) -> None:
    await store.create_run(run("w1"), [])
    row = StepRow("w1", "charge", "charge", result='{"id":1}', seq=1)
    await store.commit("w1", Batch(owner="me", steps=[row]))
    with pytest.raises(StepConflictError):
        await store.commit("w1", Batch(owner="me", steps=[
            StepRow("w1", "charge", "charge", result='{"id":2}', seq=2)]))
    (stored,) = await store.load_steps("w1")
    assert stored.result == '{"id":1}'


async def test_a_waiting_entry_can_be_completed_once(store: RunStore) -> None:
    await store.create_run(run("w1"), [])
    await store.commit("w1", Batch(owner="me", steps=[
        StepRow("w1", "@signal:go", "go", kind="signal", status="waiting")]))
    await store.commit("w1", Batch(owner="me", steps=[
        StepRow("w1", "@signal:go", "go", kind="signal", status="completed", result="1")]))
    (s,) = await store.load_steps("w1")
    assert s.status == "completed" and s.result == "1"


async def test_a_step_record_reads_back_as_written(store: RunStore) -> None:
    # The common record (a step completed by its owner) and one completing a record still
    # running, whose error and meta must not survive it.
    await store.create_run(run("w1"), [])
    t = time.time()
    done = StepRow("w1", "a", "a", "step", "completed", 1, 2, '{"in":1}', '{"out":1}', None,
                   t - 1, t, True, True)
    await store.commit("w1", Batch(owner="me", steps=[done]))
    await store.commit("w1", Batch(owner="me", steps=[StepRow(
        "w1", "b", "b", "step", "running", 0, 1, None, None, "boom", t, None,
        meta='{"x":1}')]))
    done_b = StepRow("w1", "b", "b", "step", "completed", 2, 1, None, "[]", None, t, t)
    await store.commit("w1", Batch(owner="me", steps=[done_b]))
    assert await store.load_steps("w1") == [done, done_b]


async def test_commits_are_fenced_by_ownership(store: RunStore) -> None:
    await store.create_run(run("w1", owner="other"), [])
    with pytest.raises(LeaseLostError):
        await store.commit("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a")]))
    with pytest.raises(LeaseLostError):
        await store.commit("w1", Batch(owner="me", run={"status": "completed"}))
    assert await store.load_steps("w1") == []
    assert (await store.get_run("w1")).status == "running"  # type: ignore[union-attr]


async def test_batch_is_atomic(store: RunStore) -> None:
    await store.create_run(run("w1"), [])
    await store.commit("w1", Batch(owner="me", steps=[StepRow("w1", "a", "a")]))
    with pytest.raises(StepConflictError):
        await store.commit("w1", Batch(owner="me", run={"current_step": "b"},
                                       steps=[StepRow("w1", "b", "b"), StepRow("w1", "a", "a")],
                                       state={"k": "1"}))
    assert [s.step_key for s in await store.load_steps("w1")] == ["a"]
    assert await store.get_state("w1") == {}
    assert (await store.get_run("w1")).current_step is None  # type: ignore[union-attr]


async def test_claim_respects_live_leases_and_takes_expired_ones(store: RunStore) -> None:
    await store.create_run(run("live", owner="w-a", lease_until=time.time() + 60), [])
    await store.create_run(run("expired", owner="w-b", lease_until=time.time() - 1), [])
    await store.create_run(run("dead", owner="w-c", lease_until=time.time() + 60), [])
    assert await store.claim("live", "me", 30) is None
    got = await store.claim("expired", "me", 30)
    assert got is not None and got.owner == "me" and got.attempt == 1
    assert await store.claim("dead", "me", 30, steal_from=frozenset({"w-c"})) is not None


async def test_claim_due_picks_due_suspended_and_orphaned_runs(store: RunStore) -> None:
    t = time.time()
    await store.create_run(run("due", status="sleeping", owner=None, lease_until=None,
                               wake_at=t - 1), [])
    await store.create_run(run("later", status="sleeping", owner=None, lease_until=None,
                               wake_at=t + 3600), [])
    await store.create_run(run("pending", status="pending", owner=None, lease_until=None,
                               wake_at=t - 5, priority=5), [])
    await store.create_run(run("orphan", owner="gone", lease_until=t - 1), [])
    await store.create_run(run("busy", owner="alive", lease_until=t + 60), [])
    got = await store.claim_due("me", 30, 10)
    assert {r.workflow_id for r in got} == {"due", "pending", "orphan"}
    assert got[0].workflow_id == "pending"  # priority first
    assert all(r.owner == "me" for r in got)
    assert await store.claim_due("other", 30, 10) == []


async def test_renew_and_release(store: RunStore) -> None:
    await store.create_run(run("w1", owner="me", lease_until=time.time() + 1), [])
    assert await store.renew_leases("me", 60) == ["w1"]
    r = await store.get_run("w1")
    assert r is not None and r.lease_until is not None and r.lease_until > time.time() + 50
    await store.release("w1", "me")
    r = await store.get_run("w1")
    assert r is not None and r.owner is None and r.status == "pending"


async def test_hold_lease_renews_only_a_run_still_ours(store: RunStore) -> None:
    await store.create_run(run("mine", owner="me", lease_until=time.time() - 1), [])
    await store.create_run(run("taken", owner="other", lease_until=time.time() + 60), [])
    await store.create_run(run("done", status="completed", owner=None, lease_until=None), [])
    assert await store.hold_lease("mine", "me", 60) is True
    r = await store.get_run("mine")
    assert r is not None and r.lease_until is not None and r.lease_until > time.time() + 50
    assert await store.hold_lease("taken", "me", 60) is False
    assert await store.hold_lease("done", "me", 60) is False
    assert await store.hold_lease("missing", "me", 60) is False
    assert (await store.get_run("taken")).owner == "other"  # type: ignore[union-attr]


async def test_signals_are_kept_until_consumed_once(store: RunStore) -> None:
    await store.create_run(run("w1", status="waiting", owner=None, wake_at=None), [])
    sid = await store.send_signal("w1", "approve", '{"ok":true}')
    r = await store.get_run("w1")
    assert r is not None and r.wake_at is not None  # a waiting run becomes due
    sig = await store.find_signal("w1", ["reject", "approve"])
    assert sig is not None and sig.id == sid and sig.payload == '{"ok":true}'
    await store.claim("w1", "me", 30)
    await store.commit("w1", Batch(owner="me", steps=[StepRow("w1", "@signal:approve", "approve",
                                                              kind="signal")],
                                   consume_signal=(sid, "@signal:approve")))
    assert await store.find_signal("w1", ["approve"]) is None


async def test_list_runs_filters_and_pages(store: RunStore) -> None:
    for i in range(5):
        await store.create_run(run(f"w{i}", created_at=100.0 + i,
                                   status="completed" if i % 2 else "failed"), [])
    page, cursor = await store.list_runs(limit=2)
    assert [r.workflow_id for r in page] == ["w4", "w3"] and cursor
    page2, _ = await store.list_runs(limit=2, cursor=cursor)
    assert [r.workflow_id for r in page2] == ["w2", "w1"]
    failed, _ = await store.list_runs(status="failed")
    assert {r.workflow_id for r in failed} == {"w0", "w2", "w4"}


async def test_list_runs_pages_every_filter_newest_first(store: RunStore) -> None:
    # Runs of every status (and one no release of ductwork writes), ties on created_at broken
    # by workflow_id, listed page by page with each filter, against the same order in Python.
    statuses = ["pending", "running", "sleeping", "waiting", "completed", "failed",
                "rolled_back", "cancelled", "preparing", "archived"]
    made = []
    for i in range(60):
        r = run(f"w{i:02}", created_at=100.0 + i // 3, status=statuses[i * 7 % len(statuses)])
        r.tag = "t" if i % 4 else "u"
        await store.create_run(r, [])
        made.append(r)
    newest = sorted(made, key=lambda r: (r.created_at, r.workflow_id), reverse=True)
    for kw in ({}, {"status": "failed"}, {"status": ["archived", "running", "waiting"]},
               {"tag": "u"}, {"since": 110.0}, {"tag": "t", "status": ["completed", "pending"],
                                                "since": 105.0},
               {"product": "p", "tag": "t"}, {"status": []}):
        want = [r.workflow_id for r in newest
                if (kw.get("status") is None or r.status in kw["status"]
                    or r.status == kw["status"])
                and ("tag" not in kw or r.tag == kw["tag"])
                and r.created_at >= kw.get("since", 0.0)]
        got: list[str] = []
        cursor = None
        while True:
            page, cursor = await store.list_runs(limit=7, cursor=cursor, **kw)  # type: ignore[arg-type]
            got += [r.workflow_id for r in page]
            if cursor is None:
                break
        assert got == want, kw


async def test_logs_state_and_events_round_trip(store: RunStore) -> None:
    await store.create_run(run("w1"), [])
    await store.commit("w1", Batch(owner="me", state={"k": '"v"'},
                                   logs=[(1.0, "info", "hello", None, "a")],
                                   events=[(2.0, "checkpoint_created", "cp", '{"n":1}')]))
    assert await store.get_state("w1") == {"k": '"v"'}
    assert (await store.logs("w1"))[0]["message"] == "hello"
    assert (await store.events("w1"))[0]["data"] == '{"n":1}'
