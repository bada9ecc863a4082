"""Poison runs: a run the engine itself fails on is tried again a bounded number of times, then
failed with the error, never claimed forever; on SQLite and PostgreSQL, in-process and under
a `ductwork worker` process."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork, DuctworkError
from ductwork.store.protocol import RunRow
from tests.support.postgres import PgServer, postgres_server  # noqa: F401 (session fixture)

from .helpers import eventually, log_lines, start_worker_process
from .worker_app import build, inject_fault


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    server: PgServer = request.getfixturevalue("postgres_server")
    return server.create_database("t_" + uuid.uuid4().hex[:16])


@pytest.fixture
def fault(tmp_path: Path) -> Iterator[str]:
    log = str(tmp_path / "effects.log")
    undo = inject_fault(log)
    try:
        yield log
    finally:
        undo()


async def _make_due(dw: Ductwork, wid: str) -> None:
    # The pause before the next try is the engine's business; the test does not wait it out.
    await dw.store.update_run(wid, {"wake_at": time.time()})


async def test_a_run_the_engine_fails_on_is_failed_after_max_faults_claims(
        any_store: str, fault: str) -> None:
    dw = build(any_store, fault)
    async with dw:
        with pytest.raises(DuctworkError, match="injected engine fault") as info:
            await dw.workflows.execute(product="w", env="dev", tag="poison", workflow_id="p1")
        assert "tried again by a worker or dw.recover()" in str(info.value)
        run = await dw.store.get_run("p1")
        assert run is not None and run.faults == 1 and run.owner is None
        assert run.status == "pending" and run.wake_at is not None and run.wake_at > time.time()
        assert await dw.recover() == []  # not due yet: no hot loop
        for _ in range(2):
            await _make_due(dw, "p1")
            await dw.recover()  # the fault is logged and counted, not raised from recover()
        res = await dw.workflows.result("p1")
        assert res.status == "failed"
        assert res.error is not None and res.error.startswith(
            "ductwork failed to process this run 3 times in a row and gave up")
        assert res.error.endswith("RuntimeError: injected engine fault")
        await _make_due(dw, "p1")
        assert await dw.recover() == []  # a failed run is never claimed again
        history = await dw.workflows.history("p1")
    lines = log_lines(fault)
    assert lines.count("fault p1") == 3
    assert lines.count("work p1") == 1  # the step committed on the first claim: never again
    assert [e["type"] for e in history if e["type"] == "workflow_failed"] == ["workflow_failed"]


async def test_max_faults_is_configurable_and_validated(tmp_path: Path, fault: str) -> None:
    dw = Ductwork(store=f"sqlite:///{tmp_path / 'one.db'}", max_faults=1)

    @dw.workflows.workflow(product="w", tag="poison")
    async def poison(ctx: Any) -> Any:
        return 1

    async with dw:
        res = await dw.workflows.execute(product="w", env="dev", tag="poison")
    assert res.status == "failed" and res.error is not None and "1 times" in res.error
    for bad in (0, True, "3", 2.5):
        with pytest.raises(DuctworkError, match="max_faults"):
            Ductwork(store=f"sqlite:///{tmp_path / 'x.db'}", max_faults=bad)


async def test_a_run_that_makes_progress_counts_its_faults_anew(any_store: str,
                                                                tmp_path: Path) -> None:
    dw = Ductwork(store=any_store, inline_wait="0ms")

    @dw.workflows.workflow(product="w", tag="nap")
    async def nap(ctx: Any) -> Any:
        await ctx.step("a", lambda: 1)
        await ctx.sleep("1h")

    async with dw:
        await dw.workflows.dispatch("w", "dev", "nap", workflow_id="n1")
        real = dw.store.load_steps
        calls: list[str] = []

        async def flaky(workflow_id: str) -> Any:
            calls.append(workflow_id)
            if len(calls) == 1:
                raise RuntimeError("store hiccup")
            return await real(workflow_id)

        dw.store.load_steps = flaky  # type: ignore[method-assign]
        await dw.recover()
        run = await dw.store.get_run("n1")
        assert run is not None and run.faults == 1 and run.status == "pending"
        await _make_due(dw, "n1")
        await dw.recover()
        run = await dw.store.get_run("n1")
        assert run is not None and run.status == "sleeping" and run.faults == 0


@pytest.mark.slow
async def test_a_worker_process_fails_a_poison_run_and_goes_on(any_store: str,
                                                               tmp_path: Path) -> None:
    log = str(tmp_path / "effects.log")
    dw = build(any_store, log)
    async with dw:
        await dw.workflows.dispatch("w", "dev", "poison", workflow_id="p2")
        # A run stored by an earlier version with an input spelled like a tagged value (which
        # it cannot decode): it used to fail in the engine on every claim.
        t = time.time()
        await dw.store.create_run(RunRow(
            workflow_id="old", product="w", tag="echo", env="dev", status="pending",
            input='{"__dw__":"uuid","v":"x"}', created_at=t, updated_at=t, wake_at=t), [])
        proc = start_worker_process(any_store, log, lease="2s", fault=True)
        try:
            await eventually(None, lambda: _status(dw, "p2", "failed"), timeout=60)
            await dw.workflows.dispatch("w", "dev", "tick", workflow_id="t1")
            await eventually(None, lambda: _status(dw, "t1", "completed"), timeout=30)
            await eventually(None, lambda: _status(dw, "old", "completed"), timeout=30)
            assert proc.poll() is None  # the worker is alive and still working
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        res = await dw.workflows.result("p2")
        old = await dw.workflows.result("old")
    assert res.error is not None and "3 times in a row" in res.error
    assert "injected engine fault" in res.error
    lines = log_lines(log)
    assert lines.count("fault p2") == 3 and lines.count("work p2") == 1
    assert old.output == {"__dw__": "uuid", "v": "x"}
    assert "ductwork failed to process it (3 of 3)" in err.decode()


async def _status(dw: Ductwork, wid: str, status: str) -> bool:
    run = await dw.store.get_run(wid)
    return run is not None and run.status == status
