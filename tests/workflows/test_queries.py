"""dw.workflows.query: answered from the run's persisted state, never by running the handler."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ductwork import ConfigurationError, Ductwork, DuctworkError, SerializationError


def define(dw: Ductwork, runs: list[str]) -> None:
    async def progress(ctx: Any) -> Any:  # an async query works too
        return {"done": ctx.completed_steps, "pct": ctx.get_state("pct", 0)}

    @dw.workflows.workflow(
        product="p", tag="import", signals=["continue"],
        queries={
            "progress": progress,
            "summary": lambda ctx: {
                "status": ctx.status, "input": ctx.input.file, "rows": ctx.steps["parse"]["rows"],
                "state": dict(ctx.state), "checkpoint": [ctx.checkpoint_name, ctx.checkpoint_data],
                "current": ctx.current_step, "output": ctx.output, "who": ctx.workflow_tag},
            "broken": lambda ctx: ctx.steps["missing"],
            "writes": lambda ctx: ctx.set_state("x", 1),
            "unstorable": lambda ctx: object(),
        })
    async def handler(ctx: Any) -> Any:
        runs.append("handler")
        parsed = await ctx.step("parse", lambda: {"rows": 120})
        await ctx.set_state("pct", 50)
        await ctx.checkpoint("parsed", {"rows": parsed["rows"]})
        await ctx.wait_for_signal("continue")
        await ctx.step("load", lambda: True)
        await ctx.set_state("pct", 100)
        return {"loaded": parsed["rows"]}


async def test_query_a_waiting_run_then_the_finished_run(dw: Ductwork) -> None:
    runs: list[str] = []
    define(dw, runs)
    r = await dw.workflows.execute(product="p", env="dev", tag="import",
                                   input={"file": "a.csv"}, workflow_id="imp-1", timeout="1ms")
    assert r.status == "running"
    # execute() returned after 1 ms: the run may still be in its first steps (a sync step
    # function hands over to a worker thread); query once it waits for the signal.
    for _ in range(500):
        if (await dw.workflows.status("imp-1"))["current_step"] == "continue":
            break
        await asyncio.sleep(0.01)
    assert await dw.workflows.query("imp-1", "progress") == {"done": ["parse"], "pct": 50}
    summary = await dw.workflows.query("imp-1", "summary")
    # Still waiting inline (running) or already suspended (waiting): both are live states.
    assert summary.pop("status") in ("running", "waiting")
    assert summary == {"input": "a.csv", "rows": 120, "state": {"pct": 50},
                       "checkpoint": ["parsed", {"rows": 120}], "current": "continue",
                       "output": None, "who": "import"}
    n = len(runs)
    await dw.workflows.query("imp-1", "summary")
    assert len(runs) == n  # a query never runs the handler

    await dw.workflows.signal("imp-1", "continue")
    done = await dw.workflows.result("imp-1", timeout="10s")
    assert done.status == "completed"
    assert await dw.workflows.query("imp-1", "progress") == {"done": ["parse", "load"],
                                                             "pct": 100}
    final = await dw.workflows.query("imp-1", "summary")
    assert final["status"] == "completed" and final["output"] == {"loaded": 120}
    assert final["current"] is None


async def test_query_answered_by_another_process_while_the_run_is_suspended(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first_runs: list[str] = []
    first = Ductwork(store=url, inline_wait="10ms")
    define(first, first_runs)
    async with first:
        r = await first.workflows.execute(product="p", env="dev", tag="import",
                                          input={"file": "b.csv"}, workflow_id="imp-2")
        assert r.status == "running"
    # The first process is gone; a second one (same definitions) answers from the store.
    second_runs: list[str] = []
    second = Ductwork(store=url)
    define(second, second_runs)
    async with second:
        assert await second.workflows.query("imp-2", "progress") == {"done": ["parse"],
                                                                     "pct": 50}
        assert second_runs == []
        assert (await second.workflows.status("imp-2"))["status"] == "waiting"


async def test_unknown_query_and_failing_queries_are_clear_errors(dw: Ductwork) -> None:
    define(dw, [])
    await dw.workflows.execute(product="p", env="dev", tag="import", input={"file": "c"},
                               workflow_id="imp-3", timeout="1ms")
    with pytest.raises(ConfigurationError, match="did you mean 'progress'"):
        await dw.workflows.query("imp-3", "progres")
    with pytest.raises(ConfigurationError, match=r"No workflow run with id 'imp-x'.*imp-3"):
        await dw.workflows.query("imp-x", "progress")
    with pytest.raises(DuctworkError, match="query 'broken' of run imp-3 failed: KeyError"):
        await dw.workflows.query("imp-3", "broken")
    with pytest.raises(ConfigurationError, match=r"queries are read-only: ctx\.set_state"):
        await dw.workflows.query("imp-3", "writes")
    with pytest.raises(SerializationError, match="query 'unstorable'"):
        await dw.workflows.query("imp-3", "unstorable")


async def test_workflow_without_queries_says_how_to_declare_them(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="plain")
    async def plain(ctx: Any) -> Any:
        return 1

    r = await dw.workflows.execute(product="p", env="dev", tag="plain")
    with pytest.raises(ConfigurationError, match=r"declares none: define\(\.\.\., queries="):
        await dw.workflows.query(r.workflow_id, "status")
