"""Where types come from: step results (as each connector returns them), signals, state, ctx."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ductwork.connectors.database.schema import load_schema
from ductwork.dsl import vocabulary as v
from ductwork.dsl.expr import types as t
from ductwork.dsl.expr.types import Type
from ductwork.dsl.loader import DataPath

# value_type(path, raw): the type of a YAML value written at `path` (expressions included).
ValueType = Callable[[DataPath, Any], Type]

# What a catch handler reads as `error` (plan_runner.describe_error).
ERROR = t.record({
    "message": t.STRING, "step": t.STRING,
    "type": t.of("string", values=("StepError", "StepTimeoutError", "SignalTimeoutError",
                                   "ChildWorkflowError", "ConnectorError")),
    "status": t.of("integer", "null"),
}, closed=False)  # unknown fields are the checker's own message
# What a step's call and its rollback read as `step` (plan_runner's step view).
STEP = t.record({"idempotency_key": t.STRING}, closed=False)  # the checker names bad fields
# What ctx.trigger_rollback returns (interpreter/rollback.py compensate), `result` in its output.
ROLLBACK_SUMMARY = t.record({
    "success": t.BOOLEAN, "rolled_back_steps": t.list_of(t.STRING),
    "failed_steps": t.list_of(t.STRING), "errors": t.ANY, "reason": t.STRING,
    "strategy": t.STRING}, where="in the rollback summary")
_MAP = t.MAP  # a map whose fields depend on the provider


def at(data: Any, path: DataPath) -> Any:
    """The value at `path` in the document, or None."""
    for part in path:
        found = part in data if isinstance(data, dict) else (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
        if not found:
            return None
        data = data[part]
    return data


def is_step(path: DataPath) -> bool:
    """Whether `path` names a step: an entry of a `steps:` list or of a switch's `default:`."""
    return (len(path) >= 2 and isinstance(path[-1], int)
            and (path[-2] == "steps" or (path[-2] == "default" and len(path) >= 3
                                         and path[-3] == "switch")))


def body_of(step: Any) -> str | None:
    if not isinstance(step, dict):
        return None
    return next((b for b in v.BODIES if b in step), None)


def condition_text(raw: Any) -> str:
    """The expression of an `if:` ("${ctx.input.vip}" -> "ctx.input.vip")."""
    if isinstance(raw, str):
        s = raw.strip()
        return s[2:-1].strip() if s.startswith("${") and s.endswith("}") else s
    return str(raw).lower()


def is_prefix(prefix: DataPath, path: DataPath) -> bool:
    return len(prefix) <= len(path) and tuple(path[:len(prefix)]) == tuple(prefix)


@dataclass(frozen=True)
class Conditional:
    """Something that decides whether a step runs: a reader inside `path` knows it held."""

    path: DataPath
    text: str | None  # the condition, when there is one
    why: str


def _name(data: Any, step_path: DataPath) -> str:
    step = at(data, step_path)
    body = body_of(step) or "step"
    tag = step.get("tag") if isinstance(step, dict) else None
    return f"{body} '{tag}'" if isinstance(tag, str) else f"a {body}"


def conditionals(data: Any, step_path: DataPath) -> list[Conditional]:
    """Everything that may keep the step at `step_path` from running: its own `if:`, the
    `if:` of a step around it, the switch case or catch handler it sits in."""
    out: list[Conditional] = []
    for i in range(1, len(step_path) + 1):
        p = tuple(step_path[:i])
        node = at(data, p)
        if is_step(p) and isinstance(node, dict) and "if" in node and node["if"] is not True:
            why = ("it has an 'if:'" if p == tuple(step_path)
                   else f"the {_name(data, p)} around it has an 'if:'")
            out.append(Conditional(p, condition_text(node["if"]), why))
        if len(p) >= 4 and p[-3:-1] == ("switch", "cases") and isinstance(p[-1], int):
            case = node if isinstance(node, dict) else {}
            out.append(Conditional(p, condition_text(case["if"]) if "if" in case else None,
                                   f"it is in one case of the {_name(data, p[:-3])}"))
        if len(p) >= 3 and p[-2:] == ("switch", "default"):
            out.append(Conditional(p, None, f"it is in the default of the {_name(data, p[:-2])}"))
        if len(p) >= 3 and p[-2] == "catch" and isinstance(p[-1], int):
            handler = node if isinstance(node, dict) else {}
            out.append(Conditional(
                p, condition_text(handler["if"]) if "if" in handler else None,
                f"it is in the catch of the {_name(data, p[:-2])}, which runs only on a "
                "failure"))
    return out


