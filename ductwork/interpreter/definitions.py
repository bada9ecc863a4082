"""The workflow definitions a process knows: define() checks, lookup, env and input checks."""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

from ductwork.errors import ConfigurationError, DuplicateWorkflowError, WorkflowNotFoundError
from ductwork.interpreter.result import Handler, WorkflowDef
from ductwork.util import schema_defaults
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean
from ductwork.util.text import check_text, shown, valid_unicode

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
        # The fillers of the workflows whose input schema declares a default somewhere: only
        # their inputs are walked (most schemas have none, and every start pays the walk).
        self._fillers: dict[tuple[str, str], schema_defaults.Filler] = {}
        # The input schema's validator, built on the first input checked (building one takes
        # ~40 us, as long as checking a small input): (the schema it was built for, it).
        self._validators: dict[tuple[str, str], tuple[Mapping[str, Any], Any]] = {}
        # The fillers of the signal payload schemas that declare a default, by (product, tag,
        # signal name).
        self._signal_fillers: dict[tuple[str, str, str], schema_defaults.Filler] = {}

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
        input_schema: Mapping[str, Any] | type | None = None,
        source: str | None = None,
    ) -> WorkflowDef:
        for what, val in (("product", product), ("tag", tag)):
            check_text(val, what, "define()")
            if not val.strip():
                raise ConfigurationError(f"define(): {what} must be a non-empty string, "
                                         f"got {val!r}")
        where = f"define({product}/{tag})"
        signals, queries, envs = _docs_forms(where, signals, queries, envs)
        model = input_schema if _is_model(input_schema) else None
        schema: Any = (input_schema if model is None
                       else _model_schema(model, f"{where}: input_schema"))
        signal_models: dict[str, Any] = {}
        if isinstance(signals, Mapping):
            signal_models = {n: m for n, m in signals.items() if _is_model(m)}
            signals = {n: (_model_schema(m, f"{where}: the payload of signal {n!r}")
                           if n in signal_models else m) for n, m in signals.items()}
        _check_define(where, name, description, options, signals, queries, envs, schema)
        if not callable(handler):
            raise ConfigurationError(
                f"define({product}/{tag}): handler must be a function like "
                f"`async def handler(ctx): ...`, got {type(handler).__name__}")
        _check_handler(f"define({product}/{tag})", handler)
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
                         queries=dict(queries or {}),
                         envs=None if envs is None else list(envs),
                         input_schema=dict(schema) if schema else None,
                         source=source or "python", input_model=model,
                         signal_models=signal_models)
        self._defs[key] = wf
        self._fillers.pop(key, None)
        self._validators.pop(key, None)
        if model is None and _has_defaults(wf.input_schema):
            self._fillers[key] = schema_defaults.Filler(wf.input_schema)
        for name, schema in sig.items():
            self._signal_fillers.pop((product, tag, name), None)
            if name not in signal_models and _has_defaults(schema):
                self._signal_fillers[(product, tag, name)] = schema_defaults.Filler(schema)
        return wf

    def get(self, product: str, tag: str) -> WorkflowDef:
        """The definition, or WorkflowNotFoundError (the original product's wording)."""
        if not isinstance(product, str) or not isinstance(tag, str):
            raise ConfigurationError(f"product and tag must be strings, got {shown(product)} "
                                     f"and {shown(tag)}")
        wf = self._defs.get((product, tag))
        if wf is None:
            names = [f"{p}/{t}" for p, t in self._defs]
            raise WorkflowNotFoundError(
                product, tag,
                (f"the product comes first: '{tag}' is a product and '{product}' its workflow, "
                 f"{tag}/{product}" if (tag, product) in self._defs else "")
                or did_you_mean(f"{product}/{tag}", names) or
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
        if not isinstance(env, str) or not env or valid_unicode(env) is not None:
            raise ConfigurationError("execute(): env must be a non-empty string such as 'dev'")
        allowed = wf.envs if wf.envs is not None else self._product_envs(wf.product)
        if allowed is not None and env not in allowed:
            raise ConfigurationError(
                f"Workflow {wf.product}/{wf.tag} is not active in env '{env}' (envs: "
                f"{', '.join(allowed) or 'none active'})"
                + did_you_mean(env, allowed, prefix="; "))

    def validate_input(self, wf: WorkflowDef, data: Any) -> Any:
        """The input a run of `wf` starts with: `data` with the schema's defaults filled in
        (the one to store, so a replay reads the same), checked against the schema."""
        schema = wf.input_schema
        if schema is None:
            return data
        if wf.input_model is not None:
            return _model_input(wf.input_model, data, f"execute({wf.product}/{wf.tag}): the "
                                "input does not match the workflow's input model")
        filler = self._fillers.get((wf.product, wf.tag))
        if filler is not None:
            try:
                data = filler.fill(data)
            except ConfigurationError as e:
                raise ConfigurationError(f"execute({wf.product}/{wf.tag}): {e}") from None
        errors = sorted(self._validator(wf, schema).iter_errors(data),
                        key=lambda e: list(e.path))
        if errors:
            lines = [f"  - {'/'.join(map(str, e.path)) or '(input)'}: {e.message}"
                     for e in errors[:10]]
            raise ConfigurationError(
                f"execute({wf.product}/{wf.tag}): the input does not match the workflow's input "
                "schema:\n" + "\n".join(lines))
        return data

    def _validator(self, wf: WorkflowDef, schema: Mapping[str, Any]) -> Any:
        """The validator of wf's input schema, built once per definition."""
        key = (wf.product, wf.tag)
        cached = self._validators.get(key)
        if cached is None or cached[0] is not schema:
            import jsonschema

            cached = (schema, jsonschema.Draft202012Validator(schema))
            self._validators[key] = cached
        return cached[1]

    def validate_signal(self, wf: WorkflowDef, signal: str, payload: Any) -> Any:
        """The payload a signal to a run of `wf` delivers: `payload` with the defaults of the
        signal's declared schema filled in (the one to store: the run reads it), checked
        against that schema. A signal declared without a schema takes any payload."""
        schema = wf.signals.get(signal)
        if not isinstance(schema, Mapping):
            return payload
        model = wf.signal_models.get(signal)
        if model is not None:
            return _model_input(model, payload, f"signal {signal!r} payload does not match "
                                "its declared model")
        filler = self._signal_fillers.get((wf.product, wf.tag, signal))
        if filler is not None:
            try:
                payload = filler.fill(payload)
            except ConfigurationError as e:
                raise ConfigurationError(f"signal {signal!r}: {e}") from None
        import jsonschema

        err = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schema).iter_errors(payload))
        if err is not None:
            raise ConfigurationError(
                f"signal {signal!r} payload does not match its declared shape: "
                f"{'/'.join(map(str, err.path)) or '(payload)'}: {err.message}")
        return payload

    def _product_envs(self, product: str) -> list[str] | None:
        envs = getattr(self._products.get(product), "envs", None)
        return list(envs) if envs else None


