"""Lineage and comparison of runs: related_executions(), compare() and history()."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError
from ductwork.interpreter import codec
from ductwork.interpreter.result import ExecutionResult
from ductwork.store.protocol import RunRow, StepRow
from ductwork.util.timefmt import iso
from ductwork.workflows import reads
from ductwork.workflows.reads import LINKS, get_run, origin_of, summary

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.runtime import LazyEngine

_FLAG_OF = {relation: flag for flag, relation in LINKS}
_PAGE = 500


async def _family_candidates(engine: Engine, root: RunRow) -> list[RunRow]:
    """Runs of the same workflow created since the root: re-runs are always of that kind."""
    out: list[RunRow] = []
    cursor: str | None = None
    while True:
        rows, cursor = await engine.store.list_runs(product=root.product, tag=root.tag,
                                                    since=root.created_at, limit=_PAGE,
                                                    cursor=cursor)
        out.extend(rows)
        if cursor is None:
            return out


async def related_executions(engine: Engine, workflow_id: str) -> dict[str, Any]:
    """Runs linked to this one: re-runs (replay/restart/resume, both ways) and parent/children."""
    run = await get_run(engine, workflow_id)
    ancestors: list[dict[str, Any]] = []
    cur, seen = run, {run.workflow_id}
    while (link := origin_of(cur)) is not None:
        relation, src_id = link
        if src_id in seen:
            break
        seen.add(src_id)
        src = await engine.store.get_run(src_id)
        if src is None:
            ancestors.append({"workflow_id": src_id, "relation": _FLAG_OF[relation],
                              "missing": True})
            break
        ancestors.append({**summary(src), "relation": _FLAG_OF[relation]})
        cur = src
    root = cur
    by_source: dict[str, list[tuple[str, RunRow]]] = {}
    for r in await _family_candidates(engine, root):
        link = origin_of(r)
        if link is not None:
            by_source.setdefault(link[1], []).append((link[0], r))
    descendants: list[dict[str, Any]] = []
    family: list[dict[str, Any]] = []
    queue: list[tuple[str, int]] = [(root.workflow_id, 0)]
    on_path = {a["workflow_id"] for a in ancestors}
    below = {run.workflow_id}
    while queue:
        src_id, depth = queue.pop(0)
        for relation, r in sorted(by_source.get(src_id, []), key=lambda x: x[1].created_at):
            entry = {**summary(r), "relation": relation, "of": src_id, "depth": depth + 1}
            family.append(entry)
            if src_id in below:
                below.add(r.workflow_id)
                descendants.append(entry)
            queue.append((r.workflow_id, depth + 1))
    parent = await engine.store.get_run(run.parent_id) if run.parent_id else None
    children, _ = await engine.store.list_runs(parent_id=run.workflow_id, limit=1000)
    siblings = [e for e in family if e["workflow_id"] not in below
                and e["workflow_id"] not in on_path]
    # The docs' shape: the original and every re-run of it, each with its type and source.
    executions = [{"workflow_id": root.workflow_id, "type": "original",
                   "status": root.status, "created_at": iso(root.created_at)}]
    for e in family:
        executions.append({"workflow_id": e["workflow_id"], "type": e["relation"],
                           "status": e["status"], "created_at": e["created_at"],
                           _FLAG_OF[e["relation"]]: e["of"]})
    return {
        "workflow_id": run.workflow_id, "origin": root.workflow_id,
        "original": root.workflow_id, "executions": executions,
        "ancestors": ancestors, "descendants": descendants, "siblings": siblings,
        "parent": summary(parent) if parent is not None else None,
        "children": [summary(c) for c in sorted(children, key=lambda c: c.created_at)],
    }


_MISSING: Any = object()


def _diff(values: list[Any], path: str = "") -> list[dict[str, Any]]:
    present = [v is not _MISSING for v in values]
    if all(present) and all(isinstance(v, Mapping) for v in values):
        keys: dict[str, None] = {}
        for v in values:
            keys.update(dict.fromkeys(v))
        out: list[dict[str, Any]] = []
        for k in keys:
            out += _diff([v.get(k, _MISSING) for v in values], f"{path}.{k}" if path else str(k))
        return out
    if (all(present) and all(isinstance(v, list) for v in values)
            and len({len(v) for v in values}) == 1):
        out = []
        for i in range(len(values[0])):
            out += _diff([v[i] for v in values], f"{path}[{i}]")
        return out
    if all(present) and all(v == values[0] and type(v) is type(values[0]) for v in values):
        return []
    if not any(present):
        return []
    return [{"path": path or "$", "values": [v if p else None for v, p in zip(values, present,
                                                                             strict=True)],
             "present": present}]


async def compare(engines: LazyEngine, workflow_ids: Iterable[str]) -> dict[str, Any]:
    """Input, step and outcome differences between two or more runs."""
    ids = [workflow_ids] if isinstance(workflow_ids, str) else list(workflow_ids)
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise ConfigurationError("compare(): give two or more different workflow ids")
    engine = await engines.get()
    runs = [await get_run(engine, w) for w in ids]
    journals = [await engine.store.load_steps(w) for w in ids]
    input_diffs = _diff([codec.loads(r.input) for r in runs])
    order: dict[str, float] = {}
    per_run: list[dict[str, StepRow]] = []
    for steps in journals:
        rows = {s.step_key: s for s in steps if s.kind == "step" and s.seq > 0}
        per_run.append(rows)
        for k, s in rows.items():
            order[k] = min(order.get(k, s.seq), s.seq)
    step_diffs: list[dict[str, Any]] = []
    for key in sorted(order, key=lambda k: (order[k], k)):
        cells = [_step_cell(rows.get(key)) for rows in per_run]
        comparable = [{k: v for k, v in c.items() if k != "attempts"} if c else None
                      for c in cells]
        if any(c != comparable[0] for c in comparable):
            tag = next(rows[key].tag for rows in per_run if key in rows)
            step_diffs.append({"step": key, "tag": tag, "values": cells,
                               "fields": sorted(_fields(comparable))})
    results = [ExecutionResult.from_rows(r, s) for r, s in zip(runs, journals, strict=True)]
    outcome: list[dict[str, Any]] = []
    for field in ("status", "error", "failed_step", "completed_steps"):
        vals = [getattr(res, field) for res in results]
        if any(v != vals[0] for v in vals):
            outcome.append({"field": field, "values": vals})
    for d in _diff([res.output for res in results], "output"):
        outcome.append({"field": d["path"], "values": d["values"], "present": d["present"]})
    return {
        "workflow_ids": ids, "runs": [summary(r) for r in runs],
        "same": not (input_diffs or step_diffs or outcome),
        "input": {"same": not input_diffs, "diffs": input_diffs},
        "steps": {"same": not step_diffs, "diffs": step_diffs},
        "outcome": {"same": not outcome, "diffs": outcome},
        # The same differences in the docs' shape: path -> values, one dict per differing
        # step keyed by run id, and each run's status and output.
        "workflows": ids,
        "input_diff": {d["path"]: d["values"] for d in input_diffs},
        "step_diffs": [{"step": d["step"], **dict(zip(ids, d["values"], strict=True))}
                       for d in step_diffs],
        "outcome_diff": {w: {"status": res.status, "output": res.output}
                         for w, res in zip(ids, results, strict=True)},
    }


def _step_cell(row: StepRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    status = "rolled_back" if row.rollback_status == "rolled_back" else row.status
    return {"status": status, "output": codec.loads(row.result), "error": row.error,
            "attempts": row.attempts}


def _fields(cells: list[dict[str, Any] | None]) -> set[str]:
    present = [c for c in cells if c is not None]
    if len(present) != len(cells):
        return {"presence"}
    return {k for k in present[0] if any(c[k] != present[0][k] for c in present)}


async def history(engine: Engine, workflow_id: str, *, step_details: bool = False,
                  rollback_details: bool = False) -> reads.History:
    """The events of reads.history() with the run's checkpoints and its direct re-runs."""
    run = await get_run(engine, workflow_id)
    events = await reads.history(engine, workflow_id, step_details=step_details,
                                 rollback_details=rollback_details)
    reruns: dict[str, list[str]] = {"replay": [], "restart": [], "resume": []}
    for r in sorted(await _family_candidates(engine, run), key=lambda r: r.created_at):
        link = origin_of(r)
        if link is not None and link[1] == run.workflow_id:
            reruns[link[0]].append(r.workflow_id)
    return reads.History(
        events, workflow_id=run.workflow_id, workflow_tag=run.tag, status=run.status,
        checkpoints=reads.checkpoints_of(await engine.store.load_steps(workflow_id)),
        replays=reruns["replay"], restarts=reruns["restart"], resumes=reruns["resume"])

