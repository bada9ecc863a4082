"""Shared graph logic: schema and named actions from the product file, safe Cypher building."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ductwork.connectors.base import GraphConnector, Problem, ResourceSpec
from ductwork.connectors.util import IDENT, describe_problems, first_env, is_identifier
from ductwork.errors import ConnectorError

PARAM_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# Write clauses; an action that has one is a write action unless it says `mode: read`.
WRITE_CLAUSE = re.compile(
    r"\b(CREATE|MERGE|SET|DELETE|DETACH|REMOVE|DROP|ALTER|COPY|LOAD|INSTALL|ATTACH)\b",
    re.IGNORECASE,
)
# Property types accepted in `schema:` (ladybug/Kùzu names); FalkorDB ignores them.
_BASE_TYPES = (
    "STRING|INT8|INT16|INT32|INT64|INT128|UINT8|UINT16|UINT32|UINT64|DOUBLE|FLOAT|BOOL|"
    "BOOLEAN|DATE|TIMESTAMP|TIMESTAMP_TZ|TIMESTAMP_MS|TIMESTAMP_NS|TIMESTAMP_SEC|INTERVAL|UUID|"
    "BLOB|SERIAL|DECIMAL\\(\\s*\\d+\\s*,\\s*\\d+\\s*\\)"
)
PROPERTY_TYPE = re.compile(rf"^({_BASE_TYPES})(\[\])*$", re.IGNORECASE)
ACTION_KEYS = {"description", "cypher", "params", "mode"}
REL_KEYS = {"from", "to", "properties", "description"}


def quote_ident(name: str) -> str:
    """A validated identifier in backticks (no backtick can be in it: IDENT forbids it)."""
    if not IDENT.match(name):
        raise ValueError(f"{name!r} is not an identifier")
    return f"`{name}`"


@dataclass(frozen=True)
class RelType:
    name: str
    source: str
    target: str
    properties: dict[str, str]


@dataclass
class GraphSchema:
    """The declared node labels and relationship types (empty when none are declared)."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    rels: dict[str, RelType] = field(default_factory=dict)

    @property
    def declared(self) -> bool:
        return bool(self.nodes or self.rels)


@dataclass(frozen=True)
class GraphAction:
    name: str
    cypher: str
    params: tuple[str, ...]
    write: bool


# -- reading + checking the product file ----------------------------------------------------------

def schema_problems(definition: Mapping[str, Any]) -> list[Problem]:
    schema = definition.get("schema")
    if schema is None:
        return []
    if not isinstance(schema, Mapping):
        return [(("schema",), "schema is {nodes: {Label: {prop: TYPE}}, relationships: {...}}")]
    problems: list[Problem] = []
    for key in sorted(set(schema) - {"nodes", "relationships"}):
        problems.append((("schema", key), f"unknown key '{key}' (known: nodes, relationships)"))
    nodes = schema.get("nodes") or {}
    if not isinstance(nodes, Mapping):
        problems.append((("schema", "nodes"), "nodes maps a label to {property: TYPE}"))
        nodes = {}
    for label, props in nodes.items():
        where: tuple[str | int, ...] = ("schema", "nodes", str(label))
        if not IDENT.match(str(label)):
            problems.append((where, f"label {label!r} is not an identifier "
                             "([A-Za-z_][A-Za-z0-9_]*)"))
        problems += _property_problems(where, props)
        if isinstance(props, Mapping) and "id" in props and str(props["id"]).upper() != "STRING":
            problems.append(((*where, "id"), "id is the node key and must be STRING"))
    rels = schema.get("relationships") or {}
    if not isinstance(rels, Mapping):
        problems.append((("schema", "relationships"), "relationships maps a type to "
                         "{from: Label, to: Label, properties: {...}}"))
        rels = {}
    for rtype, rel in rels.items():
        where = ("schema", "relationships", str(rtype))
        if not IDENT.match(str(rtype)):
            problems.append((where, f"relationship type {rtype!r} is not an identifier"))
        if not isinstance(rel, Mapping):
            problems.append((where, "a relationship is {from: Label, to: Label, properties: {}}"))
            continue
        for key in sorted(set(rel) - REL_KEYS):
            problems.append(((*where, key), f"unknown key '{key}' (known: from, to, properties)"))
        for end in ("from", "to"):
            if rel.get(end) not in nodes:
                problems.append(((*where, end), f"{end} must name a label declared under "
                                 f"schema.nodes (got {rel.get(end)!r})"))
        props = rel.get("properties") or {}
        problems += _property_problems((*where, "properties"), props)
        if isinstance(props, Mapping) and "id" in props and str(props["id"]).upper() != "STRING":
            problems.append(((*where, "properties", "id"), "id must be STRING"))
    return problems


