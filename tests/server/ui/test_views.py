"""What the run page is built from: the timeline of stored rows, and the run's trace id."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ductwork import Ductwork
from ductwork.server.ui import views


async def test_the_timeline_and_trace_id_of_a_traced_rolled_back_run(store_url: str) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    async with Ductwork(store=store_url, tracing=provider) as dw:
        @dw.workflows.workflow(product="p", tag="w")
        async def w(ctx: Any) -> Any:
            await ctx.step("a", lambda: {"token": "t-1"}, lambda r: None)
            await ctx.step("b", lambda: 2, lambda r: None)
            await ctx.sleep("10ms")
            await ctx.step("c", lambda: 1 / 0, retries=1, retry_delay=1)

        res = await dw.workflows.execute(product="p", env="dev", tag="w", workflow_id="r1")
        assert res.status == "rolled_back"
        run = await dw.store.get_run("r1")
        assert run is not None
        tl = views.timeline(dw, run, await dw.store.load_steps("r1"),
                            await dw.store.events("r1"))
    assert [(b.label, b.kind, b.status) for b in tl.main] == [
        ("a", "step", "rolled_back"), ("b", "step", "rolled_back"),
        ("sleep", "sleep", "completed"), ("c", "step", "failed")]
    failed = tl.main[-1]
    assert failed.attempts == 2 and len(failed.ticks) == 1
    assert "ZeroDivisionError" in (failed.error or "")
    assert '"token": "***"' in (tl.main[0].output or "")
    assert [(b.label, b.status) for b in tl.rollback] == [("undo b", "rolled_back"),
                                                          ("undo a", "rolled_back")]
    bars = tl.main + tl.rollback
    assert all(0 <= b.left <= 100 and 0 < b.width <= 100 for b in bars)
    assert [b.left for b in tl.main] == sorted(b.left for b in tl.main)
    (root,) = [s for s in spans.get_finished_spans() if s.name == "start p/w"]
    assert views.trace_id(run) == f"{root.context.trace_id:032x}"


def test_durations_read_like_a_person_would_write_them() -> None:
    assert [views.duration(s) for s in (0.0123, 1.5, 125, 3 * 3600 + 600, 3 * 86400)] == [
        "12ms", "1.5s", "2m 05s", "3h 10m", "3d 0h"]
