"""Errors no retry can fix fail the step at once, whatever `retries` says, in YAML and Python:
HTTP 4xx other than 408/409/425/429, a missing secret, bad input to a connector, a
configuration error. 5xx and the retryable 4xx are retried; user code's own exceptions too."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from ductwork import Ductwork
from ductwork.connectors.util import retryable_status
from ductwork.errors import (
    ConfigurationError,
    ConnectorError,
    ConnectorNotConfiguredError,
    InputFieldNotFoundError,
    StepError,
    not_retryable,
)
from tests.support.http import httpserver as httpserver  # fixture
from tests.support.http import module_http_server as module_http_server  # its scope

PRODUCT = """
product: shop
envs: [dev]
apps:
  api:
    envs: {dev: {base_url: "${env.API_URL}", retries: 0}}
    events: {get-user: {method: GET, path: "/users/{id}"}}
  vault:
    envs:
      dev: {base_url: "${env.API_URL}", auth: {type: bearer, token: "${secrets.VAULT_TOKEN}"}}
    events: {read: {method: GET, path: /secret}}
databases:
  users-db:
    envs: {dev: {provider: sqlite}}
    tables: {users: {columns: {id: {type: integer, primary_key: true, auto: true},
                               email: text}}}
    events: {create-user: {op: insert, table: users}}
"""

WORKFLOWS = {
    "fetch": """
        workflow: fetch
        steps:
          - tag: fetch
            action.run: {app: api, event: get-user, input: {id: "${ctx.input.id}"}}
            retries: 3
            retry_delay: 1ms
    """,
    "vault": """
        workflow: vault
        steps:
          - tag: read
            action.run: {app: vault, event: read}
            retries: 3
            retry_delay: 1ms
    """,
    "env-arg": """
        workflow: env-arg
        steps:
          - tag: call
            python: tests.connectors.test_not_retried:record
            args: {token: "${env.NOT_SET_ANYWHERE}"}
            retries: 3
            retry_delay: 1ms
    """,
    "insert": """
        workflow: insert
        steps:
          - tag: insert
            database.insert: {database: users-db, event: create-user, data: "${ctx.input.row}"}
            retries: 3
            retry_delay: 1ms
    """,
}

CALLS: list[Any] = []


def record(ctx: Any, token: str) -> str:
    CALLS.append(token)
    return "called"


def _python_twins(dw: Ductwork) -> None:
    """The YAML workflows again as Python handlers, under product `py`'s tags."""
    def define(tag: str, make: Any, retries: int = 3) -> None:
        async def handler(ctx: Any) -> Any:
            return await ctx.step(tag, lambda: make(ctx), retries=retries, retry_delay=1)

        dw.workflows.define(product="shop", tag=f"py-{tag}", handler=handler)

    define("fetch", lambda ctx: ctx.action.run(app="api", event="get-user",
                                               input={"id": ctx.input.id}))
    define("vault", lambda ctx: ctx.action.run(app="vault", event="read"))
    define("env-arg", lambda ctx: record(ctx, ctx.token("NOT_SET_ANYWHERE")))
    define("insert", lambda ctx: ctx.database.insert(database="users-db", event="create-user",
                                                     data=ctx.input.row))


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs" / "shop"
    (folder / "workflows").mkdir(parents=True)
    (folder / "product.yaml").write_text(PRODUCT)
    for tag, text in WORKFLOWS.items():
        (folder / "workflows" / f"{tag}.yaml").write_text(textwrap.dedent(text))
    return tmp_path / "specs"


async def _run(specs: Path, httpserver: HTTPServer, tag: str, front: str,
               input: Any = None) -> Any:
    CALLS.clear()
    async with Ductwork(specs=specs, store="sqlite://:memory:",
                        environ={"API_URL": httpserver.url_for("")}) as dw:
        _python_twins(dw)
        result = await dw.workflows.execute(
            product="shop", env="dev", tag=tag if front == "yaml" else f"py-{tag}",
            input=input or {})
        steps = await dw.store.load_steps(result.workflow_id)
    return result, steps


FRONTS = ["yaml", "python"]


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize(("status", "requests"), [
    (404, 1), (400, 1), (422, 1),  # the request is wrong: asking again gets the same answer
    (503, 4), (500, 4),             # the server's trouble: 1 + 3 retries
    (429, 4), (408, 4), (409, 4), (425, 4),
])
async def test_http_status_decides_whether_the_step_is_retried(
        specs: Path, httpserver: HTTPServer, front: str, status: int, requests: int) -> None:
    httpserver.expect_request("/users/7").respond_with_json({"error": "nope"}, status=status)
    result, (row,) = await _run(specs, httpserver, "fetch", front, {"id": 7})
    assert result.status == "failed" and result.failed_step == "fetch"
    assert len(httpserver.log) == requests
    assert row.attempts == requests
    assert f"HTTP {status}" in (result.error or "")
    if requests == 1:
        assert (result.error or "").endswith(f"(not retried: HTTP {status} is not retryable)")
        assert row.error == result.error
    else:
        assert f"after {requests} attempts" in (result.error or "")
        assert "not retried" not in (result.error or "")


