"""JSON Schema validation of a loaded file; jsonschema's errors become located diagnostics."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ductwork.dsl import vocabulary
from ductwork.dsl.diagnostics import ERROR, Diagnostic, did_you_mean, known
from ductwork.dsl.loader import DataPath, Document
from ductwork.dsl.schema import authored, hints
from ductwork.dsl.schema import build as schemas
from ductwork.dsl.schema.places import describe

_TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "true or false", "null": "null",
}
_IDENT_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
_PATTERN_WORDS = {
    schemas.NAME_PATTERN: "is not a valid name: use letters, digits, '-' and '_', starting "
                          "with a letter",
    schemas.DURATION_PATTERN: 'is not a duration: use e.g. "250ms", "5s", "5m", "1h", "1d" or '
                              "a number of milliseconds",
    schemas.PYTHON_TARGET_PATTERN: "is not a python target: write 'package.module:function'",
    schemas.EXPRESSION_PATTERN: "is not a ${...} expression",
    schemas.TOPIC_PATTERN: "must be '<broker>:<topic>'",
    # state keys (set:) and foreach aliases (as:): build.py writes this pattern inline
    _IDENT_PATTERN: "is not an identifier: use letters, digits and '_', not starting with a digit",
}


def type_word(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def validator(name: str) -> Draft202012Validator:
    """The shipped schema, minus its "exactly one body" rule (a oneOf over ~35 alternatives
    that costs two thirds of the validation time); check() applies that rule itself."""
    schema = copy.deepcopy(schemas.core(name))
    for d in ("step", "rollback"):
        schema.get("$defs", {}).get(d, {}).pop("oneOf", None)
    _inline_refs(schema, schema.get("$defs", {}))
    return Draft202012Validator(schema)


def _inline_refs(schema: Any, defs: dict[str, Any]) -> None:
    """Put each bare `{"$ref": "#/$defs/x"}` to a definition without refs of its own in place:
    resolving a ref costs a third of the validation (names and expressions are everywhere).
    The errors are the same: one made inside a ref carries the definition as its schema."""
    done = -1
    while True:  # a definition whose refs were all put in place is a leaf in the next round
        leaves = {f"#/$defs/{k}": d for k, d in defs.items() if not _has_ref(d)}
        if len(leaves) == done:
            return
        done = len(leaves)
        todo = [schema]
        while todo:
            node = todo.pop()
            pairs = node.items() if isinstance(node, dict) else enumerate(node) \
                if isinstance(node, list) else ()
            for key, value in list(pairs):
                if isinstance(value, dict) and len(value) == 1 and value.get("$ref") in leaves:
                    node[key] = leaves[value["$ref"]]
                else:
                    todo.append(value)


def _has_ref(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "$ref" in schema or any(_has_ref(v) for v in schema.values())
    return isinstance(schema, list) and any(_has_ref(v) for v in schema)


@cache
def _body_keys(definition: str) -> tuple[str, ...]:
    return tuple(s["required"][0]
                 for s in schemas.core("workflow")["$defs"][definition]["oneOf"])


def _step_paths(data: Any) -> Iterable[tuple[DataPath, dict[str, Any], str]]:
    """(path, step, "step" | "rollback") of every step and rollback mapping in a workflow."""
    todo: list[tuple[DataPath, Any]] = [(("steps",), data.get("steps"))] \
        if isinstance(data, dict) else []
    while todo:
        path, steps = todo.pop()
        if not isinstance(steps, list):
            continue
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            at = (*path, i)
            yield at, step, "step"
            rollback = step.get("rollback")
            if isinstance(rollback, dict):
                yield (*at, "rollback"), rollback, "rollback"
            elif isinstance(rollback, list):  # a list of bodies run in order
                yield from (((*at, "rollback", r), body, "rollback")
                            for r, body in enumerate(rollback) if isinstance(body, dict))
            body = step.get("foreach")
            if isinstance(body, dict):
                todo.append(((*at, "foreach", "steps"), body.get("steps")))
            body = step.get("parallel")
            if isinstance(body, list):
                todo.extend(((*at, "parallel", b, "steps"), br.get("steps"))
                            for b, br in enumerate(body) if isinstance(br, dict))
            body = step.get("switch")
            if isinstance(body, dict):
                cases = body.get("cases")
                todo.extend(((*at, "switch", "cases", c, "steps"), case.get("steps"))
                            for c, case in enumerate(cases if isinstance(cases, list) else [])
                            if isinstance(case, dict))
                todo.append(((*at, "switch", "default"), body.get("default")))


def check(doc: Document, name: str) -> list[Diagnostic]:
    """Every schema problem of `doc` against the shipped schema `name`, located; the loader's
    own findings (`doc.problems`: duplicate keys, ambiguous booleans, ...) come first."""
    errors = list(validator(name).iter_errors(doc.data))
    nav = hints.Navigator(schemas.core(name))
    out: list[Diagnostic] = []
    for error in errors:
        for d in _translate(_Error(doc, error, nav)):
            if d not in out:
                out.append(d)
    if name == "workflow":
        # A misspelt body is an unknown key *and* a step without a body: say it once.
        unknown_in = {tuple(e.absolute_path) for e in errors
                      if e.validator == "additionalProperties"}
        for path, step, definition in _step_paths(doc.data):
            present = [k for k in _body_keys(definition) if k in step]
            if len(present) == 1 or (not present and path in unknown_in):
                continue
            out.extend(_bodies(doc, path, present, describe(path, doc.data)))
        for where, payload in authored.payload_schemas(doc.data):
            out.extend(authored.check(doc, where, payload))
    out.extend(_small_durations(doc, nav))
    out = _merge(doc.problems, out)
    out.sort(key=lambda d: (d.line, d.col))
    return out


def placement_hint(doc: Document, path: DataPath, key: str) -> str | None:
    """For the compiler: where the key at `path` + `key` of a workflow belongs, when the
    mapping holding it shows that (`timeout` next to `wait_for_signal:` goes inside it)."""
    nav = hints.Navigator(schemas.core("workflow"))
    found = hints.places(nav, doc.data, path, key)
    if not found or found[0].rank != hints.PRESENT:
        return None
    return hints.placement(nav, doc.data, path, key, describe(path, doc.data))


def _merge(problems: list[Diagnostic], found: list[Diagnostic]) -> list[Diagnostic]:
    """The loader's findings, plus the schema's at other spots. At a shared spot the loader's
    word is the sharper one ('yes' is ambiguous, rather than "must be true or false"), and an
    error if the schema's was one; but an unknown key has to go whatever its spelling."""
    unknown = {(d.line, d.col) for d in found if d.message.startswith("unknown key")}
    wrong = {(d.line, d.col) for d in found if d.is_error}
    kept = [d if d.is_error or (d.line, d.col) not in wrong else replace(d, severity=ERROR)
            for d in problems if (d.line, d.col) not in unknown]
    taken = {(d.line, d.col) for d in kept}
    return kept + [d for d in found if (d.line, d.col) not in taken]


