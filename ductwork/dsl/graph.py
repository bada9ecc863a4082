"""A Mermaid flowchart of a WorkflowPlan: steps, branches, catches, rollbacks as dashed edges."""

from __future__ import annotations

from dataclasses import dataclass, field

from ductwork.dsl import plan as p


def _text(tree: p.ValueTree | None) -> str:
    if tree is None:
        return ""
    node = tree.node
    if isinstance(node, p.Dynamic):
        text = node.text.strip()
        if text.startswith("${") and text.endswith("}"):
            text = text[2:-1].strip()
        return text
    return str(node)


def _escape(text: str) -> str:
    text = text if len(text) <= 80 else text[:77] + "..."
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def _body_label(body: p.Body | p.FailBody) -> str:
    if isinstance(body, p.Call):
        args = body.args.node if isinstance(body.args.node, dict) else {}
        event = args.get("event") or args.get("action")
        what = "/".join(str(x) for x in (body.resource, event) if x and not
                        isinstance(x, p.Dynamic))
        return f"{body.key} {what}".strip()
    if isinstance(body, p.PythonCall):
        return f"python {body.target}"
    if isinstance(body, p.LogCall):
        return f"log {body.level}"
    return f"fail: {_text(body.message)}"


@dataclass
class _Chart:
    lines: list[str] = field(default_factory=list)
    count: int = 0

    def node(self, label: str, shape: str = "rect") -> str:
        self.count += 1
        nid = f"n{self.count}"
        text = _escape(label)
        open_, close = {"rect": ("[\"", "\"]"), "round": ("([\"", "\"])"),
                        "diamond": ("{\"", "\"}"), "fork": ("[[\"", "\"]]"),
                        "flag": (">\"", "\"]")}[shape]
        self.lines.append(f"    {nid}{open_}{text}{close}")
        return nid

    def edge(self, a: str, b: str, label: str = "", dashed: bool = False) -> None:
        arrow = "-.->" if dashed else "-->"
        lbl = f"|\"{_escape(label)}\"|" if label else ""
        self.lines.append(f"    {a} {arrow}{lbl} {b}")

    def steps(self, steps: tuple[p.Step, ...], entry: str, label: str = "") -> str:
        """Draw `steps` after node `entry`; returns the last node."""
        last = entry
        for s in steps:
            last = self.step(s, last, label)
            label = ""
        if label:  # an empty branch still shows its condition
            end = self.node("(nothing)", "round")
            self.edge(last, end, label)
            return end
        return last

    def step(self, s: p.Step, prev: str, label: str) -> str:
        nid = self._step(s, prev, label)
        handlers = p.catches(s)
        if not handlers:
            return nid
        # Success and every handler meet again before the next step.
        merge = self.node(f"after {s.tag}", "round")
        self.edge(nid, merge, "ok")
        for h in handlers:
            when = f"catch if {_text(h.when)}" if h.when is not None else "catch"
            self.edge(self.steps(h.steps, nid, when), merge)
        if handlers[-1].when is not None:
            self.edge(nid, self.node("run fails", "flag"), "no handler matched")
        return merge

    def _step(self, s: p.Step, prev: str, label: str) -> str:
        name = s.tag or s.kind
        prefix = f"{s.tag}: " if s.tag else ""
        cond = f"if {_text(s.when)}" if s.when is not None else ""
        label = " / ".join(x for x in (label, cond) if x)
        if isinstance(s, p.TaskStep):
            extra = []
            if s.options.allow_fail:
                extra.append("allow_fail")
            if s.options.retries:
                extra.append(f"retries {s.options.retries}")
            text = f"{name}: {_body_label(s.body)}" + (f" ({', '.join(extra)})" if extra else "")
            nid = self.node(text)
            self.edge(prev, nid, label)
            prev, edge = nid, "rollback"
            for body in s.rollback:  # a rollback list runs in order
                rid = self.node(f"rollback {name}: {_body_label(body)}", "flag")
                self.edge(prev, rid, edge, dashed=True)
                prev, edge = rid, "then"
            return nid
        if isinstance(s, p.ForeachStep):
            head = self.node(f"{prefix}foreach {_text(s.items)} (concurrency {s.concurrency})",
                             "fork")
            self.edge(prev, head, label)
            last = self.steps(s.steps, head)
            self.edge(last, head, "next item", dashed=True)
            return head
        if isinstance(s, p.ParallelStep):
            fork = self.node(f"{prefix}parallel", "fork")
            self.edge(prev, fork, label)
            join = self.node("join", "round")
            for i, branch in enumerate(s.branches):
                self.edge(self.steps(branch, fork, f"branch {i + 1}"), join)
            return join
        if isinstance(s, p.SwitchStep):
            decide = self.node(f"{prefix}switch", "diamond")
            self.edge(prev, decide, label)
            merge = self.node("end switch", "round")
            for case in s.cases:
                self.edge(self.steps(case.steps, decide, _text(case.when)), merge)
            if s.default is not None:
                self.edge(self.steps(s.default, decide, "default"), merge)
            else:
                self.edge(decide, merge, "default")
            return merge
        nid = self.node(f"{prefix}{_control_label(s)}", "round")
        self.edge(prev, nid, label)
        return nid


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
        return f"workflow {s.workflow}"
    return s.kind


def mermaid(plan: p.WorkflowPlan) -> str:
    """The plan as a Mermaid `flowchart TD` (paste into any Mermaid renderer)."""
    chart = _Chart()
    start = chart.node(f"start {plan.product}/{plan.tag}", "round")
    last = chart.steps(plan.steps, start)
    end = chart.node("output" if plan.output is not None else "end", "round")
    chart.edge(last, end)
    return "\n".join(["flowchart TD", *chart.lines]) + "\n"
