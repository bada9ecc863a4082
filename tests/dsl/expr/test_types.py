"""The static type model: JSON Schema, database columns, constants, joins."""

from __future__ import annotations

from ductwork.dsl.expr import types as t


def test_json_schema_types_fields_items_and_enums() -> None:
    typ = t.from_schema({
        "type": "object", "required": ["id"],
        "properties": {
            "id": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "plan": {"type": "string", "enum": ["free", "pro"]},
            "note": {"type": ["string", "null"]},
            "address": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }, where="in the input schema")
    assert typ.kinds == {"map"} and typ.closed and typ.required == {"id"}
    assert typ.fields is not None
    assert typ.fields["id"].kinds == {"integer"}
    items = typ.fields["tags"].items
    assert items is not None and items.kinds == {"string"}
    assert typ.fields["plan"].values == ("free", "pro")
    assert typ.fields["note"].describe() == "a string or null"
    assert typ.fields["address"].closed
    assert typ.where == "in the input schema"


def test_a_property_with_a_default_is_always_present() -> None:
    # A run's input has it filled in, so reading it needs no default(...).
    typ = t.from_schema({
        "type": "object", "required": ["id"],
        "$defs": {"plan": {"type": "string", "default": "free"}},
        "properties": {
            "id": {"type": "integer"}, "note": {"type": "string"},
            "seats": {"type": "integer", "default": 1},
            "plan": {"$ref": "#/$defs/plan"},
            "opts": {"type": "object", "default": {},
                     "properties": {"a": {"type": "string", "default": "x"}, "b": {}}},
        },
    })
    assert typ.required == {"id", "seats", "plan", "opts"}
    assert typ.fields is not None and typ.fields["opts"].required == {"a"}


def test_open_and_unknown_schemas_stay_open() -> None:
    assert not t.from_schema({"type": "object", "properties": {"a": {}},
                              "additionalProperties": True}).closed
    assert t.from_schema({"type": "object"}).fields is None
    assert t.from_schema({}).is_any
    assert t.from_schema(True).is_any
    assert t.from_schema({"type": "strnig"}).is_any  # a typo is the schema check's business
    # branches may declare more fields: the base keeps its fields but not closed
    assert not t.from_schema({"type": "object", "properties": {"a": {}},
                              "anyOf": [{"required": ["a"]}]}).closed


def test_refs_consts_and_unions() -> None:
    schema = {"$defs": {"money": {"type": "number"}},
              "type": "object", "properties": {"total": {"$ref": "#/$defs/money"},
                                               "kind": {"const": "order"},
                                               "id": {"oneOf": [{"type": "string"},
                                                                {"type": "integer"}]}}}
    typ = t.from_schema(schema)
    assert typ.fields is not None
    assert typ.fields["total"].kinds == {"number"}
    assert typ.fields["kind"].values == ("order",)
    assert typ.fields["id"].kinds == {"string", "integer"}
    assert t.from_schema({"$ref": "#/nowhere"}).is_any
    loop = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    assert t.from_schema(loop).is_any  # a cycle of refs ends as Any


def test_columns_constants_and_joins() -> None:
    assert t.from_column("bigint", False).kinds == {"integer"}
    assert t.from_column("timestamp", True).kinds == {"datetime", "null"}
    assert t.from_column("json", False).is_any
    assert t.from_value({"a": [1, 2]}).fields["a"].items.values == (1, 2)  # type: ignore[index,union-attr]
    joined = t.join(t.of("string", values=("a",)), t.of("string", values=("b",)))
    assert joined.values == ("a", "b")
    assert t.join(t.STRING, t.ANY).is_any
    row = t.record({"id": t.INTEGER})
    either = t.join(row, t.list_of(row))
    assert either.kinds == {"map", "list"} and either.fields is not None and either.closed
    assert t.non_null(t.of("string", "null")).kinds == {"string"}
    assert t.nullable(t.INTEGER).describe() == "a number or null"
    assert t.of("uuid", "datetime").describe() == "a UUID or a datetime"
