"""Input schema defaults: filled in when a run is created, however it is started, and stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import ConfigurationError

from .helpers import eventually, run_worker

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["email"],
    "properties": {
        "email": {"type": "string"},
        "plan": {"type": "string", "enum": ["free", "pro"], "default": "free"},
        "seats": {"type": "integer", "default": 1},
        "note": {"type": ["string", "null"], "default": "none"},
        "notify": {
            "type": "object", "default": {},
            "properties": {"channel": {"type": "string", "default": "email"},
                           "tries": {"type": "integer", "default": 3}},
        },
        "address": {  # no default of its own: filled inside only when given
            "type": "object",
            "properties": {"country": {"type": "string", "default": "FR"},
                           "city": {"type": "string"}},
        },
    },
}


def define_echo(dw: Ductwork, seen: list[Any], schema: dict[str, Any] = SCHEMA,
                tag: str = "signup") -> None:
    @dw.workflows.workflow(product="p", tag=tag, input_schema=schema)
    async def signup(ctx: Any) -> Any:
        await ctx.step("read", lambda: seen.append(ctx.input.to_dict()))
        return ctx.input.to_dict()


async def _stored(dw: Ductwork, wid: str) -> Any:
    run = await dw.store.get_run(wid)
    assert run is not None
    return json.loads(run.input or "null")


FILLED = {"email": "a@x", "plan": "free", "seats": 1, "note": "none",
          "notify": {"channel": "email", "tries": 3}}


async def test_execute_fills_left_out_properties_and_stores_the_filled_input(
        dw: Ductwork) -> None:
    seen: list[Any] = []
    define_echo(dw, seen)
    res = await dw.workflows.execute("p", "dev", "signup", {"email": "a@x"})
    assert res.status == "completed", res.error
    assert res.output == FILLED and seen == [FILLED]
    assert await _stored(dw, res.workflow_id) == FILLED


async def test_given_values_win_nested_objects_are_filled_and_null_is_a_value(
        dw: Ductwork) -> None:
    seen: list[Any] = []
    define_echo(dw, seen)
    given = {"email": "a@x", "plan": "pro", "seats": 0, "note": None,
             "notify": {"tries": 5}, "address": {"city": "Lyon"}}
    res = await dw.workflows.execute("p", "dev", "signup", given)
    assert res.status == "completed", res.error
    assert res.output == {"email": "a@x", "plan": "pro", "seats": 0, "note": None,
                          "notify": {"channel": "email", "tries": 5},
                          "address": {"city": "Lyon", "country": "FR"}}
    assert given["notify"] == {"tries": 5}  # the caller's value is never changed in place


async def test_an_explicit_null_is_checked_not_replaced(dw: Ductwork) -> None:
    define_echo(dw, [])
    with pytest.raises(ConfigurationError, match=r"seats: None is not of type 'integer'"):
        await dw.workflows.execute("p", "dev", "signup", {"email": "a@x", "seats": None})


async def test_a_replay_reads_the_stored_input_not_todays_defaults(store_url: str) -> None:
    first = Ductwork(store=store_url)
    try:
        define_echo(first, [])
        res = await first.workflows.execute("p", "dev", "signup", {"email": "a@x"})
    finally:
        await first.aclose()
    # The deployed schema changes its default; the old run's replay keeps what it read.
    changed = json.loads(json.dumps(SCHEMA))
    changed["properties"]["plan"]["default"] = "pro"
    seen: list[Any] = []
    second = Ductwork(store=store_url)
    try:
        define_echo(second, seen, changed)
        out = await second.workflows.replay(res.workflow_id)
        assert out["status"] == "completed"
        assert seen == [FILLED]
        fresh = await second.workflows.execute("p", "dev", "signup", {"email": "b@x"})
        assert fresh.output["plan"] == "pro"
    finally:
        await second.aclose()


async def test_dispatch_and_schedules_store_the_filled_input(dw: Ductwork) -> None:
    seen: list[Any] = []
    define_echo(dw, seen)
    job = await dw.workflows.dispatch("p", "dev", "signup", {"email": "a@x"})
    assert await _stored(dw, job["job_id"]) == FILLED  # before any worker read it
    await dw.workflows.dispatch("p", "dev", "signup", {"email": "a@x", "seats": 2},
                                workflow_id="every", schedule={"every": "100ms", "limit": 1})
    async with run_worker(dw):
        res = await dw.workflows.result(job["job_id"], timeout="10s")
        await eventually(None, lambda: len(seen) == 2)
    assert res.output == FILLED
    assert sorted(seen, key=lambda s: s["seats"]) == [FILLED, {**FILLED, "seats": 2}]


async def test_a_child_run_gets_its_own_schemas_defaults(dw: Ductwork) -> None:
    seen: list[Any] = []
    define_echo(dw, seen)

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.workflow("kid", "signup", {"email": "a@x", "seats": 4})

    res = await dw.workflows.execute("p", "dev", "parent")
    assert res.status == "completed", res.error
    assert res.output == {**FILLED, "seats": 4} and seen == [{**FILLED, "seats": 4}]


async def test_restart_with_a_new_input_fills_it_too(dw: Ductwork) -> None:
    define_echo(dw, [])
    res = await dw.workflows.execute("p", "dev", "signup", {"email": "a@x", "plan": "pro"})
    out = await dw.workflows.restart(res.workflow_id, input={"email": "b@x"})
    assert out["status"] == "completed"
    assert await _stored(dw, out["workflow_id"]) == {**FILLED, "email": "b@x"}


async def test_defaults_through_ref_allof_and_array_items(dw: Ductwork) -> None:
    schema = {
        "type": "object",
        "$defs": {"line": {"type": "object",
                           "properties": {"qty": {"type": "integer", "default": 1}}}},
        "allOf": [{"properties": {"currency": {"type": "string", "default": "EUR"}}}],
        "properties": {"lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
                       "first": {"$ref": "#/$defs/line", "default": {}}},
    }
    define_echo(dw, [], schema, tag="order")
    res = await dw.workflows.execute("p", "dev", "order",
                                     {"lines": [{"sku": "a"}, {"sku": "b", "qty": 7}]})
    assert res.status == "completed", res.error
    assert res.output == {"lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 7}],
                          "first": {"qty": 1}, "currency": "EUR"}


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "object", "properties": {"plan": {"enum": ["free", "pro"], "default": "gold"}}},
     r"properties/plan/default 'gold' does not match its own schema: 'gold' is not one of"),
    ({"type": "object", "properties": {"n": {"type": "integer", "default": "3"}}},
     r"properties/n/default '3' does not match .* '3' is not of type 'integer'"),
    ({"type": "object", "properties": {"a": {
        "type": "object", "required": ["city"], "default": {},
        "properties": {"city": {"type": "string"}}}}},
     r"properties/a/default .* 'city' is a required property"),
    ({"type": "object", "properties": {"a": {
        "type": "object", "default": {},
        "properties": {"n": {"type": "integer", "minimum": 1, "default": 0}}}}},
     # at the nested default, not at the object default it fills in
     r"properties/a/properties/n/default 0 does not match its own schema: 0 is less than"),
])
def test_define_refuses_a_default_its_schema_refuses(dw: Ductwork, schema: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        dw.workflows.define(product="p", tag="bad", handler=lambda ctx: None,
                            input_schema=schema)


def test_define_refuses_defaults_that_recurse_without_end(dw: Ductwork) -> None:
    schema = {"$defs": {"node": {"type": "object", "default": {},
                                 "properties": {"child": {"$ref": "#/$defs/node"}}}},
              "$ref": "#/$defs/node"}
    with pytest.raises(ConfigurationError, match="nest more than 64 levels deep"):
        dw.workflows.define(product="p", tag="tree", handler=lambda ctx: None,
                            input_schema=schema)
