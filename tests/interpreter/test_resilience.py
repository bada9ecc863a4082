"""ctx.fallback, ctx.quota and ctx.healthcheck (and their YAML steps) on real servers."""

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
from ductwork.errors import ConfigurationError
from tests.support.http import local_http_server
from tests.support.ports import free_port
from tests.support.smtp import smtp_server


class Gateway:
    """A payment API that answers 503 while `down`."""

    def __init__(self, name: str) -> None:
        self.name, self.down = name, False
        self.calls: list[Any] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append((request.get_json(silent=True) or {}).get("amount"))
        if self.down:
            return Response("down for maintenance", status=503)
        return Response(json.dumps({"id": f"{self.name}-{len(self.calls)}"}),
                        content_type="application/json")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[HTTPServer, HTTPServer]]:
    with local_http_server() as a, local_http_server() as b:
        yield a, b


@pytest.fixture
def gateways(servers: tuple[HTTPServer, HTTPServer]) -> Iterator[tuple[Gateway, Gateway]]:
    stripe, paypal = Gateway("stripe"), Gateway("paypal")
    servers[0].expect_request("/v1/charges", method="POST").respond_with_handler(stripe)
    servers[0].expect_request("/", method="HEAD").respond_with_data("", status=404)
    servers[1].expect_request("/v2/payments", method="POST").respond_with_handler(paypal)
    servers[1].expect_request("/", method="HEAD").respond_with_data("", status=404)
    yield stripe, paypal
    for s in servers:
        s.clear()


def write_specs(tmp_path: Path, servers: tuple[HTTPServer, HTTPServer], relay_a: int,
                relay_b: int, workflow: str | None = None) -> Path:
    a, b = servers
    root = tmp_path / "specs"
    (root / "pay" / "workflows").mkdir(parents=True)
    (root / "pay" / "product.yaml").write_text(textwrap.dedent(f"""\
        product: pay
        envs: [dev]
        apps:
          stripe:
            envs: {{dev: {{base_url: "http://127.0.0.1:{a.port}"}}}}
            events: {{create-charge: {{method: POST, path: /v1/charges, body: [amount]}}}}
          paypal:
            envs: {{dev: {{base_url: "http://127.0.0.1:{b.port}"}}}}
            events: {{payment: {{method: POST, path: /v2/payments, body: [amount]}}}}
        notifications:
          mailer:
            envs:
              dev:
                providers:
                  - {{name: relay-a, provider: smtp, host: 127.0.0.1, port: {relay_a},
                     tls: none, timeout: 2s, from: shop@example.com}}
                  - {{name: relay-b, provider: smtp, host: 127.0.0.1, port: {relay_b},
                     tls: none, timeout: 2s, from: shop@example.com}}
            events:
              receipt: {{subject: "Receipt {{{{ amount }}}}", text: "Thanks."}}
        fallbacks:
          charge:
            breaker: {{failures: 2, cooldown: 1h}}
            providers:
              - {{name: stripe, app: stripe, event: create-charge, retries: 1,
                 retry_delay: 1ms}}
              - {{name: paypal, app: paypal, event: payment}}
        quotas:
          receipts:
            window: 1h
            providers:
              - {{name: a, notification: mailer, provider: relay-a, event: receipt,
                 weight: 1, limit: 2}}
              - {{name: b, notification: mailer, provider: relay-b, event: receipt,
                 weight: 1, limit: 2}}
        """))
    if workflow:
        (root / "pay" / "workflows" / "checkout.yaml").write_text(textwrap.dedent(workflow))
    return root


