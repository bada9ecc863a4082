"""Provider pools' own cost, printing JSON lines: `python bench/fallback.py`.

choose:   microseconds a fallback or quota pool spends choosing and bookkeeping per call (the
          call itself a no-op coroutine), 2 and 8 providers.
http:     per-call milliseconds of an app action on a local HTTP server, a single provider vs
          a 2-provider fallback pool whose first provider is up, and whose first provider's
          breaker is open (the call goes straight to the second).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ductwork.connectors.base import ResourceSpec, build_connector
from ductwork.connectors.providers import read_pool
from ductwork.interpreter.fallback import Strategy, build_pool


def _emit(bench: str, **fields: Any) -> None:
    print(json.dumps({"bench": bench, **fields}), flush=True)


async def bench_choose() -> None:
    async def noop(_m: Any) -> int:
        return 1

    for strategy in ("fallback", "quota"):
        for n in (2, 8):
            pool = read_pool({"strategy": strategy, "providers": [
                {"name": f"p{i}", "weight": i + 1, "limit": 10**9} for i in range(n)]})
            strat = Strategy("bench", pool)
            calls = 20_000
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(calls):
                    await strat.run(noop)
                best = min(best, time.perf_counter() - t0)
            _emit("choose", strategy=strategy, providers=n,
                  us_per_call=round(best / calls * 1e6, 2))


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


async def bench_http() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    events = {"charge": {"method": "POST", "path": "/charge", "body": ["n"]}}

    def spec(config: dict[str, Any]) -> ResourceSpec:
        return ResourceSpec(kind="action", name="pay", env="dev", product="bench",
                            config=config, definition={"events": events})

    single = build_connector(spec({"base_url": url}))
    pooled = build_pool(spec({"providers": [{"name": "a", "base_url": url},
                                            {"name": "b", "base_url": url}]}))
    skipping = build_pool(spec({"breaker": {"failures": 1, "cooldown": "1h"}, "providers": [
        {"name": "a", "base_url": url}, {"name": "b", "base_url": url}]}))
    skipping.strategy.breakers["a"].failure(time.monotonic())  # a's breaker open
    try:
        for label, conn in (("single", single), ("pool, first up", pooled),
                            ("pool, first skipped", skipping)):
            for _ in range(50):  # warm the connection pool
                await conn.run("charge", {"n": 1})
            times = []
            for i in range(500):
                t0 = time.perf_counter()
                await conn.run("charge", {"n": i})
                times.append((time.perf_counter() - t0) * 1000)
            _emit("http", connector=label, ms_p50=round(statistics.median(times), 3),
                  ms_p99=round(sorted(times)[int(len(times) * 0.99)], 3))
    finally:
        for conn in (single, pooled, skipping):
            await conn.aclose()
        server.shutdown()


async def main() -> None:
    await bench_choose()
    await bench_http()


if __name__ == "__main__":
    asyncio.run(main())
