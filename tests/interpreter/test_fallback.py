"""Provider pools on real servers: two HTTP apps and two SMTP relays behind one resource."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork import Ductwork
from ductwork.connectors.base import ResourceSpec, build_connector
from ductwork.connectors.providers import read_pool
from ductwork.errors import ConnectorError
from ductwork.interpreter.fallback import Strategy
from tests.support.http import local_http_server
from tests.support.ports import free_port
from tests.support.smtp import smtp_server


class Flaky:
    """An HTTP handler that answers 503 while `down`, else 200 with its name and a count."""

    def __init__(self, name: str) -> None:
        self.name, self.down, self.calls = name, False, []  # type: ignore[var-annotated]
        self.fail_next = 0

    def __call__(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        self.calls.append(body)
        if self.down or self.fail_next > 0:
            self.fail_next = max(self.fail_next - 1, 0)
            return Response("unavailable", status=503)
        return Response(json.dumps({"id": f"{self.name}-{len(self.calls)}", "by": self.name,
                                    "amount": body.get("amount")}),
                        content_type="application/json")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[HTTPServer, HTTPServer]]:
    with local_http_server() as a, local_http_server() as b:
        yield a, b


@pytest.fixture
def apps(servers: tuple[HTTPServer, HTTPServer]) -> Iterator[tuple[Flaky, Flaky]]:
    a, b = Flaky("a"), Flaky("b")
    servers[0].expect_request("/v1/charges", method="POST").respond_with_handler(a)
    servers[1].expect_request("/v1/charges", method="POST").respond_with_handler(b)
    yield a, b
    for s in servers:
        s.clear()


def product(tmp_path: Path, pool: str) -> Path:
    specs = tmp_path / "specs"
    (specs / "pay").mkdir(parents=True)
    (specs / "pay" / "product.yaml").write_text(textwrap.dedent("""\
        product: pay
        envs: [dev]
        apps:
          payments:
            envs:
              dev:
        """) + textwrap.indent(textwrap.dedent(pool), " " * 8)
        + "    events:\n      charge: {method: POST, path: /v1/charges, body: [amount]}\n")
    return specs


def fallback_pool(servers: tuple[HTTPServer, HTTPServer], extra: str = "") -> str:
    a, b = servers
    return f"""\
        {extra}providers:
          - {{name: primary, base_url: "http://127.0.0.1:{a.port}", retries: 1,
             retry_delay: 1ms}}
          - {{name: backup, base_url: "http://127.0.0.1:{b.port}"}}
        """


def define(dw: Ductwork, seen: list[str]) -> None:
    @dw.workflows.workflow(product="pay", tag="two-charges")
    async def handler(ctx: Any) -> dict[str, Any]:
        async def charge(n: int) -> Any:
            seen.append(f"charge-{n}")
            return await ctx.action.run(app="payments", event="charge",
                                        input={"amount": n})

        first = await ctx.step("charge-1", lambda: charge(1))
        second = await ctx.step("charge-2", lambda: charge(2), retries=1, retry_delay="1ms")
        return {"first": first["by"], "second": second["by"]}


async def test_a_provider_failing_mid_run_the_run_completes_once(
        tmp_path: Path, servers: tuple[HTTPServer, HTTPServer],
        apps: tuple[Flaky, Flaky]) -> None:
    a, b = apps
    specs = product(tmp_path, fallback_pool(servers))
    seen: list[str] = []
    async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        define(dw, seen)
        # charge-1 goes to the primary; then the primary goes down and the backup's first
        # answer is a 503 too: charge-2's first attempt fails on both, its retry is served
        # by the backup; charge-1 is never asked again.
        original = a.__call__

        def then_down(request: Request) -> Response:
            a.down = len(a.calls) >= 1
            return original(request)

        servers[0].clear()
        servers[0].expect_request("/v1/charges", method="POST").respond_with_handler(then_down)
        b.fail_next = 1
        result = await dw.workflows.execute(product="pay", env="dev", tag="two-charges",
                                            input={}, workflow_id="pay-1")
        assert result.status == "completed", result.error
        assert result.output == {"first": "a", "second": "b"}
        assert seen == ["charge-1", "charge-2", "charge-2"]
        assert [c["amount"] for c in a.calls] == [1, 2, 2, 2, 2]  # 1 served; 2 x (1 + retry)
        assert [c["amount"] for c in b.calls] == [2, 2]
        logs = [entry["message"] for entry in await dw.workflows.logs("pay-1")]
        assert any("served by backup after failures (primary:" in m for m in logs), logs
        # The same id again: the first result, no provider called.
        again = await dw.workflows.execute(product="pay", env="dev", tag="two-charges",
                                           input={}, workflow_id="pay-1")
        assert again.output == result.output
        assert len(a.calls) == 5 and len(b.calls) == 2
        steps = {s.tag: s for s in await dw.store.load_steps("pay-1")}
        assert steps["charge-1"].attempts == 1 and steps["charge-2"].attempts == 2


async def test_every_provider_down_fails_the_step_naming_each(
        tmp_path: Path, servers: tuple[HTTPServer, HTTPServer],
        apps: tuple[Flaky, Flaky]) -> None:
    a, b = apps
    a.down = b.down = True
    specs = product(tmp_path, fallback_pool(servers))
    async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        define(dw, [])
        result = await dw.workflows.execute(product="pay", env="dev", tag="two-charges",
                                            input={})
    assert result.status == "failed"
    assert result.failed_step == "charge-1"
    message = str(result.error)
    assert "every provider failed" in message
    assert "primary failed" in message and "backup failed" in message
    assert "503" in message


def make_strategy(servers: tuple[HTTPServer, HTTPServer], pool: dict[str, Any],
                  clock: list[float]) -> tuple[Strategy, dict[str, Any]]:
    """A pool's strategy over real HTTP connectors, on a clock the test moves."""
    a, b = servers
    members = {"a": f"http://127.0.0.1:{a.port}", "b": f"http://127.0.0.1:{b.port}"}
    config = {**pool, "providers": [
        {"name": n, "base_url": url, **pool.get("each", {}).get(n, {})}
        for n, url in members.items()]}
    config.pop("each", None)
    parsed = read_pool(config)
    conns = {}
    for m in parsed.members:
        spec = ResourceSpec(kind="action", name="payments", env="dev", product="pay",
                            config={**m.config, "retries": 0}, definition={
                                "events": {"charge": {"method": "POST", "path": "/v1/charges",
                                                      "body": ["amount"]}}})
        conns[m.name] = build_connector(spec)

    async def no_sleep(_s: float) -> None:
        return None

    return Strategy("app 'payments'", parsed, now=lambda: clock[0], sleep=no_sleep), conns