async def test_ctx_fallback_is_one_step_saying_which_provider_served(
        tmp_path: Path, servers: tuple[HTTPServer, HTTPServer],
        gateways: tuple[Gateway, Gateway]) -> None:
    stripe, paypal = gateways
    specs = write_specs(tmp_path, servers, free_port(), free_port())
    async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        @dw.workflows.workflow(product="pay", tag="pay-twice")
        async def handler(ctx: Any) -> Any:
            first = await ctx.fallback.execute(fallback="charge", input={"amount": 1})
            stripe.down = True  # the primary fails mid-run
            second = await ctx.fallback.execute(fallback="charge", input={"amount": 2})
            # Inside a step of the user's own: no second step.
            third = await ctx.step("third", lambda: ctx.fallback.execute(
                fallback="charge", input={"amount": 3}))
            # The product docs' shape: one options dict.
            fourth = await ctx.fallback.execute({"fallback": "charge", "input": {"amount": 4},
                                                 "tag": "fourth"})
            return [first, second, third, fourth]

        result = await dw.workflows.execute(product="pay", env="dev", tag="pay-twice",
                                            input={}, workflow_id="pay-1")
        assert result.status == "completed", result.error
        first, second, third, fourth = result.output
        assert first == {"provider": "stripe", "output": {"id": "stripe-1"}, "attempts": [],
                         "skipped": []}
        assert second["provider"] == "paypal" and second["output"] == {"id": "paypal-1"}
        assert [a["provider"] for a in second["attempts"]] == ["stripe", "stripe"]
        assert "503" in second["attempts"][0]["error"]
        # Two failed calls in a row (each after its retry) opened stripe's breaker: the
        # fourth call skips it.
        assert third["provider"] == "paypal" and third["skipped"] == []
        assert fourth["provider"] == "paypal" and fourth["attempts"] == []
        assert fourth["skipped"][0]["provider"] == "stripe"
        assert "circuit open" in fourth["skipped"][0]["reason"]
        assert stripe.calls == [1, 2, 2, 3, 3] and paypal.calls == [2, 3, 4]
        assert result.completed_steps == ["fallback:charge", "third", "fourth"]
        keys = [s.step_key for s in await dw.store.load_steps("pay-1")]
        assert keys == ["fallback:charge", "fallback:charge#2", "third", "fourth"]
        again = await dw.workflows.execute(product="pay", env="dev", tag="pay-twice",
                                           input={}, workflow_id="pay-1")
        assert again.output == result.output
        assert stripe.calls == [1, 2, 2, 3, 3] and paypal.calls == [2, 3, 4]


async def test_yaml_steps_fallback_quota_and_healthcheck_with_smtp_relays(
        tmp_path: Path, servers: tuple[HTTPServer, HTTPServer],
        gateways: tuple[Gateway, Gateway]) -> None:
    stripe, paypal = gateways
    stripe.down = True
    with smtp_server(tmp_path / "a") as relay_a, smtp_server(tmp_path / "b") as relay_b:
        specs = write_specs(tmp_path, servers, relay_a.port, relay_b.port, """\
            workflow: checkout
            input: {type: object, properties: {amount: {type: integer}}}
            steps:
              - tag: charge
                fallback.execute: {fallback: charge, input: {amount: "${ctx.input.amount}"}}
              - tag: mail-health
                healthcheck.get_status: {resource: mailer, timeout: 5s}
              - tag: receipts
                foreach:
                  items: "${[1, 2, 3, 4]}"
                  concurrency: 1
                  steps:
                    - tag: receipt
                      quota.execute:
                        quota: receipts
                        input: {amount: "${item}", recipients: [ann@example.com]}
            output:
              charged_by: "${steps.charge.provider}"
              mail: "${steps.mail-health.status}"
              receipts: "${steps.receipts}"
            """)
        async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
            result = await dw.workflows.execute(product="pay", env="dev", tag="checkout",
                                                input={"amount": 7}, workflow_id="co-1")
            assert result.status == "completed", result.error
            assert result.output["charged_by"] == "paypal"
            assert result.output["mail"] == "available"
            by = [item["receipt"]["provider"] for item in result.output["receipts"]]
            assert by == ["a", "b", "a", "b"]  # weights 1:1, in turn
            assert [s for s in result.completed_steps if s == "charge"] == ["charge"]
            # Both relays are at their limit of 2 per window: a fifth receipt cannot go out,
            # which the quota's result says (allowed: false) without calling either relay.
            @dw.workflows.workflow(product="pay", tag="one-more")
            async def one_more(ctx: Any) -> Any:
                return await ctx.quota.execute(quota="receipts", input={
                    "amount": 5, "recipients": ["ann@example.com"]})

            more = await dw.workflows.execute(product="pay", env="dev", tag="one-more",
                                              input={})
            assert more.status == "completed", more.error
            assert more.output["allowed"] is False and more.output["provider"] is None
            assert [s["reason"] for s in more.output["skipped"]] == [
                "limit 2 per 3600s reached"] * 2
    assert sorted(m["Subject"] for m in relay_a.messages()) != []
    assert len(relay_a.messages()) == 2 and len(relay_b.messages()) == 2
    assert stripe.calls == [7, 7] and paypal.calls == [7]


