"""JSON Schema `default`s filled into an input: what a run reads for a property left out."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ductwork.errors import ConfigurationError

# Defaults can nest without end through a recursive $ref (a node whose default child is a
# node...); the codec would refuse such an input anyway, this says why.
MAX_DEPTH = 64

_MISSING = object()


def fill(schema: Any, data: Any, *, root: Any = None) -> Any:
    """`data` with the defaults of `schema` filled in, copy on write: `data` itself when
    nothing was missing, never changed in place.

    A property with a `default` that the object lacks gets a copy of it; then every property
    present (given or defaulted) is filled in turn, so defaults inside a nested object apply
    when that object is given or is itself a default. Array items are filled by `items` and
    `prefixItems`. A property given as null keeps null: only an absent one is filled. Defaults
    are read from `properties`, local `$ref`s (`#/$defs/...`) and `allOf`; not from `anyOf`,
    `oneOf`, `not` or `if`/`then`/`else`, where which branch applies is not known.
    `root`: the whole schema when `schema` is a part of it (what its $refs point into)."""
    if not isinstance(schema, Mapping):
        return data
    return Filler(schema if root is None else root).fill(data, schema)


def defaulted(root: Any, schema: Any) -> frozenset[str]:
    """The properties of the object schema `schema` (inside `root`) that have a default: they
    are always present in the input a run reads."""
    if not isinstance(schema, Mapping):
        return frozenset()
    f = Filler(root)
    return frozenset(name for name, subs in f.properties([schema]).items()
                     if f.default(subs) is not _MISSING)


def defaults(schema: Any) -> Iterator[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
    """Every subschema of `schema` that declares a `default`, with its path in the schema."""
    yield from _defaults(schema, (), 0)


def written(value: Any, path: Iterable[Any]) -> bool:
    """Whether `path` leads to a value written in `value`, not to one a default fills in: a
    mistake there belongs to the nested default, reported at its own place."""
    node = value
    for part in path:
        found = (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node))
        if not found:
            return False
        node = node[part]
    return True


def _defaults(s: Any, path: tuple[str | int, ...], depth: int
              ) -> Iterator[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
    if not isinstance(s, Mapping) or depth > MAX_DEPTH:
        return
    if "default" in s:
        yield path, s
    for key, value in s.items():
        if key in ("properties", "patternProperties", "$defs", "definitions",
                   "dependentSchemas") and isinstance(value, Mapping):
            for name, sub in value.items():
                yield from _defaults(sub, (*path, key, str(name)), depth + 1)
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems") and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _defaults(sub, (*path, key, i), depth + 1)
        elif key in ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                     "propertyNames", "unevaluatedItems", "unevaluatedProperties"):
            yield from _defaults(value, (*path, key), depth + 1)


class Filler:
    """fill() for one schema, kept by whoever fills many inputs with it: what each part of
    the schema declares (its properties and defaults, through $ref and allOf) is worked out
    once, on first use."""

    def __init__(self, root: Any) -> None:
        self.root = root
        # By the ids of the schemas that apply to one value (they live as long as `root`).
        self._props: dict[tuple[int, ...], dict[str, list[Any]]] = {}
        self._defaults: dict[tuple[int, ...], Any] = {}

    def fill(self, data: Any, schema: Any = None) -> Any:
        """`data` with the defaults filled in (see fill()); `schema`: a part of the root."""
        return self.value([self.root if schema is None else schema], data, 0)

    def views(self, schemas: list[Any], depth: int = 0) -> list[Mapping[str, Any]]:
        """The schemas that all apply to one value: each one, its $ref target, its allOf."""
        out: list[Mapping[str, Any]] = []
        for s in schemas:
            if not isinstance(s, Mapping) or depth > MAX_DEPTH:
                continue
            out.append(s)
            ref = s.get("$ref")
            if isinstance(ref, str):
                out.extend(self.views([self.resolve(ref)], depth + 1))
            if isinstance(s.get("allOf"), list):
                out.extend(self.views(s["allOf"], depth + 1))
        return out

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return None
        node: Any = self.root
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def properties(self, schemas: list[Any]) -> dict[str, list[Any]]:
        key = tuple(map(id, schemas))
        found = self._props.get(key)
        if found is None:
            found = self._props[key] = self._properties(schemas)
        return found

    def default(self, schemas: list[Any]) -> Any:
        key = tuple(map(id, schemas))
        found = self._defaults.get(key, None)
        if found is None:
            found = self._defaults[key] = (self._default(schemas),)
        return found[0]

    def _properties(self, schemas: list[Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for view in self.views(schemas):
            props = view.get("properties")
            if isinstance(props, Mapping):
                for name, sub in props.items():
                    out.setdefault(str(name), []).append(sub)
        return out

    def _default(self, schemas: list[Any]) -> Any:
        for view in self.views(schemas):
            if "default" in view:
                return view["default"]
        return _MISSING

    def value(self, schemas: list[Any], data: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ConfigurationError(
                f"the input schema's defaults nest more than {MAX_DEPTH} levels deep (a "
                "recursive $ref whose default holds itself?); remove the default that recurses")
        if isinstance(data, dict):
            return self.mapping(schemas, data, depth)
        if isinstance(data, list):
            return self.sequence(schemas, data, depth)
        return data

    def mapping(self, schemas: list[Any], data: dict[str, Any], depth: int) -> dict[str, Any]:
        out = data
        for name, subs in self.properties(schemas).items():
            old = data.get(name, _MISSING)
            if old is _MISSING:
                found = self.default(subs)
                if found is _MISSING:
                    continue
                new = self.value(subs, copy.deepcopy(found), depth + 1)
            else:
                new = self.value(subs, old, depth + 1)
                if new is old:
                    continue
            if out is data:
                out = dict(data)
            out[name] = new
        return out

    def sequence(self, schemas: list[Any], data: list[Any], depth: int) -> list[Any]:
        out = data
        views = self.views(schemas)
        for i, item in enumerate(data):
            subs = [v["prefixItems"][i] for v in views
                    if isinstance(v.get("prefixItems"), list) and i < len(v["prefixItems"])]
            if not subs:
                subs = [v["items"] for v in views if isinstance(v.get("items"), Mapping)]
            if not subs:
                continue
            new = self.value(subs, item, depth + 1)
            if new is not item:
                if out is data:
                    out = list(data)
                out[i] = new
        return out
