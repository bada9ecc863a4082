"""Every public entry point answers a bad argument with a ductwork error, never a bare
TypeError, UnicodeEncodeError or RecursionError from inside."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ductwork import ConfigurationError, Ductwork, DuctworkError, StoreError


def _nested(depth: int) -> Any:
    v: Any = {}
    for _ in range(depth):
        v = {"a": v}
    return v


SURROGATE = "wf_\udc80"
# Anything a caller might pass: surrogates in text, containers, objects, deep nesting.
ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
              st.text(st.characters(categories=["L", "N", "Cs", "P"]), max_size=6),
              st.sampled_from([SURROGATE, "", " ", object(), b"x", (1,), {1}, 1.5, -1])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(inner.filter(
        lambda k: isinstance(k, str | int)), inner, max_size=3),
    max_leaves=6) | st.builds(_nested, st.just(3000))  # deeper than any recursion limit


def _arg(*valid: Any) -> st.SearchStrategy[Any]:
    """A valid value now and then, so that calls get past their first check."""
    return st.sampled_from(valid) | ANY if valid else ANY


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Ductwork]]:
    folder: Path = tmp_path_factory.mktemp("args")
    with asyncio.Runner() as runner:
        dw = Ductwork(store=f"sqlite:///{folder / 'runs.db'}", inline_wait="0ms")

        @dw.workflows.workflow(product="p", tag="t", signals=["go"],
                               queries={"q": lambda qctx: qctx.input},
                               input_schema={"type": "object"})
        async def echo(ctx: Any) -> Any:
            return await ctx.step("s", lambda: 1)

        runner.run(dw.__aenter__())
        runner.run(dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="done"))
        try:
            yield runner, dw
        finally:
            runner.run(dw.__aexit__(None, None, None))


ID = _arg("done", "nope", SURROGATE)
CALLS: dict[str, tuple[Callable[..., Any], list[st.SearchStrategy[Any]]]] = {
    "execute": (lambda w, a, b, c, d, e: w.execute(a, b, c, d, e),
                [_arg("p"), _arg("dev"), _arg("t"), _arg({"x": SURROGATE}, {}), _arg(None)]),
    "dispatch": (lambda w, a, b, c, d, e: w.dispatch(a, b, c, d, workflow_id=e),
                 [_arg("p"), _arg("dev"), _arg("t"), _arg({}), _arg(None, SURROGATE)]),
    "status": (lambda w, a: w.status(a), [ID]),
    "history": (lambda w, a: w.history(a), [ID]),
    "logs": (lambda w, a: w.logs(a), [ID]),
    "result": (lambda w, a, b: w.result(a, timeout=b), [ID, _arg("1s")]),
    "signal": (lambda w, a, b, c: w.signal(a, b, c), [ID, _arg("go", SURROGATE), ANY]),
    "cancel": (lambda w, a, b: w.cancel(a, b), [ID, _arg("why")]),
    "query": (lambda w, a, b: w.query(a, b), [ID, _arg("q", SURROGATE)]),
    "step_detail": (lambda w, a, b: w.step_detail(a, b), [ID, _arg("s", None, SURROGATE)]),
    "replay": (lambda w, a, b: w.replay(a, b), [ID, _arg(None, "again")]),
    "restart": (lambda w, a, b: w.restart(a, b), [ID, ANY]),
    "resume": (lambda w, a, b: w.resume(a, from_step=b), [ID, _arg("s")]),
    "replay_from_step": (lambda w, a, b, c: w.replay_from_step(a, b, c),
                         [ID, _arg("s"), _arg(None, {"s": 2})]),
    "related_executions": (lambda w, a: w.related_executions(a), [ID]),
    "compare": (lambda w, a: w.compare(a), [_arg(["done", "done"])]),
    "list": (lambda w, a, b, c, d: w.list(a, b, c, limit=d), [ANY, ANY, ANY, _arg(5)]),
    "get_schedule": (lambda w, a: w.get_schedule(a), [ID]),
    "prune": (lambda w, a, b: w.prune(a, b), [_arg("3650d"), ANY]),
}


@given(st.sampled_from(sorted(CALLS)), st.data())
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_the_workflows_api_raises_only_ductwork_errors(
        app: tuple[asyncio.Runner, Ductwork], name: str, data: st.DataObject) -> None:
    runner, dw = app
    call, strategies = CALLS[name]
    args = [data.draw(s) for s in strategies]

    async def go() -> None:
        with contextlib.suppress(DuctworkError):
            await call(dw.workflows, *args)

    runner.run(go())


REQUIRED = {"product": _arg("p"), "tag": _arg("t2"), "handler": _arg(lambda ctx: 1)}
DEFINE = {"name": ANY, "description": ANY, "options": _arg({"timeout": "1s"}),
          "signals": _arg(["go"], {"go": {"type": "object"}}),
          "queries": _arg({"q": lambda q: 1}), "envs": _arg(["dev"]),
          "input_schema": _arg({"type": "object"})}


@given(st.fixed_dictionaries(REQUIRED, optional=DEFINE))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_define_raises_only_ductwork_errors(app: tuple[asyncio.Runner, Ductwork],
                                            kwargs: dict[str, Any]) -> None:
    _runner, dw = app
    with contextlib.suppress(DuctworkError):
        dw.workflows.define(**kwargs)


@given(store=_arg("sqlite://:memory:"), secrets=_arg({"K": "v"}), environ=_arg({"K": "v"}),
       synchronous=_arg("FULL"), inline_wait=_arg("1s"), lease=_arg("5s"),
       max_faults=_arg(2), specs=_arg(None))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_ductwork_constructor_raises_only_ductwork_errors(**kwargs: Any) -> None:
    with contextlib.suppress(DuctworkError):
        Ductwork(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"store": 5}, "store must be a URL string"),
    ({"secrets": ["a"]}, "secrets must be a mapping of names to text"),
    ({"secrets": {"a": 1}}, "secrets must be a mapping of names to text"),
    ({"store": "sqlite:///\udc80"}, "store: the text has a lone surrogate"),
])
def test_bad_constructor_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigurationError, StoreError), match=message):
        Ductwork(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"options": 5}, "options must be a mapping"),
    ({"signals": 123}, "signals must be a list of names or a mapping"),
    ({"signals": "go"}, "signals must be a list of names or a mapping"),
    ({"input_schema": "x"}, "input_schema must be a JSON Schema"),
    ({"input_schema": {"type": 5}}, "input_schema is not a valid JSON Schema"),
    ({"queries": {"q": 1}}, "queries must map names to functions"),
    ({"envs": "dev"}, "envs must be a list of environment names"),
    ({"tag": "t\udc80"}, "tag: the text has a lone surrogate"),
])
def test_bad_define_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    dw = Ductwork(store="sqlite://:memory:")
    with pytest.raises(ConfigurationError, match=message):
        dw.workflows.define(**{"product": "p", "tag": "t", "handler": lambda ctx: 1, **kwargs})


async def test_ids_and_inputs_are_checked_before_they_reach_the_store(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t", input_schema={"type": "object"})
    async def wf(ctx: Any) -> Any:
        return 1

    with pytest.raises(ConfigurationError, match="workflow_id: the text has a lone surrogate"):
        await dw.workflows.status(SURROGATE)
    with pytest.raises(ConfigurationError, match="step_tag must be a non-empty string"):
        await dw.workflows.step_detail("x", None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"input\.x: the text has a lone surrogate"):
        await dw.workflows.execute("p", "dev", "t", {"x": SURROGATE})
    with pytest.raises(ConfigurationError, match="nested more than 100 levels deep"):
        await dw.workflows.execute("p", "dev", "t", _nested(100_000))


def test_decorator_and_handler_mistakes_are_named_at_definition() -> None:
    dw = Ductwork(store="sqlite://:memory:")

    async def no_ctx() -> int:
        return 1

    async def two(ctx: Any, input: Any) -> int:
        return 1

    with pytest.raises(ConfigurationError, match=r"@dw.workflows.workflow is written without its "
                       r"arguments: write @dw.workflows.workflow\(product='my-product', "):
        dw.workflows.workflow(no_ctx)
    with pytest.raises(ConfigurationError, match="takes product= and tag= by keyword"):
        dw.workflows.workflow("p", "t")
    with pytest.raises(ConfigurationError, match="needs product= and tag="):
        dw.workflows.workflow(product="p")
    with pytest.raises(ConfigurationError, match=r"define\(p/t\): the handler must take one "
                       r"argument, ctx \(`async def handler\(ctx\): ...`\), not no_ctx\(\)"):
        dw.workflows.define(product="p", tag="t", handler=no_ctx)
    with pytest.raises(ConfigurationError, match=r"not two\(ctx, input\); read the input as "
                       "ctx.input"):
        dw.workflows.workflow(product="p", tag="t")(two)
    assert dw.workflows.definitions() == []
    dw.workflows.define(product="p", tag="t", handler=lambda ctx, *more: 1)  # fine: takes ctx
