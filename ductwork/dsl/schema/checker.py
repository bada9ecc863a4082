"""JSON Schema validation of a loaded file; jsonschema's errors become located diagnostics."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ductwork.dsl import vocabulary
from ductwork.dsl.diagnostics import Diagnostic, did_you_mean
from ductwork.dsl.loader import DataPath, Document
from ductwork.dsl.schema import build as schemas

_TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "true or false", "null": "null",
}
_PATTERN_WORDS = {
    schemas.NAME_PATTERN: "is not a valid name: use letters, digits, '-' and '_', starting "
                          "with a letter",
    schemas.DURATION_PATTERN: 'is not a duration: use e.g. "250ms", "5s", "5m", "1h", "1d" or '
                              "a number of milliseconds",
    schemas.PYTHON_TARGET_PATTERN: "is not a python target: write 'package.module:function'",
    schemas.EXPRESSION_PATTERN: "is not a ${...} expression",
    schemas.TOPIC_PATTERN: "must be '<broker>:<topic>'",
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
    schema = copy.deepcopy(schemas.schema(name))
    for d in ("step", "rollback"):
        schema.get("$defs", {}).get(d, {}).pop("oneOf", None)
    return Draft202012Validator(schema)


@cache
def _body_keys(definition: str) -> tuple[str, ...]:
    return tuple(s["required"][0]
                 for s in schemas.schema("workflow")["$defs"][definition]["oneOf"])


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
            if isinstance(step.get("rollback"), dict):
                yield (*at, "rollback"), step["rollback"], "rollback"
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


def describe(path: DataPath, data: Any) -> str:
    """A person's name for the thing at `path`: "step 'charge'", "database 'users-db'", ..."""
    node: Any = data
    label = "the file"
    for i, part in enumerate(path):
        parent: Any = node
        key: Any = part
        node = parent[key] if isinstance(parent, dict | list) and _has(parent, part) else None
        prev = path[i - 1] if i else None
        if isinstance(part, int) and prev in ("steps", "default") and isinstance(node, dict):
            tag = node.get("tag")
            label = f"step '{tag}'" if isinstance(tag, str) else f"step #{part + 1}"
        elif isinstance(part, int) and prev == "parallel":
            label = f"branch #{part + 1} of parallel"
        elif isinstance(part, int) and prev == "cases":
            label = f"case #{part + 1} of switch"
        elif part == "rollback":
            label = f"rollback of {label}"
        elif isinstance(part, str) and part in vocabulary.BODIES:
            label = f"'{part}'"
        elif prev in vocabulary.SECTIONS and isinstance(part, str):
            label = f"{vocabulary.SECTIONS[str(prev)]} '{part}'"
        elif isinstance(part, str) and i == 0 and part == "options":
            label = "options"
        elif prev == "envs" and isinstance(part, str):
            label = f"{label} config for env '{part}'"
        elif prev == "events" and isinstance(part, str):
            label = f"event '{part}'"
        elif isinstance(part, str):
            label = f"'{part}'"
    return label


def _has(parent: Any, part: Any) -> bool:
    if isinstance(parent, dict):
        return part in parent
    return isinstance(part, int) and 0 <= part < len(parent)


def check(doc: Document, name: str) -> list[Diagnostic]:
    """Every schema problem of `doc` against the shipped schema `name`, located."""
    errors = list(validator(name).iter_errors(doc.data))
    out: list[Diagnostic] = []
    for error in errors:
        for d in _translate(doc, error):
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
    out.sort(key=lambda d: (d.line, d.col))
    return out


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
            for root in (schemas.schema("workflow"), schemas.schema("product")):
                target = root["$defs"].get(ref.removeprefix("#/$defs/"))
                if target is not None:
                    return target
    return schema


