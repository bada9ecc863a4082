"""A pydantic model as a workflow's input_schema: it checks and converts the input (defaults,
coercion), the converted input is what is stored and replayed, and a bad input is refused
before any run exists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from ductwork import Ductwork
from ductwork.errors import ConfigurationError

from .helpers import run_worker


class Address(BaseModel):
    city: str
    country: str = "FR"


class Signup(BaseModel):
    email: str
    seats: int = Field(1, ge=1)
    plan: str = "free"
    address: Address | None = None


def define(dw: Ductwork, seen: list[Any]) -> None:
    @dw.workflows.workflow(product="p", tag="signup", input_schema=Signup)
    async def signup(ctx: Any) -> Any:
        await ctx.step("read", lambda: seen.append(ctx.input.to_dict()))
        return {"seats": ctx.input.seats, "city": ctx.input.address.city}


async def test_the_model_converts_fills_and_the_stored_input_is_the_converted_one(
        dw: Ductwork) -> None:
    seen: list[Any] = []
    define(dw, seen)
    res = await dw.workflows.execute("p", "dev", "signup", {
        "email": "a@x", "seats": "3", "address": {"city": "Lyon"}})
    assert res.status == "completed", res.error
    assert res.output == {"seats": 3, "city": "Lyon"}
    want = {"email": "a@x", "seats": 3, "plan": "free",
            "address": {"city": "Lyon", "country": "FR"}}
    assert seen == [want]
    run = await dw.store.get_run(res.workflow_id)
    assert run is not None and json.loads(run.input or "null") == want
    # The definition shows the model's JSON Schema (the API and UI read it there).
    schema = dw.workflows.get("p", "signup").input_schema
    assert schema is not None and schema["required"] == ["email"]
    assert schema["properties"]["seats"]["minimum"] == 1


async def test_a_bad_input_is_refused_with_each_field_and_no_run_is_made(dw: Ductwork) -> None:
    define(dw, [])
    with pytest.raises(ConfigurationError) as err:
        await dw.workflows.execute("p", "dev", "signup", {"seats": 0, "address": {}},
                                   workflow_id="bad-1")
    text = str(err.value)
    assert text.startswith("execute(p/signup): the input does not match the workflow's "
                           "input model Signup:")
    assert "  - email: Field required" in text
    assert "  - seats: Input should be greater than or equal to 1" in text
    assert "  - address/city: Field required" in text
    assert await dw.store.get_run("bad-1") is None
    with pytest.raises(ConfigurationError, match="input model Signup"):
        await dw.workflows.dispatch("p", "dev", "signup", "not an object")


async def test_dispatched_runs_store_the_converted_input(dw: Ductwork) -> None:
    seen: list[Any] = []
    define(dw, seen)
    job = await dw.workflows.dispatch("p", "dev", "signup",
                                      {"email": "b@x", "address": {"city": "Oslo"}})
    async with run_worker(dw):
        res = await dw.workflows.result(job["job_id"], timeout="30s")
    assert res.status == "completed" and res.output == {"seats": 1, "city": "Oslo"}
    assert seen == [{"email": "b@x", "seats": 1, "plan": "free",
                     "address": {"city": "Oslo", "country": "FR"}}]


def test_something_else_than_a_schema_or_a_model_is_refused_at_define(dw: Ductwork) -> None:
    class NotAModel:
        pass

    with pytest.raises(ConfigurationError, match=r"input_schema must be a JSON Schema .* or a "
                       r"pydantic model class, got"):
        dw.workflows.define(product="p", tag="x", handler=lambda ctx: None,
                            input_schema=NotAModel)


class Decision(BaseModel):
    approved: bool
    level: int = Field(1, ge=1)


def define_approval(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="approval", input_schema=Signup,
                           signals={"decide": Decision, "note": None})
    async def approval(ctx: Any) -> Any:
        return await ctx.wait_for_signal("decide", timeout="10s")


async def test_a_signal_payload_model_converts_and_refuses(dw: Ductwork) -> None:
    define_approval(dw)
    assert dw.workflows.get("p", "approval").signals["decide"]["required"] == ["approved"]
    job = await dw.workflows.dispatch("p", "dev", "approval", {"email": "c@x"})
    wid = job["job_id"]
    with pytest.raises(ConfigurationError) as err:
        await dw.workflows.signal(wid, "decide", {"level": 0})
    assert str(err.value).startswith("signal 'decide' payload does not match its declared "
                                     "model Decision:\n  - approved: Field required")
    assert await dw.store.find_signal(wid, ["decide"]) is None  # nothing half-sent
    await dw.workflows.signal(wid, "decide", {"approved": "yes"})
    async with run_worker(dw):
        res = await dw.workflows.result(wid, timeout="30s")
    assert res.status == "completed" and res.output == {"approved": True, "level": 1}


async def test_the_test_harness_keeps_the_models_of_an_app_s_workflows() -> None:
    from ductwork.testing import WorkflowTestEnv

    app = Ductwork(store="sqlite://:memory:")
    define_approval(app)
    async with WorkflowTestEnv(app=app) as env:
        env.queue_signal("decide", {"approved": 1, "level": "3"})
        run = await env.execute("p", "approval", input={"email": "d@x", "seats": "2"})
        assert run.status == "completed", run.error
        assert run.output == {"approved": True, "level": 3}
        stored = await env.dw.store.get_run(run.workflow_id)
        assert stored is not None and json.loads(stored.input or "null")["seats"] == 2
        with pytest.raises(ConfigurationError, match="input model Signup"):
            await env.execute("p", "approval", input={"seats": 0})
    await app.aclose()
