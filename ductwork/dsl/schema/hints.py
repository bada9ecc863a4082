"""Fix hints for schema errors, derived from the schema: where a key belongs, the right form."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from ductwork.dsl.diagnostics import did_you_mean
from ductwork.dsl.loader import DataPath
from ductwork.dsl.schema.places import describe
from ductwork.util import suggest

Schema = dict[str, Any]


class Navigator:
    """Walks one shipped schema along a data path, through $ref, anyOf and oneOf."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 20:
            ref = str(schema["$ref"])
            if not ref.startswith("#/$defs/"):
                break
            schema = self.root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
            seen += 1
        return schema

    def branch(self, schema: Any, value: Any = None) -> Any:
        """The alternative of an anyOf/oneOf that fits `value`'s kind (mapping or list)."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return schema
        if "then" in schema and "else" in schema:  # if: {type: array}, then/else: the two forms
            return self.branch(schema["then" if isinstance(value, list) else "else"], value)
        choices = schema.get("anyOf") or schema.get("oneOf")
        if not isinstance(choices, list) or "properties" in schema:
            return schema
        want = "object" if isinstance(value, dict) else "array" if isinstance(value, list) \
            else None
        resolved = [self.resolve(c) for c in choices]
        for c in resolved:
            if isinstance(c, dict) and want and c.get("type") == want:
                return c
        return next((c for c in resolved if isinstance(c, dict) and c.get("type") == "object"),
                    schema)

    def at(self, data: Any, path: DataPath) -> Any:
        """The schema that applies at `path` in `data`, or None when the schema is silent."""
        schema: Any = self.root
        node = data
        for part in path:
            schema = self.branch(schema, node)
            if not isinstance(schema, dict):
                return None
            if isinstance(part, str):
                props = schema.get("properties") or {}
                extra = schema.get("additionalProperties")
                schema = props.get(part, extra if isinstance(extra, dict) else None)
            else:
                schema = schema.get("items")
            if schema is None:
                return None
            node = _child(node, part)
        return self.branch(schema, node)

    def accepts(self, schema: Any, key: str) -> bool:
        schema = self.branch(schema, {})
        if not isinstance(schema, dict):
            return False
        # Keys kept in allOf (so that examples leave them out) are accepted all the same.
        parts = [schema, *(p for p in schema.get("allOf") or () if isinstance(p, dict))]
        return any(key in (p.get("properties") or {}) for p in parts)

    def inner(self, schema: Any) -> tuple[Any, str] | None:
        """Where keys written under a property go: (object schema, "inside"|"item"|"entry")."""
        obj = self.branch(schema, {})
        if isinstance(obj, dict) and obj.get("properties"):
            return obj, "inside"
        arr = self.branch(schema, [])
        if isinstance(arr, dict) and arr.get("type") == "array":
            item = self.branch(arr.get("items"), {})
            if isinstance(item, dict) and item.get("properties"):
                return item, "item"
        if isinstance(obj, dict) and isinstance(obj.get("additionalProperties"), dict):
            entry = self.branch(obj["additionalProperties"], {})
            if isinstance(entry, dict) and entry.get("properties"):
                return entry, "entry"
        return None

    def fits(self, schema: Any, value: Any) -> bool:
        """Does `value` validate against `schema` (a part of the root, $refs resolved)?"""
        body = self.resolve(schema)
        if not isinstance(body, dict):
            return True
        return Draft202012Validator({**body, "$defs": self.root.get("$defs", {})}
                                    ).is_valid(value)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


# -- writing values back as YAML -----------------------------------------------------------------

# Text that can stay unquoted inside a flow mapping: no indicator first, no ": " or " #",
# no flow punctuation.
_PLAIN = re.compile(r"^[A-Za-z0-9_$./(<][^{}\[\],'\"`]*$")


def flow(value: Any, depth: int = 0) -> str:
    """`value` as short flow-style YAML, the way it would be written in a spec."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        plain = _PLAIN.match(value) and ": " not in value and " #" not in value \
            and not value.endswith((" ", ":")) and value.lower() not in (
            "true", "false", "null", "yes", "no", "on", "off", "y", "n")
        text = value if plain and not re.fullmatch(r"[-+0-9.]+", value) else json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if depth > 1:
        return "[...]" if isinstance(value, list) else "{...}"
    if isinstance(value, list):
        items = [flow(v, depth + 1) for v in value[:3]]
        return "[" + ", ".join(items + (["..."] if len(value) > 3 else [])) + "]"
    if isinstance(value, dict):
        pairs = [f"{k}: {flow(v, depth + 1)}" for k, v in list(value.items())[:3]]
        return "{" + ", ".join(pairs + (["..."] if len(value) > 3 else [])) + "}"
    return str(value)