async def call(strategy: Strategy, conns: dict[str, Any], n: int) -> str:
    async def one(m: Any) -> Any:
        return await conns[m.name].run("charge", {"amount": n})

    outcome = await strategy.run(one)
    return str(outcome.provider)


async def test_the_circuit_breaker_opens_then_closes(
        servers: tuple[HTTPServer, HTTPServer], apps: tuple[Flaky, Flaky]) -> None:
    a, _b = apps
    clock = [1000.0]
    strategy, conns = make_strategy(
        servers, {"breaker": {"failures": 2, "cooldown": "30s"}}, clock)
    try:
        a.down = True
        assert [await call(strategy, conns, n) for n in (1, 2)] == ["b", "b"]
        assert len(a.calls) == 2
        assert strategy.breakers["a"].state(clock[0]) == "open"
        # Open: the primary is not asked at all, even once it is back.
        a.down = False
        assert await call(strategy, conns, 3) == "b"
        assert len(a.calls) == 2
        clock[0] += 29
        assert await call(strategy, conns, 4) == "b"
        assert len(a.calls) == 2
        # After the cooldown one trial call goes to it; it succeeds, so the breaker closes.
        clock[0] += 2
        assert strategy.breakers["a"].state(clock[0]) == "half_open"
        assert await call(strategy, conns, 5) == "a"
        assert strategy.breakers["a"].state(clock[0]) == "closed"
        assert await call(strategy, conns, 6) == "a"
        # A failed trial opens it again for a whole cooldown.
        a.down = True
        assert [await call(strategy, conns, n) for n in (7, 8)] == ["b", "b"]
        clock[0] += 31
        assert await call(strategy, conns, 9) == "b"  # the trial failed
        assert strategy.breakers["a"].state(clock[0]) == "open"
        assert [c["amount"] for c in a.calls] == [1, 2, 5, 6, 7, 8, 9]
        status = {row["provider"]: row["breaker"] for row in strategy.status()}
        assert status == {"a": "open", "b": "closed"}
    finally:
        for conn in conns.values():
            await conn.aclose()


