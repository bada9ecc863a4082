"""Observer cost: the same 1,000-step workflow with no observer, a no-op observer, and the
Prometheus metrics of `ductwork server`. Prints JSON lines. Run: python bench/observe.py"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any

from ductwork import Ductwork
from ductwork.interpreter.observe import Observer

STEPS = 1000
ROUNDS = 5


def value(v: Any) -> Any:
    """An async step function (real steps await I/O): no worker-thread hand-off to measure."""

    async def fn() -> Any:
        return v

    return fn


def define(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="bench", tag="thousand")
    async def thousand(ctx: Any) -> Any:
        for i in range(STEPS):
            await ctx.step(f"s{i}", value({"i": i}))


async def measure(folder: str, name: str, observer: Observer | None) -> None:
    dw = Ductwork(store=f"sqlite:///{os.path.join(folder, name + '.db')}", synchronous="OFF")
    define(dw)
    if observer is not None:
        dw.observe(observer)
    times = []
    async with dw:
        await dw.workflows.execute(product="bench", env="dev", tag="thousand")  # warm-up
        for _ in range(ROUNDS):
            t = time.perf_counter()
            await dw.workflows.execute(product="bench", env="dev", tag="thousand")
            times.append(time.perf_counter() - t)
    best = min(times)
    print(json.dumps({"bench": "observer_cost", "observer": name, "steps": STEPS,
                      "rounds": ROUNDS, "us_per_step_best": round(best / STEPS * 1e6, 1),
                      "us_per_step_median": round(statistics.median(times) / STEPS * 1e6, 1),
                      "cpus": os.cpu_count(), "python": platform.python_version()}),
          flush=True)


def per_step_hooks(name: str, observer: Observer) -> None:
    """What the engine adds to one step when an observer is attached (step_started, a clock
    read, step_ended, each through observe.call), measured alone: the end-to-end figures move
    more with machine load."""
    from ductwork.interpreter.observe import call
    from ductwork.store.protocol import RunRow

    run = RunRow("w", "bench", "thousand", "dev")
    n = 100_000
    t = time.perf_counter()
    for _ in range(n):
        t0 = time.monotonic()
        token = call(observer.step_started, run, "s", "s", 1)
        call(observer.step_ended, run, token, "s", "s", 1, "completed", None,
             time.monotonic() - t0)
    dt = time.perf_counter() - t
    print(json.dumps({"bench": "observer_step_hooks", "observer": name, "calls": n,
                      "us_per_step": round(dt / n * 1e6, 2)}), flush=True)


async def main() -> None:
    from ductwork.server.metrics import Metrics

    per_step_hooks("noop", Observer())
    per_step_hooks("prometheus", Metrics())
    with tempfile.TemporaryDirectory(prefix="dw-bench-observe-") as folder:
        await measure(folder, "none", None)
        await measure(folder, "noop", Observer())
        await measure(folder, "prometheus", Metrics())


if __name__ == "__main__":
    asyncio.run(main())