def form(nav: Navigator, schema: Any, depth: int = 0) -> str:
    """A placeholder value of the right shape for `schema`: `<name>`, `5s`, `{name: <name>}`."""
    raw = schema
    schema = nav.resolve(schema)
    if not isinstance(schema, dict):
        return "..."
    if isinstance(raw, dict) and raw.get("$ref") == "#/$defs/name":
        return "<name>"
    if isinstance(raw, dict) and raw.get("$ref") == "#/$defs/duration":
        return "5s"
    if isinstance(raw, dict) and raw.get("$ref") in ("#/$defs/expression", "#/$defs/condition"):
        return '"${...}"'
    if "enum" in schema:
        return flow(schema["enum"][0])
    if schema.get("type") == "string" and schema.get("pattern") == nav.resolve(
            {"$ref": "#/$defs/name"}).get("pattern"):
        return "<name>"
    choices = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(choices, list) and choices and "type" not in schema:
        return form(nav, choices[0], depth)
    kind = schema.get("type")
    if kind == "integer" or kind == "number":
        return str(max(int(schema.get("minimum", 0)), 1))
    if kind == "boolean":
        return "true"
    if kind == "string":
        return "..."
    if kind == "array":
        return f"[{form(nav, schema.get('items'), depth + 1)}]" if depth < 2 else "[...]"
    if kind == "object" or "properties" in schema:
        if depth >= 3:
            return "{...}"
        required = schema.get("required") or []
        props = schema.get("properties") or {}
        keys = required or list(props)[:2]
        if keys:
            return "{" + ", ".join(f"{k}: {form(nav, props.get(k), depth + 1)}" for k in keys) + "}"
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return "{<name>: " + form(nav, extra, depth + 1) + "}"
        return "{...}"
    return "..."