def _property_problems(where: tuple[str | int, ...], props: Any) -> list[Problem]:
    if props is None:
        return []
    if not isinstance(props, Mapping):
        return [(where, "properties map a name to a type, e.g. {name: STRING, age: INT64}")]
    problems: list[Problem] = []
    for name, ptype in props.items():
        if not IDENT.match(str(name)):
            problems.append(((*where, str(name)), f"property {name!r} is not an identifier"))
        if not isinstance(ptype, str) or not PROPERTY_TYPE.match(ptype.strip()):
            problems.append(((*where, str(name)), f"unknown type {ptype!r} (STRING, INT64, "
                             "DOUBLE, BOOL, DATE, TIMESTAMP, ..., or a list like STRING[])"))
    return problems


def parse_schema(definition: Mapping[str, Any]) -> GraphSchema:
    """The schema of a definition that schema_problems() found clean."""
    raw = definition.get("schema") or {}
    nodes = {str(label): {str(k): str(v).strip() for k, v in (props or {}).items()}
             for label, props in (raw.get("nodes") or {}).items()}
    rels = {}
    for t, r in (raw.get("relationships") or {}).items():
        props = {str(k): str(v).strip() for k, v in (r.get("properties") or {}).items()}
        rels[str(t)] = RelType(str(t), str(r["from"]), str(r["to"]), props)
    return GraphSchema(nodes, rels)


def action_problems(definition: Mapping[str, Any]) -> list[Problem]:
    actions = definition.get("actions")
    if actions is None:
        return []
    if not isinstance(actions, Mapping):
        return [(("actions",), "actions maps a name to {cypher: ..., params: [...]}")]
    problems: list[Problem] = []
    for name, act in actions.items():
        where: tuple[str | int, ...] = ("actions", str(name))
        if not isinstance(act, Mapping):
            problems.append((where, "an action is {cypher: 'MATCH ...', params: [name, ...]}"))
            continue
        for key in sorted(set(act) - ACTION_KEYS):
            problems.append(((*where, key), f"unknown key '{key}' (known: "
                             f"{', '.join(sorted(ACTION_KEYS))})"))
        cypher = act.get("cypher")
        if not isinstance(cypher, str) or not cypher.strip():
            problems.append(((*where, "cypher"), "cypher is the statement to run"))
            continue
        used = set(PARAM_REF.findall(cypher))
        if "params" in act:
            params = act["params"]
            if not isinstance(params, list) or not all(
                is_identifier(p) for p in params
            ):
                problems.append(((*where, "params"), "params is a list of parameter names"))
                continue
            for p in sorted(used - set(params)):
                problems.append(((*where, "params"), f"the cypher uses ${p} but params does "
                                 "not declare it"))
            for p in sorted(set(params) - used):
                problems.append(((*where, "params"), f"param '{p}' is declared but the cypher "
                                 "never uses it"))
        mode = act.get("mode")
        if mode is not None and mode not in ("read", "write"):
            problems.append(((*where, "mode"), "mode is read or write"))
    return problems