def _is_model(value: Any) -> bool:
    """A pydantic model class (duck-typed: pydantic is only imported by who uses it)."""
    return isinstance(value, type) and callable(getattr(value, "model_validate", None)) \
        and callable(getattr(value, "model_json_schema", None))


def _model_schema(model: Any, what: str) -> dict[str, Any]:
    try:
        schema = model.model_json_schema()
    except Exception as e:  # pydantic's own errors for a model it cannot describe
        raise ConfigurationError(f"{what}: the model {model.__name__} has no JSON Schema "
                                 f"({type(e).__name__}: {e})") from None
    return dict(schema)


def _model_input(model: Any, data: Any, refused: str) -> Any:
    """What a run is given (its input, a signal's payload), checked and converted by the model
    (its defaults filled in, "5" read as 5 where the field is an int), as JSON: the value to
    store, so that the run and its replays read the same."""
    try:
        return model.model_validate({} if data is None else data).model_dump(mode="json")
    except Exception as e:
        errors = getattr(e, "errors", None)
        if not callable(errors):
            raise ConfigurationError(f"{refused} {model.__name__}: {e}") from None
        lines = [f"  - {'/'.join(map(str, err.get('loc', ()))) or '(value)'}: "
                 f"{err.get('msg', '?')}" for err in errors()[:10]]
        raise ConfigurationError(f"{refused} {model.__name__}:\n" + "\n".join(lines)) from None