# -- where a key belongs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a misplaced key belongs: inside property `prop` (as "inside", "item" or "entry"),
    or one level up, next to `prop` ("up")."""

    key: str
    prop: str
    how: str
    rank: int  # MISSING ... LIST_ITEM: how sure the guess is, surest first

    def say(self, value: Any, current: Any, what: str, *, others: tuple[str, ...] = (),
            keys: tuple[str, ...] = ()) -> str:
        key, prop = self.key, self.prop
        pair = f"{key}: {flow(value)}"
        if self.how == "up":
            return f"'{key}' goes next to '{prop}:' (on {what}), not inside it"
        if keys:  # several keys that all belong in the one missing wrapper
            names = " and ".join(f"'{k}'" for k in keys)
            inner = ", ".join(f"{k}: ..." for k in keys)
            shape = f"[{{{inner}}}]" if self.how == "item" else f"{{{inner}}}"
            where = "an item of " if self.how == "item" else ""
            return f"{names} go inside {where}'{prop}': {prop}: {shape}"
        if self.how == "item":
            return f"'{key}' goes inside an item of '{prop}': {prop}: [{{{pair}, ...}}]"
        if self.how == "entry":
            return f"'{key}' goes inside each entry of '{prop}': {prop}: {{<name>: {{{pair}}}}}"
        if self.rank == ELSEWHERE:
            names = ", ".join(f"'{p}'" for p in (prop, *others)[:4])
            return f"'{key}' is a key of {names}, not of {what}" + (
                "" if others else f" ({prop}: {{{pair}, ...}})")
        if current is None:
            return f"'{key}' goes inside '{prop}': indent it under '{prop}:' ({prop}: {{{pair}}})"
        if isinstance(current, dict):
            return f"'{key}' goes inside '{prop}': {prop}: {flow({**current, key: value})}"
        return f"'{key}' goes inside '{prop}': {prop}: {{..., {pair}}}"


# How sure a placement is. A required property the mapping lacks but whose keys it holds is
# the surest (`if` written straight into `switch:`); a key of some list's items the weakest
# (a top-level `timeout` is an option far more often than a key of every step).
MISSING, PRESENT, UP, ELSEWHERE, LIST_ITEM = range(5)


def places(nav: Navigator, data: Any, path: DataPath, key: str) -> list[Place]:
    """Where an unknown key at `path` could belong, read off the schema, surest first: inside
    a required property the mapping lacks, inside one it has (`timeout` next to
    `wait_for_signal:`), one level up (`retries` inside a call body), inside a property of
    some other body (`concurrency` of `foreach`), inside the items of a list."""
    here = nav.at(data, path)
    node = _child_path(data, path)
    if not isinstance(here, dict) or not isinstance(node, dict):
        return []
    required = here.get("required") or []
    found = []
    for prop, sub in (here.get("properties") or {}).items():
        inner = nav.inner(sub)
        if inner is None or prop == key or not nav.accepts(inner[0], key):
            continue
        if prop not in node and prop in required:
            rank = MISSING
        elif inner[1] == "item":
            rank = LIST_ITEM
        else:
            rank = PRESENT if prop in node else ELSEWHERE
        found.append(Place(key, prop, inner[1], rank))
    if path and isinstance(path[-1], str) and nav.accepts(nav.at(data, path[:-1]), key):
        found.append(Place(key, path[-1], "up", UP))
    return sorted(found, key=lambda p: p.rank)


def placement(nav: Navigator, data: Any, path: DataPath, key: str, what: str,
              *, weak: bool = False) -> str | None:
    """The hint for a key written at the wrong level, or None. Only the sure guesses
    (MISSING, PRESENT, UP), unless `weak`: then only the others."""
    found = [p for p in places(nav, data, path, key) if (p.rank >= ELSEWHERE) == weak]
    if not found:
        return None
    node = _child_path(data, path)
    best = found[0]
    value = node.get(key) if isinstance(node, dict) else None
    current = node.get(best.prop) if isinstance(node, dict) else None
    others = tuple(p.prop for p in found[1:] if p.rank == ELSEWHERE and best.rank == ELSEWHERE)
    owner = what if best.how != "up" else _owner(data, path)
    return best.say(value, current, owner, others=others)


def _owner(data: Any, path: DataPath) -> str:
    return describe(path[:-1], data) if path[:-1] else "the top level of the file"


def _child_path(data: Any, path: DataPath) -> Any:
    for part in path:
        data = _child(data, part)
    return data


# -- the right form of a value ---------------------------------------------------------------


def type_hint(nav: Navigator, schema: Any, key: str | int | None, value: Any,
              expected: list[str]) -> str | None:
    """How to write `value` as the `expected` JSON type, the author's value kept."""
    label = f"{key}: " if isinstance(key, str) else ""
    if "object" in expected:
        return _as_mapping(nav, schema, label, key, value)
    if "array" in expected:
        if isinstance(value, dict):
            arr = nav.branch(schema, [])
            item = nav.branch(arr.get("items"), {}) if isinstance(arr, dict) else None
            if value and all(isinstance(v, dict) for v in value.values()) \
                    and not any(nav.accepts(item, k) for k in value):
                items = ", ".join(flow(v, 1) for v in list(value.values())[:2])
                return f"a list, not named entries: begin each item with '- ' ({label}[{items}])"
            return f"a list: begin each item with '- ' (one item: {label}[{flow(value, 1)}])"
        if isinstance(value, str) and "," in value and "${" not in value:
            return f"write a list: {label}[{', '.join(flow(s.strip()) for s in value.split(','))}]"
        return f"write a list: {label}[{flow(value)}]"
    if "boolean" in expected:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            word = "true" if value.lower() in ("true", "yes", "on") else "false"
            return f"write {label}{word} (no quotes)"
        if value in (0, 1) and not isinstance(value, bool):
            return f"write {label}{'true' if value else 'false'}"
        return f"write {label}true or {label}false"
    if "integer" in expected or "number" in expected:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
            return f"write the number without quotes: {label}{value.strip()}"
        if isinstance(value, float) and "integer" in expected and math.isfinite(value):
            return f"a whole number: {label}{round(value)}"
        resolved = nav.resolve(schema)
        low = resolved.get("minimum", 0) if isinstance(resolved, dict) else 0
        return f"a whole number, e.g. {label}{max(int(low), 3)}"
    if "string" in expected:
        if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict | list):
            return f"one value, not a list: {label}{flow(value[0])}"
        if isinstance(value, dict | list):
            return f"text: quote it if it holds ': ', '{{' or '[' ({label}\"...\")"
        return f"quote it: {label}{json.dumps(str(flow(value)))}"
    return None


