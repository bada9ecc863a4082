"""Prometheus metrics scraped after real runs: from the server's /metrics and a worker's port."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ductwork import Ductwork
from tests.server.conftest import client
from tests.support.ports import free_port, wait_port
from tests.support.process import stop_process


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def define(dw: Ductwork) -> None:
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) % 2:
            raise ConnectionError("reset")
        return "ok"

    async def pay(ctx: Any) -> Any:
        await ctx.step("charge", flaky, rollback=lambda r: None, retries=1, retry_delay=1)
        if ctx.input.get("fail"):
            await ctx.step("ship", _boom)
        return "paid"

    dw.workflows.define(product="shop", tag="pay", handler=pay)

    async def hold(ctx: Any) -> Any:
        await ctx.sleep("1h")

    dw.workflows.define(product="shop", tag="hold", handler=hold)


def _boom() -> None:
    raise RuntimeError("no carrier")


def test_server_metrics_after_runs(serve: Any, tmp_path: Path, tokens: dict[str, str]) -> None:
    dw = Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}", inline_wait="100ms")
    define(dw)
    srv = serve(ductwork=dw)
    with client(srv, tokens["operator"]) as c:
        def run(tag: str, wid: str, **input: Any) -> dict[str, Any]:
            body = {"product": "shop", "workflow": tag, "env": "dev", "workflow_id": wid,
                    "input": input, "wait": True, "timeout": "30s"}
            return c.post("/api/runs", json=body).json()

        assert run("pay", "p-1")["status"] == "completed"
        assert run("pay", "p-2")["status"] == "completed"
        assert run("pay", "p-3", fail=True)["status"] == "rolled_back"
        assert run("hold", "h-1")["status"] == "running"
        assert c.post("/api/runs/h-1/cancel", json={}).json()["status"] == "cancelled"
        sched = c.post("/api/dispatch", json={
            "product": "shop", "workflow": "pay", "env": "dev",
            "schedule": {"every": "1h", "start_at": "2000-01-01T00:00:00Z", "limit": 1,
                         "catchup": "latest"}}).json()
        deadline = time.monotonic() + 30
        while c.get(f"/api/schedules/{sched['job_id']}").json()["runs"] < 1:
            assert time.monotonic() < deadline, "the schedule never fired"
            time.sleep(0.05)
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)
    wf = {"product": "shop", "workflow": "pay"}
    assert value(m, "ductwork_runs_started_total", **wf) >= 3
    assert value(m, "ductwork_runs_finished_total", **wf, status="completed") >= 2
    assert value(m, "ductwork_runs_finished_total", **wf, status="rolled_back") == 1
    assert value(m, "ductwork_runs_finished_total", product="shop", workflow="hold",
                 status="cancelled") == 1
    assert value(m, "ductwork_step_retries_total", **wf, step="charge") >= 3
    assert value(m, "ductwork_step_duration_seconds_count", **wf, step="charge",
                 status="completed") >= 3
    assert value(m, "ductwork_step_duration_seconds_count", **wf, step="ship",
                 status="failed") == 1
    assert value(m, "ductwork_compensations_total", **wf, status="rolled_back") == 1
    assert value(m, "ductwork_schedules_fired_total", **wf) == 1
    assert value(m, "ductwork_claim_latency_seconds_count", queue="default") >= 1


def test_queue_depth_counts_runs_no_worker_claimed(serve: Any, tmp_path: Path,
                                                   tokens: dict[str, str]) -> None:
    dw = Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}")
    define(dw)
    srv = serve(ductwork=dw, worker=False)
    with client(srv, tokens["operator"]) as c:
        for i in range(3):
            c.post("/api/dispatch", json={"product": "shop", "workflow": "pay", "env": "dev",
                                          "options": {"queue": "emails" if i else "default"}})
        m = samples(c.get("/metrics").text)
    assert value(m, "ductwork_queue_depth", queue="emails") == 2
    assert value(m, "ductwork_queue_depth", queue="default") == 1


WORKER_MODULE = '''
from ductwork import Ductwork


def register(dw: Ductwork) -> None:
    async def hello(ctx):
        return await ctx.step("greet", lambda: "hi " + ctx.input["name"])

    dw.workflows.define(product="demo", tag="hello", handler=hello)
'''


def test_worker_metrics_port(tmp_path: Path) -> None:
    (tmp_path / "demo_flows.py").write_text(WORKER_MODULE)
    store = f"sqlite:///{tmp_path / 'runs.db'}"

    async def dispatch() -> None:
        sys.path.insert(0, str(tmp_path))
        try:
            import demo_flows  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(tmp_path))
        async with Ductwork(store=store) as dw:
            demo_flows.register(dw)
            await dw.workflows.dispatch("demo", "dev", "hello", {"name": "ann"},
                                        workflow_id="hello-1")

    asyncio.run(dispatch())
    port = free_port()
    exe = Path(sys.executable).with_name("ductwork")
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "worker", "--import", "demo_flows", "--store", store, "--poll", "100ms",
             "--metrics-port", str(port)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        deadline = time.monotonic() + 30
        while True:
            m = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
            done = value(m, "ductwork_runs_finished_total", product="demo", workflow="hello",
                         status="completed")
            if done:
                break
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)
        assert value(m, "ductwork_runs_started_total", product="demo", workflow="hello") == 1
        assert value(m, "ductwork_claim_latency_seconds_count", queue="default") == 1
        assert value(m, "ductwork_queue_depth", queue="default") == 0
    finally:
        proc.terminate()
        proc.wait(30)
        stop_process(proc)
    assert proc.returncode == 0, (tmp_path / "worker.log").read_text()


def test_worker_metrics_port_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        exe = Path(sys.executable).with_name("ductwork")
        out = subprocess.run([str(exe), "worker", "--store", f"sqlite:///{tmp_path / 'r.db'}",
                              "--metrics-port", str(port)], cwd=tmp_path, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode == 1
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in out.stderr