async def test_ctx_healthcheck_reports_each_provider(
        tmp_path: Path, servers: tuple[HTTPServer, HTTPServer],
        gateways: tuple[Gateway, Gateway]) -> None:
    dead = free_port()
    with smtp_server(tmp_path / "a") as relay_a:
        specs = write_specs(tmp_path, servers, relay_a.port, dead)
        async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
            @dw.workflows.workflow(product="pay", tag="health")
            async def health(ctx: Any) -> Any:
                mail = await ctx.healthcheck.get_status("mailer")
                app = await ctx.healthcheck.get_status("stripe", kind="action")
                return {"mail": mail, "app": app}

            result = await dw.workflows.execute(product="pay", env="dev", tag="health",
                                                input={}, workflow_id="h-1")
            assert result.status == "completed", result.error
            mail, app = result.output["mail"], result.output["app"]
            assert mail["status"] == "available"
            assert {p["provider"]: p["status"] for p in mail["providers"]} == {
                "relay-a": "up", "relay-b": "down"}
            assert mail["last_latency"] is not None and mail["last_checked"].endswith("Z")
            assert app["status"] == "available"
            assert app["providers"][0]["detail"] == "HEAD / -> 404"
            assert result.completed_steps == ["healthcheck:mailer", "healthcheck:stripe"]

            @dw.workflows.workflow(product="pay", tag="bad-health")
            async def bad(ctx: Any) -> Any:
                return await ctx.healthcheck.get_status("mailr")

            failed = await dw.workflows.execute(product="pay", env="dev", tag="bad-health",
                                                input={})
            assert failed.status == "failed"
            assert "no resource named 'mailr'" in str(failed.error)
    # Both relays down: unavailable.
    specs = write_specs(tmp_path / "2", servers, dead, dead)
    async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs2.db'}") as dw:
        @dw.workflows.workflow(product="pay", tag="health")
        async def health2(ctx: Any) -> Any:
            return await ctx.healthcheck.get_status("mailer")

        result = await dw.workflows.execute(product="pay", env="dev", tag="health", input={})
        assert result.output["status"] == "unavailable"
        assert result.output["last_latency"] is None


async def test_an_undeclared_fallback_is_a_clear_error(tmp_path: Path,
                                                       servers: tuple[HTTPServer, HTTPServer]
                                                       ) -> None:
    specs = write_specs(tmp_path, servers, free_port(), free_port())
    async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        @dw.workflows.workflow(product="pay", tag="typo")
        async def typo(ctx: Any) -> Any:
            return await ctx.fallback.execute(fallback="chrge", input={})

        result = await dw.workflows.execute(product="pay", env="dev", tag="typo", input={})
        assert result.status == "failed"
        assert "no fallback named 'chrge'" in str(result.error)
        assert "did you mean 'charge'" in str(result.error)
    assert issubclass(ConfigurationError, Exception)


@pytest.mark.slow
def test_killed_while_the_backup_serves_then_recovered_completes_once(
        tmp_path: Path, servers: tuple[HTTPServer, HTTPServer]) -> None:
    """The primary serves the first charge, then fails; the process dies while the backup
    serves the second. Recovered in a new process, the run completes once: the first charge
    is not made again, the second (in flight at the crash) is asked again."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    stripe, paypal = Gateway("stripe"), Gateway("paypal")
    in_flight, release = threading.Event(), threading.Event()

    def stripe_then_down(request: Request) -> Response:
        stripe.down = len(stripe.calls) >= 1
        return stripe(request)

    def paypal_hangs_once(request: Request) -> Response:
        if not in_flight.is_set():
            in_flight.set()
            release.wait(30)  # the child is killed meanwhile
        return paypal(request)

    servers[0].expect_request("/v1/charges", method="POST").respond_with_handler(
        stripe_then_down)
    servers[1].expect_request("/v2/payments", method="POST").respond_with_handler(
        paypal_hangs_once)
    app = Path(__file__).with_name("fallback_crash_app.py")
    specs, db = write_specs(tmp_path, servers, free_port(), free_port()), tmp_path / "runs.db"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = subprocess.Popen([sys.executable, str(app), str(specs), str(db), "execute"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 30
        while not in_flight.wait(0.05):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the backup was never called"
        child.send_signal(signal.SIGKILL)
        child.communicate()
    finally:
        release.set()
    assert child.returncode == -signal.SIGKILL
    assert stripe.calls == [1, 2, 2]  # charge 1 served; charge 2 failed (and its retry)
    assert paypal.calls in ([], [2])  # the hung request may finish after the kill

    rec = subprocess.run([sys.executable, str(app), str(specs), str(db), "recover"],
                         capture_output=True, timeout=120, env=env)
    assert rec.returncode == 0, rec.stderr.decode()
    assert rec.stdout.decode().strip() == "completed ['stripe', 'paypal']"
    # The first charge, completed before the crash, was never made again; the second, in
    # flight, was asked again (a new process: the breaker starts closed, stripe is retried).
    assert stripe.calls == [1, 2, 2, 2, 2]
    assert paypal.calls[-1] == 2 and 1 not in paypal.calls
    servers[0].clear()
    servers[1].clear()