def _as_mapping(nav: Navigator, schema: Any, label: str, key: str | int | None,
                value: Any) -> str | None:
    obj = nav.branch(schema, {})
    if not isinstance(obj, dict):
        return None
    props = obj.get("properties") or {}
    required = list(obj.get("required") or [])
    if isinstance(value, list):
        holder = _list_holder(nav, props, value)
        if holder is not None:
            return f"a mapping: the list goes under '{holder}' ({label}{{{holder}: [...]}})"
        if value and all(isinstance(v, str) for v in value):
            return _names_as_mapping(nav, obj, label, value)
        if len(value) == 1 and isinstance(value[0], dict):
            return f"one mapping, not a list: remove the '- ' ({label}{flow(value[0])})"
        return f"one mapping, not a list: write its keys without '- ' ({label}{{...}})"
    if value is None:
        keys = required or list(props)[:2]
        shown = ", ".join(f"{k}: {form(nav, props.get(k), 1)}" for k in keys)
        return f"'{key}' is empty: write its keys indented on the lines below '{key}:' " \
               f"({label}{{{shown}}})" if isinstance(key, str) else None
    if not required:
        shown = ", ".join(f"{k}: ..." for k in list(props)[:2])
        return f"write a mapping: {label}{{{shown}}}" if shown else "write a mapping"
    # The author's scalar goes under the first required key that can hold it.
    slot = next((k for k in required if k in props and nav.fits(props[k], value)), None)
    pairs = [f"{k}: {flow(value) if k == slot else form(nav, props.get(k), 1)}"
             for k in required]
    if slot is None and isinstance(value, str):
        pairs[0] = f"{required[0]}: {flow(value)}"
    return f"write a mapping: {label}{{{', '.join(pairs)}}}"


def _list_holder(nav: Navigator, props: dict[str, Any], value: list[Any]) -> str | None:
    """The property whose items the author's list items are (`switch: [- if: ...]` is the
    `cases` list of a switch)."""
    keys = {k for item in value if isinstance(item, dict) for k in item}
    if not keys:
        return None
    for prop, sub in props.items():
        inner = nav.inner(sub)
        if inner is not None and inner[1] == "item" and all(nav.accepts(inner[0], k)
                                                            for k in keys):
            return prop
    return None


def _names_as_mapping(nav: Navigator, obj: dict[str, Any], label: str, names: list[str]) -> str:
    """A list of names where a mapping is expected: each name becomes a key."""
    shown = [n for n in names[:2]]
    if "JSON Schema" in str(obj.get("description", "")):  # `input: [email, name]`
        fields = ", ".join(f"{n}: {{type: string}}" for n in shown)
        return f"a JSON Schema, not a list of fields: {label}{{type: object, required: " \
               f"[{', '.join(shown)}], properties: {{{fields}}}}}"
    extra = obj.get("additionalProperties")
    value = form(nav, extra, 1) if isinstance(extra, dict) else "..."
    pairs = ", ".join(f"{n}: {value}" for n in shown)
    return f"a mapping from each name to its settings, not a list: {label}{{{pairs}}}"