def _small_durations(doc: Document, nav: hints.Navigator) -> Iterable[Diagnostic]:
    """A bare duration under 100 is milliseconds by the rules, and surely meant as seconds."""
    for path, span in doc.values.items():
        if span.style is not None or not path or not isinstance(path[-1], str):
            continue
        value = _value_at(doc.data, path)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 < value < _SUSPECT_MS:
            continue
        parent = nav.at(doc.data, path[:-1])
        props = parent.get("properties", {}) if isinstance(parent, dict) else {}
        if _is_duration(nav, props.get(path[-1])):
            yield _at(doc, path, f"'{path[-1]}: {value:g}' means {value:g} milliseconds",
                      f"bare numbers are milliseconds: write {path[-1]}: {value:g}s if you "
                      f"meant seconds, or {path[-1]}: {value:g}ms to keep milliseconds")


_SUSPECT_MS = 100  # the same line connectors draw for resource timeouts (connectors/util.py)


def _is_duration(nav: hints.Navigator, schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("$ref") == "#/$defs/duration" or schema == nav.resolve(_DURATION):
        return True
    return any(_is_duration(nav, c) for c in schema.get("anyOf") or ())


def _value_at(data: Any, path: DataPath) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _is_body_choice(subschemas: Any) -> bool:
    return isinstance(subschemas, list) and all(
        isinstance(s, dict) and set(s) == {"required"} for s in subschemas)


def _at(doc: Document, path: DataPath, message: str, hint: str | None = None, *,
        key: bool = False) -> Diagnostic:
    line, col = doc.locate(path, key=key)
    length = len(str(path[-1])) if key and path else doc.width(path)
    return Diagnostic(doc.path, line, col, message, hint, doc.source_line(line), length)


def _resolve(schema: Any) -> Any:
    if isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref.startswith("#/$defs/"):
            for root in (schemas.core("workflow"), schemas.core("product")):
                target = root["$defs"].get(ref.removeprefix("#/$defs/"))
                if target is not None:
                    return target
    return schema


# -- one jsonschema error -> located diagnostics, one handler per validator ---------------------


@dataclass(frozen=True)
class _Error:
    """A jsonschema error with what every handler needs to say it in the DSL's words."""

    doc: Document
    e: ValidationError
    nav: hints.Navigator

    @property
    def path(self) -> DataPath:
        return tuple(self.e.absolute_path)

    @property
    def what(self) -> str:
        return describe(self.path, self.doc.data)

    @property
    def schema(self) -> Any:
        return self.e.schema

    @property
    def value(self) -> Any:
        """The validator's argument: the allowed keys, the enum, the minimum, ..."""
        return self.e.validator_value

    @property
    def key(self) -> str | int | None:
        return self.path[-1] if self.path else None

    def at(self, message: str, hint: str | None = None, *, path: DataPath | None = None,
           key: bool = False) -> Diagnostic:
        return _at(self.doc, self.path if path is None else path, message, hint, key=key)


Handler = Callable[[_Error], Iterable[Diagnostic]]


def _translate(err: _Error) -> Iterable[Diagnostic]:
    if "propertyNames" in err.e.schema_path:
        return _property_name(err)
    handler = _HANDLERS.get(str(err.e.validator), _generic)
    return handler(err)


def _property_name(err: _Error) -> Iterable[Diagnostic]:
    name = str(err.e.instance)
    words = _PATTERN_WORDS.get(str(err.value), "is not allowed here")
    yield err.at(f"'{name}' {words}", hints.name_hint(name, ident=err.value == _IDENT_PATTERN),
                 path=(*err.path, name), key=True)


def _unknown_keys(err: _Error) -> Iterable[Diagnostic]:
    instance = err.e.instance
    if not isinstance(instance, dict):
        return
    allowed = list((err.schema.get("properties") or {}).keys())
    unknown = [k for k in instance if k not in allowed]
    # Keys that all belong in one required wrapper the author left out (`if` and `steps`
    # straight under `switch:`): one mistake, said once, at the first of them.
    wrapped: dict[str, list[str]] = {}
    for key in unknown:
        found = hints.places(err.nav, err.doc.data, err.path, key)
        if found and found[0].rank == hints.MISSING:
            wrapped.setdefault(found[0].prop, []).append(key)
    for key in unknown:
        group = next((g for g in wrapped.values() if key in g), [])
        if len(group) > 1 and key != group[0]:
            continue
        hint = _unknown_key_hint(err, key, allowed)
        if len(group) > 1:
            place = hints.places(err.nav, err.doc.data, err.path, key)[0]
            hint = place.say(None, None, err.what, keys=tuple(group))
        yield err.at(f"unknown key '{key}' in {err.what}", hint, path=(*err.path, key), key=True)


def _unknown_key_hint(err: _Error, key: str, allowed: list[str]) -> str:
    path, data = err.path, err.doc.data
    if _in_rollback(path) and key in vocabulary.BODIES:
        return "a rollback is one call: action.run, database.*, notification.*, ..., python or log"
    if key.startswith("-") and len(key) > 1:
        return f"put a space after '-' to start a list item: - {key[1:]}"
    step = "tag" in allowed
    # An alias (`when` for `if`) helps wherever the key it names is allowed.
    alias = vocabulary.ALIASES.get(key) or vocabulary.ALIASES.get(key.lower())
    if alias is not None and not step and not any(f"'{a}'" in alias for a in allowed):
        alias = None
    # `run` is the last part of `action.run`: a surer guess than a close spelling.
    part = [a for a in allowed if key.lower() in a.split(".")[1:]]
    return (hints.placement(err.nav, data, path, key, err.what)
            or alias
            or (f"did you mean '{part[0]}'?" if len(part) == 1 else None)
            or did_you_mean(key, allowed)
            or hints.placement(err.nav, data, path, key, err.what, weak=True)
            or ("a step has a tag, one body and modifiers; `ductwork schema workflow` lists "
                "every key" if step else f"known keys here: {known(allowed)}"))


def _missing_keys(err: _Error) -> Iterable[Diagnostic]:
    instance = err.e.instance
    if not isinstance(instance, dict):
        return
    props = err.schema.get("properties") or {}
    for k in err.value:
        if k in instance:
            continue
        # Keys written next to where `k` should be, that belong inside it, already say so;
        # so does `k` itself written one level up (`cases:` beside `switch:`).
        # A misspelling of `k` (`step:`, `env:`) is reported as an unknown key with the
        # right name: that one says how to fix it.
        if any(_belongs_inside(err, other, k) for other in instance if other not in props) \
                or _written_above(err, k) or any(
                    did_you_mean(str(other), [k]) for other in instance
                    if other not in props):
            continue
        yield err.at(f"{err.what} is missing required key '{k}'",
                     _missing_hint(err, k, props.get(k)))


def _written_above(err: _Error, key: str) -> bool:
    path = err.path
    if not path or not isinstance(path[-1], str):
        return False
    parent = _value_at(err.doc.data, path[:-1])
    schema = err.nav.at(err.doc.data, path[:-1])
    allowed = (schema.get("properties") or {}) if isinstance(schema, dict) else {}
    return isinstance(parent, dict) and key in parent and key not in allowed


def _env_names(data: Any) -> list[str]:
    """The environments a product file names: its `envs:` list, else those its resources
    configure (for the hint that adds the missing one)."""
    if not isinstance(data, dict):
        return []
    declared = data.get("envs")
    if isinstance(declared, list):
        return [e for e in declared if isinstance(e, str)]
    used: list[str] = []
    for section in vocabulary.SECTIONS:
        block = data.get(section)
        for resource in (block.values() if isinstance(block, dict) else ()):
            envs = resource.get("envs") if isinstance(resource, dict) else None
            used.extend(e for e in (envs if isinstance(envs, dict) else ()) if e not in used)
    return used


def _belongs_inside(err: _Error, key: str, prop: str) -> bool:
    found = hints.places(err.nav, err.doc.data, err.path, key)
    return bool(found) and found[0].prop == prop and found[0].how != "up"


def _missing_hint(err: _Error, key: str, schema: Any) -> str:
    value = hints.form(err.nav, schema, 1)
    names = _env_names(err.doc.data) if key == "envs" else []
    if names and value == "[<name>]":
        value = f"[{', '.join(names)}]"
    elif names and value.startswith("{<name>"):
        value = value.replace("<name>", names[0], 1)
    described = _resolve(schema).get("description") if isinstance(schema, dict) else None
    if described is None and isinstance(schema, dict):
        described = schema.get("description")
    return f"add {key}: {value}" + (f" ({described})" if described else "")


def _choice(err: _Error) -> Iterable[Diagnostic]:
    value, e = err.value, err.e
    if e.validator == "oneOf" and _is_body_choice(value):  # only with the unmodified schema
        present = [s["required"][0] for s in value
                   if isinstance(e.instance, dict) and s["required"][0] in e.instance]
        yield from _bodies(err.doc, err.path, present, err.what)
        return
    deeper = [c for c in e.context or () if c.relative_path]
    if deeper:
        depth = max(len(c.relative_path) for c in deeper)
        seen: set[str] = set()
        for c in deeper:
            if len(c.relative_path) == depth:
                for d in _translate(_Error(err.doc, c, err.nav)):
                    if d.short() not in seen:
                        seen.add(d.short())
                        yield d
        return
    if _is_duration(err.nav, err.schema):
        yield err.at(f"{err.what} must be a duration, not {short(e.instance)}",
                     hints.duration_hint(err.key, e.instance))
        return
    title = _resolve(err.schema).get("title") if isinstance(err.schema, dict) else None
    expected = title or " or ".join(_expected(s) for s in value)
    yield err.at(f"{err.what} must be {expected}, not {short(e.instance)}", _choice_hint(err))


_DURATION = {"$ref": "#/$defs/duration"}


def _choice_hint(err: _Error) -> str | None:
    """For "a list or a ${...} expression" and the like: the form the value was meant in."""
    instance = err.e.instance
    kinds = [_resolve(b).get("type") for b in err.value if isinstance(b, dict)]
    kinds = [k for k in kinds if isinstance(k, str)]
    if "object" in kinds and not isinstance(instance, dict):
        return hints.type_hint(err.nav, err.schema, err.key, instance, ["object"])
    if "array" in kinds and not isinstance(instance, list):
        return hints.type_hint(err.nav, err.schema, err.key, instance, ["array"])
    if isinstance(instance, str) and "${" not in instance:
        label = f"{err.key}: " if isinstance(err.key, str) else ""
        return f'write it as one expression: {label}"${{{instance}}}"'
    return None


def _wrong_type(err: _Error) -> Iterable[Diagnostic]:
    if err.e.instance is None and _filled_by_siblings(err):
        return
    value = err.value
    types = [str(t) for t in (value if isinstance(value, list) else [value])]
    expected = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    hint = hints.type_hint(err.nav, err.schema, err.key, err.e.instance, types)
    described = err.schema.get("description") if isinstance(err.schema, dict) else None
    if hint and described and len(hint) + len(described) <= 120:
        hint = f"{hint} ({described})"
    yield err.at(f"{err.what} must be {expected}, not {type_word(err.e.instance)}", hint)


def _filled_by_siblings(err: _Error) -> bool:
    """`log:` left empty, its keys written beside it: the unknown keys say it better."""
    path = err.path
    if not path or not isinstance(path[-1], str):
        return False
    parent = _value_at(err.doc.data, path[:-1])
    schema = err.nav.at(err.doc.data, path[:-1])
    allowed = (schema.get("properties") or {}) if isinstance(schema, dict) else {}
    if not isinstance(parent, dict):
        return False
    for key in parent:
        if key in allowed:
            continue
        found = hints.places(err.nav, err.doc.data, path[:-1], key)
        if found and found[0].prop == path[-1] and found[0].how != "up":
            return True
    return False


def _not_in_enum(err: _Error) -> Iterable[Diagnostic]:
    path, e = err.path, err.e
    if path and path[-1] == "provider" and _registered(path, e.instance):
        return  # a provider the application registered itself (register_provider)
    choices = [str(c) for c in err.value]
    yield err.at(f"{err.what} must be one of {', '.join(choices)}; got {short(e.instance)}",
                 hints.enum_hint(err.key, e.instance, choices))


def _bad_pattern(err: _Error) -> Iterable[Diagnostic]:
    pattern, instance = str(err.value), err.e.instance
    words = _PATTERN_WORDS.get(pattern, f"does not match {pattern}")
    hint: str | None = None
    if pattern == schemas.NAME_PATTERN:
        hint = hints.name_hint(instance)
    elif pattern == _IDENT_PATTERN:
        hint = hints.name_hint(instance, ident=True)
    elif pattern == schemas.DURATION_PATTERN:
        hint = hints.duration_hint(err.key, instance)
    elif pattern == schemas.PYTHON_TARGET_PATTERN:
        hint = hints.target_hint(instance)
    elif pattern == schemas.EXPRESSION_PATTERN:
        hint = f'write it as one expression: "${{{instance}}}"'
    elif pattern == schemas.TOPIC_PATTERN:
        hint = f"name the broker too: '<broker>:{instance}' (the broker as named in " \
               "product.yaml)"
    yield err.at(f"{short(instance)} {words}", hint)


def _empty(err: _Error) -> Iterable[Diagnostic]:
    label = f"{err.key}" if isinstance(err.key, str) else "it"
    yield err.at(f"{err.what} must not be empty",
                 f"give at least one entry, or leave '{label}' out if it is optional")


def _repeated(err: _Error) -> Iterable[Diagnostic]:
    instance = err.e.instance
    if not isinstance(instance, list):
        return
    seen_items: list[Any] = []
    for i, item in enumerate(instance):
        if item in seen_items:
            yield err.at(f"{short(item)} is listed twice in {err.what}", "remove the second one",
                         path=(*err.path, i))
        seen_items.append(item)


def _too_small(err: _Error) -> Iterable[Diagnostic]:
    yield err.at(f"{err.what} must be at least {err.value}, not "
                 f"{short(err.e.instance)}",
                 hints.minimum_hint(err.key, err.value, err.e.instance))


def _generic(err: _Error) -> Iterable[Diagnostic]:
    yield err.at(f"{err.what}: {err.e.message}")


_HANDLERS: dict[str, Handler] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "oneOf": _choice,
    "anyOf": _choice,
    "type": _wrong_type,
    "enum": _not_in_enum,
    "pattern": _bad_pattern,
    "minItems": _empty,
    "minProperties": _empty,
    "uniqueItems": _repeated,
    "minimum": _too_small,
}


