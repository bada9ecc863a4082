"""The YAML front end: product and workflow files -> a compiled, checked Plan.

Phases, one module each: `loader` (YAML with a position for every node, duplicate keys
rejected) -> `schema_check` (the shipped JSON Schemas, `schemas`) -> `compiler` / `product`
(semantic checks: resources, events, environments, step tags, expressions) -> `plan`
(the dataclasses the interpreter runs). `specs.load_specs(folder)` chains them for a whole
folder of products and raises one CompileError carrying every located diagnostic.

Addressing steps in expressions: `steps.<tag>` (tags are kebab-case: `steps.create-user.id`
and `steps["create-user"].id` are the same). Tags are unique in the whole workflow.
Inside a foreach body, `steps.<inner>` is this iteration's result; after the foreach,
`steps.<foreach-tag>` is a list with one `{tag: result}` map per item. Steps inside
parallel branches and switch cases are read as `steps.<tag>` after the parallel/switch;
a step that did not run (its case was not taken, its `if:` was false) is absent, so read it
with `default(steps.<tag>.x, fallback)` or test it with `exists(steps.<tag>)`. A tagged
parallel/switch is itself `{tag: result}` of the steps it ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ductwork.dsl.compiler import compile
    from ductwork.dsl.plan import ProductSpec, Specs, WorkflowPlan
    from ductwork.dsl.specs import check_specs, load_specs

__all__ = ["ProductSpec", "Specs", "WorkflowPlan", "check_specs", "compile", "load_specs"]

_LAZY = {
    "compile": "ductwork.dsl.compiler",
    "load_specs": "ductwork.dsl.specs",
    "check_specs": "ductwork.dsl.specs",
    "ProductSpec": "ductwork.dsl.plan",
    "Specs": "ductwork.dsl.plan",
    "WorkflowPlan": "ductwork.dsl.plan",
}


def __getattr__(name: str) -> Any:
    # Lazy, so importing ductwork.dsl.expr.expressions does not pull in jsonschema and the compiler.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ductwork.dsl' has no attribute {name!r}")
