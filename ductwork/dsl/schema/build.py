"""The JSON Schemas of product and workflow files: built from the vocabulary, shipped as JSON."""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib import resources
from typing import Any

from ductwork.dsl import vocabulary as v
from ductwork.dsl.schema import ALL_SCHEMAS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_-]*$"
DURATION_PATTERN = "^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d|w)?$"
TOPIC_PATTERN = "^[^:]+:[^:]+$"
EXPRESSION_PATTERN = "^\\s*\\$\\{[\\s\\S]*\\}\\s*$"
_IDENT = "[A-Za-z_][A-Za-z0-9_]*"
PYTHON_TARGET_PATTERN = f"^{_IDENT}(\\.{_IDENT})*:{_IDENT}$"
DURATION_DEF = {
    "title": 'a duration such as "250ms", "5s", "5m", "1h", "1d" or a number of milliseconds',
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
}
HEADER_PATTERN = "^[A-Za-z0-9][A-Za-z0-9-]*$"
FIELD_PATH_PATTERN = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$"


_EXPR = {"$ref": "#/$defs/expression"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _or_expr(schema: dict[str, Any], title: str) -> dict[str, Any]:
    return {"title": title, "anyOf": [schema, _EXPR]}


def _param_schema(p: v.Param) -> dict[str, Any]:
    schema: dict[str, Any]
    if p.type == v.NAME:
        schema = _ref("name")
    elif p.type == v.RESOURCE:
        # if/then/else (not anyOf) keeps a bad name's own error; the compiler checks which
        # names an expression can give.
        schema = {"if": {"type": "string", "pattern": "\\$\\{"}, "then": _EXPR,
                  "else": _ref("name")}
    elif p.type == v.TOPIC:
        schema = {"type": "string", "pattern": TOPIC_PATTERN}
    elif p.type == v.TEXT:
        schema = {"type": "string"}
    elif p.type == v.LIST:
        schema = _or_expr({"type": "array"}, "a list or a ${...} expression")
    elif p.type == v.MAP:
        schema = _or_expr({"type": "object"}, "a mapping or a ${...} expression")
    elif p.type == v.INT:
        schema = {"type": "integer", "minimum": 0}
    elif p.type == v.DURATION:
        schema = _ref("duration")
    elif p.type == v.BOOL:
        schema = {"type": "boolean"}
    else:
        schema = {}
    if p.description:
        schema = {**schema, "description": p.description}
    return schema


def _object(properties: dict[str, Any], required: list[str] | tuple[str, ...] = (),
            **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": properties}
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _exactly_one(keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"required": [k]} for k in keys]


def _common_defs() -> dict[str, Any]:
    return {
        "name": {"title": "a name (letters, digits, '-' and '_')", "type": "string",
                 "pattern": NAME_PATTERN},
        "expression": {"title": "a ${...} expression", "type": "string",
                       "pattern": EXPRESSION_PATTERN},
        "duration": DURATION_DEF,
        "condition": {"title": "a ${...} expression or a boolean",
                      "anyOf": [{"type": "boolean"}, _EXPR]},
        "steps": {"type": "array", "items": _ref("step")},
    }


def _call_bodies(defs: dict[str, Any]) -> dict[str, Any]:
    """One body per component call (`database.insert`, ...), its parameters from the vocabulary."""
    body_props: dict[str, Any] = {}
    for call in v.CALLS.values():
        defs[call.key] = _object(
            {p.name: _param_schema(p) for p in call.params},
            [p.name for p in call.params if p.required],
            **({"description": call.description} if call.description else {}),
        )
        body_props[call.key] = _ref(call.key)
    return body_props


def _control_bodies(defs: dict[str, Any]) -> dict[str, Any]:
    """The control bodies: sleep, signals, checkpoint, state, log, fail, loops, branches."""
    return {
        "sleep": _or_expr(_ref("duration"), defs["duration"]["title"] + " or a ${...} expression"),
        "wait_for_signal": _object({
            "name": {"title": "a signal name or a list of names",
                     "anyOf": [_ref("name"), {"type": "array", "items": _ref("name"),
                                              "minItems": 1}]},
            "timeout": _ref("duration"),
        }, ["name"]),
        "checkpoint": _object({"name": _ref("name"), "metadata": {}}, ["name"]),
        "set": {"type": "object", "minProperties": 1,
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "description": "state keys to set (ctx.set_state) and their values"},
        "log": _object({"level": {"enum": list(v.LOG_LEVELS)}, "message": {"type": "string"},
                        "data": {}}, ["message"]),
        "fail": {"type": "string", "description": "fail the run with this message"},
        "foreach": _object({
            "items": _or_expr({"type": "array"}, "a list or a ${...} expression"),
            "as": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "concurrency": {"type": "integer", "minimum": 1},
            "steps": _ref("steps"),
        }, ["items", "steps"]),
        "parallel": {"type": "array", "minItems": 1,
                     "items": _object({"steps": _ref("steps")}, ["steps"])},
        "switch": _object({
            "cases": {"type": "array", "minItems": 1,
                      "items": _object({"if": _ref("condition"), "steps": _ref("steps")},
                                       ["if", "steps"])},
            "default": _ref("steps"),
        }, ["cases"]),
        "workflow": _object({
            "tag": _ref("name"),
            "input": {},
            "id": {"type": "string", "description": "the child's id within this run (default: "
                                                    "the step tag); its run is <parent>:<id>"},
            "timeout": _ref("duration"),
            "retries": {"type": "integer", "minimum": 0},
            "parent_close_policy": {"enum": list(v.PARENT_CLOSE_POLICIES)},
        }, ["tag"]),
        "python": {"type": "string", "pattern": PYTHON_TARGET_PATTERN,
                   "description": "package.module:function, called as function(ctx, **args)"},
        "return": {"description": "end the run now with this output (expressions allowed); "
                                  "the workflow's `output:` is not evaluated"},
        "trigger_rollback": _object({
            "reason": {"type": "string", "description": "why (stored with the rollback)"},
            "output": {"description": "the run's output; reads the rollback summary as "
                                      "`result` ({success, rolled_back_steps, failed_steps})"},
        }, ["reason"], description="compensate now by the workflow's rollback_strategy "
                                   "(ctx.trigger_rollback), then end the run"),
    }


def _step_def(body_props: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """A step: a tag, exactly one body, and the modifiers (if, retries, rollback, catch...)."""
    return _object(
        {
            "tag": _ref("name"),
            "if": _ref("condition"),
            # One body, or a list run in order; if/then/else (not anyOf) keeps the errors of
            # the single-body form as they are.
            "rollback": {"if": {"type": "array"},
                         "then": {"type": "array", "minItems": 1, "items": _ref("rollback")},
                         "else": _ref("rollback"),
                         "description": "what undoes the step if the run fails later: one "
                                        "call, python or log body, or a list of them run in "
                                        "order; `result` is the step's result"},
            "allow_fail": {"type": "boolean"},
            "retries": {"type": "integer", "minimum": 0},
            "retry_delay": _ref("duration"),
            "timeout": _ref("duration"),
            "critical": {"type": "boolean"},
            "catch": {"type": "array", "minItems": 1,
                      "description": "handlers for the step's failure (after its retries): "
                                     "the first whose `if` holds runs, with `error` bound; "
                                     "none matching fails the run",
                      "items": _object({"if": _ref("condition"), "steps": _ref("steps")},
                                       ["steps"])},
            "args": args,
            "returns": {"type": "object",
                        "description": "python steps: the JSON Schema of what the function "
                                       "returns; validate checks what steps.<tag> reads "
                                       "against it"},
            **body_props,
        },
        oneOf=_exactly_one(v.BODIES),
    )


def build_workflow_schema() -> dict[str, Any]:
    defs = _common_defs()
    body_props = {**_call_bodies(defs), **_control_bodies(defs)}
    args = _or_expr({"type": "object"}, "a mapping or a ${...} expression")
    defs["rollback"] = _object(
        {**{k: body_props[k] for k in v.ROLLBACK_BODIES}, "args": args},
        oneOf=_exactly_one(v.ROLLBACK_BODIES),
    )
    defs["step"] = _step_def(body_props, args)
    return {
        "$schema": DIALECT,
        "$id": "https://ductwork.dev/schema/workflow.json",
        "title": "ductwork workflow file (specs/<product>/workflows/<tag>.yaml)",
        **_object(
            {
                "workflow": {**_ref("name"), "description": "the workflow tag"},
                "product": _ref("name"),
                "name": {"type": "string"},
                "description": {"type": "string"},
                "input": {"type": "object", "description": "JSON Schema of the input"},
                "options": _object({
                    "rollback_strategy": {"enum": list(v.ROLLBACK_STRATEGIES)},
                    "timeout": _ref("duration"),
                    "retries": {"type": "integer", "minimum": 0},
                }),
                "signals": {"type": "object", "propertyNames": _ref("name"),
                            "additionalProperties": {"type": "object"},
                            "description": "accepted signals: name -> JSON Schema of payload"},
                "envs": {"type": "array", "items": _ref("name"), "uniqueItems": True},
                "steps": {**_ref("steps"), "minItems": 1},
                "output": {},
                "queries": {"type": "object", "propertyNames": _ref("name"),
                            "description": "named queries answered from a run's persisted "
                                           "state: name -> value (${...} may read ctx, state "
                                           "and steps)"},
            },
            ["workflow", "steps"],
        ),
        "$defs": defs,
    }


def _event_schema(kind: str) -> dict[str, Any]:
    """An event of a resource (its provider checks the rest); an app event may declare the
    JSON Schema of its response, which validate uses for what steps.<tag> reads."""
    if kind != "action":
        return {"type": ["object", "null"]}
    return {"type": ["object", "null"], "properties": {"response": {
        "type": "object", "description": "the JSON Schema of the response body"}}}


def _pool_properties(kind: str) -> dict[str, Any]:
    """An env that lists several providers (docs/fallback.md); the compiler checks the rest."""
    return {
        "providers": {
            "type": "array", "minItems": 1,
            "description": "several providers for this env, tried in order (strategy "
                           "fallback) or spread by weight (strategy quota)",
            "items": {"type": "object", "required": ["name"], "properties": {
                "name": _ref("name"),
                "provider": {"enum": list(v.PROVIDERS[kind])},
                "weight": {"type": "integer", "minimum": 1,
                           "description": "share of the calls (strategy quota)"},
                "limit": {"type": "integer", "minimum": 1,
                          "description": "most calls per window (strategy quota)"},
            }},
        },
        "strategy": {"enum": ["fallback", "quota"],
                     "description": "fallback: in order, the next on failure; quota: by weight"},
    }


def _policy_sections() -> dict[str, Any]:
    """`fallbacks:` and `quotas:`: named lists of calls (docs/fallback.md)."""
    target = {"type": "object", "required": ["name"], "properties": {
        "name": _ref("name"),
        **{k: {**_ref("name"), "description": f"the {k} to call"}
           for k in ("app", "notification", "database", "storage")},
        "event": {**_ref("name"), "description": "the event of that resource"},
        "provider": {**_ref("name"), "description": "one provider of the resource's list"},
        "weight": {"type": "integer", "minimum": 1},
        "limit": {"type": "integer", "minimum": 1},
    }}
    out: dict[str, Any] = {}
    for section, what in (("fallbacks", "tried in order, the next on failure"),
                          ("quotas", "spread by weight within per-provider limits")):
        out[section] = {
            "type": "object", "propertyNames": _ref("name"),
            "description": f"named lists of calls, {what} (ctx.{section[:-1]}.execute)",
            "additionalProperties": {"type": "object", "required": ["providers"],
                                     "properties": {
                                         "description": {"type": "string"},
                                         "providers": {"type": "array", "minItems": 1,
                                                       "items": target}}},
        }
    return out


# An app's values per env (ctx.variable); its `constants:` are one of KIND_EXTRAS.
_APP_VARIABLES = {"action": {"variables": {
    "type": "object", "propertyNames": _ref("name"),
    "description": "values that differ per env, read with ctx.variable(app, name) or "
                   "${variables.<app>.<name>}; ${secrets.NAME} references are resolved"}}}


def build_product_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {
        "name": {"title": "a name (letters, digits, '-' and '_')", "type": "string",
                 "pattern": NAME_PATTERN},
    }
    sections: dict[str, Any] = {}
    for section, kind in v.SECTIONS.items():
        extras = {x: {"type": "object", "propertyNames": _ref("name")}
                  for x in v.KIND_EXTRAS[kind]}
        defs[f"{kind}-config"] = {
            "type": "object",
            "description": f"{kind} config for one environment (checked by the provider), "
                           "or a `providers:` list of several",
            "properties": {"provider": {"enum": list(v.PROVIDERS[kind])}},
            # In allOf, so that the examples in hints show a single provider's config.
            "allOf": [{"properties": {**_pool_properties(kind),
                                      **_APP_VARIABLES.get(kind, {})}}],
        }
        defs[kind] = _object(
            {
                "description": {"type": "string"},
                "envs": {"type": "object", "propertyNames": _ref("name"),
                         "additionalProperties": _ref(f"{kind}-config")},
                "events": {"type": "object", "propertyNames": _ref("name"),
                           "additionalProperties": _event_schema(kind)},
                **extras,
            },
            ["envs"],
        )
        sections[section] = {"type": "object", "propertyNames": _ref("name"),
                             "additionalProperties": _ref(kind)}
    defs["duration"] = DURATION_DEF
    defs["webhook"] = _object(
        {
            "description": {"type": "string"},
            "env": {**_ref("name"), "description": "the environment the runs start in"},
            "secret": {"type": "string", "description": "the HMAC-SHA256 key, as a "
                       "${secrets.NAME} reference"},
            "signature_header": {"type": "string", "pattern": HEADER_PATTERN, "description":
                                 "the header with sha256=<hex> (default X-Ductwork-Signature)"},
            "idempotency_header": {"type": "string", "pattern": HEADER_PATTERN, "description":
                                   "the header with a delivery's key (default Idempotency-Key)"},
            "idempotency_field": {"type": "string", "pattern": FIELD_PATH_PATTERN,
                                  "description": "the body field with a delivery's key "
                                  "(a.b for nested fields)"},
            "timestamp_header": {"type": "string", "pattern": HEADER_PATTERN, "description":
                                 "the header with the delivery's Unix time in seconds; the "
                                 "signature then covers <timestamp>.<body> and an older or "
                                 "newer delivery than `tolerance` is refused (replays)"},
            "tolerance": {**_ref("duration"), "description": "how far a delivery's timestamp "
                          "may be from the server's clock (default 5m; needs "
                          "timestamp_header)"},
        },
        ["env", "secret"],
    )
    sections["webhooks"] = {
        "type": "object", "propertyNames": _ref("name"), "additionalProperties": _ref("webhook"),
        "description": "webhooks that start a workflow of this product, by workflow tag: "
                       "POST /hooks/<product>/<workflow> on `ductwork server`"}
    return {
        "$schema": DIALECT,
        "$id": "https://ductwork.dev/schema/product.json",
        "title": "ductwork product file (specs/<product>/product.yaml)",
        **_object(
            {
                "product": _ref("name"),
                "name": {"type": "string"},
                "description": {"type": "string"},
                "envs": {"type": "array", "items": _ref("name"), "minItems": 1,
                         "uniqueItems": True},
                **sections,
                **_policy_sections(),
            },
            ["product", "envs"],
        ),
        "$defs": defs,
    }


BUILDERS = {"product": build_product_schema, "workflow": build_workflow_schema}


@cache
def schema(name: str) -> dict[str, Any]:
    """The shipped JSON Schema `name` ("product" or "workflow"): the core schema with what
    editors need (descriptions with examples, typed nodes, snippets, titles; editor.py)."""
    text = resources.files("ductwork.dsl.schema").joinpath(f"{name}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def core(name: str) -> dict[str, Any]:
    """The schema `name` without the editor's annotations: what `ductwork validate` checks
    against, so its messages read the same whatever an editor is shown."""
    return BUILDERS[name]()


def dump(name: str) -> str:
    from ductwork.dsl.schema import editor

    if name == "tests":
        from ductwork.dsl.schema.testcases import build_testcases_schema

        return json.dumps(build_testcases_schema(), indent=2) + "\n"

    return editor.dumps(editor.annotate(BUILDERS[name](), name))


if __name__ == "__main__":  # regenerate the shipped files: python -m ductwork.dsl.schema.build
    from pathlib import Path

    out = Path(__file__).parent  # the shipped files sit beside this module
    for n in ALL_SCHEMAS:
        (out / f"{n}.json").write_text(dump(n), "utf-8")
        print(f"wrote {out / f'{n}.json'}", file=sys.stderr)
