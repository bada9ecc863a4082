"""What editors show for each key and enum value of the schemas: a sentence and an example."""

from __future__ import annotations

from typing import Any

from ductwork.dsl import vocabulary as v

# Step keys: (what it does, a one-line example).
STEP_DOCS: dict[str, tuple[str, str]] = {
    "tag": ("The step's name, unique in the workflow; later steps read its result as "
            "`steps.<tag>`.", "tag: create-user"),
    "if": ("Run the step only when this holds (a `${...}` expression or true/false).",
           'if: "${ctx.input.amount > 100}"'),
    "rollback": ("What undoes the step if the run fails later: one call, python or log body "
                 "(or a list of them); `result` is the step's result.",
                 "rollback: {action.run: {app: stripe, event: refund, input: {id: "
                 '"${result.id}"}}}'),
    "allow_fail": ("A failure of this step (after its retries) is recorded and the run goes "
                   "on; the step's result is null.", "allow_fail: true"),
    "retries": ("How many times the step runs again after a failure.", "retries: 3"),
    "retry_delay": ("The pause between two attempts (a duration; numbers are milliseconds).",
                    "retry_delay: 2s"),
    "timeout": ("The longest one attempt may take (a duration).", "timeout: 30s"),
    "critical": ("With rollback_strategy critical_only, only critical steps are rolled back.",
                 "critical: true"),
    "catch": ("Handlers of the step's failure: the first whose `if` holds runs its steps, "
              "with `error` bound.", 'catch: [{if: "${error.status == 404}", steps: [...]}]'),
    "args": ("Arguments of a python step (or of a rollback's python body).",
             'args: {order_id: "${ctx.input.order_id}"}'),
    "returns": ("python steps: the JSON Schema of what the function returns.",
                "returns: {type: object, properties: {id: {type: integer}}}"),
}
BODY_DOCS: dict[str, tuple[str, str]] = {
    "sleep": ("Pause the run durably (it survives restarts).", "sleep: 1h"),
    "wait_for_signal": ("Wait until a signal arrives (ctx.wait_for_signal); its payload is "
                        "the step's result.", "wait_for_signal: {name: approved, timeout: 2d}"),
    "checkpoint": ("Record a checkpoint (a point resume and to_checkpoint rollbacks go back "
                   "to).", "checkpoint: {name: paid}"),
    "set": ("Write state keys (ctx.set_state), read later as `state.<key>`.",
            'set: {phase: "shipped"}'),
    "log": ("Write a line to the run's log.", 'log: {level: info, message: "charged"}'),
    "fail": ("Fail the run here with this message.", 'fail: "no stock for ${ctx.input.sku}"'),
    "foreach": ("Run steps once per item of a list (`item` is the current one).",
                'foreach: {items: "${ctx.input.items}", steps: [...]}'),
    "parallel": ("Run branches of steps at the same time.",
                 "parallel: [{steps: [...]}, {steps: [...]}]"),
    "switch": ("Run the steps of the first case whose `if` holds, else `default`.",
               'switch: {cases: [{if: "${ctx.input.express}", steps: [...]}]}'),
    "workflow": ("Run a child workflow and wait for its output.",
                 'workflow: {tag: send-invoice, input: {order: "${ctx.input.id}"}}'),
    "python": ("Call a Python function with ctx and the step's `args`.",
               "python: shop.pricing:price_order"),
    "return": ("End the run now with this output.", 'return: {status: "skipped"}'),
    "trigger_rollback": ("Roll back the completed steps now, then end the run.",
                         'trigger_rollback: {reason: "invalid code"}'),
}
_SAMPLE_RESOURCE = {"action": "stripe", "database": "users-db", "notification": "transactional",
                    "storage": "uploads", "graph": "social", "broker": "events",
                    "fallback": "payments", "quota": "sms"}
_SAMPLE_EVENT = {"action": "create-charge", "database": "create-user",
                 "notification": "welcome-email", "storage": "invoice", "graph": "find-friends",
                 "broker": "events:orders"}
_SAMPLE = {v.NAME: "my-name", v.TEXT: "KNOWS", v.LIST: "[a@example.com]", v.INT: "2",
           v.DURATION: "30s", v.BOOL: "true", v.TOPIC: "events:orders"}
