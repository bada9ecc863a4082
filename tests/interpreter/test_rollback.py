"""Saga rollback: the four strategies, ordering, and failing compensations."""

from __future__ import annotations

from typing import Any

import pytest

from ductwork import Ductwork


def saga(dw: Ductwork, tag: str, calls: list[Any], *, strategy: str | None = None,
         checkpoint_after: int | None = None, critical: tuple[str, ...] = (),
         failing_rollback: str | None = None, fail: bool = True) -> None:
    options = {"rollback_strategy": strategy} if strategy else None

    async def handler(ctx: Any) -> Any:
        for i, name in enumerate(["a", "b", "c"]):
            def rb(result: Any, name: str = name) -> None:
                if name == failing_rollback:
                    raise RuntimeError(f"cannot undo {name}")
                calls.append((name, result))

            await ctx.step(name, lambda name=name: {"made": name}, rb,
                           critical=name in critical)
            if checkpoint_after == i:
                await ctx.checkpoint("after-" + name, {"n": i})
        if fail:
            await ctx.step("boom", lambda: (_ for _ in ()).throw(ValueError("boom")))
        return "ok"

    dw.workflows.define(product="p", tag=tag, handler=handler, options=options)


async def test_reverse_all_rolls_back_newest_first_with_original_results(dw: Ductwork) -> None:
    calls: list[Any] = []
    saga(dw, "t", calls)
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back"
    assert calls == [("c", {"made": "c"}), ("b", {"made": "b"}), ("a", {"made": "a"})]
    steps = {s.tag: s for s in await dw.store.load_steps(r.workflow_id)}
    assert all(steps[t].rollback_status == "rolled_back" for t in "abc")
    types = [e["type"] for e in await dw.workflows.history(r.workflow_id)]
    assert types.count("step_rolled_back") == 3 and types[-1] == "workflow_rolled_back"


async def test_critical_only_rolls_back_only_critical_steps(dw: Ductwork) -> None:
    calls: list[Any] = []
    saga(dw, "t", calls, strategy="critical_only", critical=("a", "c"))
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back"
    assert [c[0] for c in calls] == ["c", "a"]


async def test_to_checkpoint_rolls_back_only_steps_after_the_last_checkpoint(
        dw: Ductwork) -> None:
    calls: list[Any] = []
    saga(dw, "t", calls, strategy="to_checkpoint", checkpoint_after=0)
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back"
    assert [c[0] for c in calls] == ["c", "b"]


async def test_strategy_none_does_not_roll_back(dw: Ductwork) -> None:
    calls: list[Any] = []
    saga(dw, "t", calls, strategy="none")
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed" and calls == []
    assert r.failed_step == "boom"


async def test_trigger_rollback_runs_compensation_on_demand(dw: Ductwork) -> None:
    calls: list[Any] = []

    async def handler(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: {"seat": 7}, lambda r: calls.append(r))
        outcome = await ctx.trigger_rollback("customer changed their mind")
        return outcome

    dw.workflows.define(product="p", tag="t", handler=handler,
                        options={"rollback_strategy": "none"})
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert calls == [{"seat": 7}]
    assert r.output["success"] is True
    assert r.output["rolled_back_steps"] == ["reserve"]
    assert r.output["reason"] == "customer changed their mind"
    assert r.status == "rolled_back"


async def test_a_failing_rollback_does_not_stop_the_others_and_is_reported(
        dw: Ductwork) -> None:
    calls: list[Any] = []
    saga(dw, "t", calls, failing_rollback="b")
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed"
    assert [c[0] for c in calls] == ["c", "a"]
    assert r.error is not None and "rollback failed for 'b'" in r.error
    assert "cannot undo b" in r.error
    assert r.rollback_result is not None and r.rollback_result["failed_steps"] == ["b"]


async def test_nothing_to_roll_back_means_failed(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> None:
        await ctx.step("a", lambda: 1)
        raise KeyError("missing")

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed"


async def test_an_exception_outside_any_step_rolls_back_the_same_way(dw: Ductwork) -> None:
    calls: list[Any] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> None:
        await ctx.step("a", lambda: {"x": 1}, lambda r: calls.append(r))
        raise LookupError("no such customer")

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back"
    assert r.failed_step is None
    assert r.error == "LookupError: no such customer"
    assert calls == [{"x": 1}]


@pytest.mark.parametrize("strategy", ["reverse_al", "all"])
async def test_unknown_strategy_is_a_clear_error(dw: Ductwork, strategy: str) -> None:
    with pytest.raises(Exception, match="rollback_strategy") as ei:
        dw.workflows.define(product="p", tag="t", handler=lambda ctx: None,
                            options={"rollback_strategy": strategy})
    if strategy == "reverse_al":
        assert "did you mean 'reverse_all'" in str(ei.value)