# The type names of the product docs' signal declarations ({input: {field: 'string'}}).
_SIGNAL_TYPES = ("string", "number", "integer", "boolean", "object", "array")


def _docs_forms(where: str, signals: Any, queries: Any, envs: Any) -> tuple[Any, Any, Any]:
    """The product docs' shapes, as define() keeps them: a signal declared as {'input':
    {field: 'string'}} becomes the JSON Schema of its payload, a query {'handler': fn} its
    function, and envs [{'slug': 'dev', 'active': True}] the names of the active ones (an
    empty list: the workflow runs in no env)."""
    if isinstance(signals, Mapping):
        signals = {n: _signal_schema(where, n, d) for n, d in signals.items()}
    if isinstance(queries, Mapping):
        queries = {n: (q["handler"] if isinstance(q, Mapping) and set(q) == {"handler"} else q)
                   for n, q in queries.items()}
    if isinstance(envs, list | tuple) and any(isinstance(e, Mapping) for e in envs):
        active: list[Any] = []
        for e in envs:
            if not isinstance(e, Mapping):
                active.append(e)
                continue
            unknown = sorted(set(e) - {"slug", "active"})
            flag = e.get("active", True)
            if unknown or not isinstance(e.get("slug"), str) or not isinstance(flag, bool):
                raise ConfigurationError(
                    f"{where}: an env is a name such as 'dev', or {{'slug': 'dev', 'active': "
                    f"True}}; got {shown(e)}")
            if flag:
                active.append(e["slug"])
        return signals, queries, active
    if isinstance(envs, list | tuple) and not envs:
        envs = None  # no list: the product's envs
    return signals, queries, envs


def _signal_schema(where: str, name: Any, declared: Any) -> Any:
    if not (isinstance(declared, Mapping) and set(declared) == {"input"}
            and isinstance(declared["input"], Mapping)):
        return declared  # a JSON Schema (or a model), checked as one
    props: dict[str, Any] = {}
    for field_name, kind in declared["input"].items():
        if kind not in _SIGNAL_TYPES:
            raise ConfigurationError(
                f"{where}: signal {name!r}: field {field_name!r} has type {kind!r}; "
                f"write one of {', '.join(_SIGNAL_TYPES)}"
                + did_you_mean(str(kind), _SIGNAL_TYPES, prefix="; "))
        props[str(field_name)] = {"type": kind}
    return {"type": "object", "properties": props}