for _call in v.CALLS.values():
    _args = []
    for _p in _call.params:
        if not _p.required:
            continue
        if _p.name == _call.resource:
            _args.append(f"{_p.name}: {_SAMPLE_RESOURCE.get(_call.kind, 'my-resource')}")
        elif _p.name == _call.event:
            _args.append(f"{_p.name}: {_SAMPLE_EVENT.get(_call.kind, 'my-event')}")
        else:
            _args.append(f"{_p.name}: {_SAMPLE.get(_p.type, '{...}')}")
    BODY_DOCS[_call.key] = (
        _call.description or f"Call {_call.key.replace('.', ' ')} on a {v.NOUN[_call.kind]} "
        "of the product file (ctx." + _call.key + ").",
        f"{_call.key}: {{{', '.join(_args)}}}")

# Keys elsewhere in workflow and product files.
KEY_DOCS: dict[str, tuple[str, str]] = {
    "workflow": ("The workflow's tag (its file name, without .yaml).", "workflow: user-onboarding"),
    "product": ("The product's name (its folder under specs/).", "product: my-product"),
    "name": ("A readable name.", "name: User Onboarding"),
    "description": ("What it is for, in a sentence.", "description: Onboards new users"),
    "input": ("The input's JSON Schema, or the value given to the call.",
              "input: {type: object, required: [email]}"),
    "options": ("Run options: rollback_strategy, timeout, retries.",
                "options: {rollback_strategy: reverse_all, timeout: 5m}"),
    "signals": ("Signals the workflow accepts: name -> JSON Schema of the payload.",
                "signals: {approved: {type: object}}"),
    "envs": ("The environments (a list in a product file; per-environment config in a "
             "resource).", "envs: [dev, staging, prd]"),
    "steps": ("The steps, run in order.", "steps: [{tag: create-user, database.insert: {...}}]"),
    "output": ("The run's output (expressions allowed).",
               'output: {userId: "${steps.create-user.id}"}'),
    "queries": ("Named queries answered from a run's state.", 'queries: {phase: "${state.phase}"}'),
    "rollback_strategy": ("Which completed steps are rolled back when the run fails.",
                          "rollback_strategy: reverse_all"),
    "items": ("The list to go through.", 'items: "${ctx.input.items}"'),
    "as": ("The name of the current item (default `item`).", "as: line"),
    "concurrency": ("How many items run at once.", "concurrency: 4"),
    "cases": ("The cases, tried in order.", 'cases: [{if: "${ctx.input.express}", steps: [...]}]'),
    "default": ("The steps run when no case holds (or a default value).", "default: [...]"),
    "id": ("An id.", "id: invoice"),
    "parent_close_policy": ("What happens to the child when the parent ends first.",
                            "parent_close_policy: terminate"),
    "level": ("The log level.", "level: info"),
    "message": ("The message.", 'message: "order ${ctx.input.id} shipped"'),
    "data": ("The data of the call: a mapping of columns or fields (expressions allowed).",
             'data: {email: "${ctx.input.email}"}'),
    "metadata": ("Anything to record with it.", "metadata: {by: api}"),
    "reason": ("Why (stored with the rollback).", "reason: invalid code"),
    "provider": ("The provider serving this resource in this environment.", "provider: sqlite"),
    "events": ("The events of the resource: name -> definition.",
               "events: {create-charge: {method: POST, path: /v1/charges}}"),
    "tables": ("Tables the database provider creates and checks.",
               "tables: {users: {columns: {id: {type: integer, primary_key: true}}}}"),
    "columns": ("The columns: name -> type, or {type, primary_key, auto, unique, nullable, "
                "default}.", "columns: {email: {type: text, unique: true}}"),
    "strategy": ("How the providers are used.", "strategy: fallback"),
    "providers": ("Several providers, in order.", "providers: [{name: main, provider: smtp}]"),
    "response": ("The JSON Schema of the response body.", "response: {type: object}"),
}
for _section in v.SECTIONS:
    KEY_DOCS.setdefault(_section, (f"The {_section} of the product: name -> definition "
                                   "with per-environment config.", f"{_section}: {{...}}"))

STEP_SNIPPETS: dict[str, Any] = {
    "action.run": {"app": "$2", "event": "$3", "input": {"body": {}}},
    "database.insert": {"database": "$2", "event": "$3", "data": {}},
    "database.query": {"database": "$2", "event": "$3", "params": {}},
    "notification.email": {"notification": "$2", "event": "$3", "recipients": ["$4"],
                           "template": {}},
    "python": "${2:package.module:function}",
    "sleep": "${2:1h}",
    "wait_for_signal": {"name": "$2", "timeout": "${3:1d}"},
    "foreach": {"items": "$2", "steps": [{"tag": "$3", "log": {"message": "$4"}}]},
}
CONTROL_SNIPPETS: dict[str, Any] = {
    "wait_for_signal": {"name": "$1", "timeout": "${2:1d}"},
    "checkpoint": {"name": "$1"},
    "log": {"level": "info", "message": "$1"},
    "foreach": {"items": "$1", "steps": [{"tag": "$2", "log": {"message": "$3"}}]},
    "switch": {"cases": [{"if": "$1", "steps": [{"tag": "$2", "log": {"message": "$3"}}]}]},
    "workflow": {"tag": "$1", "input": {}},
    "trigger_rollback": {"reason": "$1"},
}

