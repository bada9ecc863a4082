"""Checks the JSON Schemas an author writes (`input:`, `signals:` payloads) for mistakes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing.exceptions import Unresolvable

from ductwork.dsl.diagnostics import Diagnostic, did_you_mean
from ductwork.dsl.loader import DataPath, Document
from ductwork.errors import ConfigurationError
from ductwork.util import schema_defaults

# JSON Schema ignores keywords it does not know, so a misspelt `propertes` silently accepts
# every input. Draft 2020-12's keywords (plus the common annotations) are all it may hold.
_SCHEMA_KEYWORDS = {  # keywords whose value is one schema
    "items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema",
}
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_OTHER_KEYWORDS = {
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
    "$comment", "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties", "required",
    "dependentRequired", "dependencies", "format", "title", "description", "default",
    "deprecated", "readOnly", "writeOnly", "examples", "contentEncoding", "contentMediaType",
}
KEYWORDS = _SCHEMA_KEYWORDS | _SCHEMA_MAPS | _SCHEMA_LISTS | _OTHER_KEYWORDS
TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
# Type names from programming languages and other schema dialects, and what JSON Schema calls them.
TYPE_ALIASES = {
    "str": "string", "text": "string", "int": "integer", "long": "integer", "float": "number",
    "double": "number", "decimal": "number", "bool": "boolean", "dict": "object",
    "map": "object", "list": "array", "tuple": "array", "none": "null", "nil": "null",
}
FORMATS = (
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "idn-hostname",
    "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
    "json-pointer", "relative-json-pointer", "regex",
)
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),),
}
_META = Draft202012Validator(Draft202012Validator.META_SCHEMA)


def check(doc: Document, where: DataPath, schema: Any) -> list[Diagnostic]:
    """Every mistake in the JSON Schema at `where` (an input or a signal payload)."""
    out: list[Diagnostic] = []
    for d in _Checker(doc, where, schema).run():
        if d not in out:
            out.append(d)
    return out


class _Checker:
    def __init__(self, doc: Document, where: DataPath, root: Any) -> None:
        self.doc = doc
        self.where = where
        self.root = root
        self.found: list[Diagnostic] = []
        self.spots: set[tuple[DataPath, bool]] = set()
        # Defaults are checked against their schema only when the schema itself is sound.
        self.sound = isinstance(root, dict) and _META.is_valid(root)

    def fail(self, path: DataPath, message: str, hint: str | None = None, *,
             key: bool = False) -> None:
        full = (*self.where, *path)
        if (full, key) in self.spots:  # one word per spot: the sharpest one comes first
            return
        self.spots.add((full, key))
        line, col = self.doc.locate(full, key=key)
        length = len(str(full[-1])) if key and full else self.doc.width(full)
        self.found.append(Diagnostic(self.doc.path, line, col, message, hint,
                                     self.doc.source_line(line), length))

    def run(self) -> list[Diagnostic]:
        if isinstance(self.root, dict):
            self.walk(self.root, ())
        for e in _META.iter_errors(self.root):
            self.meta(e)
        return self.found

    # -- the author's mistakes, by walking every schema in the tree ---------------------------

    def walk(self, schema: Any, path: DataPath) -> None:
        if not isinstance(schema, dict):
            return
        for key, value in schema.items():
            at = (*path, key)
            if key in _SCHEMA_KEYWORDS:
                self.walk(value, at)
            elif key in _SCHEMA_MAPS:
                for name, sub in (value.items() if isinstance(value, dict) else ()):
                    self.walk(sub, (*at, name))
            elif key in _SCHEMA_LISTS:
                for i, sub in enumerate(value if isinstance(value, list) else ()):
                    self.walk(sub, (*at, i))
            elif key not in _OTHER_KEYWORDS and not str(key).startswith("x-"):
                self.unknown(schema, path, str(key))
        self.types(schema, path)
        self.required(schema, path)
        self.values(schema, path)
        self.default(schema, path)
        self.ranges(schema, path)
        self.misc(schema, path)

    def unknown(self, schema: dict[str, Any], path: DataPath, key: str) -> None:
        hint = did_you_mean(key, KEYWORDS)
        if hint is None and "properties" not in schema and isinstance(schema.get(key), dict) \
                and path == ():
            hint = f"to declare a field '{key}', put it under 'properties:'"
        self.fail((*path, key), f"unknown JSON Schema keyword '{key}' (JSON Schema skips it, "
                  "so it checks nothing)",
                  hint or "see json-schema.org for the keywords; extensions start with 'x-'",
                  key=True)

    def types(self, schema: dict[str, Any], path: DataPath) -> None:
        raw = schema.get("type")
        names = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
        for i, name in enumerate(names):
            if name in TYPES:
                continue
            at = (*path, "type", i) if isinstance(raw, list) else (*path, "type")
            alias = TYPE_ALIASES.get(str(name).lower())
            hint = f"write '{alias}'" if alias else did_you_mean(name, TYPES) \
                or f"types: {', '.join(TYPES)}"
            self.fail(at, f"'{name}' is not a JSON Schema type", hint)

    def required(self, schema: dict[str, Any], path: DataPath) -> None:
        req = schema.get("required")
        props = schema.get("properties")
        if isinstance(req, bool):
            self.fail((*path, "required"), "'required' is a list on the object, not a flag on a "
                      "property", f"remove it here and list the field in the object's "
                      f"'required: [{path[-1] if path else 'name'}]'", key=True)
            return
        if not isinstance(req, list) or not isinstance(props, dict) \
                or schema.get("patternProperties") or schema.get("additionalProperties"):
            return
        for i, name in enumerate(req):
            if isinstance(name, str) and name not in props:
                self.fail((*path, "required", i), f"required field '{name}' is not declared "
                          "in 'properties'", did_you_mean(name, props)
                          or f"declare it: properties: {{{name}: {{type: string}}}}")

    def values(self, schema: dict[str, Any], path: DataPath) -> None:
        """`enum`, `const` and `default` values of the declared `type`."""
        raw = schema.get("type")
        names = [t for t in (raw if isinstance(raw, list) else [raw])
                 if isinstance(t, str) and t in _PY_TYPES]
        if not names:
            return
        allowed = tuple(t for n in names for t in _PY_TYPES[n])

        def fits(v: Any) -> bool:
            if isinstance(v, bool):
                return "boolean" in names
            return isinstance(v, allowed)

        wanted = " or ".join(names)
        enum = schema.get("enum")
        for i, v in enumerate(enum if isinstance(enum, list) else []):
            if not fits(v):
                self.fail((*path, "enum", i), f"enum value {_show(v)} is {_kind(v)}, but "
                          f"'type' is {wanted}", _retype_hint(v, names))
        for word in ("const", "default"):
            if word in schema and not fits(schema[word]):
                self.fail((*path, word), f"{word} {_show(schema[word])} is {_kind(schema[word])}, "
                          f"but 'type' is {wanted}", _retype_hint(schema[word], names))

    def default(self, schema: dict[str, Any], path: DataPath) -> None:
        """A default must pass its own schema (with the defaults inside it filled in): a run
        (a signal) that leaves the property out gets it, and the input (payload) check would
        refuse it."""
        at = (*path, "default")
        if "default" not in schema or not self.sound \
                or ((*self.where, *at), False) in self.spots:
            return
        value = schema["default"]
        try:
            filled = schema_defaults.fill(schema, value, root=self.root)
            # A mistake inside what a nested default filled in is that default's, reported
            # at its own line: here only what this default writes counts.
            found = next((e for e in Draft202012Validator(self.root).evolve(schema=schema)
                          .iter_errors(filled) if schema_defaults.written(value, e.absolute_path)),
                         None)
        except ConfigurationError as e:
            self.fail(at, str(e))
            return
        except Unresolvable:
            return  # misc() reports the $ref that points at nothing
        if found is None:
            return
        inside: DataPath = tuple(found.absolute_path)
        spot = (*at, *inside)  # point into the default where the value is written there
        name = "/".join(map(str, inside))
        field = f"'{path[-1]}'" if len(path) > 1 and path[-2] == "properties" else "it"
        why = (f"a run that leaves {field} out would fail the input check"
               if self.where == ("input",) else
               f"a signal that leaves {field} out would fail the payload check")
        if found.validator == "enum":
            message = f"default {_show(found.instance)} is not one of the enum values"
            hint = "use one of " + ", ".join(_show(v) for v in found.validator_value[:8])
        elif found.validator == "required" and isinstance(found.instance, dict):
            lacks = [r for r in found.validator_value if r not in found.instance]
            message = f"default {'at ' + name + ' ' if name else ''}lacks the required " \
                      f"property '{lacks[0] if lacks else '?'}'"
            hint = "add it to the default, or give that property a default of its own"
        else:
            message = f"default {'at ' + name + ' ' if name else ''}does not match its " \
                      f"schema: {found.message}"
            hint = "fix the default or the schema"
        self.fail(spot, message, f"{hint}: {why}")

    def ranges(self, schema: dict[str, Any], path: DataPath) -> None:
        for low, high in (("minimum", "maximum"), ("minLength", "maxLength"),
                          ("minItems", "maxItems"), ("minProperties", "maxProperties")):
            lo: Any = schema.get(low)
            hi: Any = schema.get(high)
            if _number(lo) and _number(hi) and lo > hi:
                self.fail((*path, low), f"'{low}' {lo} is more than '{high}' {hi}: no value "
                          "can match", "swap them, or fix one of the two bounds")

    def misc(self, schema: dict[str, Any], path: DataPath) -> None:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt not in FORMATS:
            self.fail((*path, "format"), f"unknown format '{fmt}'",
                      did_you_mean(fmt, FORMATS) or f"formats: {', '.join(FORMATS[:8])}, ...")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as e:
                self.fail((*path, "pattern"), f"'pattern' is not a valid regular expression: "
                          f"{e.msg}", "quote the pattern in single quotes so backslashes stay "
                          r"as written: pattern: '^\d+$'")
        ref = schema.get("$ref")
        if isinstance(ref, str) and not self.resolves(ref):
            defs = sorted((self.root.get("$defs") or {}) if isinstance(self.root, dict) else {})
            hint = did_you_mean(ref.rsplit("/", 1)[-1], defs) if defs else None
            if not ref.startswith("#"):
                hint = "only references inside this schema ('#/$defs/<name>') can be resolved"
            self.fail((*path, "$ref"), f"'$ref' points at nothing: '{ref}'",
                      hint or "declare the target under '$defs:' at the top of the schema")

    def resolves(self, ref: str) -> bool:
        if not ref.startswith("#"):
            return False
        node: Any = self.root
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return False
        return True

    # -- what the metaschema says, for shapes the walk does not know --------------------------

    def meta(self, e: ValidationError) -> None:
        path: DataPath = tuple(e.absolute_path)
        keyword = next((p for p in reversed(path) if isinstance(p, str)), None)
        if keyword == "type" or (path and path[-1] == "type") \
                or ((*self.where, *path), True) in self.spots:
            return  # the walk said it, with a better hint
        if e.validator == "type" and keyword is not None:
            expected: Any = e.validator_value
            words = {"array": "a list", "object": "a mapping", "string": "text",
                     "integer": "a whole number", "number": "a number", "boolean": "true or false"}
            want = " or ".join(words.get(str(t), str(t)) for t in (
                expected if isinstance(expected, list) else [expected]))
            hint = _meta_hint(keyword, e.instance)
            self.fail(path, f"'{keyword}' must be {want} in a JSON Schema", hint)
        elif e.validator == "minimum":
            self.fail(path, f"'{keyword}' must be at least {e.validator_value}, not "
                      f"{_show(e.instance)}", f"e.g. {keyword}: 1")
        else:
            self.fail(path, f"not a valid JSON Schema: {e.message}")


def _meta_hint(keyword: str, value: Any) -> str | None:
    if keyword == "required" and isinstance(value, str):
        return f"write a list: required: [{value}]"
    if keyword == "properties" and isinstance(value, list):
        names = ", ".join(f"{v}: {{type: string}}" for v in value[:3] if isinstance(v, str))
        return f"'properties' maps each field to its schema: properties: {{{names}}}"
    if keyword == "enum" and not isinstance(value, list):
        return f"write a list: enum: [{value}]"
    if keyword == "items" and isinstance(value, list):
        return "'items' is one schema for every item (a list of schemas is 'prefixItems')"
    if isinstance(value, str) and value in _TYPE_NAMES:
        # `email: string`, the shorthand of other tools, where a schema is expected
        return f"a field's schema is a mapping: write {keyword}: {{type: {_TYPE_NAMES[value]}}}"
    return None


_TYPE_NAMES = {"string": "string", "integer": "integer", "number": "number",
               "boolean": "boolean", "array": "array", "object": "object", "null": "null",
               "str": "string", "int": "integer", "float": "number", "bool": "boolean",
               "list": "array", "dict": "object", "text": "string"}


def _retype_hint(value: Any, names: list[str]) -> str:
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) \
            and {"integer", "number"} & set(names):
        return f"write {value} without quotes"
    if not isinstance(value, str) and "string" in names:
        return f'quote it: "{value}"'
    return "make the values and 'type' agree"


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    return {str: "a string", int: "an integer", float: "a number", dict: "a mapping",
            list: "a list", type(None): "null"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    return f"'{v}'" if isinstance(v, str) else repr(v)


def payload_schemas(data: Any) -> Iterable[tuple[DataPath, Any]]:
    """The `signals:` payload schemas of a workflow, by path."""
    signals = data.get("signals") if isinstance(data, dict) else None
    if isinstance(signals, dict):
        for name, schema in signals.items():
            if isinstance(schema, dict):
                yield ("signals", name), schema