@pytest.mark.parametrize("front", FRONTS)
async def test_a_missing_secret_in_a_resource_is_one_attempt(
        specs: Path, httpserver: HTTPServer, front: str) -> None:
    result, (row,) = await _run(specs, httpserver, "vault", front)
    assert result.status == "failed" and row.attempts == 1
    assert "secrets.VAULT_TOKEN is not set" in (result.error or "")
    assert (result.error or "").endswith(
        "(not retried: a configuration error is not retryable)")
    assert httpserver.log == []


@pytest.mark.parametrize("front", FRONTS)
async def test_a_missing_env_var_is_one_attempt(
        specs: Path, httpserver: HTTPServer, front: str) -> None:
    result, (row,) = await _run(specs, httpserver, "env-arg", front)
    assert result.status == "failed" and row.attempts == 1
    assert "NOT_SET_ANYWHERE" in (result.error or "") and "not retried" in (result.error or "")
    assert CALLS == []


@pytest.mark.parametrize("front", FRONTS)
async def test_bad_input_to_a_database_is_one_attempt(
        specs: Path, httpserver: HTTPServer, front: str) -> None:
    result, (row,) = await _run(specs, httpserver, "insert", front,
                                {"row": {"email": "a@x.io", "nickname": "al"}})
    assert result.status == "failed" and row.attempts == 1
    assert "nickname" in (result.error or "")
    assert (result.error or "").endswith(
        "(not retried: the connector reported an error no retry can fix)")
    ok, (good,) = await _run(specs, httpserver, "insert", front, {"row": {"email": "b@x.io"}})
    assert ok.status == "completed" and good.attempts == 1


async def test_user_code_decides_its_own_exceptions(dw: Ductwork) -> None:
    attempts: dict[str, int] = {}

    def failing(tag: str, exc: Exception) -> Any:
        def fn() -> None:
            attempts[tag] = attempts.get(tag, 0) + 1
            raise exc
        return fn

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        for tag, exc in [("plain", ValueError("bad luck")),
                         ("config", ConfigurationError("no such region")),
                         ("marked", ConnectorError("gone", status=410, retryable=False)),
                         ("transient", ConnectorError("flaky", retryable=True)),
                         ("input", InputFieldNotFoundError("email"))]:
            await ctx.step(tag, failing(tag, exc), retries=2, retry_delay=1, allow_fail=True)

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "completed", r.error
    assert attempts == {"plain": 3, "config": 1, "marked": 1, "transient": 3, "input": 1}
    rows = {s.tag: s for s in await dw.store.load_steps(r.workflow_id)}
    assert rows["marked"].error is not None
    assert rows["marked"].error.endswith("(not retried: HTTP 410 is not retryable)")
    assert rows["input"].error is not None
    assert rows["input"].error.endswith("(not retried: a missing input field is not retryable)")


async def test_the_classification_survives_a_replay_of_the_failure(dw: Ductwork) -> None:
    seen: list[Any] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        try:
            await ctx.step("s", failing_config, retries=1, retry_delay=1)
        except StepError as e:
            seen.append((e.retryable, str(e)))
        await ctx.sleep("300ms")  # suspends: the handler runs again from the top on resume
        return "done"

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "running"
    await asyncio.sleep(0.4)
    (res,) = await dw.workflows.recover()
    assert res.status == "completed", res.error
    message = ("Step 's' failed: misconfigured "
               "(not retried: a configuration error is not retryable)")
    assert seen == [(False, message), (False, message)]


def failing_config() -> None:
    raise ConfigurationError("misconfigured")


def test_retryable_status_and_not_retryable() -> None:
    assert [retryable_status(s) for s in (400, 401, 403, 404, 410, 422)] == [False] * 6
    assert all(retryable_status(s) for s in (408, 409, 425, 429, 500, 502, 503, 504))
    assert retryable_status(None) is None
    assert not_retryable(RuntimeError("x")) is None
    assert not_retryable(ConnectorError("x")) is None  # unknown: retried as asked
    assert not_retryable(ConnectorError("x", status=503, retryable=True)) is None
    assert not_retryable(ConnectorError("x", status=404, retryable=False)) == \
        "HTTP 404 is not retryable"
    assert not_retryable(ConnectorNotConfiguredError("x")) is not None
    assert not_retryable(StepError("x", retryable=False)) is not None