METHOD_DOCS = {
    "GET": "read (the input goes to the query string). Example: `method: GET`",
    "POST": "create (the input goes to the JSON body). Example: `method: POST`",
    "PUT": "replace (JSON body). Example: `method: PUT`",
    "PATCH": "change part of it (JSON body). Example: `method: PATCH`",
    "DELETE": "delete. Example: `method: DELETE`",
    "HEAD": "headers only. Example: `method: HEAD`",
    "OPTIONS": "what the URL allows. Example: `method: OPTIONS`",
}
OP_DOCS = {
    "insert": "add a row; `data` is the row. Example: `op: insert`",
    "query": "read rows (select, where, order_by, limit). Example: `op: query`",
    "update": "change rows matching `where`. Example: `op: update`",
    "delete": "delete rows matching `where`. Example: `op: delete`",
    "upsert": "insert, or update the row with the same `key`. Example: `op: upsert`",
    "sql": "run the event's own `sql` with `params`. Example: `op: sql`",
}
ENUM_DOCS: dict[str, dict[str, str]] = {
    "rollback_strategy": {
        "reverse_all": "roll back every completed step, newest first",
        "critical_only": "roll back only the steps marked critical",
        "to_checkpoint": "roll back the steps after the last checkpoint",
        "none": "roll back nothing"},
    "parent_close_policy": {
        "terminate": "cancel the child when the parent ends",
        "abandon": "let the child run on",
        "request_cancel": "ask the child to cancel itself"},
    "level": {"debug": "details", "info": "what happened", "warn": "something to look at",
              "error": "a failure"},
    "strategy": {"fallback": "in order, the next on failure",
                 "quota": "spread by weight within each provider's limit"},
    "provider": {
        "http": "an HTTP API", "sqlite": "a SQLite file (relative to the product folder)",
        "postgresql": "a PostgreSQL database", "postgres": "a PostgreSQL database",
        "outbox": "emails written to a local Maildir (no sending)",
        "smtp": "an SMTP relay", "twilio": "SMS through Twilio",
        "fcm": "push through Firebase Cloud Messaging", "webpush": "Web Push",
        "local": "files in a local folder", "s3": "an S3 bucket",
        "ladybug": "an embedded graph database", "falkordb": "a FalkorDB server",
        "redis": "Redis Streams", "nats": "NATS JetStream", "kafka": "Apache Kafka"},
}


def _example(key: str, types: list[str]) -> str:
    first = types[0] if types else "string"
    value = {"boolean": "true", "integer": "1", "number": "1", "array": "[...]",
             "object": "{...}", "null": "null"}.get(first, "...")
    return f"{key}: {value}"


def describe(key: str, path: tuple[str, ...], existing: str | None, types: list[str],
             defs: dict[str, Any]) -> str:
    """The description of property `key` (under `path`), always with an example line."""
    known = (BODY_DOCS.get(key) if key in v.BODIES and path in ((), ("step",), ("rollback",))
             else None) or (STEP_DOCS.get(key) if path in (("step",), ("rollback",)) else None) \
        or KEY_DOCS.get(key)
    if path and path[0] in v.CALLS:
        param = v.CALLS[path[0]].param(key)
        if param is not None and param.description:
            existing = existing or param.description[:1].upper() + param.description[1:]
    text = existing or (known[0] if known else f"`{key}`.")
    example = known[1] if known else _example(key, types)
    if "Example:" in text:
        return text
    return f"{text.rstrip('.')}. Example: `{example}`"


def enum_value(key: str, value: str) -> str:
    said = ENUM_DOCS.get(key, {}).get(value)
    return f"{said or value}. Example: `{key}: {value}`"


def call_snippet(key: str) -> dict[str, Any]:
    call = v.CALLS[key]
    body: dict[str, Any] = {}
    n = 1
    for p in call.params:
        if not p.required:
            continue
        if p.type in (v.MAP, v.ANY):
            body[p.name] = {}
        elif p.type == v.LIST:
            body[p.name] = [f"${n}"]
            n += 1
        else:
            body[p.name] = f"${n}"
            n += 1
    return body
