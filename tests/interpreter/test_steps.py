"""Step semantics: options, retries, timeouts, commit-before-continue, codec, idempotency."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import itertools
import time
import uuid
from typing import Any

import pydantic
import pytest

from ductwork import ConfigurationError, Ductwork, DuplicateWorkflowError
from ductwork.interpreter import codec


async def test_retries_wait_retry_delay_and_record_attempts(dw: Ductwork) -> None:
    seen: list[float] = []

    def flaky() -> str:
        seen.append(time.monotonic())
        if len(seen) < 3:
            raise ConnectionError("try again")
        return "ok"

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("flaky", flaky, retries=2, retry_delay="20ms")

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "completed" and r.output == "ok"
    assert len(seen) == 3
    assert all(b - a >= 0.019 for a, b in itertools.pairwise(seen))
    (step,) = await dw.store.load_steps(r.workflow_id)
    assert step.attempts == 3
    kinds = [e["type"] for e in await dw.workflows.history(r.workflow_id)]
    assert kinds.count("step_retried") == 2


async def test_exhausted_retries_fail_with_attempt_count(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("x", lambda: 1 / 0, None, {"retries": 1, "retry_delay": 1})

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.error == "Step 'x' failed after 2 attempts: ZeroDivisionError: division by zero"


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_step_timeout(dw: Ductwork, kind: str) -> None:
    async def slow_async() -> None:
        await asyncio.sleep(5)

    def slow_sync() -> None:
        time.sleep(0.3)

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("slow", slow_async if kind == "async" else slow_sync,
                              timeout="50ms")

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed"
    assert r.error == "Step 'slow' failed: timed out after 50ms"


async def test_result_is_committed_before_the_handler_continues(dw: Ductwork) -> None:
    seen: dict[str, Any] = {}

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("first", lambda: {"v": 1})
        rows = await dw.store.load_steps(ctx.workflow_id)
        seen["rows"] = [(r.tag, r.status, codec.loads(r.result)) for r in rows]

    await dw.workflows.execute(product="p", env="dev", tag="t")
    assert seen["rows"] == [("first", "completed", {"v": 1})]


class Money(pydantic.BaseModel):
    amount: decimal.Decimal
    currency: str


async def test_codec_round_trips_rich_types(dw: Ductwork) -> None:
    value = {"when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "day": dt.date(2026, 1, 2),
             "price": decimal.Decimal("9.99"), "id": uuid.UUID(int=7), "raw": b"\x00\xff"}

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("rich", lambda: value)
        return await ctx.step("model",
                              lambda: Money(amount=decimal.Decimal("1.50"), currency="EUR"))

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.output == {"amount": "1.50", "currency": "EUR"}
    rows = {s.tag: s for s in await dw.store.load_steps(r.workflow_id)}
    assert codec.loads(rows["rich"].result) == value


async def test_non_json_result_is_a_clear_error_naming_the_step(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("make-socket", lambda: object(), retries=3)

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed" and r.failed_step == "make-socket"
    assert r.error is not None
    assert r.error.startswith("Step 'make-socket' failed: Step 'make-socket' returned a value "
                              "that cannot be stored: result: object of type object is not JSON")
    (row,) = await dw.store.load_steps(r.workflow_id)
    assert row.attempts == 1  # no pointless retries


async def test_same_workflow_id_returns_the_first_result_without_rerunning(
        dw: Ductwork) -> None:
    runs: list[int] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("count", lambda: runs.append(1) or len(runs))

    a = await dw.workflows.execute(product="p", env="dev", tag="t", input={"x": 1},
                                   workflow_id="order-42")
    b = await dw.workflows.execute(product="p", env="dev", tag="t", input={"x": 1},
                                   workflow_id="order-42")
    assert a.to_dict() == b.to_dict() and runs == [1]
    c, d = await asyncio.gather(
        dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="order-43"),
        dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="order-43"))
    assert c.output == d.output and runs == [1, 1]


async def test_whole_run_timeout_fails_and_compensates(dw: Ductwork) -> None:
    undone: list[Any] = []

    async def handler(ctx: Any) -> None:
        await ctx.step("a", lambda: 1, lambda r: undone.append(r))
        await ctx.step("wait", lambda: asyncio.sleep(5))

    dw.workflows.define(product="p", tag="t", handler=handler, options={"timeout": "100ms"})
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back" and undone == [1]
    assert r.error == "Workflow timed out after 0.1s (while running step 'wait')"


async def test_state_checkpoint_and_logs_are_stored_with_the_run(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.set_state("stage", "started")
        await ctx.checkpoint("validated", {"ok": True})
        ctx.log.info("hello", {"n": 1})
        ctx.log.warn("careful")
        await ctx.step("s", lambda: 1)
        return [await ctx.get_state("stage"), ctx.checkpoint_name, ctx.checkpoint_data,
                dict(ctx.state), ctx.steps["s"], ctx.completed_steps, ctx.workflow_tag, ctx.env,
                ctx.product, ctx.default(None, 5), ctx.transform.upper("a")]

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.output == ["started", "validated", {"ok": True}, {"stage": "started"}, 1, ["s"],
                        "t", "dev", "p", 5, "A"]
    status = await dw.workflows.status(r.workflow_id)
    assert status["state"] == {"stage": "started"} and status["status"] == "completed"
    logs = await dw.workflows.logs(r.workflow_id)
    assert [(lg["level"], lg["message"], lg["data"]) for lg in logs] == [
        ("info", "hello", {"n": 1}), ("warn", "careful", None)]
    assert "checkpoint_created" in [e["type"] for e in await dw.workflows.history(r.workflow_id)]


async def test_positional_options_dict_and_keywords_agree(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        a = await ctx.step("a", lambda: 1 / 0, None, {"allow_fail": True})
        b = await ctx.step("b", lambda: 1 / 0, allow_fail=True)
        return [a, b]

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "completed" and r.output == [None, None]


async def test_bad_definitions_and_calls_get_clear_errors(dw: Ductwork) -> None:
    dw.workflows.define(product="p", tag="t", handler=lambda ctx: None)
    with pytest.raises(DuplicateWorkflowError, match="already defined"):
        dw.workflows.define(product="p", tag="t", handler=lambda ctx: None)
    with pytest.raises(ConfigurationError, match="handler must be a function"):
        dw.workflows.define(product="p", tag="u", handler=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="input cannot be stored"):
        await dw.workflows.execute(product="p", env="dev", tag="t", input={"x": object()})

    @dw.workflows.workflow(product="p", tag="bad-step")
    async def wf(ctx: Any) -> Any:
        await ctx.step("s", "not callable")

    r = await dw.workflows.execute(product="p", env="dev", tag="bad-step")
    assert r.status == "failed"
    assert r.error == "ctx.step('s'): the second argument must be a function (sync or async), " \
                      "got str"


async def test_a_forgotten_await_fails_the_run_and_compensates(dw: Ductwork) -> None:
    undone: list[Any] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: "r-1", rollback=undone.append)
        ctx.step("charge", lambda: "ch-1")  # no await: the step never runs
        ctx.set_state("charged", True)
        return {"ok": True}

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back" and undone == ["r-1"]
    assert r.error == ("the workflow returned without awaiting ctx.step('charge'), "
                       "ctx.set_state('charged'), so it never ran: write `await ctx.step(...)`")
    assert [s.tag for s in await dw.store.load_steps(r.workflow_id)] == ["reserve"]


async def test_a_plain_function_handler_that_asks_for_a_step_is_told_to_be_async(
        dw: Ductwork) -> None:
    def wf(ctx: Any) -> Any:
        ctx.sleep("1s")
        return 1

    dw.workflows.define(product="p", tag="t", handler=wf)
    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed" and r.error == (
        "the workflow returned without awaiting ctx.sleep('1s'), so it never ran: make the "
        "handler an `async def` and write `await ctx.sleep(...)`")


async def test_steps_gathered_or_returned_unawaited_by_a_plain_handler_still_run(
        dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        pending = [ctx.step(f"s{i}", lambda i=i: i) for i in range(40)]
        return sum(await asyncio.gather(*pending))

    dw.workflows.define(product="p", tag="u", handler=lambda ctx: ctx.step("s", lambda: 7))
    assert (await dw.workflows.execute(product="p", env="dev", tag="t")).output == 780
    assert (await dw.workflows.execute(product="p", env="dev", tag="u")).output == 7


async def test_a_called_function_passed_to_a_step_is_explained(dw: Ductwork) -> None:
    async def charge() -> dict[str, str]:
        return {"id": "ch_1"}

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("charge", charge())  # the coroutine, not the function

    @dw.workflows.workflow(product="p", tag="u")
    async def wf2(ctx: Any) -> Any:
        await ctx.step("charge", {"id": "ch_1"})  # the result, not the function

    r = await dw.workflows.execute(product="p", env="dev", tag="t")  # and no RuntimeWarning
    assert r.status == "failed" and r.error is not None
    assert "got coroutine: test_a_called_function_passed_to_a_step_is_explained.<locals>." \
           "charge(...) was called, not passed; pass the function itself" in r.error
    r = await dw.workflows.execute(product="p", env="dev", tag="u")
    assert r.error is not None and "got dict: was the function called before the step" in r.error


async def test_a_ctx_kept_past_its_run_is_refused_clearly(dw: Ductwork) -> None:
    kept: list[Any] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        kept.append(ctx)
        return 1

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    with pytest.raises(ConfigurationError, match=(
            rf"ctx.step\('late'\) was called after run {r.workflow_id} ended \(completed\): a ctx "
            "works only while its workflow's handler runs")):
        await kept[0].step("late", lambda: 1)
    assert [s.tag for s in await dw.store.load_steps(r.workflow_id)] == []


async def test_an_input_passed_as_json_text_is_refused(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return ctx.input

    with pytest.raises(ConfigurationError, match=r"execute\(p/t\): the input is a str holding a "
                       r"JSON object; pass the object itself: input=json.loads\(text\)"):
        await dw.workflows.execute("p", "dev", "t", '{"order_id": 7}')
    assert (await dw.workflows.list())["runs"] == []
    done = await dw.workflows.execute("p", "dev", "t", "{not json")  # text is a value too
    assert done.output == "{not json"


async def test_unknown_step_option_is_rejected(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("s", lambda: 1, None, {"allowfail": True})

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.error is not None and "unknown option(s) ['allowfail']" in r.error


async def test_options_given_where_the_rollback_goes_are_explained(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("s", lambda: 1, {"allow_fail": True})

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.error == ("ctx.step('s'): rollback must be a function or None; the options dict "
                       "goes fourth: ctx.step('s', fn, None, {'allow_fail': True}) (or keywords: "
                       "allow_fail=True ...)")


@pytest.mark.parametrize("call,said", [
    (lambda ctx: ctx.foreach([1, 2], lambda: 1),
     "ctx.foreach: fn is called with each item (and its index when it takes two arguments)"),
    (lambda ctx: ctx.foreach([1, 2], [1]), "ctx.foreach: fn must be a function of the item, "
                                          "got list"),
    (lambda ctx: ctx.parallel([ctx.step("a", lambda: 1), 2]),
     "ctx.parallel: branch 1 is int, not a function or an awaitable"),
])
async def test_fan_out_arguments_are_checked(dw: Ductwork, call: Any, said: str) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await call(ctx)

    r = await dw.workflows.execute(product="p", env="dev", tag="t")  # and no RuntimeWarning
    assert r.status == "failed" and r.error is not None and r.error.startswith(said)


async def test_a_tag_spelled_like_an_occurrence_is_refused(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("charge", lambda: 1)
        await ctx.step("charge", lambda: 2)       # recorded as charge#2
        await ctx.step("charge#2", lambda: 3)     # was a store conflict: an engine fault

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed" and r.error is not None
    assert r.error.startswith("ctx.step('charge#2'): a tag cannot contain '#' or '/'")
    assert len(await dw.store.load_steps(r.workflow_id)) == 2  # charge, charge#2


async def test_a_step_timeout_of_zero_is_refused(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("s", lambda: 1, timeout=0)

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.error == ("ctx.step('s'): timeout must be more than 0 (0 fails every attempt at "
                       "once); leave it out for no limit")


async def test_execute_timeout_returns_running_then_result_waits(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("slow", lambda: asyncio.sleep(0.2))
        return "done"

    r = await dw.workflows.execute(product="p", env="dev", tag="t", timeout="20ms")
    assert r.status == "running"
    final = await dw.workflows.result(r.workflow_id, timeout="5s")
    assert final.status == "completed" and final.output == "done"
