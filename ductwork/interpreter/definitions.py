"""The workflow definitions a process knows: define() checks, lookup, env and input checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ductwork.errors import ConfigurationError, DuplicateWorkflowError, WorkflowNotFoundError
from ductwork.interpreter.result import Handler, WorkflowDef
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean

ROLLBACK_STRATEGIES = ("reverse_all", "critical_only", "to_checkpoint", "none")
_OPTION_KEYS = frozenset({"timeout", "rollback_strategy", "retries", "queue", "priority"})


class Definitions:
    """Workflows by (product, tag). The engine looks up the handler of every run it drives
    here; dw.workflows.define() adds to it."""

    def __init__(self, products: Mapping[str, Any]) -> None:
        # Compiled product specs by name (filled by load_specs): a workflow without its own
        # `envs` is active in its product's environments.
        self._products = products
        self._defs: dict[tuple[str, str], WorkflowDef] = {}

    def define(
        self,
        *,
        product: str,
        tag: str,
        handler: Handler,
        name: str | None = None,
        description: str | None = None,
        options: Mapping[str, Any] | None = None,
        signals: Any = None,
        queries: Mapping[str, Callable[[Any], Any]] | None = None,
        envs: list[str] | None = None,
        input_schema: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> WorkflowDef:
        for what, val in (("product", product), ("tag", tag)):
            if not isinstance(val, str) or not val.strip():
                raise ConfigurationError(f"define(): {what} must be a non-empty string, "
                                         f"got {val!r}")
        if not callable(handler):
            raise ConfigurationError(
                f"define({product}/{tag}): handler must be a function like "
                f"`async def handler(ctx): ...`, got {type(handler).__name__}")
        key = (product, tag)
        if key in self._defs:
            prev = self._defs[key].source or "python"
            raise DuplicateWorkflowError(
                f"Workflow {product}/{tag} is already defined (by {prev}); give this one "
                "another tag, or remove the first definition")
        opts = dict(options or {})
        unknown = set(opts) - _OPTION_KEYS
        if unknown:
            raise ConfigurationError(
                f"define({product}/{tag}): unknown option(s) {sorted(unknown)}; known: "
                f"{sorted(_OPTION_KEYS)}")
        strategy = opts.get("rollback_strategy", "reverse_all")
        if strategy not in ROLLBACK_STRATEGIES:
            raise ConfigurationError(
                f"define({product}/{tag}): rollback_strategy {strategy!r} is not one of "
                f"{', '.join(ROLLBACK_STRATEGIES)}"
                + did_you_mean(str(strategy), ROLLBACK_STRATEGIES, prefix="; "))
        if opts.get("timeout") is not None:
            opts["timeout"] = to_ms(opts["timeout"], f"define({product}/{tag}) timeout")
        sig: dict[str, Any]
        if signals is None:
            sig = {}
        elif isinstance(signals, Mapping):
            sig = dict(signals)
        else:
            sig = {str(s): None for s in signals}
        wf = WorkflowDef(product=product, tag=tag, handler=handler, name=name,
                         description=description, options=opts, signals=sig,
                         queries=dict(queries or {}), envs=list(envs) if envs else None,
                         input_schema=dict(input_schema) if input_schema else None,
                         source=source or "python")
        self._defs[key] = wf
        return wf

    def get(self, product: str, tag: str) -> WorkflowDef:
        """The definition, or WorkflowNotFoundError (the original product's wording)."""
        wf = self._defs.get((product, tag))
        if wf is None:
            names = [f"{p}/{t}" for p, t in self._defs]
            raise WorkflowNotFoundError(
                product, tag,
                did_you_mean(f"{product}/{tag}", names) or
                "define it with dw.workflows.define() or put its YAML under specs/ before "
                "executing")
        return wf

    def find(self, product: str, tag: str) -> WorkflowDef | None:
        return self._defs.get((product, tag))

    def knows(self, product: str, tag: str) -> bool:
        return (product, tag) in self._defs

    def all(self) -> list[WorkflowDef]:
        return list(self._defs.values())

    def check_env(self, wf: WorkflowDef, env: str) -> None:
        if not isinstance(env, str) or not env:
            raise ConfigurationError("execute(): env must be a non-empty string such as 'dev'")
        allowed = wf.envs or self._product_envs(wf.product)
        if allowed and env not in allowed:
            raise ConfigurationError(
                f"Workflow {wf.product}/{wf.tag} is not active in env '{env}' (envs: "
                f"{', '.join(allowed)})" + did_you_mean(env, allowed, prefix="; "))

    def validate_input(self, wf: WorkflowDef, data: Any) -> None:
        if wf.input_schema is None:
            return
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(wf.input_schema).iter_errors(data),
                        key=lambda e: list(e.path))
        if errors:
            lines = [f"  - {'/'.join(map(str, e.path)) or '(input)'}: {e.message}"
                     for e in errors[:10]]
            raise ConfigurationError(
                f"execute({wf.product}/{wf.tag}): the input does not match the workflow's input "
                "schema:\n" + "\n".join(lines))

    def _product_envs(self, product: str) -> list[str] | None:
        envs = getattr(self._products.get(product), "envs", None)
        return list(envs) if envs else None