def _translate(doc: Document, e: ValidationError) -> Iterable[Diagnostic]:
    path: DataPath = tuple(e.absolute_path)
    what = describe(path, doc.data)
    v = e.validator
    value: Any = e.validator_value
    schema: Any = e.schema
    if "propertyNames" in e.schema_path:
        key_path = (*path, str(e.instance))
        words = _PATTERN_WORDS.get(str(value), "is not allowed here")
        yield _at(doc, key_path, f"'{e.instance}' {words}", key=True)
        return
    if v == "additionalProperties" and isinstance(e.instance, dict):
        allowed = list((schema.get("properties") or {}).keys())
        for key in e.instance:
            if key in allowed:
                continue
            hint = (vocabulary.ALIASES.get(key) if "tag" in allowed else None) \
                or did_you_mean(key, allowed)
            if path and path[-1] == "rollback" and key in vocabulary.BODIES:
                hint = "a rollback is one call: action.run, database.*, notification.*, ..., " \
                       "python or log"
            yield _at(doc, (*path, key), f"unknown key '{key}' in {what}", hint, key=True)
        return
    if v == "required":
        missing = [k for k in value if isinstance(e.instance, dict)
                   and k not in e.instance]
        for k in missing:
            yield _at(doc, path, f"{what} is missing required key '{k}'")
        return
    if v == "oneOf" and _is_body_choice(value):  # only with the unmodified shipped schema
        present = [s["required"][0] for s in value
                   if isinstance(e.instance, dict) and s["required"][0] in e.instance]
        yield from _bodies(doc, path, present, what)
        return
    if v in ("anyOf", "oneOf"):
        deeper = [c for c in e.context or () if c.relative_path]
        if deeper:
            depth = max(len(c.relative_path) for c in deeper)
            seen: set[str] = set()
            for c in deeper:
                if len(c.relative_path) == depth:
                    for d in _translate(doc, c):
                        if d.short() not in seen:
                            seen.add(d.short())
                            yield d
            return
        title = _resolve(schema).get("title") if isinstance(schema, dict) else None
        expected = title or " or ".join(_expected(s) for s in value)
        yield _at(doc, path, f"{what} must be {expected}, not {short(e.instance)}")
        return
    if v == "type":
        types = value if isinstance(value, list) else [value]
        expected = " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in types)
        yield _at(doc, path, f"{what} must be {expected}, not {type_word(e.instance)}")
        return
    if v == "enum" and path and path[-1] == "provider" and _registered(path, e.instance):
        return  # a provider the application registered itself (register_provider)
    if v == "enum":
        choices = [str(c) for c in value]
        yield _at(doc, path, f"{what} must be one of {', '.join(choices)}; got {short(e.instance)}",
                  did_you_mean(e.instance, choices))
        return
    if v == "pattern":
        words = _PATTERN_WORDS.get(str(value), f"does not match {value}")
        yield _at(doc, path, f"{short(e.instance)} {words}")
        return
    if v in ("minItems", "minProperties"):
        yield _at(doc, path, f"{what} must not be empty")
        return
    if v == "uniqueItems" and isinstance(e.instance, list):
        seen_items: list[Any] = []
        for i, item in enumerate(e.instance):
            if item in seen_items:
                yield _at(doc, (*path, i), f"{short(item)} is listed twice in {what}")
            seen_items.append(item)
        return
    if v == "minimum":
        yield _at(doc, path,
                  f"{what} must be at least {value}, not {short(e.instance)}")
        return
    yield _at(doc, path, f"{what}: {e.message}")


def _registered(path: DataPath, provider: Any) -> bool:
    from ductwork.connectors.base import PROVIDERS

    kind = vocabulary.SECTIONS.get(str(path[0]))
    return kind is not None and (kind, provider) in PROVIDERS


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


def _bodies(doc: Document, path: DataPath, present: list[str], what: str
            ) -> Iterable[Diagnostic]:
    rollback = bool(path) and path[-1] == "rollback"
    if not present:
        if rollback:
            hint = "a rollback is one call: action.run, database.*, notification.*, ..., " \
                   "python or log"
        else:
            hint = "add one body such as action.run, database.insert, sleep, foreach or " \
                   "python (`ductwork schema workflow` lists them all)"
        yield _at(doc, path, f"no body in {what}", hint)
        return
    for extra in present[1:]:
        yield _at(doc, (*path, extra), f"{what} has two bodies, '{present[0]}' and '{extra}'",
                  "a step does one thing: split it into two steps", key=True)
