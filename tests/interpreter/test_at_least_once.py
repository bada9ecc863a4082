"""At-least-once made safe: a step killed after its side effect and before its commit runs again
on another worker and reaches the provider with the same idempotency key."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork import Ductwork
from ductwork.connectors.idempotency import key_for
from tests.support.http import local_http_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def provider() -> Iterator[HTTPServer]:
    with local_http_server() as server:
        yield server


def write_specs(base: Path, url: str) -> Path:
    specs = base / "specs"
    (specs / "shop" / "workflows").mkdir(parents=True)
    (specs / "shop" / "product.yaml").write_text(textwrap.dedent(f"""
        product: shop
        envs: [dev]
        apps:
          psp:
            envs: {{dev: {{base_url: "{url}", timeout: 60s}}}}
            events: {{charge: {{method: POST, path: /v1/charges, body: [amount]}}}}
        """))
    (specs / "shop" / "workflows" / "pay.yaml").write_text(textwrap.dedent("""
        workflow: pay
        steps:
          - tag: charge
            action.run: {app: psp, event: charge, input: {amount: "${ctx.input.amount}"}}
        output: {charge: "${steps.charge.id}"}
        """))
    return specs


def worker(specs: Path, store: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ductwork.cli", "worker", "--specs", str(specs), "--store",
             store, "--poll", "50ms", "--no-schedules"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
async def test_a_step_killed_after_its_call_reaches_the_provider_again_with_its_key(
        provider: HTTPServer, tmp_path: Path) -> None:
    calls: list[tuple[str | None, Any]] = []
    first_call = threading.Event()
    release = threading.Event()

    def charge(request: Request) -> Response:
        calls.append((request.headers.get("Idempotency-Key"), request.get_json()))
        if len(calls) == 1:
            first_call.set()
            release.wait(30)  # the charge is made; the worker dies before it hears back
        return Response('{"id": "ch_1"}', 200, content_type="application/json")

    provider.expect_request("/v1/charges", method="POST").respond_with_handler(charge)
    specs = write_specs(tmp_path, provider.url_for(""))
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    log = tmp_path / "workers.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with Ductwork(specs=str(specs), store=store) as client:
            await client.workflows.dispatch("shop", "dev", "pay", {"amount": 500},
                                            workflow_id="pay-1")
            procs.append(worker(specs, store, log))
            deadline = time.monotonic() + 60
            while not first_call.is_set():
                assert procs[0].poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.02)
            os.kill(procs[0].pid, signal.SIGKILL)
            assert procs[0].wait() == -signal.SIGKILL
            release.set()
            assert (await client.store.load_steps("pay-1")) == []  # nothing was committed

            procs.append(worker(specs, store, log))  # takes the dead worker's run over
            while (run := await client.store.get_run("pay-1")) is not None and \
                    run.status != "completed":
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.05)
            result = await client.workflows.result("pay-1")
        assert result.status == "completed" and result.output == {"charge": "ch_1"}
        key = key_for("pay-1", "charge")
        assert calls == [(key, {"amount": 500}), (key, {"amount": 500})]
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(timeout=30) == 0, log.read_text()
    finally:
        release.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
