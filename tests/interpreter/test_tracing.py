"""OpenTelemetry: spans per run, step attempt, compensation and signal wait; one trace a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pytest_httpserver import HTTPServer

from ductwork import Ductwork
from ductwork.connectors.action import HttpActionConnector
from ductwork.connectors.base import ResourceSpec, build_connector
from tests.support.action import EVENTS
from tests.support.action import clean_server as clean_server  # autouse fixture
from tests.support.action import server as server  # module fixture

APP = Path(__file__).with_name("tracing_app.py")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


def _provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _by_start(spans: Any) -> list[ReadableSpan]:
    return sorted(spans, key=lambda s: s.start_time or 0)


def _hex(span: ReadableSpan, what: str = "span") -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}" if what == "trace" else f"{ctx.span_id:016x}"


def _parent(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


async def test_failed_run_with_rollback_shows_every_step_and_compensation_in_order(
        store_url: str, exporter: InMemorySpanExporter) -> None:
    async with Ductwork(store=store_url, tracing=_provider(exporter),
                        secrets={"TOKEN": "s3cr3t-token"}) as dw:
        attempts = {"n": 0}

        @dw.workflows.workflow(product="shop", tag="order")
        async def order(ctx: Any) -> Any:
            await ctx.step("reserve", lambda: {"id": 1}, lambda r: None)
            await ctx.step("charge", lambda: {"id": 2}, lambda r: None)

            def ship() -> None:
                attempts["n"] += 1
                raise RuntimeError(f"warehouse closed (token {dw.secret('TOKEN')})")

            await ctx.step("ship", ship, retries=1, retry_delay=1)

        res = await dw.workflows.execute(product="shop", env="dev", tag="order",
                                         workflow_id="order-1")
    assert res.status == "rolled_back"
    spans = _by_start(exporter.get_finished_spans())
    assert [s.name for s in spans] == [
        "start shop/order", "workflow shop/order", "step reserve", "step charge", "step ship",
        "step ship", "rollback charge", "rollback reserve"]
    start, run, *ops = spans
    assert {_hex(s, "trace") for s in spans} == {_hex(start, "trace")}
    assert start.parent is None and _parent(run) == _hex(start)
    assert all(_parent(s) == _hex(run) for s in ops)
    assert run.attributes is not None and ops[3].attributes is not None
    assert dict(run.attributes) == {
        "ductwork.workflow": "shop/order", "ductwork.run_id": "order-1", "ductwork.env": "dev",
        "ductwork.run.resumed": False, "ductwork.status": "rolled_back"}
    assert run.status.status_code is StatusCode.ERROR
    assert "warehouse closed" in (run.status.description or "")
    assert [(s.attributes or {}).get("ductwork.attempt") for s in ops[:4]] == [1, 1, 1, 2]
    assert [(s.attributes or {}).get("ductwork.status") for s in ops] == [
        "completed", "completed", "retrying", "failed", "rolled_back", "rolled_back"]
    failed = ops[3]
    assert failed.status.status_code is StatusCode.ERROR
    assert ops[2].status.status_code is StatusCode.ERROR
    (event,) = failed.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    # The secret never reaches the trace: messages are redacted like the store's.
    dumped = json.dumps([json.loads(s.to_json()) for s in spans])
    assert "s3cr3t-token" not in dumped and "warehouse closed" in dumped
    assert ops[4].status.status_code is StatusCode.OK


async def test_traceparent_reaches_the_http_server_of_a_step_and_of_its_rollback(
        store_url: str, exporter: InMemorySpanExporter, server: HTTPServer) -> None:
    server.expect_request("/v1/charges", method="POST").respond_with_json({"id": "ch_1"})
    server.expect_request("/v1/refunds", method="POST").respond_with_json({"id": "re_1"})
    async with Ductwork(store=store_url, tracing=_provider(exporter)) as dw:
        raw = {"base_url": server.url_for("")}
        conn = build_connector(ResourceSpec(
            kind="action", name="stripe", env="dev", product="shop", config=raw,
            definition={"envs": {"dev": raw}, "events": EVENTS}, secrets=dw.secrets))
        assert isinstance(conn, HttpActionConnector)
        dw.connectors.register("action", "stripe", conn)

        @dw.workflows.workflow(product="shop", tag="pay")
        async def pay(ctx: Any) -> Any:
            await ctx.step(
                "charge",
                lambda: ctx.action.run(app="stripe", event="create-charge",
                                       input={"body": {"amount": 5}}),
                lambda r: ctx.action.run(app="stripe", event="refund-charge",
                                         input={"body": {"chargeId": r["id"]}}))
            await ctx.step("ship", lambda: 1 / 0)

        try:
            res = await dw.workflows.execute(product="shop", env="dev", tag="pay")
        finally:
            await conn.aclose()
    assert res.status == "rolled_back"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    # version-trace id-parent span id-flags (sampled, and random trace id in W3C level 2)
    seen = {r.path: r.headers.get("traceparent", "").rsplit("-", 1)[0] for r, _ in server.log}
    trace_id = _hex(spans["workflow shop/pay"], "trace")
    assert seen == {
        "/v1/charges": f"00-{trace_id}-{_hex(spans['step charge'])}",
        "/v1/refunds": f"00-{trace_id}-{_hex(spans['rollback charge'])}"}


async def test_an_explicit_traceparent_header_of_the_call_is_kept(
        store_url: str, exporter: InMemorySpanExporter) -> None:
    from ductwork.util import propagation

    async with Ductwork(store=store_url, tracing=_provider(exporter)) as dw:
        seen: dict[str, str] = {}

        @dw.workflows.workflow(product="p", tag="w")
        async def w(ctx: Any) -> Any:
            def call() -> None:
                headers = {"TraceParent": "mine"}
                propagation.inject(headers)
                seen.update(headers)

            await ctx.step("a", call)

        await dw.workflows.execute(product="p", env="dev", tag="w")
    assert seen == {"TraceParent": "mine"}


async def test_a_child_run_is_in_its_parents_trace(
        store_url: str, exporter: InMemorySpanExporter) -> None:
    async with Ductwork(store=store_url, tracing=_provider(exporter)) as dw:
        @dw.workflows.workflow(product="p", tag="child")
        async def child(ctx: Any) -> Any:
            return await ctx.step("inner", lambda: 42)

        @dw.workflows.workflow(product="p", tag="parent")
        async def parent(ctx: Any) -> Any:
            await ctx.step("before", lambda: 1)
            return await ctx.workflow("kid", "child")

        res = await dw.workflows.execute(product="p", env="dev", tag="parent")
    assert res.status == "completed" and res.output == 42
    spans = {s.name: s for s in exporter.get_finished_spans()}
    top, kid = spans["workflow p/parent"], spans["workflow p/child"]
    assert _hex(kid, "trace") == _hex(top, "trace")
    assert _parent(spans["start p/child"]) == _hex(top)
    assert _parent(kid) == _hex(spans["start p/child"])
    assert _parent(spans["step inner"]) == _hex(kid)


async def test_a_signal_wait_and_the_resumed_execution_continue_the_run_trace(
        store_url: str, exporter: InMemorySpanExporter) -> None:
    async with Ductwork(store=store_url, tracing=_provider(exporter), inline_wait="50ms") as dw:
        @dw.workflows.workflow(product="p", tag="approval")
        async def approval(ctx: Any) -> Any:
            await ctx.step("ask", lambda: 1)
            decision = await ctx.wait_for_signal("approve")
            return await ctx.step("apply", lambda: decision["ok"])

        first = await dw.workflows.execute(product="p", env="dev", tag="approval",
                                           workflow_id="ap-1")
        assert first.status == "running"  # suspended: waiting in the store
        await dw.workflows.signal("ap-1", "approve", {"ok": True})
        done = await dw.workflows.result("ap-1", timeout="10s")
    assert done.status == "completed" and done.output is True
    spans = _by_start(exporter.get_finished_spans())
    assert [(s.name, (s.attributes or {}).get("ductwork.status")) for s in spans] == [
        ("start p/approval", None),
        ("workflow p/approval", "waiting"), ("step ask", "completed"),
        ("signal approve", "suspended"),
        ("workflow p/approval", "completed"), ("signal approve", "received"),
        ("step apply", "completed")]
    start, first_run, _, _, second_run, *_ = spans
    assert {_hex(s, "trace") for s in spans} == {_hex(start, "trace")}
    assert _parent(first_run) == _parent(second_run) == _hex(start)
    assert (first_run.attributes or {}).get("ductwork.run.resumed") is False
    assert (second_run.attributes or {}).get("ductwork.run.resumed") is True


async def test_a_run_started_inside_a_span_continues_it(
        store_url: str, exporter: InMemorySpanExporter) -> None:
    provider = _provider(exporter)
    async with Ductwork(store=store_url, tracing=provider) as dw:
        @dw.workflows.workflow(product="p", tag="w")
        async def w(ctx: Any) -> Any:
            return await ctx.step("a", lambda: 1)

        with provider.get_tracer("caller").start_as_current_span("http request"):
            job = await dw.workflows.dispatch(product="p", env="dev", workflow="w")
        res = await dw.workflows.result(job["workflow_id"], timeout="10s")
    assert res.status == "completed"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert _parent(spans["start p/w"]) == _hex(spans["http request"])
    assert _parent(spans["workflow p/w"]) == _hex(spans["start p/w"])
    assert _hex(spans["workflow p/w"], "trace") == _hex(spans["http request"], "trace")


def test_one_run_is_one_trace_across_a_crash_and_a_resume_in_another_process(
        tmp_path: Path) -> None:
    db, out, marker = tmp_path / "runs.db", tmp_path / "spans.jsonl", tmp_path / "in-b"
    first = subprocess.Popen([sys.executable, str(APP), str(db), str(out), "execute"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(2000):
            if marker.exists():
                break
            if first.poll() is not None:
                raise AssertionError(first.communicate())
            time.sleep(0.01)
        else:
            raise AssertionError("the first process never reached step b")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate()
    second = subprocess.run([sys.executable, str(APP), str(db), str(out), "recover"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "completed"
    spans = [json.loads(line) for line in out.read_text().splitlines()]
    names = [s["name"] for s in spans]
    # The crashed execution's own span never ended (the process died); its step a did.
    assert names == ["start crash/slow", "step a", "step b", "workflow crash/slow"], names
    assert len({s["context"]["trace_id"] for s in spans}) == 1
    start, step_a, step_b, resumed = spans
    assert resumed["attributes"]["ductwork.run.resumed"] is True
    assert resumed["parent_id"] == start["context"]["span_id"]
    assert step_b["parent_id"] == resumed["context"]["span_id"]
    assert step_a["parent_id"] not in (start["context"]["span_id"], resumed["context"]["span_id"])


def test_tracing_off_imports_no_opentelemetry_and_adds_no_observer(tmp_path: Path) -> None:
    code = f"""