def enclosing_conditions(data: Any, path: DataPath) -> list[str]:
    """The conditions that hold wherever `path` is evaluated: `if:` of the steps around it
    (not the condition being read), switch cases and catch handlers it is inside."""
    out: list[str] = []
    for i in range(1, len(path)):
        p, nxt = tuple(path[:i]), path[i]
        node = at(data, p)
        if not isinstance(node, dict) or "if" not in node or nxt == "if":
            continue
        if is_step(p) or (len(p) >= 2 and (p[-2] == "catch" or p[-3:-1] == ("switch", "cases"))):
            out.append(condition_text(node["if"]))
    return out


def ends_run(steps: Any) -> bool:
    """Whether a step list always ends the run (its last step fails or returns, no `if:`)."""
    if not isinstance(steps, list) or not steps or not isinstance(steps[-1], dict):
        return False
    last = steps[-1]
    if "if" in last:
        return False
    if "fail" in last:
        return last.get("allow_fail") is not True
    return any(k in last for k in v.TERMINALS)


def may_be_null(data: Any, step_path: DataPath) -> str | None:
    """Why a step's result may be null although it ran (it failed and went on)."""
    step = at(data, step_path)
    if not isinstance(step, dict):
        return None
    if step.get("allow_fail") is True:
        return "it has allow_fail: true, and a failed step's result is null"
    handlers = step.get("catch")
    if isinstance(handlers, list) and handlers and not all(
            isinstance(h, dict) and ends_run(h.get("steps")) for h in handlers):
        return "when its catch handles a failure, its result is null"
    return None


def loops(path: DataPath) -> list[DataPath]:
    """The foreach steps whose loop body `path` is inside, outermost first."""
    return [tuple(path[:i]) for i in range(len(path) - 1)
            if path[i] == "foreach" and path[i + 1] == "steps"]


def rollback_owner(path: DataPath) -> DataPath | None:
    """The step whose `rollback:` `path` is inside, if any."""
    for i in range(len(path) - 1, 0, -1):
        if path[i] == "rollback" and is_step(tuple(path[:i])):
            return tuple(path[:i])
    return None


def walk_steps(data: Any) -> Iterator[tuple[DataPath, dict[str, Any]]]:
    """Every step of the workflow, nested ones included, with its path."""
    stack: list[tuple[DataPath, Any]] = [(("steps",), data.get("steps") if isinstance(
        data, dict) else None)]
    while stack:
        path, steps = stack.pop()
        if not isinstance(steps, list):
            continue
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            sp = (*path, i)
            yield sp, step
            body = step.get("foreach")
            if isinstance(body, dict):
                stack.append(((*sp, "foreach", "steps"), body.get("steps")))
            branches = step.get("parallel")
            for b, branch in enumerate(branches if isinstance(branches, list) else []):
                if isinstance(branch, dict):
                    stack.append(((*sp, "parallel", b, "steps"), branch.get("steps")))
            sw = step.get("switch")
            if isinstance(sw, dict):
                cases = sw.get("cases")
                for c, case in enumerate(cases if isinstance(cases, list) else []):
                    if isinstance(case, dict):
                        stack.append(((*sp, "switch", "cases", c, "steps"), case.get("steps")))
                stack.append(((*sp, "switch", "default"), sw.get("default")))
            handlers = step.get("catch")
            for h, handler in enumerate(handlers if isinstance(handlers, list) else []):
                if isinstance(handler, dict):
                    stack.append(((*sp, "catch", h, "steps"), handler.get("steps")))


