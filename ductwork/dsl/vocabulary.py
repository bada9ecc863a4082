"""The words of the YAML DSL: step bodies, arguments, modifiers (shared by schema and compiler)."""

from __future__ import annotations

from dataclasses import dataclass

# Argument types. Names are static (checked against the product file); the others may be
# written literally or as one `${...}` expression that produces the value at run time. A
# RESOURCE is a name, or an expression whose every value the compiler can list and check.
ANY, NAME, TEXT, LIST, MAP, INT, DURATION, BOOL, TOPIC, RESOURCE = (
    "any", "name", "text", "list", "map", "int", "duration", "bool", "topic", "resource",
)
STATIC = (NAME, TOPIC, RESOURCE)  # written out (a RESOURCE: or chosen among proven names)


@dataclass(frozen=True)
class Param:
    name: str
    type: str = ANY
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Call:
    """A component call body such as `database.insert`: ctx.<component>.<method>(**args)."""

    key: str
    kind: str  # connector kind of the resource it addresses
    resource: str | None  # argument naming the resource ("database"), None: inside `event`
    event: str | None  # argument naming the event/action ("event", "action") if any
    params: tuple[Param, ...]
    description: str = ""

    @property
    def component(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def method(self) -> str:
        return self.key.split(".", 1)[1]

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _call(key: str, kind: str, resource: str | None, event: str | None,
          *params: Param, description: str = "") -> Call:
    head: list[Param] = []
    if resource:
        head.append(Param(resource, RESOURCE, True,
                          f"the {kind} resource, as named in product.yaml"))
    if event:
        head.append(Param(event, NAME, True, f"the {event} declared on that resource"))
    return Call(key, kind, resource, event, (*head, *params), description)


_ROUTED = "flat input routed to body/params/query/headers, or {body, query, params, headers}"

CALLS: dict[str, Call] = {c.key: c for c in (
    _call("action.run", "action", "app", "event",
          Param("input", MAP, description=_ROUTED),
          Param("retries", INT, description="HTTP-level retries of the connector"),
          Param("timeout", DURATION, description="per-request timeout"),
          description="Call an app's HTTP action."),
    _call("database.insert", "database", "database", "event", Param("data", ANY, True)),
    _call("database.query", "database", "database", "event", Param("params", MAP)),
    _call("database.update", "database", "database", "event",
          Param("where", MAP), Param("data", ANY, True)),
    _call("database.delete", "database", "database", "event", Param("where", MAP)),
    _call("database.upsert", "database", "database", "event", Param("data", ANY, True)),
    _call("database.execute", "database", "database", "event", Param("input", MAP)),
    _call("notification.email", "notification", "notification", "event",
          Param("recipients", LIST, True, "email addresses"),
          Param("subject", MAP, description="variables for the subject template"),
          Param("template", MAP, description="variables for the body template")),
    _call("notification.sms", "notification", "notification", "event",
          Param("phones", LIST, True), Param("message", MAP)),
    _call("notification.push", "notification", "notification", "event",
          Param("tokens", LIST, True), Param("title", MAP), Param("body", MAP),
          Param("data", MAP)),
    _call("notification.send", "notification", "notification", "event", Param("input", MAP)),
    _call("storage.upload", "storage", "storage", "event",
          Param("input", MAP, True, "{buffer, file_name, mime_type}")),
    _call("storage.download", "storage", "storage", "event",
          Param("input", MAP, True, "{file_key}")),
    _call("storage.delete", "storage", "storage", "event", Param("input", MAP, True)),
    _call("storage.list", "storage", "storage", "event", Param("input", MAP)),
    _call("graph.create_node", "graph", "graph", None,
          Param("labels", LIST, True), Param("properties", MAP)),
    _call("graph.update_node", "graph", "graph", None,
          Param("id", ANY, True), Param("properties", MAP, True)),
    _call("graph.delete_node", "graph", "graph", None, Param("id", ANY, True)),
    _call("graph.create_relationship", "graph", "graph", None,
          Param("from", ANY, True), Param("to", ANY, True), Param("type", TEXT, True),
          Param("properties", MAP)),
    _call("graph.delete_relationship", "graph", "graph", None, Param("id", ANY, True)),
    _call("graph.query", "graph", "graph", "action", Param("params", MAP)),
    _call("graph.execute", "graph", "graph", "action", Param("input", MAP)),
    Call("messaging.produce", "broker", None, "event",
         (Param("event", TOPIC, True, '"<broker>:<topic>"'), Param("message", ANY, True))),
    _call("publish.send", "broker", "broker", "event",
          Param("input", MAP, True, "{message}"),
          description="The older spelling of messaging.produce; `event` is the topic."),
    Call("fallback.execute", "fallback", "fallback", None, (
        Param("fallback", RESOURCE, True, "a fallback declared under `fallbacks:`"),
        Param("input", MAP, description="the input every provider's call receives"),
        Param("timeout", DURATION, description="per call to an app provider")),
        "Call the providers of a declared fallback in order; the result says which served."),
    Call("quota.execute", "quota", "quota", None, (
        Param("quota", RESOURCE, True, "a quota declared under `quotas:`"),
        Param("input", MAP, description="the input every provider's call receives"),
        Param("timeout", DURATION, description="per call to an app provider")),
        "Call one provider of a declared quota, by weight within its limits."),
    Call("healthcheck.get_status", "health", None, None, (
        Param("resource", NAME, True, "a resource of the product (any kind)"),
        Param("kind", TEXT, description="action, database, notification, storage, graph or "
                                        "broker, when two kinds share the name"),
        Param("timeout", DURATION, description="how long one provider's check may take")),
        "Check each provider of a resource: {status: available|unavailable, providers}."),
)}

# Control bodies (run by the interpreter itself, not through a connector).
CONTROL = ("sleep", "wait_for_signal", "checkpoint", "set", "log", "fail", "foreach",
           "parallel", "switch", "workflow", "python", "return", "trigger_rollback")

BODIES: tuple[str, ...] = (*CALLS, *CONTROL)

# Bodies that run through ctx.step (so they need a tag and accept the step modifiers).
TASKS = frozenset((*CALLS, "python", "fail"))

# Bodies allowed as a `rollback:`: calls, python and log (no control flow while compensating).
ROLLBACK_BODIES: tuple[str, ...] = (*CALLS, "python", "log")

MODIFIERS = ("rollback", "allow_fail", "retries", "retry_delay", "timeout", "critical")
# The modifiers a child `workflow:` step takes (like ctx.workflow(..., rollback=, critical=));
# its timeout and retries are arguments of the child, inside `workflow:`.
CHILD_MODIFIERS = ("rollback", "critical")
STEP_KEYS = ("tag", "if", *MODIFIERS, "catch", "args", *BODIES)

# Bodies that can fail and so take a `catch:` (a fail step is failing on purpose).
CATCHABLE = frozenset((*CALLS, "python", "workflow", "wait_for_signal"))

# Bodies that end the run: nothing after one of them (without `if:`) in the same list runs.
# `fail` ends it only without allow_fail.
TERMINALS = ("return", "trigger_rollback", "fail")

# What a catch step reads from `error`.
ERROR_FIELDS = ("message", "step", "type", "status")

# Keys people bring from other engines or from older docs, with the way to say it here.
ALIASES: dict[str, str] = {
    "retry": "write 'retries: <n>' and 'retry_delay: <duration>' (there is no 'retry' block)",
    "max_attempts": "write 'retries: <n>' (the number of retries after the first attempt)",
    "wait_for": "the signal step is spelled 'wait_for_signal'",
    "when": "conditions are spelled 'if'",
    "name": "a step is named by its 'tag'",
    "id": "a step is named by its 'tag'",
    "allowFail": "write 'allow_fail' (snake_case)",
    "retryDelay": "write 'retry_delay' (snake_case)",
    "waitForSignal": "write 'wait_for_signal' (snake_case)",
    "setState": "state is written with 'set: {key: value}'",
    "set_state": "state is written with 'set: {key: value}'",
    "messaging.publish": "write 'messaging.produce'",
    "else": "a step has no 'else': add a step with the opposite 'if:', or use switch: with "
            "cases: and default:",
    "depends_on": "steps run in the order they are written; to run steps side by side, put "
                  "them in parallel: branches",
    "needs": "steps run in the order they are written; to run steps side by side, put them "
             "in parallel: branches",
    "on_failure": "to handle this step's failure write catch: [{steps: [...]}]; to undo it "
                  "when a later step fails, rollback: {...}",
    "on_error": "to handle this step's failure write catch: [{steps: [...]}]; to undo it when "
                "a later step fails, rollback: {...}",
    "compensate": "the compensation of a step is written 'rollback:'",
    "compensation": "the compensation of a step is written 'rollback:'",
    "undo": "the compensation of a step is written 'rollback:'",
    "continue_on_error": "write 'allow_fail: true'",
    "ignore_errors": "write 'allow_fail: true'",
}

ROLLBACK_STRATEGIES = ("reverse_all", "critical_only", "to_checkpoint", "none")
PARENT_CLOSE_POLICIES = ("terminate", "abandon", "request_cancel")
LOG_LEVELS = ("debug", "info", "warn", "error")

# Notification event fields that make a template for each channel (as the connector reads them).
CHANNEL_FIELDS = {"email": ("subject", "text", "html"), "sms": ("message",),
                  "push": ("title", "body")}

# How messages name a resource of each kind.
NOUN = {"action": "app", "database": "database", "notification": "notification",
        "storage": "storage", "graph": "graph", "broker": "broker", "fallback": "fallback",
        "quota": "quota"}

# ctx metadata readable from expressions as ctx.<name>.
CTX_FIELDS = (
    "input", "workflow_id", "workflow_tag", "env", "product", "checkpoint_name",
    "checkpoint_data", "completed_steps", "current_step", "is_replay", "is_restart",
    "is_restored", "replayed_from", "restarted_from", "resumed_from", "replay_reason",
    "restart_reason", "restored_checkpoint", "original_input", "context", "session", "auth",
)

# What an expression reads as step.<name> in a step's call or rollback.
STEP_FIELDS = ("idempotency_key",)

# Product file sections -> connector kind, and the extra blocks each kind may declare.
SECTIONS: dict[str, str] = {
    "apps": "action", "databases": "database", "notifications": "notification",
    "storage": "storage", "graphs": "graph", "brokers": "broker",
}
# Named fallbacks and quotas (docs/fallback.md) are called by name like resources.
KIND_SECTION = {**{kind: section for section, kind in SECTIONS.items()},
                "fallback": "fallbacks", "quota": "quotas"}
PROVIDERS: dict[str, tuple[str, ...]] = {
    "action": ("http",),
    "database": ("sqlite", "postgresql", "postgres"),
    "notification": ("outbox", "smtp", "twilio", "fcm", "webpush"),
    "storage": ("local", "s3"),
    "graph": ("ladybug", "falkordb"),
    "broker": ("redis", "nats", "kafka"),
}
KIND_EXTRAS: dict[str, tuple[str, ...]] = {
    "action": ("constants",),  # the same in every env (ctx.constant); variables are per env
    "database": ("tables",),
    "notification": (),  # templates live in the events (subject/text/html, message, ...)
    "storage": (),
    "graph": ("actions", "schema"),  # named Cypher actions; node/relationship types
    "broker": ("topics",),
}

# Words an expression already uses; a foreach `as:` cannot take them.
RESERVED_NAMES = frozenset({
    "ctx", "steps", "state", "result", "item", "index", "env", "error", "step",
    "true", "false", "null", "and", "or", "not", "in", "if", "else", "transform",
})