def parse_action(name: str, act: Mapping[str, Any]) -> GraphAction:
    cypher = str(act["cypher"])
    params = act.get("params")
    names = tuple(params) if params is not None else tuple(dict.fromkeys(PARAM_REF.findall(cypher)))
    mode = act.get("mode")
    write = mode == "write" if mode else bool(WRITE_CLAUSE.search(cypher))
    return GraphAction(name, cypher, names, write)


def shared_problems(definition: Mapping[str, Any], config: Mapping[str, Any]) -> list[Problem]:
    """Problems of `schema` and `actions`, reported with the first env's config only."""
    if not first_env(definition, config):
        return []
    return schema_problems(definition) + action_problems(definition)


def node_result(labels: list[str], props: Mapping[str, Any]) -> dict[str, Any]:
    """The one shape a node has in results, whatever the provider."""
    clean = {k: v for k, v in props.items() if v is not None}
    return {"id": clean.get("id"), "labels": list(labels), "properties": clean}


def rel_result(rtype: str, props: Mapping[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in props.items() if v is not None}
    return {"id": clean.get("id"), "type": rtype, "properties": clean}


# -- the shared connector -------------------------------------------------------------------------

class BaseGraph(GraphConnector):
    """The operations as parameterized Cypher; a provider supplies `_run` and value handling.

    Nodes and relationships are addressed by a string `id` property (generated when not
    given), never by a provider's internal id, which both providers may reuse after deletes.
    """

    provider = ""
    single_label = False  # ladybug: a node lives in exactly one node table

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self.rs = spec
        problems = schema_problems(spec.definition) + action_problems(spec.definition)
        if problems:
            raise spec.error(f"invalid graph definition: {describe_problems(problems, 5)}; "
                             "run `ductwork validate` for every problem")
        self.schema = parse_schema(spec.definition)
        self.actions = {str(n): parse_action(str(n), a)
                        for n, a in (spec.definition.get("actions") or {}).items()}

    # provider hooks
    async def _run(self, op: str, cypher: str, params: Mapping[str, Any], *,
                   write: bool) -> list[dict[str, Any]]:
        """Run one statement with bound parameters; rows with nodes/rels already converted."""
        raise NotImplementedError

    def bind(self, op: str, value: Any, path: str = "value") -> Any:
        """A parameter value the provider accepts, or a ConnectorError naming it."""
        return value

    def _err(self, op: str, message: str, **kw: Any) -> ConnectorError:
        return self.rs.error(message, event=op, **kw)

    # identifier checks
    def _labels(self, op: str, labels: Any) -> list[str]:
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, list | tuple) or not labels:
            raise self._err(op, "labels is a label or a non-empty list of labels")
        out: list[str] = []
        for label in labels:
            if not is_identifier(label):
                raise self._err(op, f"label {label!r} is not an identifier "
                                "([A-Za-z_][A-Za-z0-9_]*)")
            if self.schema.declared and label not in self.schema.nodes:
                raise self._err(op, f"label '{label}' is not declared in schema.nodes (known: "
                                f"{', '.join(sorted(self.schema.nodes)) or 'none'})")
            if label not in out:
                out.append(label)
        if self.single_label and len(out) != 1:
            raise self._err(op, f"a {self.provider} node has exactly one label, got {out}")
        return out

    def _rel_type(self, op: str, rtype: Any) -> RelType | None:
        if not is_identifier(rtype):
            raise self._err(op, f"relationship type {rtype!r} is not an identifier")
        if self.schema.declared:
            if rtype not in self.schema.rels:
                raise self._err(op, f"relationship type '{rtype}' is not declared in "
                                "schema.relationships (known: "
                                f"{', '.join(sorted(self.schema.rels)) or 'none'})")
            return self.schema.rels[rtype]
        return None

    def _props(self, op: str, props: Any, declared: list[dict[str, str]] | None,
               owner: str) -> dict[str, Any]:
        if props is None:
            return {}
        if not isinstance(props, Mapping):
            raise self._err(op, f"properties must be a mapping, got {type(props).__name__}")
        known = set().union(*declared) if declared is not None else None
        out: dict[str, Any] = {}
        for key, value in props.items():
            if not is_identifier(key):
                raise self._err(op, f"property key {key!r} is not an identifier "
                                "([A-Za-z_][A-Za-z0-9_]*)")
            if known is not None and key != "id" and key not in known:
                raise self._err(op, f"property '{key}' is not declared for {owner} in schema "
                                f"(known: {', '.join(sorted(known | {'id'}))})")
            out[key] = self.bind(op, value, f"properties.{key}")
        return out

    def _node_id(self, op: str, value: Any, what: str = "id") -> str:
        if isinstance(value, Mapping):
            value = value.get("id")  # a node result from create_node works as a reference
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise self._err(op, f"{what} must be a node id (string), got {value!r}")
        return str(value)

    @staticmethod
    def _set_clause(var: str, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        params = {f"p{i}": v for i, v in enumerate(props.values())}
        sets = ", ".join(f"{var}.{quote_ident(k)} = $p{i}" for i, k in enumerate(props))
        return sets, params

    @staticmethod
    def _map_literal(props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        params = {f"p{i}": v for i, v in enumerate(props.values())}
        body = ", ".join(f"{quote_ident(k)}: $p{i}" for i, k in enumerate(props))
        return "{" + body + "}", params

    async def find_node(self, op: str, node_id: str) -> dict[str, Any] | None:
        rows = await self._run(op, "MATCH (n) WHERE n.id = $id RETURN n", {"id": node_id},
                               write=False)
        if len(rows) > 1:
            raise self._err(op, f"id '{node_id}' matches {len(rows)} nodes; ids must be unique")
        return rows[0]["n"] if rows else None

    # operations
    async def create_node(self, labels: Any, properties: Mapping[str, Any] | None = None) -> Any:
        op = "create_node"
        labs = self._labels(op, labels)
        declared = [self.schema.nodes[lb] for lb in labs] if self.schema.declared else None
        props = self._props(op, properties, declared, "/".join(labs))
        node_id = self._node_id(op, props["id"]) if "id" in props else str(uuid.uuid4())
        props = {"id": node_id, **{k: v for k, v in props.items() if k != "id"}}
        literal, params = self._map_literal(props)
        label_text = ":".join(quote_ident(lb) for lb in labs)
        # The guard makes the id unique across labels, in the same statement as the CREATE.
        cypher = (f"OPTIONAL MATCH (x) WHERE x.id = $id WITH count(x) AS taken WHERE taken = 0 "
                  f"CREATE (n:{label_text} {literal}) RETURN n")
        rows = await self._run(op, cypher, {**params, "id": node_id}, write=True)
        if not rows:
            raise self._err(op, f"a node with id '{node_id}' already exists")
        return rows[0]["n"]

    async def update_node(self, id: Any, properties: Mapping[str, Any]) -> Any:
        op = "update_node"
        node_id = self._node_id(op, id)
        node = await self.find_node(op, node_id)
        if node is None:
            raise self._err(op, f"node '{node_id}' not found", status=404)
        labs = node["labels"]
        declared = ([self.schema.nodes[lb] for lb in labs if lb in self.schema.nodes]
                    if self.schema.declared else None)
        props = self._props(op, properties, declared, "/".join(labs))
        if "id" in props and props.pop("id") != node_id:
            raise self._err(op, "a node's id cannot be changed")
        if not props:
            return node
        sets, params = self._set_clause("n", props)
        label_text = ":".join(quote_ident(lb) for lb in labs)
        rows = await self._run(op, f"MATCH (n:{label_text}) WHERE n.id = $id SET {sets} RETURN n",
                               {**params, "id": node_id}, write=True)
        if not rows:
            raise self._err(op, f"node '{node_id}' not found", status=404)
        return rows[0]["n"]

    async def delete_node(self, id: Any) -> bool:
        op = "delete_node"
        node_id = self._node_id(op, id)
        if await self.find_node(op, node_id) is None:
            return False
        await self._run(op, "MATCH (n) WHERE n.id = $id DETACH DELETE n", {"id": node_id},
                        write=True)
        return True

    async def create_relationship(self, from_: Any, to: Any, type: str,
                                  properties: Mapping[str, Any] | None = None) -> Any:
        op = "create_relationship"
        rel = self._rel_type(op, type)
        src, dst = self._node_id(op, from_, "from_"), self._node_id(op, to, "to")
        props = self._props(op, properties, [rel.properties] if rel else None, type)
        rel_id = self._node_id(op, props["id"]) if "id" in props else str(uuid.uuid4())
        props = {"id": rel_id, **{k: v for k, v in props.items() if k != "id"}}
        literal, params = self._map_literal(props)
        a = f"(a:{quote_ident(rel.source)})" if rel else "(a)"
        b = f"(b:{quote_ident(rel.target)})" if rel else "(b)"
        cypher = (f"MATCH {a} WHERE a.id = $src MATCH {b} WHERE b.id = $dst "
                  f"CREATE (a)-[r:{quote_ident(type)} {literal}]->(b) RETURN r")
        rows = await self._run(op, cypher, {**params, "src": src, "dst": dst}, write=True)
        if not rows:
            for node_id, need in ((src, rel.source if rel else None),
                                  (dst, rel.target if rel else None)):
                node = await self.find_node(op, node_id)
                if node is None:
                    raise self._err(op, f"node '{node_id}' not found", status=404)
                if need and need not in node["labels"]:
                    raise self._err(op, f"node '{node_id}' is a {'/'.join(node['labels'])}; "
                                    f"{type} goes from {rel.source if rel else '?'} to "
                                    f"{rel.target if rel else '?'}")
            raise self._err(op, f"could not connect '{src}' to '{dst}'")
        out = dict(rows[0]["r"])
        return {"id": out["id"], "type": type, "from": src, "to": dst,
                "properties": out["properties"]}

    async def delete_relationship(self, id: Any) -> bool:
        op = "delete_relationship"
        rel_id = self._node_id(op, id)
        if not await self._rels_exist(op):
            return False
        found = await self._run(op, "MATCH ()-[r]->() WHERE r.id = $id RETURN count(r) AS c",
                                {"id": rel_id}, write=False)
        if not found or not found[0]["c"]:
            return False
        await self._run(op, "MATCH ()-[r]->() WHERE r.id = $id DELETE r", {"id": rel_id},
                        write=True)
        return True

    async def _rels_exist(self, op: str) -> bool:
        return True

    def action(self, op: str, name: str) -> GraphAction:
        if name not in self.actions:
            known = ", ".join(sorted(self.actions)) or "none declared"
            raise self.rs.error(f"unknown action '{name}' (known: {known})", event=name)
        return self.actions[name]

    def _action_params(self, act: GraphAction, params: Mapping[str, Any] | None
                       ) -> dict[str, Any]:
        params = params or {}
        if not isinstance(params, Mapping):
            raise self.rs.error("params must be a mapping", event=act.name)
        unknown = sorted(str(k) for k in params if k not in act.params)
        if unknown:
            raise self.rs.error(f"unknown parameter(s) {', '.join(unknown)} (declared: "
                                f"{', '.join(act.params) or 'none'})", event=act.name)
        missing = [p for p in act.params if p not in params]
        if missing:
            raise self.rs.error(f"missing parameter(s) {', '.join(missing)}", event=act.name)
        return {k: self.bind(act.name, params[k], f"params.{k}") for k in act.params}

    async def query(self, action: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        act = self.action("query", action)
        if act.write:
            raise self.rs.error("this action writes; call graph.execute for it (or declare "
                                "`mode: read` if it does not)", event=action)
        return await self._run(action, act.cypher, self._action_params(act, params), write=False)

    async def execute(self, action: str, input: Mapping[str, Any] | None = None) -> Any:
        """Run any declared action (read or write); returns its rows."""
        act = self.action("execute", action)
        return await self._run(action, act.cypher, self._action_params(act, input),
                               write=True)