class Results:
    """The type of each step's result and of each state key, computed when first asked."""

    def __init__(self, data: Any, resources: Mapping[str, Mapping[str, Any]],
                 tag_paths: Mapping[str, DataPath], value_type: ValueType) -> None:
        self.data = data if isinstance(data, dict) else {}
        self.resources = resources
        self.tag_paths = tag_paths
        self.value_type = value_type
        self._steps: dict[str, Type | None] = {}
        self._state: dict[str, Type | None] = {}
        self.sets: dict[str, list[tuple[DataPath, Any]]] = {}
        self.runs_python = False  # python code may set state the workflow file does not show
        for path, step in walk_steps(self.data):
            body = step.get("set")
            if isinstance(body, dict):
                for key, value in body.items():
                    self.sets.setdefault(str(key), []).append(((*path, "set", key), value))
            rb = step.get("rollback")
            rollbacks = rb if isinstance(rb, list) else [rb]
            if "python" in step or any(isinstance(r, dict) and "python" in r for r in rollbacks):
                self.runs_python = True

    # -- state ----------------------------------------------------------------------------------

    def state(self, key: str) -> Type | None:
        """The join of every value a `set:` gives the key; None when none does."""
        if key in self._state:
            return self._state[key] or t.ANY  # None while computing: a cycle, so Any
        if key not in self.sets:
            return t.ANY if self.runs_python else None
        if self.runs_python:
            return t.ANY  # python code may set the same key to anything
        self._state[key] = None
        found = t.join_all(self.value_type(p, raw) for p, raw in self.sets[key])
        self._state[key] = found
        return found

    # -- steps ----------------------------------------------------------------------------------

    def step(self, tag: str) -> Type:
        if tag in self._steps:
            return self._steps[tag] or t.ANY
        path = self.tag_paths.get(tag)
        if path is None:
            return t.ANY
        self._steps[tag] = None
        found = self._result(tuple(path), at(self.data, path))
        self._steps[tag] = found
        return found

    def _result(self, path: DataPath, step: Any) -> Type:
        body = body_of(step)
        if body is None or not isinstance(step, dict):
            return t.ANY
        value = step[body]
        if body in v.CALLS and isinstance(value, dict):
            return self._call(body, (*path, body), value)
        if body == "python":
            returns = step.get("returns")
            tag = step.get("tag")
            return t.from_schema(returns, where=f"in the 'returns' schema of step '{tag}'") \
                if isinstance(returns, dict) else t.ANY
        if body == "wait_for_signal" and isinstance(value, dict):
            return self._signal(value.get("name"))
        if body == "foreach":
            return t.list_of(self._block((*path, "foreach", "steps"), closed=True))
        if body in ("parallel", "switch"):
            return self._block((*path, body), closed=True)
        if body in ("sleep", "checkpoint", "set", "log", "fail"):
            return t.NULL
        return t.ANY  # a child workflow's output, return, trigger_rollback

    def _block(self, prefix: DataPath, *, closed: bool) -> Type:
        """The map of results a foreach item, parallel or switch assembles: every tag inside,
        except those of a nested foreach (its items keep their own)."""
        fields = {tag: self.step(tag) for tag, p in self.tag_paths.items()
                  if is_prefix(prefix, p) and "foreach" not in p[len(prefix):-1]}
        return t.of("map", fields=fields, closed=closed, listing="steps")

    def _signal(self, names: Any) -> Type:
        """The payload: its declared schema; with several names, plan_runner adds `_signal`
        (a payload that is not a map becomes {payload, _signal})."""
        signals = self.data.get("signals")
        listed = [names] if isinstance(names, str) else names if isinstance(names, list) else []
        if not isinstance(signals, dict) or not listed:
            return t.ANY
        out = []
        for name in listed:
            schema = signals.get(name)
            if not isinstance(schema, dict):
                return t.ANY
            payload = t.from_schema(schema, where=f"in the payload schema of signal '{name}'")
            if len(listed) == 1:
                return payload
            which = t.of("string", values=tuple(listed))
            if payload.only({"map"}):
                fields = {**(payload.fields or {}), "_signal": which}
                out.append(t.of("map", fields=fields, closed=payload.closed and bool(
                    payload.fields), where=payload.where, listing=payload.listing))
            elif "map" in payload.kinds:
                return t.MAP
            else:
                out.append(t.record({"payload": payload, "_signal": which}))
        return t.join_all(out)

    # -- component calls ------------------------------------------------------------------------

    def _call(self, key: str, path: DataPath, args: dict[str, Any]) -> Type:
        call = v.CALLS[key]
        name = args.get(call.resource) if call.resource else None
        definition = self.resources.get(call.kind, {}).get(name) if isinstance(name, str) \
            else None
        event = args.get(call.event) if call.event else None
        method = call.method
        if call.kind == "database":
            if not isinstance(definition, Mapping) or not isinstance(event, str):
                return t.ANY
            return self._database(definition, method, event, path, args)
        if call.kind == "action":
            events = definition.get("events") if isinstance(definition, Mapping) else None
            spec = events.get(event) if isinstance(events, dict) and isinstance(event, str) \
                else None
            response = spec.get("response") if isinstance(spec, dict) else None
            return t.from_schema(response, where=f"in the response schema of event '{event}'") \
                if isinstance(response, dict) else t.ANY
        return _OTHER_RESULTS.get(key, t.ANY)

    def _database(self, definition: Mapping[str, Any], method: str, event: str,
                  path: DataPath, args: dict[str, Any]) -> Type:
        """What connectors/database/core.py returns for each operation."""
        schema, _ = load_schema(definition)
        ev = schema.events.get(event)
        if ev is None:
            return t.ANY
        table = schema.tables.get(ev.table) if ev.table else None
        op = ev.op
        if op == "sql" or table is None:
            return t.list_of(t.ANY) if method == "query" else t.ANY
        if op == "delete":
            return t.BOOLEAN
        names = (ev.select if op == "query" else ev.returning) or list(table.columns)
        row = t.record({c: t.from_column(table.columns[c].type, table.columns[c].nullable)
                        for c in names if c in table.columns},
                       where=f"(a row of table '{table.name}')", listing="columns")
        if op in ("query", "update"):
            return t.list_of(row)
        # insert/upsert: one row for one object of data, a list of rows for a list
        key = "input" if method == "execute" else "data"
        data = args.get(key)
        if isinstance(data, dict):
            return row
        if isinstance(data, list):
            return t.list_of(row)
        if isinstance(data, str):
            given = self.value_type((*path, key), data)
            if given.only({"map"}):
                return row
            if given.only({"list"}):
                return t.list_of(row)
        return t.join(row, t.list_of(row))