def _registered(path: DataPath, provider: Any) -> bool:
    from ductwork.connectors.base import PROVIDERS

    kind = vocabulary.SECTIONS.get(str(path[0]))
    # Only a name can be registered; a list or mapping here is reported as not in the enum.
    return kind is not None and isinstance(provider, str) and (kind, provider) in PROVIDERS


def _expected(schema: Any) -> str:
    schema = _resolve(schema)
    if not isinstance(schema, dict):
        return "something else"
    if "title" in schema:
        return str(schema["title"])
    if "type" in schema:
        t = schema["type"]
        return " or ".join(_TYPE_WORDS.get(str(x), str(x))
                           for x in (t if isinstance(t, list) else [t]))
    return "something else"


# Keys that modify a step's body; a list item holding only these lost its body.
_MODIFIERS = frozenset({"rollback", "allow_fail", "retries", "retry_delay", "timeout",
                        "critical", "catch"})


def _in_rollback(path: DataPath) -> bool:
    """Is `path` a rollback body (`rollback:` itself, or an item of a rollback list)?"""
    return bool(path) and (path[-1] == "rollback"
                           or (isinstance(path[-1], int) and path[-2:-1] == ("rollback",)))


def _bodies(doc: Document, path: DataPath, present: list[str], what: str
            ) -> Iterable[Diagnostic]:
    rollback = _in_rollback(path)
    if not present:
        if rollback:
            hint = "a rollback is one call: action.run, database.*, notification.*, ..., " \
                   "python or log"
        else:
            hint = "add one body such as action.run, database.insert, sleep, foreach or " \
                   "python (`ductwork schema workflow` lists them all)"
            step = _value_at(doc.data, path)
            mods = [k for k in step if k in _MODIFIERS] if isinstance(step, dict) else []
            if mods and set(step) <= {*_MODIFIERS, "tag"} and isinstance(path[-1], int) \
                    and path[-1] > 0:
                # `- rollback:` written as a list item of its own, under the step it undoes
                hint = f"'{mods[0]}' belongs to the step above: indent it under that step " \
                       f"(at the column of its 'tag', without a '-' of its own)"
        yield _at(doc, path, f"no body in {what}", hint)
        return
    for extra in present[1:]:
        yield _at(doc, (*path, extra), f"{what} has two bodies, '{present[0]}' and '{extra}'",
                  "a step does one thing: split it into two steps", key=True)
