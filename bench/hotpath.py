"""The engine's own Python per step and per run, without the store's writes; JSON lines.

    python bench/hotpath.py                      # this checkout, 7 rounds
    python bench/hotpath.py --against /tmp/old   # also another version's source, interleaved

engine.py's figures are mostly SQLite's (a commit of a step costs ~30 us of its CPU, the
engine's Python ~7 us); this script measures the other part alone: the store's `commit` and
`create_run` are answered at once, in memory, so that what is left is what `execute()`, the
journal, the codec and the event loop cost (the store is opened for real; the script stops if
any write still reached SQLite). Figures, each the median over the rounds of the event loop
thread's CPU time (time.thread_time, which other processes on a shared machine disturb far
less than the wall clock):

- us_per_run_0: `execute()` of a workflow with no step (run creation, handler, finish);
- us_per_run_3: `execute()` of the 3-step workflow of engine.py (async steps returning small maps);
- us_per_step: one 1,000-step run, per step.

Each round runs in a fresh process. `--against DIR` names the source folder of another version
(e.g. `git archive main ductwork | tar -x -C /tmp/old`): each round measures both, one after
the other (A B A B ...), and the lines carry `version` ("this" or "against").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("us_per_run_0", "us_per_run_3", "us_per_step")


async def measure(runs: int) -> dict[str, float]:
    """One process's figures (the child's side)."""
    from engine import define  # bench/engine.py, beside this script

    from ductwork import Ductwork

    with tempfile.TemporaryDirectory() as folder:
        dw = Ductwork(store=f"sqlite:///{folder}/hotpath.db", inline_wait="0ms")

        @dw.workflows.workflow(product="bench", tag="zero")
        async def zero(ctx: Any) -> Any:
            return None

        define(dw)  # three, thousand: the same workflows as engine.py

        async with dw:
            ex = dw.workflows.execute
            await ex(product="bench", env="dev", tag="zero")  # opens the store
            store: Any = dw.store
            writes = 0

            def trace(sql: str) -> None:
                nonlocal writes
                writes += sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")

            async def commit(workflow_id: str, batch: Any) -> None:
                return None

            async def create_run(run: Any, events: Any) -> tuple[Any, bool]:
                return run, True

            store.commit, store.create_run = commit, create_run
            store.conn.set_trace_callback(trace)
            for _ in range(50):  # warm-up
                await ex(product="bench", env="dev", tag="three")
            out: dict[str, float] = {}
            for tag, n, key in (("zero", runs, "us_per_run_0"), ("three", runs, "us_per_run_3"),
                                ("thousand", 1, "us_per_step")):
                t = time.thread_time()
                for _ in range(n):
                    r = await ex(product="bench", env="dev", tag=tag)
                dt = time.thread_time() - t
                assert r.status == "completed", r
                out[key] = round(dt / (1000 if tag == "thousand" else n) * 1e6, 2)
            if writes:
                raise SystemExit(f"{writes} writes reached SQLite: the store's write methods "
                                 "the engine calls are not all answered in memory here")
    return out


def child(source: Path | None, runs: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCTWORK_")}
    env.pop("PYTHONPATH", None)
    if source is not None:  # found before the editable install of this checkout
        env["PYTHONPATH"] = str(source)
    proc = subprocess.run([sys.executable, __file__, "--child", "--runs", str(runs)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(),
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the measuring process failed ({proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=300, help="runs per figure and round")
    p.add_argument("--against", type=Path, help="another version's source folder")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.runs))))
        return
    versions: dict[str, Path | None] = {"this": None}
    if args.against is not None:
        versions["against"] = args.against.resolve()
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for version, source in versions.items():
            samples[version].append(child(source, args.runs))
    for version, rounds in samples.items():
        line: dict[str, Any] = {"bench": "hotpath", "rounds": args.rounds}
        if args.against is not None:
            line["version"] = version
        for figure in FIGURES:
            line[figure] = round(statistics.median(r[figure] for r in rounds), 2)
        line.update(load=round(statistics.median(loads), 2), cpus=os.cpu_count(),
                    python=platform.python_version())
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
