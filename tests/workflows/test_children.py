"""Child workflows: ctx.workflow, failures, retries, timeouts, parent-close policies, durability."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ductwork import ChildWorkflowError, Ductwork
from ductwork.errors import ConfigurationError

from .helpers import eventually, run_worker


def define_family(dw: Ductwork, ran: list[str]) -> None:
    @dw.workflows.workflow(product="p", tag="double")
    async def double(ctx: Any) -> Any:
        n = await ctx.step("double", lambda: ran.append("double") or ctx.input["n"] * 2)
        return {"n": n}

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        await ctx.step("before", lambda: ran.append("before") or 1)
        out = await ctx.workflow("doubler", "double", {"n": ctx.input["n"]})
        await ctx.step("after", lambda: ran.append("after") or 2)
        return out["n"]


async def test_child_output_comes_back_and_child_is_its_own_run(dw: Ductwork) -> None:
    ran: list[str] = []
    define_family(dw, ran)
    r = await dw.workflows.execute(product="p", env="dev", tag="parent", input={"n": 21},
                                   workflow_id="fam")
    assert r.status == "completed" and r.output == 42
    assert ran == ["before", "double", "after"]
    child = await dw.workflows.status("fam:doubler")
    assert child["parent_id"] == "fam" and child["status"] == "completed"
    assert child["workflow_tag"] == "double" and child["completed_steps"] == ["double"]
    kids, _ = await dw.store.list_runs(parent_id="fam")
    assert [k.workflow_id for k in kids] == ["fam:doubler"]
    types = [e["type"] for e in await dw.workflows.history("fam")]
    assert "child_workflow_started" in types and "child_workflow_completed" in types
    steps = {s.step_key: s for s in await dw.store.load_steps("fam")}
    assert steps["@child:doubler"].kind == "child" and steps["@child:doubler"].status == "completed"


async def test_replaying_a_parent_does_not_start_the_child_again(dw: Ductwork) -> None:
    ran: list[str] = []
    define_family(dw, ran)
    await dw.workflows.execute(product="p", env="dev", tag="parent", input={"n": 1},
                               workflow_id="fam")
    again = await dw.workflows.execute(product="p", env="dev", tag="parent", input={"n": 1},
                                       workflow_id="fam")
    assert again.output == 2 and ran.count("double") == 1


async def test_child_failure_is_a_catchable_error_naming_the_child(dw: Ductwork) -> None:
    undone: list[str] = []

    @dw.workflows.workflow(product="p", tag="charge")
    async def charge(ctx: Any) -> Any:
        await ctx.step("hold", lambda: "h1", rollback=lambda r: undone.append(r))
        await ctx.step("capture", lambda: 1 / 0)

    @dw.workflows.workflow(product="p", tag="order")
    async def order(ctx: Any) -> Any:
        try:
            await ctx.workflow("pay", "charge", {})
        except ChildWorkflowError as e:
            return {"child": e.workflow_id, "status": e.child_status, "step": e.step,
                    "error": e.child_error, "message": str(e)}
        return "paid"

    r = await dw.workflows.execute(product="p", env="dev", tag="order", workflow_id="o1")
    assert r.status == "completed"
    assert r.output["child"] == "o1:pay" and r.output["status"] == "rolled_back"
    assert r.output["step"] == "pay"
    assert "ZeroDivisionError" in r.output["error"]
    assert "Child workflow 'pay' (p/charge, run o1:pay) was rolled back" in r.output["message"]
    assert undone == ["h1"]  # the child compensated itself


async def test_uncaught_child_failure_rolls_the_parent_back(dw: Ductwork) -> None:
    undone: list[str] = []

    @dw.workflows.workflow(product="p", tag="broken")
    async def broken(ctx: Any) -> Any:
        raise RuntimeError("no stock")

    @dw.workflows.workflow(product="p", tag="order")
    async def order(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: "r1", rollback=lambda r: undone.append(r))
        await ctx.workflow("ship", "broken", {})

    r = await dw.workflows.execute(product="p", env="dev", tag="order")
    assert r.status == "rolled_back" and r.failed_step == "ship"
    assert r.error is not None and "RuntimeError: no stock" in r.error
    assert undone == ["r1"]


async def test_retries_start_a_new_child_run_per_attempt(dw: Ductwork) -> None:
    tries: list[int] = []

    @dw.workflows.workflow(product="p", tag="flaky")
    async def flaky(ctx: Any) -> Any:
        def once() -> int:
            tries.append(1)
            if len(tries) < 3:
                raise ConnectionError("down")
            return len(tries)

        return await ctx.step("call", once)

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.workflow("f", "flaky", {}, retries=2)

    r = await dw.workflows.execute(product="p", env="dev", tag="parent", workflow_id="par")
    assert r.status == "completed" and r.output == 3
    statuses = {wid: (await dw.workflows.status(wid))["status"]
                for wid in ("par:f", "par:f#2", "par:f#3")}
    assert statuses == {"par:f": "failed", "par:f#2": "failed", "par:f#3": "completed"}
    (child_row,) = [s for s in await dw.store.load_steps("par") if s.kind == "child"]
    assert child_row.attempts == 3


async def test_retries_exhausted_raise_with_the_attempt_count(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="bad")
    async def bad(ctx: Any) -> Any:
        await ctx.step("x", lambda: 1 / 0)

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        await ctx.workflow("b", "bad", {}, retries=1)

    r = await dw.workflows.execute(product="p", env="dev", tag="parent")
    assert r.status == "failed" and r.failed_step == "b"
    assert r.error is not None and "failed after 2 attempts" in r.error


async def test_a_long_child_suspends_the_parent_which_resumes_with_its_output(
        store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="50ms")

    @dw.workflows.workflow(product="p", tag="slow")
    async def slow(ctx: Any) -> Any:
        await ctx.sleep("300ms")
        return "slept"

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.workflow("s", "slow", {})

    async with dw:
        r = await dw.workflows.execute(product="p", env="dev", tag="parent", workflow_id="w")
        assert r.status == "running"
        assert (await dw.workflows.status("w"))["status"] == "waiting"
        assert (await dw.workflows.status("w:s"))["status"] == "sleeping"
        # No worker: result() resumes the parent when its child is due, which drives the child.
        final = await dw.workflows.result("w", timeout="10s")
    assert final.status == "completed" and final.output == "slept"


async def test_a_child_finishing_while_the_parents_process_is_down(store_url: str) -> None:
    ran: list[str] = []

    def build() -> Ductwork:
        dw = Ductwork(store=store_url, inline_wait="50ms")

        @dw.workflows.workflow(product="p", tag="approval")
        async def approval(ctx: Any) -> Any:
            return await ctx.wait_for_signal("approve")

        @dw.workflows.workflow(product="p", tag="parent")
        async def parent(ctx: Any) -> Any:
            await ctx.step("before", lambda: ran.append("before") or 1)
            decision = await ctx.workflow("ask", "approval", {})
            await ctx.step("after", lambda: ran.append("after") or 2)
            return decision

        return dw

    first = build()
    async with first:
        r = await first.workflows.execute(product="p", env="dev", tag="parent", workflow_id="w")
        assert r.status == "running"
        await eventually(None, lambda: _status_is(first, "w:ask", "waiting"))
    # The parent's process is gone. The child gets its signal and a worker finishes it; the
    # child's end wakes the parent, which the same worker resumes.
    second = build()
    async with second:
        await second.workflows.signal("w:ask", "approve", {"by": "ann"})
        async with run_worker(second):
            final = await second.workflows.result("w", timeout="10s")
    assert final.status == "completed" and final.output == {"by": "ann"}
    assert ran == ["before", "after"]


async def test_a_child_finishing_inside_recover(store_url: str) -> None:
    def build() -> Ductwork:
        dw = Ductwork(store=store_url, inline_wait="30ms")

        @dw.workflows.workflow(product="p", tag="nap")
        async def nap(ctx: Any) -> Any:
            await ctx.sleep("200ms")
            return "rested"

        @dw.workflows.workflow(product="p", tag="parent")
        async def parent(ctx: Any) -> Any:
            return await ctx.workflow("n", "nap", {})

        return dw

    first = build()
    async with first:
        await first.workflows.execute(product="p", env="dev", tag="parent", workflow_id="w")
    second = build()
    async with second:
        results: list[Any] = []
        await eventually(lambda: _recover_into(second, results), lambda: any(
            r.workflow_id == "w" and r.status == "completed" for r in results))
    (final,) = [r for r in results if r.workflow_id == "w" and r.status == "completed"]
    assert final.output == "rested"


async def _status_is(dw: Ductwork, wid: str, status: str) -> bool:
    return bool((await dw.workflows.status(wid))["status"] == status)


async def _recover_into(dw: Ductwork, into: list[Any]) -> None:
    into.extend(await dw.workflows.recover())


@pytest.mark.parametrize("policy", ["terminate", "request_cancel", "abandon"])
async def test_parent_close_policies(store_url: str, policy: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="30ms")
    undone: list[str] = []

    @dw.workflows.workflow(product="p", tag="kid")
    async def kid(ctx: Any) -> Any:
        await ctx.step("book", lambda: "b1", rollback=lambda r: undone.append(r))
        return await ctx.wait_for_signal("go")

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.workflow("k", "kid", {}, parent_close_policy=policy)

    async with dw:
        r = await dw.workflows.execute(product="p", env="dev", tag="parent", workflow_id="w")
        assert r.status == "running"
        await eventually(None, lambda: _status_is(dw, "w:k", "waiting"))
        out = await dw.workflows.cancel("w", "user gave up")
        assert out["cancelled"] is True and out["status"] == "cancelled"
        child = await dw.workflows.status("w:k")
        if policy == "terminate":
            assert child["status"] == "cancelled" and "terminated" in child["error"]
            assert undone == []  # terminate: no compensation
        elif policy == "request_cancel":
            final = await dw.workflows.result("w:k", timeout="5s")
            assert final.status == "cancelled" and undone == ["b1"]
        else:
            assert child["status"] == "waiting"
            await dw.workflows.signal("w:k", "go", "free")
            final = await dw.workflows.result("w:k", timeout="5s")
            assert final.status == "completed" and final.output == "free"


async def test_child_timeout_cancels_the_child_and_raises_in_the_parent(store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="5s")
    undone: list[str] = []

    @dw.workflows.workflow(product="p", tag="kid")
    async def kid(ctx: Any) -> Any:
        await ctx.step("book", lambda: "b1", rollback=lambda r: undone.append(r))
        return await ctx.wait_for_signal("never")

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        try:
            return await ctx.workflow("k", "kid", {}, timeout="200ms")
        except ChildWorkflowError as e:
            return {"status": e.child_status, "message": str(e)}

    async with dw:
        r = await dw.workflows.execute(product="p", env="dev", tag="parent")
    assert r.status == "completed"
    assert r.output["status"] == "timed_out"
    assert "timed out" in r.output["message"]
    assert undone == ["b1"]


async def test_idempotency_key_shares_one_child_run_between_parents(dw: Ductwork) -> None:
    ran: list[str] = []

    @dw.workflows.workflow(product="p", tag="send")
    async def send(ctx: Any) -> Any:
        return await ctx.step("mail", lambda: ran.append("mail") or "sent")

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.workflow("welcome", "send", {}, idempotency_key="user-7")

    a = await dw.workflows.execute(product="p", env="dev", tag="parent")
    b = await dw.workflows.execute(product="p", env="dev", tag="parent")
    assert a.output == b.output == "sent" and ran == ["mail"]
    assert (await dw.workflows.status("p:send:user-7"))["status"] == "completed"


async def test_children_in_parallel(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="sq")
    async def sq(ctx: Any) -> Any:
        await ctx.sleep("20ms")
        return await ctx.step("sq", lambda: ctx.input["n"] ** 2)

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.foreach([1, 2, 3], lambda n: ctx.workflow(f"sq-{n}", "sq", {"n": n}))

    r = await dw.workflows.execute(product="p", env="dev", tag="parent")
    assert r.status == "completed" and r.output == [1, 4, 9]


async def test_child_options_are_checked(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="kid")
    async def kid(ctx: Any) -> Any:
        return 1

    bad: dict[str, dict[str, Any]] = {
        "policy": {"parent_close_policy": "terminat"},
        "retries": {"retries": -1},
        "missing": {"tag": "nope"},
    }
    for name, kw in bad.items():
        tag = kw.pop("tag", "kid")

        @dw.workflows.workflow(product="p", tag=f"parent-{name}")
        async def parent(ctx: Any, tag: str = tag, kw: dict[str, Any] = kw) -> Any:
            return await ctx.workflow("c", tag, {}, **kw)

    r = await dw.workflows.execute(product="p", env="dev", tag="parent-policy")
    assert r.status == "failed" and "did you mean 'terminate'" in (r.error or "")
    r = await dw.workflows.execute(product="p", env="dev", tag="parent-retries")
    assert r.status == "failed" and "retries must be a whole number" in (r.error or "")
    r = await dw.workflows.execute(product="p", env="dev", tag="parent-missing")
    assert r.status == "failed" and "Workflow not found: p/nope" in (r.error or "")


async def test_a_child_id_taken_by_an_unrelated_run_is_an_error(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="kid")
    async def kid(ctx: Any) -> Any:
        return 1

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.workflow("c", "kid", {})

    await dw.workflows.execute(product="p", env="dev", tag="kid", workflow_id="w:c")
    r = await dw.workflows.execute(product="p", env="dev", tag="parent", workflow_id="w")
    assert r.status == "failed" and "already belongs to another run" in (r.error or "")
    with pytest.raises(ConfigurationError):
        await dw.workflows.status("nope")


async def test_changing_the_child_workflow_under_a_run_is_nondeterminism(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    v1 = Ductwork(store=url, inline_wait="20ms")

    @v1.workflows.workflow(product="p", tag="a")
    async def a(ctx: Any) -> Any:
        return await ctx.wait_for_signal("go")

    @v1.workflows.workflow(product="p", tag="parent")
    async def parent1(ctx: Any) -> Any:
        return await ctx.workflow("c", "a", {})

    async with v1:
        await v1.workflows.execute(product="p", env="dev", tag="parent", workflow_id="w")
        await v1.store.update_run("w", {"wake_at": 0})
    v2 = Ductwork(store=url, inline_wait="20ms")

    @v2.workflows.workflow(product="p", tag="b")
    async def b(ctx: Any) -> Any:
        return 2

    @v2.workflows.workflow(product="p", tag="parent")
    async def parent2(ctx: Any) -> Any:
        return await ctx.workflow("c", "b", {})

    async with v2:
        res = [r for r in await v2.workflows.recover() if r.workflow_id == "w"]
    assert res[0].status == "failed" and "recorded history started p/a" in (res[0].error or "")


async def test_terminate_reaches_grandchildren_and_stops_local_waits(store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="30s")
    undone: list[str] = []

    @dw.workflows.workflow(product="p", tag="leaf")
    async def leaf(ctx: Any) -> Any:
        await ctx.step("hold", lambda: "h", rollback=lambda r: undone.append(r))
        return await ctx.wait_for_signal("go")

    @dw.workflows.workflow(product="p", tag="mid")
    async def mid(ctx: Any) -> Any:
        return await ctx.workflow("leaf", "leaf", {})

    @dw.workflows.workflow(product="p", tag="top")
    async def top(ctx: Any) -> Any:
        return await ctx.workflow("mid", "mid", {})

    async with dw:
        task = asyncio.ensure_future(
            dw.workflows.execute(product="p", env="dev", tag="top", workflow_id="t"))
        await eventually(None, lambda: _has_steps(dw, "t:mid:leaf"))
        out = await dw.workflows.cancel("t", "shutting the shop")
        assert out["status"] == "cancelled"
        assert (await task).status == "cancelled"
        for wid in ("t:mid", "t:mid:leaf"):
            st = await dw.workflows.status(wid)
            assert st["status"] == "cancelled" and "terminated" in st["error"]
        # The leaf was waiting inline in this process: it stopped without compensating.
        leaf_result = await dw.workflows.result("t:mid:leaf", timeout="5s")
        assert leaf_result.status == "cancelled" and undone == []
        engine = await dw._engine()
        await eventually(None, lambda: not engine.tasks)  # nothing keeps running here


async def _has_steps(dw: Ductwork, wid: str) -> bool:
    return bool(await dw.store.get_run(wid)) and bool(await dw.store.load_steps(wid))
