"""A call's arguments as the connector checks see them: literals, and Runtime for expressions."""

from __future__ import annotations

from typing import Any

from ductwork.connectors import checks
from ductwork.connectors.checks import Runtime
from ductwork.dsl.expr import expressions
from ductwork.dsl.expr import nodes as ast
from ductwork.errors import ExpressionError
from ductwork.util import schema_defaults

Problem = tuple[tuple[str | int, ...], str]


def call_problems(kind: str, method: str, definition: dict[str, Any], args: dict[str, Any],
                  input_schema: dict[str, Any] | None) -> list[Problem]:
    """What the connector can tell of this call before it runs (paths inside `args`)."""
    static = {k: static_value(v, input_schema) for k, v in args.items()}
    try:
        return checks.check_call(kind, method, definition, static)
    except Exception as e:  # a checker bug must not hide the user's other errors
        return [((), f"the {kind} call check failed: {type(e).__name__}: {e}")]


def static_value(raw: Any, input_schema: dict[str, Any] | None) -> Any:
    """`raw` with each `${...}` string replaced by what is known of its value."""
    if isinstance(raw, dict):
        return {k: static_value(v, input_schema) for k, v in raw.items()}
    if isinstance(raw, list):
        return [static_value(v, input_schema) for v in raw]
    if not isinstance(raw, str) or "$" not in raw:
        return raw
    try:
        value = expressions.compile_value(raw)
    except ExpressionError:
        return checks.ANY  # reported by the expression checker
    if value.is_constant:
        return value.evaluate({})  # `$${` is a literal `${`
    found = value.expressions()
    if not value.is_expression or len(found) != 1:
        return checks.ANY  # text with expressions inside: a string known at run time
    return _shape(found[0][0].node, input_schema)


def _shape(node: ast.Node, input_schema: dict[str, Any] | None) -> Any:
    """What one whole expression is known to produce: a map literal's keys, or the shape the
    input schema gives `ctx.input...`."""
    if isinstance(node, ast.MapNode):
        return {key: checks.ANY for key in node.keys}
    found = ast.path_of(node)
    if found is None or found[0] != "ctx" or found[1][:1] != ("input",):
        return checks.ANY
    schema: Any = input_schema
    for name in found[1][1:]:
        props = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(props, dict) or name not in props:
            return checks.ANY
        schema = props[name]
    return _object_shape(schema, input_schema)


def _object_shape(schema: Any, root: Any) -> Runtime:
    if not isinstance(schema, dict) or schema.get("type") not in ("object", None):
        return checks.ANY
    props = schema.get("properties")
    if not isinstance(props, dict):
        return checks.ANY
    required = schema.get("required")
    surely = frozenset(r for r in required if r in props) if isinstance(required, list) \
        else frozenset()
    surely |= schema_defaults.defaulted(root, schema) & frozenset(props)  # filled in if left out
    # Like the expression checker, an object schema without additionalProperties lists its
    # fields: a field it does not declare is taken not to come.
    closed = schema.get("additionalProperties") in (None, False)
    return Runtime(surely, frozenset(props) if closed else None)