# -- durations, names, targets -------------------------------------------------------------------

_UNIT_WORDS = {
    "ms": ("ms", "msec", "msecs", "milli", "millis", "millisecond", "milliseconds"),
    "s": ("s", "sec", "secs", "second", "seconds"),
    "m": ("m", "min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "d": ("d", "day", "days"),
    "w": ("w", "wk", "wks", "week", "weeks"),
}
_UNIT = {w: unit for unit, words in _UNIT_WORDS.items() for w in words}
_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.I)
DURATION_RULE = "a number and one unit: ms, s, m, h, d or w; a bare number is milliseconds"


def duration_fix(value: Any) -> str | None:
    """The duration the author meant, written the way ductwork reads it: '5 minutes' -> 5m."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    iso = _ISO.match(text)
    if iso and any(iso.groups()):
        days, hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return _largest(((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)|[\s,]|and", "", text):
        return None
    total = 0.0
    for number, word in parts:
        unit = _UNIT.get(word.lower()) or _UNIT.get(word.lower().rstrip("s"))
        if unit is None:
            return None
        total += float(number) * _MS[unit]
    if len(parts) == 1:
        number, word = parts[0]
        return f"{number}{_UNIT.get(word.lower()) or _UNIT.get(word.lower().rstrip('s'))}"
    return _largest(total)


def _largest(ms: float) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        if ms >= _MS[unit] and ms % _MS[unit] == 0:
            return f"{int(ms // _MS[unit])}{unit}"
    return f"{ms:g}ms"


def duration_hint(key: str | int | None, value: Any) -> str:
    label = f"{key}: " if isinstance(key, str) else ""
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return f"a duration cannot be negative: e.g. {label}5s, or leave '{key}' out"
    fixed = duration_fix(value)
    if fixed is not None:
        return f"write {label}{fixed} ({DURATION_RULE})"
    return f"{DURATION_RULE}: e.g. {label}250ms, {label}5s, {label}5m or {label}1h"


def name_hint(value: Any, *, ident: bool = False) -> str | None:
    """A valid name close to the author's: 'Create User' -> create-user (order_id for an
    identifier)."""
    if not isinstance(value, str):
        return None
    sep = "_" if ident else "-"
    slug = re.sub(r"[^A-Za-z0-9_-]+" if not ident else r"[^A-Za-z0-9_]+", sep,
                  value.strip()).strip("-_").lower()
    slug = re.sub(r"^[^a-z_]+", "", slug) if ident else re.sub(r"^[^a-z]+", "", slug)
    return f"e.g. {slug}" if slug else f"e.g. {'order_id' if ident else 'create-user'}"


def target_hint(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().removesuffix("()")
    if ":" in text:
        module, _, fn = text.partition(":")
        module = module.replace("/", ".").removesuffix(".py")
        return f"e.g. {module}:{fn or '<function>'}"
    if "/" in text or text.endswith(".py"):
        return f"name the function too: {text.replace('/', '.').removesuffix('.py')}:<function>"
    head, _, tail = text.rpartition(".")
    return f"a colon before the function: {head}:{tail}" if head else \
        f"e.g. {text}.module:function"


def enum_hint(key: str | int | None, value: Any, choices: list[str]) -> str:
    near = did_you_mean(value, choices) or (
        f"did you mean '{s}'?" if (s := suggest.suggest(value, choices, cutoff=0.5)) else None)
    if near is None and isinstance(value, str) and value != value.lower():
        near = did_you_mean(value.lower(), choices)
    if near:
        return near
    label = f"{key}: " if isinstance(key, str) else ""
    return f"e.g. {label}{flow(choices[0])}"


def minimum_hint(key: str | int | None, low: Any, value: Any) -> str:
    label = f"{key}: " if isinstance(key, str) else ""
    example = max(int(low), 3) if isinstance(low, int | float) else 3
    if isinstance(value, int | float) and value < 0 and low == 0:
        return f"a count cannot be negative: e.g. {label}{example}, or {label}0 for none"
    return f"a whole number from {low} up, e.g. {label}{example}"