_FILE = t.record({"file_key": t.STRING, "url": t.STRING, "size": t.INTEGER,
                  "content_type": t.STRING}, where="(what storage.upload returns)")
# graph/cypher.py node_result: the one shape a node has, whatever the provider.
_NODE = t.record({"id": t.ANY, "labels": t.list_of(t.STRING), "properties": t.MAP},
                 where="(a graph node: its properties are under .properties)")
# Results of the other connectors (connectors/storage.py, s3.py, graph/cypher.py,
# messaging/common.py, notification/*): the fields that depend on the provider stay open.
_OTHER_RESULTS: dict[str, Type] = {
    "storage.upload": _FILE,
    "storage.download": t.record({"file_key": t.STRING, "content": t.of("bytes"),
                                  "content_type": t.STRING, "size": t.INTEGER},
                                 where="(what storage.download returns)"),
    "storage.delete": t.BOOLEAN,
    "storage.list": t.list_of(t.record({"file_key": t.STRING, "size": t.INTEGER,
                                        "url": t.STRING, "last_modified": t.of("datetime")},
                                       closed=False)),
    "graph.create_node": _NODE, "graph.update_node": _NODE, "graph.delete_node": t.BOOLEAN,
    "graph.create_relationship": t.record(
        {"id": t.ANY, "type": t.STRING, "from": t.ANY, "to": t.ANY, "properties": t.MAP},
        where="(a graph relationship)"),
    "graph.delete_relationship": t.BOOLEAN,
    "graph.query": t.list_of(t.ANY),
    "notification.email": _MAP, "notification.sms": _MAP, "notification.push": _MAP,
    "notification.send": _MAP, "messaging.produce": _MAP, "publish.send": _MAP,
}
