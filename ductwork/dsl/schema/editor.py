"""The schemas as editors read them: descriptions with examples, typed nodes, snippets, titles."""

from __future__ import annotations

import copy
import json
from typing import Any

from ductwork.connectors.action_config import METHODS
from ductwork.connectors.database.model import OPS
from ductwork.connectors.database.model import TYPES as COLUMN_TYPES
from ductwork.dsl import vocabulary as v
from ductwork.dsl.schema import docs

ANY_TYPE = ["object", "array", "string", "number", "boolean", "null"]
ORDER = {t: i for i, t in enumerate(ANY_TYPE)}
LEAVES = ("name", "expression", "duration", "condition")  # inlined where a key uses them
# Editor-only keywords (yaml-language-server / VS Code); JSON Schema validators skip them.
EDITOR_KEYWORDS = ("defaultSnippets", "errorMessage", "patternErrorMessage", "enumDescriptions",
                   "markdownEnumDescriptions", "markdownDescription")


def annotate(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The schema `name` with everything an editor needs; it accepts what it accepted."""
    out = copy.deepcopy(schema)
    defs = out.setdefault("$defs", {})
    _names(defs)
    if name == "workflow":
        _workflow(out, defs)
    else:
        _product(defs)
    _walk(out, defs, (), seen=set())
    return out


# -- shared definitions ------------------------------------------------------------------------
def _names(defs: dict[str, Any]) -> None:
    defs["name"].update(
        title="name", description="A name: letters, digits, '-' and '_', starting with a "
        "letter. Example: `create-user`",
        patternErrorMessage="not a name: use letters, digits, '-' and '_', starting with a "
        "letter (e.g. create-user)")
    if "expression" in defs:
        defs["expression"].update(
            title="expression", description='One `${...}` expression. Example: '
            '`"${ctx.input.email}"`',
            patternErrorMessage='not a ${...} expression: write e.g. "${ctx.input.email}"')
    if "duration" in defs:
        # One schema (not anyOf), so that hover shows one title and `1sec` one clear error.
        defs["duration"] = {
            "title": "duration", "type": ["string", "number"], "minimum": 0,
            "pattern": defs["duration"]["anyOf"][1]["pattern"],
            "description": 'A duration: "250ms", "5s", "5m", "1h", "1d", "2w", or a number '
                           "of milliseconds. Example: `timeout: 30s`",
            "patternErrorMessage": 'not a duration: write e.g. "250ms", "5s", "5m", "1h", '
                                   '"1d" or a number of milliseconds (not "1sec")',
            "errorMessage": 'a duration such as "250ms", "5s", "5m", "1h", "1d" or a number '
                            "of milliseconds",
        }
    if "condition" in defs:
        defs["condition"].update(
            type=["string", "boolean"], title="condition",
            description='A `${...}` expression or true/false. Example: '
                        '`if: "${ctx.input.amount > 100}"`')


# -- workflow files ----------------------------------------------------------------------------
def _workflow(root: dict[str, Any], defs: dict[str, Any]) -> None:
    step = defs["step"]
    bodies = ", ".join(("action.run", "database.insert", "notification.email", "python",
                        "sleep", "wait_for_signal", "foreach", "..."))
    for alt in step.get("oneOf", []):
        alt["errorMessage"] = (f"a step does one thing: it needs exactly one body ({bodies}); "
                               "a misspelt body is reported where it is written")
    for alt in defs["rollback"].get("oneOf", []):
        alt["errorMessage"] = ("a rollback is exactly one call, python or log body (e.g. "
                               "action.run)")
    step["title"] = "step"
    step["description"] = ("One step: a `tag`, exactly one body and its modifiers. Example: "
                           "`- tag: create-user` with `database.insert: {...}`")
    step["defaultSnippets"] = [
        {"label": f"step: {key}", "description": docs.BODY_DOCS[key][0],
         "body": {"tag": "${1:my-step}", key: body}}
        for key, body in docs.STEP_SNIPPETS.items()]
    defs["rollback"]["title"] = "rollback"
    for key in v.CALLS:
        defs[key]["title"] = key
        defs[key]["description"] = docs.describe(key, ("step",), None, ["object"], defs)
        defs[key]["defaultSnippets"] = [{"label": key, "body": docs.call_snippet(key)}]
    props = step["properties"]
    # Call bodies inlined (no $ref): yaml-language-server completes a key whose schema is a
    # $ref to a dotted name (`#/$defs/action.run`) as a bare word, without its colon.
    for holder in (props, defs["rollback"]["properties"]):
        for key in v.CALLS:
            holder[key] = {**copy.deepcopy(defs[key]),
                           **{k: x for k, x in holder[key].items() if k != "$ref"}}
    for key in v.CALLS:
        del defs[key]
    # A duration or one ${...}: one schema, so that hover reads the key's own words.
    duration, expression = defs["duration"], defs["expression"]
    props["sleep"] = {
        "title": "sleep", "type": ["string", "number"], "minimum": 0,
        "pattern": f"(?:{duration['pattern']})|(?:{expression['pattern']})",
        "patternErrorMessage": duration["patternErrorMessage"] + ", or one ${...} expression",
        "errorMessage": duration["errorMessage"] + ", or one ${...} expression"}
    for key in v.CONTROL:
        props[key]["title"] = key
        snippet = docs.CONTROL_SNIPPETS.get(key)
        if snippet is not None:
            props[key]["defaultSnippets"] = [{"label": key, "body": snippet}]
    root["title"] = "ductwork workflow"


# -- product files -----------------------------------------------------------------------------
def _product(defs: dict[str, Any]) -> None:
    methods = [*METHODS, *(m.lower() for m in METHODS)]
    action_events = defs["action"]["properties"]["events"]["additionalProperties"]
    action_events.setdefault("properties", {}).update({
        "method": {"type": "string", "enum": methods, "title": "method",
                   "description": "The HTTP method (default GET). Example: `method: POST`",
                   "enumDescriptions": [docs.METHOD_DOCS[m.upper()] for m in methods]},
        "path": {"type": "string", "title": "path",
                 "description": "The path below the app's base_url, `{name}` filled from "
                                "the input. Example: `path: /v1/charges/{id}`"},
    })
    db = defs["database"]["properties"]
    db["events"]["additionalProperties"] = {
        "type": ["object", "null"], "title": "database event",
        "properties": {
            "op": {"type": "string", "enum": list(OPS), "title": "op",
                   "description": "What the event does. Example: `op: insert`",
                   "enumDescriptions": [docs.OP_DOCS[o] for o in OPS]},
            "table": {"type": "string", "title": "table",
                      "description": "The table it works on. Example: `table: users`"},
        }}
    column_types = list(COLUMN_TYPES)
    type_docs = [f"a {COLUMN_TYPES[t]} column. Example: `email: {t}`" for t in column_types]
    column = {"anyOf": [
        {"type": "string", "enum": column_types, "title": "column type",
         "enumDescriptions": type_docs},
        {"type": "object", "title": "column", "properties": {
            "type": {"type": "string", "enum": column_types, "enumDescriptions": type_docs},
            **{k: {"type": "boolean"} for k in ("primary_key", "auto", "unique", "nullable")},
            "default": {}, "description": {"type": "string"}}},
    ]}
    db["tables"]["additionalProperties"] = {
        "type": "object", "title": "table",
        "properties": {"columns": {"type": "object", "additionalProperties": column}}}


# -- every property: a description with an example, and a type an editor can insert ----------
def _resolve(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return defs.get(schema["$ref"].removeprefix("#/$defs/"), schema)
    return schema


def _types(schema: Any, defs: dict[str, Any]) -> list[str]:
    schema = _resolve(schema, defs)
    if not isinstance(schema, dict):
        return []
    if "type" in schema:
        t = schema["type"]
        return list(t) if isinstance(t, list) else [t]
    if "properties" in schema or "additionalProperties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    if "anyOf" in schema:
        out: list[str] = []
        for alt in schema["anyOf"]:
            out += [t for t in _types(alt, defs) if t not in out]
        return out
    if "if" in schema:  # a rollback (one body or a list), a resource (a name or ${...})
        out = []
        for branch in (schema.get("then"), schema.get("else")):
            out += [t for t in _types(branch, defs) if t not in out]
        return out
    if "enum" in schema:
        kinds = {type(x).__name__ for x in schema["enum"]}
        return ["string"] if kinds == {"str"} else []
    return list(ANY_TYPE)


def _walk(schema: Any, defs: dict[str, Any], path: tuple[str, ...], seen: set[int]) -> None:
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    for key, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        ref = sub.get("$ref", "").removeprefix("#/$defs/")
        if ref in LEAVES and ref in defs:
            # A leaf inlined: its key's own title and description are what hover shows.
            leaf = {k: x for k, x in defs[ref].items() if k != "description"}
            sub = {**copy.deepcopy(leaf), **{k: x for k, x in sub.items() if k != "$ref"},
                   "title": key}
            schema["properties"][key] = sub
        types = _types(sub, defs)
        if "type" not in sub and types:
            # Objects first: a completion then inserts `key:` and a new indented line.
            sub["type"] = sorted(types, key=lambda t: ORDER.get(t, len(ORDER)))
        described = sub.get("description") or _resolve(sub, defs).get("description")
        sub["description"] = docs.describe(key, path, described, sub.get("type", types), defs)
        if "enum" in sub and "enumDescriptions" not in sub:
            sub["enumDescriptions"] = [docs.enum_value(key, str(x)) for x in sub["enum"]]
        _walk(sub, defs, (*path, key), seen)
    for word in ("items", "additionalProperties", "then", "else"):
        _walk(schema.get(word), defs, path, seen)
    for word in ("anyOf", "oneOf", "allOf"):
        for alt in schema.get(word) or ():
            _walk(alt, defs, path, seen)
    if path == () and "$defs" in schema:
        for name, sub in schema["$defs"].items():
            _walk(sub, defs, (name,), seen)


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"
