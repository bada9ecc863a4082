"""A traced workflow run in a child process by the tracing crash test (python tracing_app.py
DB SPANS MODE): every ended span is appended to SPANS as one JSON line."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from ductwork import Ductwork


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            # O_APPEND + fsync: the test reads this file to decide when to kill us.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.write(fd, (span.to_json(indent=None) + "\n").encode())
            os.fsync(fd)
            os.close(fd)
        return SpanExportResult.SUCCESS


async def main(db: str, spans: str, mode: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(spans)))
    async with Ductwork(store=f"sqlite:///{db}", tracing=provider, inline_wait="100ms") as dw:
        @dw.workflows.workflow(product="crash", tag="slow")
        async def slow(ctx: Any) -> Any:
            await ctx.step("a", lambda: "a")

            async def b() -> str:
                if mode == "execute":
                    with open(os.path.join(os.path.dirname(db), "in-b"), "w"):
                        pass
                    await asyncio.sleep(60)  # killed here
                return "b"

            return [await ctx.step("b", b)]

        if mode == "execute":
            await dw.workflows.execute(product="crash", env="dev", tag="slow",
                                       workflow_id="run-1")
        else:
            (r,) = await dw.workflows.recover()
            print(r.status, flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
