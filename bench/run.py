"""`make bench`: run the benchmarks, then print each figure beside the last recorded one.

    python bench/run.py                      # engine, dsl, latency (quick ones)
    python bench/run.py --scripts engine,dsl,latency,scale
    python bench/run.py --repeat 5           # each script 5 times, medians (default 3)
    python bench/run.py --record             # also make this run the recorded baseline
    python bench/run.py --compare FILE       # only compare FILE (JSON lines) to the baseline

Every script prints JSON lines; this one tags each line with its script, writes them all to
bench/results/last.jsonl and compares them with bench/results/baseline.jsonl, whose first line
describes the machine it was measured on. A figure more than --tolerance worse than its
baseline is marked SLOWER (timings: higher is worse; rates, *_per_s: lower is worse). The
exit code is 0 either way: machines are noisy and a reviewer reads the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BASELINE = RESULTS / "baseline.jsonl"
LAST = RESULTS / "last.jsonl"
# Fields that name a figure rather than measure it: they make up its key.
NAMING = {"bench", "figure", "synchronous", "store", "workers", "expression", "processes",
          "steps_per_run", "concurrency", "fsync", "api", "providers", "case", "what",
          "version"}
# Measured fields where a larger value is better; every other number is a cost.
HIGHER_IS_BETTER = ("_per_s", "per_pg_cpu_s", "speedup")
# Numbers that describe the setup, not the speed.
IGNORED = {"cpus", "workflows", "runs", "n", "target_us", "target_ms", "suspended_runs",
           "ram_gb", "rss_before_mb", "rounds", "load"}


def machine() -> dict[str, Any]:
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split()[1]
    except OSError:
        pass
    return {"figure": "machine", "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True), "processor": platform.machine(),
            "ram_gb": round(int(mem) / 2**20, 1) if mem else None}


def run_script(name: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    proc = subprocess.run([sys.executable, str(HERE / f"{name}.py")], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
    for raw in proc.stdout.splitlines():
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("figure") != "machine":
            lines.append({"script": name, **doc})
    return lines


def run_scripts(names: list[str], repeat: int = 1) -> list[dict[str, Any]]:
    """Each script `repeat` times, one after the other; each figure is the median of its
    runs (a single run of a sub-microsecond figure moves by more than the tolerance)."""
    lines: list[dict[str, Any]] = [machine()]
    for name in names:
        runs = []
        for i in range(repeat):
            print(f"== bench/{name}.py ({i + 1}/{repeat})", file=sys.stderr, flush=True)
            runs.append(run_script(name))
        lines.extend(medians(runs))
    return lines


def medians(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The first run's lines, each measure replaced by its median over the runs that printed
    the same figure, with `runs` saying over how many."""
    out = []
    for doc in runs[0] if runs else []:
        same = [d for r in runs for d in r if key(d) == key(doc)]
        merged = dict(doc)
        for field in measures(doc):
            values = [float(d[field]) for d in same if isinstance(d.get(field), int | float)]
            merged[field] = round(statistics.median(values), 4)
        merged["runs"] = len(same)
        out.append(merged)
    return out


def key(doc: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, str(v)) for k, v in doc.items() if k in NAMING or k == "script"))


def measures(doc: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in doc.items()
            if k not in NAMING and k not in IGNORED and k != "script"
            and isinstance(v, int | float) and not isinstance(v, bool)}


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare(new: list[dict[str, Any]], old: list[dict[str, Any]], tolerance: float) -> None:
    before = {key(d): measures(d) for d in old if d.get("figure") != "machine"}
    old_machine = next((d for d in old if d.get("figure") == "machine"), None)
    print(f"baseline: {BASELINE.relative_to(HERE.parent)}"
          + (f" ({json.dumps({k: v for k, v in old_machine.items() if k != 'figure'})})"
             if old_machine else " (none recorded: run with --record)"))
    rows = [("figure", "measure", "baseline", "now", "change", "")]
    for doc in new:
        if doc.get("figure") == "machine":
            continue
        name = " ".join(f"{v}" for k, v in sorted(doc.items()) if k in NAMING)
        name = f"{doc.get('script', '?')}: {name}"
        was = before.get(key(doc), {})
        for field, now in measures(doc).items():
            base = was.get(field)
            change, mark = "", ""
            if base:
                ratio = now / base - 1
                change = f"{ratio:+.0%}"
                better_high = field.endswith(HIGHER_IS_BETTER)
                worse = -ratio if better_high else ratio
                mark = "SLOWER" if worse > tolerance else ("faster" if worse < -tolerance
                                                           else "")
            rows.append((name, field, "" if base is None else f"{base:g}", f"{now:g}",
                         change, mark))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scripts", default="engine,dsl,latency")
    p.add_argument("--record", action="store_true", help="store this run as the baseline")
    p.add_argument("--compare", type=Path, default=None, metavar="FILE")
    p.add_argument("--repeat", type=int, default=3, metavar="N",
                   help="run each script N times and compare the medians (default 3)")
    p.add_argument("--tolerance", type=float, default=0.15,
                   help="how much worse than the baseline is marked SLOWER (default 0.15)")
    args = p.parse_args()
    if args.compare is not None:
        new = load(args.compare)
    else:
        new = run_scripts([s.strip() for s in args.scripts.split(",") if s.strip()],
                          max(1, args.repeat))
        RESULTS.mkdir(exist_ok=True)
        LAST.write_text("".join(json.dumps(d) + "\n" for d in new))
    compare(new, load(BASELINE), args.tolerance)
    if args.record:
        BASELINE.write_text("".join(json.dumps(d) + "\n" for d in new))
        print(f"recorded as {BASELINE.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
