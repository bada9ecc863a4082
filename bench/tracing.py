"""What tracing costs a step: a 500-step run with tracing off, and on (OpenTelemetry SDK, spans
kept in memory). Prints one JSON line per figure. Run: python bench/tracing.py"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ductwork import Ductwork

STEPS = 500
ROUNDS = 5


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def one(folder: str, label: str, tracing: Any) -> float:
    """The best of ROUNDS runs' time per step, in microseconds."""
    async with Ductwork(store=f"sqlite:///{folder}/{label}.db", tracing=tracing,
                        environ={}) as dw:
        async def step() -> int:
            return 1

        @dw.workflows.workflow(product="bench", tag="many")
        async def many(ctx: Any) -> None:
            for i in range(STEPS):
                await ctx.step(f"s{i}", step)

        best = float("inf")
        for _ in range(ROUNDS):
            t = time.perf_counter()
            res = await dw.workflows.execute(product="bench", env="dev", tag="many")
            best = min(best, time.perf_counter() - t)
            assert res.status == "completed", res.error
        return best / STEPS * 1e6


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        off = await one(folder, "off", False)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        on = await one(folder, "on", provider)
        spans = len(exporter.get_finished_spans())
    emit(bench="tracing", figure="step_us_tracing_off", value=round(off, 1), steps=STEPS)
    emit(bench="tracing", figure="step_us_tracing_on", value=round(on, 1), steps=STEPS,
         spans=spans)
    emit(bench="tracing", figure="tracing_overhead_us_per_step", value=round(on - off, 1))


if __name__ == "__main__":
    asyncio.run(main())