def _check_define(where: str, name: Any, description: Any, options: Any, signals: Any,
                  queries: Any, envs: Any, input_schema: Any) -> None:
    """The shapes define() accepts; each wrong one is a ConfigurationError naming it."""
    for what, val in (("name", name), ("description", description)):
        if val is not None and not isinstance(val, str):
            raise ConfigurationError(f"{where}: {what} must be a string, got {shown(val)}")
    if options is not None and not isinstance(options, Mapping):
        raise ConfigurationError(f"{where}: options must be a mapping such as "
                                 f"{{'timeout': '5m'}}, got {shown(options)}")
    opts = options or {}
    for key in ("retries", "priority"):
        val = opts.get(key)
        if val is not None and (isinstance(val, bool) or not isinstance(val, int)):
            raise ConfigurationError(f"{where}: option {key} must be a whole number, got "
                                     f"{shown(val)}")
    if opts.get("queue") is not None:
        check_text(opts["queue"], "option queue", where)
    if signals is not None:
        names = (list(signals) if isinstance(signals, Mapping | list | tuple | set | frozenset)
                 else None)
        if names is None or not all(isinstance(n, str) and n for n in names):
            raise ConfigurationError(
                f"{where}: signals must be a list of names or a mapping of name -> JSON Schema "
                f"of the payload, got {shown(signals)}")
        for n in names:
            check_text(n, "signal name", where)
        if isinstance(signals, Mapping):
            for n, schema in signals.items():
                if schema is not None:
                    what = f"the payload schema of signal {n!r}"
                    _check_schema(schema, what, where)
                    _check_defaults(schema, where, what, "a signal that leaves the property "
                                    "out would fail the payload check")
    if queries is not None and (not isinstance(queries, Mapping) or not all(
            isinstance(k, str) and k and callable(v) for k, v in queries.items())):
        raise ConfigurationError(f"{where}: queries must map names to functions "
                                 f"(lambda qctx: ...), got {shown(queries)}")
    if envs is not None and (not isinstance(envs, list | tuple) or not all(
            isinstance(e, str) and e for e in envs)):
        raise ConfigurationError(f"{where}: envs must be a list of environment names such as "
                                 f"['dev', 'prd'], got {shown(envs)}")
    if input_schema is not None:
        if not isinstance(input_schema, Mapping):
            raise ConfigurationError(f"{where}: input_schema must be a JSON Schema (a mapping "
                                     "such as {'type': 'object'}) or a pydantic model class, "
                                     f"got {shown(input_schema)}")
        _check_schema(input_schema, "input_schema", where)
        _check_defaults(input_schema, where)


def _has_defaults(schema: Any) -> bool:
    return isinstance(schema, Mapping) and next(schema_defaults.defaults(schema),
                                                None) is not None


def _check_schema(schema: Any, what: str, where: str) -> None:
    if not isinstance(schema, Mapping):
        raise ConfigurationError(f"{where}: {what} must be a JSON Schema (a mapping such as "
                                 f"{{'type': 'object'}}), got {shown(schema)}")
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ConfigurationError(f"{where}: {what} is not a valid JSON Schema: "
                                 f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}"
                                 ) from None
    except (RecursionError, TypeError, ValueError) as e:
        raise ConfigurationError(f"{where}: {what} is not a valid JSON Schema ({e})") from None


def _check_defaults(schema: Mapping[str, Any], where: str, what: str = "input_schema",
                    why: str = "a run that leaves the property out would fail the input "
                               "check") -> None:
    """Each default must pass its own schema (filled in turn): a run (or a signal) that leaves
    the property out would otherwise fail the input (payload) check, whatever its caller did."""
    import jsonschema
    import referencing.exceptions

    root = jsonschema.Draft202012Validator(schema)
    for path, sub in schema_defaults.defaults(schema):
        at = "/".join(map(str, (*path, "default")))
        try:
            value = schema_defaults.fill(sub, sub["default"], root=schema)
            errors = [e for e in root.evolve(schema=sub).iter_errors(value)
                      if schema_defaults.written(sub["default"], e.absolute_path)]
        except (ConfigurationError, referencing.exceptions.Unresolvable) as e:
            raise ConfigurationError(f"{where}: {what} {at}: {e}") from None
        if errors:
            first = errors[0]
            inside = "/".join(map(str, first.path))
            raise ConfigurationError(
                f"{where}: {what} {at} {reprlib.repr(sub['default'])} does not match its "
                f"own schema: {inside + ': ' if inside else ''}{first.message}; fix the default or "
                f"the schema ({why})")


def _check_handler(where: str, handler: Callable[..., Any]) -> None:
    """A handler is called with one argument, ctx: one that cannot take it would fail every
    run with a TypeError from inside the engine."""
    try:
        sig = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to tell
    try:
        sig.bind(None)
    except TypeError:
        raise ConfigurationError(
            f"{where}: the handler must take one argument, ctx (`async def handler(ctx): "
            f"...`), not {getattr(handler, '__name__', 'handler')}({', '.join(sig.parameters)}); "
            "read the input as ctx.input") from None
