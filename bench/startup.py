"""Start-up: `import ductwork` and short `ductwork` commands in fresh processes; JSON lines.

    python bench/startup.py                      # this checkout, 7 rounds
    python bench/startup.py --rounds 11
    python bench/startup.py --against /tmp/old   # also another version's source, interleaved

Each case runs in a new interpreter, as a user's shell runs the command:

- python: `python -c pass`, the interpreter's own start (the floor under every other figure);
- import: `python -c "import ductwork"`;
- help: `ductwork --help` (as `python -m ductwork.cli --help`);
- validate: `ductwork validate --no-import specs/my-product` (the example product);
- runs_list: `ductwork runs list` on a SQLite store with a few finished runs.

A figure is the median wall-clock time (ms) over the rounds, with the median CPU time (user +
system, ms) of the child process and the number of modules the case imported; CPU and module
counts hardly move with the machine's load, unlike the wall clock. `load` is the 1-minute load
average when the case started.

`--against DIR` names the source folder of another version (e.g. `git archive main | tar -x
-C /tmp/old`): each round runs every case on both, one after the other (A B A B ...), and
the lines carry `version` ("this" or "against").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "my-product"
# Run by the child after the case itself, so that the module count is the case's own.
COUNT = "import sys; print('\\nMODULES', len(sys.modules), file=sys.stderr)"
CLI = "import sys, atexit; atexit.register(lambda: exec({count!r})); " \
      "from ductwork.cli.main import main; sys.exit(main(sys.argv[1:]))"


def cases(store: str) -> dict[str, list[str]]:
    """The command of each case; `store` is the runs_list store's URL."""
    cli = [sys.executable, "-c", CLI.format(count=COUNT)]
    return {
        "python": [sys.executable, "-c", "pass; " + COUNT],
        "import": [sys.executable, "-c", "import ductwork; " + COUNT],
        "help": [*cli, "--help"],
        "validate": [*cli, "validate", "--no-import", str(SPEC)],
        "runs_list": [*cli, "runs", "list", "--store", store],
    }


def child_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def run_once(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, int]:
    """(wall ms, CPU ms, modules imported) of one fresh process."""
    cpu0 = child_cpu_ms()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = (time.perf_counter() - t0) * 1000
    cpu = child_cpu_ms() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[2:]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    modules = next((int(line.split()[1]) for line in proc.stderr.splitlines()
                    if line.startswith("MODULES ")), -1)
    return wall, cpu, modules


def environment(source: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCTWORK_")}
    env.pop("PYTHONPATH", None)
    if source is not None:  # found before the editable install of this checkout
        env["PYTHONPATH"] = str(source)
    return env


# Run by the version measured, so that its store has the schema that version reads.
FILL = """
import asyncio, sys
from ductwork import Ductwork

async def fill():
    dw = Ductwork(store=sys.argv[1])

    @dw.workflows.workflow(product="bench", tag="hello")
    async def hello(ctx):
        return await ctx.step("one", lambda: {"n": 1})

    for i in range(5):
        await dw.workflows.execute(product="bench", env="dev", tag="hello", input={"i": i})
    await dw.aclose()

asyncio.run(fill())
"""


def make_store(folder: Path, env: dict[str, str]) -> str:
    """A SQLite store with a few finished runs, made by the version `env` imports."""
    folder.mkdir()
    url = f"sqlite:///{folder / 'runs.db'}"
    subprocess.run([sys.executable, "-c", FILL, url], env=env, cwd=folder, check=True)
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--against", type=Path, default=None,
                    help="source folder of another version, measured interleaved")
    ap.add_argument("--cases", default="python,import,help,validate,runs_list")
    args = ap.parse_args()
    versions: dict[str, Path | None] = {"this": None}
    if args.against is not None:
        versions["against"] = args.against.resolve()
    with tempfile.TemporaryDirectory(prefix="dw-startup-") as tmp:
        envs = {v: environment(source) for v, source in versions.items()}
        every = {v: cases(make_store(Path(tmp) / v, envs[v])) for v in versions}
        for name in args.cases.split(","):
            load = round(os.getloadavg()[0], 2)
            samples: dict[str, list[tuple[float, float, int]]] = {v: [] for v in versions}
            for v in versions:  # warm the page cache and .pyc files
                run_once(every[v][name], envs[v], tmp)
            for _ in range(args.rounds):
                for v in versions:
                    samples[v].append(run_once(every[v][name], envs[v], tmp))
            for version, got in samples.items():
                line: dict[str, Any] = {"bench": "startup", "case": name}
                if len(versions) > 1:
                    line["version"] = version
                line.update(
                    ms=round(statistics.median(s[0] for s in got), 1),
                    min_ms=round(min(s[0] for s in got), 1),
                    cpu_ms=round(statistics.median(s[1] for s in got), 1),
                    modules=got[0][2], rounds=args.rounds, load=load)
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
