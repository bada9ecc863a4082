"""The value codec: exact round-trips (tag spellings in user data included), refusals that name
the value's path, the same value and type on the first run and on a replay."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import enum
import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ductwork import Ductwork
from ductwork.interpreter import codec

TAGS = ["datetime", "date", "time", "decimal", "uuid", "bytes", "dict", "other"]
KEYS = st.one_of(st.text(max_size=8), st.sampled_from(["__dw__", "v", "__dw__x", "dict", ""]))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(TAGS),
    st.datetimes(timezones=st.none() | st.timezones()), st.dates(), st.times(),
    st.decimals(allow_nan=False), st.uuids(), st.binary(max_size=16))


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    tag_like = st.fixed_dictionaries({"__dw__": st.sampled_from(TAGS) | inner, "v": inner},
                                     optional={"w": inner})
    return st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4) | tag_like


VALUES = st.recursive(SCALARS, _containers, max_leaves=20)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (-0.0 is not 0.0; a datetime keeps its
    UTC offset)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dt.datetime | dt.time):
        # The same wall time and the same UTC offset. Not `a == b`: a zone's name is stored as
        # its offset, and Python calls an aware datetime in a zone's fold or gap unequal to
        # any datetime of another zone (PEP 495), even to the very same instant.
        return a.replace(tzinfo=None) == b.replace(tzinfo=None) \
            and a.utcoffset() == b.utcoffset()
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    return bool(a == b)


@given(VALUES)
@settings(max_examples=400, deadline=None)
def test_every_accepted_value_round_trips_exactly(value: Any) -> None:
    assert same(codec.loads(codec.dumps(value)), value)


@given(VALUES)
@settings(max_examples=200, deadline=None)
def test_the_stored_text_is_compact_json_of_the_tagged_tree(value: Any) -> None:
    # The stored format: what json.dumps writes for the tree the codec builds, so that rows
    # written before and after any change of the encoder read the same.
    text, _ = codec.dumps_value(value)
    tree = codec._walk(value, 0, False)
    assert text == json.dumps(tree, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False)
    assert codec.dumps_lenient(value) == text


@given(VALUES)
@settings(max_examples=200, deadline=None)
def test_the_value_handed_to_the_handler_is_what_a_replay_reads(value: Any) -> None:
    text, first = codec.dumps_value(value)
    assert same(first, codec.loads(text))


def test_the_value_handed_to_the_handler_is_a_copy() -> None:
    original = {"a": [1, {"b": 2}]}
    _text, first = codec.dumps_value(original)
    first["a"][1]["b"] = 3
    assert original == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize("value", [
    {"__dw__": "uuid", "v": "x"},
    {"__dw__": "bytes", "v": "aGk="},
    {"__dw__": "dict", "v": [["a", 1]]},
    {"__dw__": {"__dw__": "date", "v": "2026-01-02"}},
    [{"v": 1, "__dw__": None}],
])
def test_user_maps_spelled_like_tags_come_back_unchanged(value: Any) -> None:
    assert same(codec.loads(codec.dumps(value)), value)


@pytest.mark.parametrize("text", [' {"a": [1, 2]}\n', '\t"x" ', "null", "  3", "[] "])
def test_text_with_whitespace_around_reads_as_json(text: str) -> None:
    assert same(codec.loads(text), json.loads(text))


@pytest.mark.parametrize("text", ['{"a":', '{"a":1}x', "", " ", "nul", '{"a":1} ]'])
def test_text_that_is_not_json_raises_what_json_raises(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        codec.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)


def test_data_stored_before_keys_were_escaped_still_reads() -> None:
    # Older versions stored user maps as they were: the tagged values read as before, and a
    # map that only looks like a tag (it cannot be decoded) reads back as the map it was.
    assert codec.loads('{"a":{"__dw__":"bytes","v":"aGk="}}') == {"a": b"hi"}
    assert codec.loads('{"__dw__":"uuid","v":"x"}') == {"__dw__": "uuid", "v": "x"}
    assert codec.loads('{"__dw__":"bytes","v":"not base64!"}') == {"__dw__": "bytes",
                                                                  "v": "not base64!"}
    assert codec.loads('{"__dw__":"decimal","v":"1.5x"}') == {"__dw__": "decimal", "v": "1.5x"}
    assert codec.loads('{"__dw__":"date","v":3}') == {"__dw__": "date", "v": 3}
    assert codec.loads('{"__dw__":"nope","v":"x"}') == {"__dw__": "nope", "v": "x"}


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


class Money(pydantic.BaseModel):
    amount: decimal.Decimal
    currency: str


@pytest.mark.parametrize("value,stored", [
    (Colour.RED, "red"), (Size.BIG, 3), (OrderedDict(a=1), {"a": 1}), ({Colour.RED: 1}, {"red": 1}),
    (bytearray(b"hi"), b"hi"), (memoryview(b"hi"), b"hi"),
    (MappingProxyType({"a": [1, MappingProxyType({"b": 2})]}), {"a": [1, {"b": 2}]}),
    (Money(amount=decimal.Decimal("1.50"), currency="EUR"), {"amount": "1.50", "currency": "EUR"}),
])
def test_subclasses_and_models_are_stored_as_the_plain_value_they_hold(value: Any, stored: Any
                                                                       ) -> None:
    assert same(codec.loads(codec.dumps(value)), stored)


def _nested(depth: int) -> Any:
    v: Any = []
    for _ in range(depth - 1):
        v = [v]
    return v


def _self_containing() -> Any:
    a: list[Any] = []
    a.append(a)
    return a


@pytest.mark.parametrize("value,message", [
    ({"items": [0, 1, 2, {"when": {1, 2}}]},
     "result.items[3].when: object of type set is not JSON serializable; use a sorted list"),
    ({1: "a"}, "result: the key 1 (int) is not a string"),
    ({"a": {None: 1}}, "result.a: the key None (NoneType) is not a string"),
    ((1, 2), "result: object of type tuple is not JSON serializable; use a list"),
    ([frozenset()], "result[0]: object of type frozenset"),
    ({"x y": [float("nan")]}, 'result["x y"][0]: the number nan cannot be stored'),
    ({"n": float("inf")}, "result.n: the number inf cannot be stored"),
    ({"s": "ok \udc80"}, "result.s: the text has a lone surrogate '\\udc80' at position 3"),
    ({"\ud800": 1}, "result: a key: the text has a lone surrogate"),
    ({"big": 10 ** 5000}, "result.big: the integer has more than 4300 digits"),
    ({"o": object()}, "result.o: object of type object is not JSON serializable"),
    (_nested(101), "result[0][0][0][0][0]...[0][0][0][0][0]: the value is nested more than 100"),
    (_self_containing(), "result[0][0][0][0][0]...[0][0][0][0][0]: the value is nested more"),
    (_nested(100_000), "result[0][0][0][0][0]...[0][0][0][0][0]: the value is nested more"),
])
def test_what_cannot_be_stored_is_refused_naming_its_path(value: Any, message: str) -> None:
    with pytest.raises(codec.UnstorableValue) as info:
        codec.dumps(value, "result")
    assert str(info.value).startswith(message), str(info.value)


def test_a_value_at_the_depth_limit_is_stored() -> None:
    assert codec.loads(codec.dumps(_nested(100))) == _nested(100)


def test_logs_and_events_encode_anything() -> None:
    text = codec.dumps_lenient({1: (1, 2), "o": object(), "n": float("nan"), "s": "\udc80",
                                "deep": _nested(100_000), "set": {3}})
    data = codec.loads(text)
    assert data["1"] == [1, 2] and data["n"] == "nan" and data["set"] == [3]
    assert data["o"].startswith("<object object") and data["s"] == "?"


# -- through the engine: first run and replay -----------------------------------------------

@pytest.fixture(scope="module")
def engine_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner,
                                                                            Ductwork, dict]]:
    """One Ductwork (SQLite file) for every example; its handler records what each run saw."""
    folder: Path = tmp_path_factory.mktemp("codec")
    seen: dict[str, list[Any]] = {}
    values: dict[str, Any] = {}
    with asyncio.Runner() as runner:
        dw = Ductwork(store=f"sqlite:///{folder / 'runs.db'}", inline_wait="0ms")

        @dw.workflows.workflow(product="p", tag="echo", signals=["go"])
        async def echo(ctx: Any) -> Any:
            v = await ctx.step("make", lambda: values[ctx.workflow_id])
            await ctx.set_state("kept", v)
            seen.setdefault(ctx.workflow_id, []).append(
                (v, await ctx.get_state("kept"), ctx.original_input["value"]))
            await ctx.wait_for_signal("go")  # suspends the run: the resume replays the step
            return v

        runner.run(dw.__aenter__())
        try:
            yield runner, dw, {"seen": seen, "values": values}
        finally:
            runner.run(dw.__aexit__(None, None, None))


async def _first_run_and_replay(dw: Ductwork, data: dict[str, Any], value: Any
                                ) -> tuple[Any, list[Any]]:
    wid = "wf_" + uuid.uuid4().hex
    data["values"][wid] = value
    first = await dw.workflows.execute(product="p", env="dev", tag="echo", workflow_id=wid,
                                       input={"value": value})
    assert first.status == "running"
    await dw.workflows.signal(wid, "go")
    await dw.recover()
    res = await dw.workflows.result(wid, timeout="20s")
    assert res.status == "completed", res.error
    return res.output, data["seen"].pop(wid)


@given(VALUES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_step_value_is_the_same_on_the_first_run_and_on_replay(
        engine_app: tuple[asyncio.Runner, Ductwork, dict[str, Any]], value: Any) -> None:
    runner, dw, data = engine_app
    output, seen = runner.run(_first_run_and_replay(dw, data, value))
    assert len(seen) == 2, "the resume did not replay the handler"
    for step_value, state_value, input_value in seen:
        assert same(step_value, value)
        assert same(state_value, value)
        assert same(input_value, value)
    assert same(output, value)


def test_a_model_is_a_dict_on_the_first_run_as_on_replay(
        engine_app: tuple[asyncio.Runner, Ductwork, dict[str, Any]]) -> None:
    runner, dw, data = engine_app
    _out, seen = runner.run(_first_run_and_replay(
        dw, data, {"m": Money(amount=decimal.Decimal("2.50"), currency="EUR"), "t": Colour.RED}))
    expected = {"m": {"amount": "2.50", "currency": "EUR"}, "t": "red"}
    assert [same(v, expected) for v, _s, _i in seen] == [True, True]


async def test_a_step_result_that_cannot_be_stored_fails_the_step_naming_its_path(
        dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("load", lambda: {"items": [0, 1, 2, {"when": {1}}]})

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed" and r.failed_step == "load"
    assert r.error is not None and ("returned a value that cannot be stored: result.items[3]."
                                    "when: object of type set") in r.error


async def test_an_input_that_looks_like_a_tag_runs_and_reads_back(dw: Ductwork) -> None:
    got: list[Any] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        got.append(ctx.original_input)
        return await ctx.step("s", lambda: {"__dw__": "bytes", "v": "aGk="})

    r = await dw.workflows.execute(product="p", env="dev", tag="t",
                                   input={"__dw__": "uuid", "v": "x"})
    assert r.status == "completed" and r.output == {"__dw__": "bytes", "v": "aGk="}
    assert got == [{"__dw__": "uuid", "v": "x"}]
    run = await dw.store.get_run(r.workflow_id)
    assert run is not None and codec.loads(run.input) == {"__dw__": "uuid", "v": "x"}