import asyncio, sys
from ductwork import Ductwork
from ductwork.util import propagation

async def main():
    async with Ductwork(store="sqlite:///{tmp_path / 'runs.db'}", environ={{}}) as dw:
        @dw.workflows.workflow(product="p", tag="w")
        async def w(ctx):
            return await ctx.step("a", lambda: 1)
        r = await dw.workflows.execute(product="p", env="dev", tag="w")
        assert r.status == "completed"
        assert dw.runtime.observer is None and not propagation._injectors
    names = ("opentelemetry", "ductwork.interpreter.tracing")
    print(sorted(m for m in sys.modules if m.startswith(names)))

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_tracing_without_the_opentelemetry_api_says_what_to_install(tmp_path: Path) -> None:
    code = """
import sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
from ductwork import Ductwork
from ductwork.errors import ConfigurationError
try:
    Ductwork(store="sqlite://:memory:", environ={"DUCTWORK_TRACING": "1"})
except ConfigurationError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'ductwork[otel]'" in out.stdout
    assert "DUCTWORK_TRACING" in out.stdout


async def test_tracing_is_turned_on_by_the_environment(store_url: str) -> None:
    async with Ductwork(store=store_url, environ={"DUCTWORK_TRACING": "1"}) as dw:
        assert dw.runtime.observer is not None
    async with Ductwork(store=store_url, environ={"DUCTWORK_TRACING": "1"},
                        tracing=False) as dw:
        assert dw.runtime.observer is None
