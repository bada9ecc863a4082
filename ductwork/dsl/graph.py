"""A Mermaid flowchart of a WorkflowPlan: steps, branches, terminals, catch and rollback edges."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ductwork.dsl import plan as p

# Where the chart goes on from: (node id, label of the edge leaving it, dashed).
Exit = tuple[str, str, bool]


def _text(tree: p.ValueTree | None) -> str:
    return "" if tree is None else _show(tree.node)


def _show(node: Any) -> str:
    """A YAML value as a person wrote it: expressions without `${}`, maps as {k: v}."""
    if isinstance(node, p.Dynamic):
        text = node.text.strip()
        if text.startswith("${") and text.endswith("}") and text.count("${") == 1:
            text = text[2:-1].strip()
        return text
    if isinstance(node, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(_show(v) for v in node) + "]"
    if isinstance(node, str):
        return node
    return json.dumps(node)


def _escape(text: str) -> str:
    text = text if len(text) <= 80 else text[:77] + "..."
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def _join(*labels: str) -> str:
    return " / ".join(x for x in labels if x)


def _body_label(body: p.Body | p.FailBody) -> str:
    if isinstance(body, p.Call):
        args = body.args.node if isinstance(body.args.node, dict) else {}
        event = args.get("event") or args.get("action")
        resource = body.resource or "|".join(body.resources) or None
        what = "/".join(str(x) for x in (resource, event) if x and not
                        isinstance(x, p.Dynamic))
        return f"{body.key} {what}".strip()
    if isinstance(body, p.PythonCall):
        return f"python {body.target}"
    if isinstance(body, p.LogCall):
        return f"log {body.level}"
    return f"fail: {_text(body.message)}"


_SHAPES = {"rect": ('["', '"]'), "round": ('(["', '"])'), "diamond": ('{"', '"}'),
           "fork": ('[["', '"]]'), "flag": ('>"', '"]')}


@dataclass
class _Chart:
    strategy: str
    lines: list[str] = field(default_factory=list)
    count: int = 0

    def node(self, label: str, shape: str = "rect") -> str:
        self.count += 1
        nid = f"n{self.count}"
        open_, close = _SHAPES[shape]
        self.lines.append(f"    {nid}{open_}{_escape(label)}{close}")
        return nid

    def edge(self, a: str, b: str, label: str = "", dashed: bool = False) -> None:
        arrow = "-.->" if dashed else "-->"
        lbl = f"|\"{_escape(label)}\"|" if label else ""
        self.lines.append(f"    {a} {arrow}{lbl} {b}")

    def link(self, exits: list[Exit], to: str, label: str = "", *, dashed: bool = False
             ) -> None:
        for node, own, dash in exits:
            self.edge(node, to, _join(own, label), dash or dashed)

    def merge(self, label: str, exits: list[Exit]) -> list[Exit]:
        """A meeting point of several paths (none when every path ended the run)."""
        if not exits:
            return []
        nid = self.node(label, "round")
        self.link(exits, nid)
        return [(nid, "", False)]

    def steps(self, steps: tuple[p.Step, ...], exits: list[Exit]) -> list[Exit]:
        """Draw `steps` after `exits`; returns where the chart goes on from (empty: every
        path ended the run)."""
        for s in steps:
            exits = self.step(s, exits)
        return exits

    def step(self, s: p.Step, exits: list[Exit]) -> list[Exit]:
        cond = f"if {_text(s.when)}" if s.when is not None else ""
        out = self._step(s, exits, cond)
        handlers = p.catches(s)
        if handlers:
            nid = out[0][0]
            # Success and every handler meet again before the next step.
            paths: list[Exit] = [(nid, "ok", False)]
            for h in handlers:
                when = f"catch if {_text(h.when)}" if h.when is not None else "catch"
                paths += self.steps(h.steps, [(nid, when, True)])
            out = self.merge(f"after {s.tag}", paths)
            if handlers[-1].when is not None:
                self.edge(nid, self.node("run fails", "flag"), "no handler matched", True)
        if s.when is not None:  # the other way round the step: it did not run
            out = out + [(n, _join(label, "skipped"), d) for n, label, d in exits]
        return out

    def _rollback(self, nid: str, name: str, bodies: tuple[p.Body, ...]) -> None:
        """Dashed: what undoes the step if the run fails later, in the order it runs."""
        prev, edge = nid, "rollback"
        for body in bodies:
            rid = self.node(f"rollback {name}: {_body_label(body)}", "flag")
            self.edge(prev, rid, edge, dashed=True)
            prev, edge = rid, "then"

    def _step(self, s: p.Step, exits: list[Exit], cond: str) -> list[Exit]:
        name = s.tag or s.kind
        prefix = f"{s.tag}: " if s.tag else ""
        if isinstance(s, p.TaskStep):
            extra = []
            if s.options.allow_fail:
                extra.append("allow_fail")
            if s.options.retries:
                extra.append(f"retries {s.options.retries}")
            text = f"{name}: {_body_label(s.body)}" + (f" ({', '.join(extra)})" if extra else "")
            final = isinstance(s.body, p.FailBody) and not s.options.allow_fail
            nid = self.node(text, "round" if final else "rect")
            self.link(exits, nid, cond)
            self._rollback(nid, name, s.rollback)
            return [] if final else [(nid, "", False)]
        if isinstance(s, p.ReturnStep):
            self.link(exits, self.node(f"{prefix}return {_text(s.value)}", "round"), cond)
            return []
        if isinstance(s, p.TriggerRollbackStep):
            nid = self.node(f"{prefix}trigger_rollback: {_text(s.reason)}", "round")
            self.link(exits, nid, cond)
            self.edge(nid, self.node(f"roll back completed steps ({self.strategy}), "
                                     "end rolled_back", "flag"), "rollback", dashed=True)
            return []
        if isinstance(s, p.ForeachStep):
            head = self.node(f"{prefix}foreach {_text(s.items)} (concurrency {s.concurrency})",
                             "fork")
            self.link(exits, head, cond)
            self.link(self.steps(s.steps, [(head, "", False)]), head, "next item", dashed=True)
            return [(head, "", False)]
        if isinstance(s, p.ParallelStep):
            fork = self.node(f"{prefix}parallel", "fork")
            self.link(exits, fork, cond)
            ends: list[Exit] = []
            for i, branch in enumerate(s.branches):
                ends += self.steps(branch, [(fork, f"branch {i + 1}", False)])
            return self.merge("join", ends)
        if isinstance(s, p.SwitchStep):
            decide = self.node(f"{prefix}switch", "diamond")
            self.link(exits, decide, cond)
            ends = []
            for case in s.cases:
                ends += self.steps(case.steps, [(decide, _text(case.when), False)])
            ends += self.steps(s.default or (), [(decide, "default", False)])
            return self.merge("end switch", ends)
        nid = self.node(f"{prefix}{_control_label(s)}", "round")
        self.link(exits, nid, cond)
        if isinstance(s, p.ChildWorkflowStep):
            self._rollback(nid, name, s.rollback)
        return [(nid, "", False)]


def _control_label(s: p.Step) -> str:
    if isinstance(s, p.SleepStep):
        return f"sleep {_text(s.duration)}"
    if isinstance(s, p.WaitStep):
        return f"wait for {' | '.join(s.names)}"
    if isinstance(s, p.CheckpointStep):
        return f"checkpoint {s.name}"
    if isinstance(s, p.SetStep):
        return "set " + ", ".join(k for k, _ in s.values)
    if isinstance(s, p.LogStep):
        return f"log {s.log.level}"
    if isinstance(s, p.ChildWorkflowStep):
        return f"workflow {s.workflow}" + (" (critical)" if s.critical else "")
    return s.kind


def mermaid(plan: p.WorkflowPlan) -> str:
    """The plan as a Mermaid `flowchart TD` (paste into any Mermaid renderer)."""
    strategy = plan.options.rollback_strategy
    # With 'none', nothing is rolled back on its own; trigger_rollback then undoes everything.
    chart = _Chart("reverse_all" if strategy == "none" else strategy)
    start = chart.node(f"start {plan.product}/{plan.tag}", "round")
    exits = chart.steps(plan.steps, [(start, "", False)])
    if exits:  # some path reaches the end of the steps
        chart.link(exits, chart.node("output" if plan.output is not None else "end", "round"))
    return "\n".join(["flowchart TD", *chart.lines]) + "\n"
