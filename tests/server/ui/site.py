"""A served Ductwork for the UI tests: workflows that complete, roll back, wait for a signal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.server import ServerSettings, create_app
from ductwork.server.auth import TokenFile
from tests.support.apiserver import ThreadedServer

REPO = Path(__file__).resolve().parents[3]
SECRET = "sk_live_ui_test_secret"


def define(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="shop", tag="order", name="Order")
    async def order(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: {"id": 7, "password": "hunter2"}, lambda r: None)
        await ctx.step("charge", lambda: {"id": "ch_1", "note": f"key {SECRET}"},
                       lambda r: None)
        ctx.log.info("charged", {"amount": ctx.input.amount})
        await ctx.checkpoint("charged", {"amount": ctx.input.amount})
        if ctx.input.get("fail"):
            def ship() -> None:
                raise RuntimeError("the warehouse is closed")

            await ctx.step("ship", ship, retries=1, retry_delay="50ms")
        return {"shipped": True}

    @dw.workflows.workflow(product="shop", tag="approval", name="Approval")
    async def approval(ctx: Any) -> Any:
        await ctx.step("request", lambda: {"asked": True}, lambda r: None)
        decision = await ctx.wait_for_signal("approve")
        await ctx.set_state("decision", decision)
        return {"approved": decision}

    @dw.workflows.workflow(product="shop", tag="bundle", name="Bundle")
    async def bundle(ctx: Any) -> Any:
        first = await ctx.workflow("first-order", "order", {"amount": 2})
        await ctx.sleep("20ms")
        return {"child": first}


@dataclass
class Site:
    url: str
    store: str
    operator: str
    read: str
    artifacts: Path

    def run(self, coro_fn: Any) -> Any:
        """Run `await coro_fn(client)` with a second Ductwork on the served store (the server's
        worker drives what it dispatches)."""
        async def go() -> Any:
            client = Ductwork(store=self.store, secrets={"API_KEY": SECRET})
            define(client)
            async with client:
                return await coro_fn(client)

        # A thread of its own: playwright's sync API keeps an event loop running in this one.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(go())).result()

    def dispatch(self, tag: str, input: Any, workflow_id: str) -> None:
        self.run(lambda c: c.workflows.dispatch(product="shop", env="dev", workflow=tag,
                                                input=input, workflow_id=workflow_id))

    def wait(self, workflow_id: str, statuses: set[str]) -> str:
        async def poll(c: Ductwork) -> str:
            for _ in range(600):
                st = (await c.workflows.status(workflow_id))["status"]
                if st in statuses:
                    return str(st)
                await asyncio.sleep(0.05)
            raise AssertionError(f"{workflow_id} never reached {statuses} (last: {st})")

        return str(self.run(poll))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("ui-site")
    store = f"sqlite:///{folder / 'runs.db'}"
    tokens = TokenFile(folder / "tokens.json")
    operator = tokens.create("operator", "alice")[1]
    read = tokens.create("read", "bob")[1]
    # The server builds (and closes) its Ductwork; the test adds its Python workflows to it.
    app = create_app(ServerSettings(store=store, specs=str(REPO / "specs"),
                                    secrets={"API_KEY": SECRET},
                                    tokens_file=folder / "tokens.json"))
    define(app.state.ductwork)
    srv = ThreadedServer(app).start()
    artifacts = REPO / "test-artifacts" / "ui"
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        yield Site(srv.url, store, operator, read, artifacts)
    finally:
        srv.stop()  # the server closes only an instance it built itself