async def test_quota_spreads_calls_by_weight_within_limits(
        servers: tuple[HTTPServer, HTTPServer], apps: tuple[Flaky, Flaky]) -> None:
    a, b = apps
    clock = [0.0]
    strategy, conns = make_strategy(servers, {"strategy": "quota", "window": "1m", "each": {
        "a": {"weight": 3}, "b": {"weight": 1}}}, clock)
    try:
        served = [await call(strategy, conns, n) for n in range(8)]
        assert served.count("a") == 6 and served.count("b") == 2
        assert served[:4].count("b") == 1  # spread out, not bunched at the end
        assert len(a.calls) == 6 and len(b.calls) == 2
    finally:
        for conn in conns.values():
            await conn.aclose()


async def test_quota_limits_per_window(servers: tuple[HTTPServer, HTTPServer],
                                       apps: tuple[Flaky, Flaky]) -> None:
    a, b = apps
    clock = [0.0]
    strategy, conns = make_strategy(servers, {"strategy": "quota", "window": "1m", "each": {
        "a": {"weight": 1, "limit": 2}, "b": {"weight": 1, "limit": 1}}}, clock)
    try:
        served = sorted([await call(strategy, conns, n) for n in range(3)])
        assert served == ["a", "a", "b"]
        with pytest.raises(ConnectorError) as info:
            await call(strategy, conns, 3)
        assert "no provider could take the call" in str(info.value)
        assert "limit 2 per 60s reached" in str(info.value)
        assert info.value.retryable is True
        assert len(a.calls) == 2 and len(b.calls) == 1
        clock[0] += 61  # a new window
        assert await call(strategy, conns, 4) in ("a", "b")
        # A provider that fails moves the call on to the other one, limit permitting.
        a.down = True
        clock[0] += 61
        served = [await call(strategy, conns, n) for n in (5,)]
        assert served == ["b"]
    finally:
        for conn in conns.values():
            await conn.aclose()


async def test_two_smtp_relays_the_second_delivers_when_the_first_is_down(
        tmp_path: Path) -> None:
    dead_port = free_port()  # nothing listens there
    with smtp_server(tmp_path / "relay-b") as relay_b:
        specs = tmp_path / "specs"
        (specs / "mail").mkdir(parents=True)
        (specs / "mail" / "product.yaml").write_text(textwrap.dedent(f"""\
            product: mail
            envs: [dev]
            notifications:
              mailer:
                envs:
                  dev:
                    breaker: {{failures: 1, cooldown: 1h}}
                    providers:
                      - {{name: relay-a, provider: smtp, host: 127.0.0.1, port: {dead_port},
                         tls: none, timeout: 2s, from: shop@example.com}}
                      - {{name: relay-b, provider: smtp, host: 127.0.0.1, port: {relay_b.port},
                         tls: none, from: shop@example.com}}
                events:
                  receipt: {{subject: "Receipt {{{{ n }}}}", text: "Thanks for order {{{{ n }}}}."}}
            """))
        async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
            @dw.workflows.workflow(product="mail", tag="receipts")
            async def handler(ctx: Any) -> list[Any]:
                out = []
                for n in (1, 2):
                    out.append(await ctx.step(f"receipt-{n}", lambda n=n: ctx.notification.email(
                        notification="mailer", event="receipt", recipients=["ann@example.com"],
                        subject={"n": n}, template={"n": n})))
                return out

            result = await dw.workflows.execute(product="mail", env="dev", tag="receipts",
                                                input={}, workflow_id="mail-1")
            assert result.status == "completed", result.error
            logs = [e["message"] for e in await dw.workflows.logs("mail-1")]
        subjects = sorted(str(m["Subject"]) for m in relay_b.messages())
        assert subjects == ["Receipt 1", "Receipt 2"]
        # The first receipt found relay-a down; the breaker then skipped it for the second.
        assert any("served by relay-b after failures (relay-a:" in m for m in logs), logs
        assert any("skipped (relay-a: circuit open" in m for m in logs), logs


def test_a_warning_in_a_providers_list_does_not_stop_it() -> None:
    pool = read_pool({"window": 30, "providers": [{"name": "a", "base_url": "http://a",
                                                   "weight": 2}]})
    assert pool.strategy == "fallback" and pool.window_ms == 30
    assert pool.members[0].config == {"base_url": "http://a"}
    with pytest.raises(ValueError, match=r"providers\.0\.weight: weight must be a whole number"):
        read_pool({"providers": [{"name": "a", "weight": 0}]})
