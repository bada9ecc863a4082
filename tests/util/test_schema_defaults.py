"""schema_defaults.fill: what a run reads for a property left out of its input."""

from __future__ import annotations

from typing import Any

import pytest

from ductwork.errors import ConfigurationError
from ductwork.util.schema_defaults import defaulted, defaults, fill, written

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "default": 1},
        "tags": {"type": "array", "default": []},
        "box": {"type": "object", "properties": {"n": {"default": 2}}},
    },
}


def test_fill_is_copy_on_write() -> None:
    given = {"a": 5, "tags": [], "box": {"n": 0}}
    assert fill(SCHEMA, given) is given  # nothing missing: the very same object
    half = {"box": {}}
    out = fill(SCHEMA, half)
    assert out == {"a": 1, "tags": [], "box": {"n": 2}} and half == {"box": {}}
    out["tags"].append("x")
    assert SCHEMA["properties"]["tags"]["default"] == []  # each run gets its own copy


def test_null_and_falsy_values_are_values() -> None:
    given = {"a": None, "tags": None, "box": None}
    assert fill(SCHEMA, given) is given
    assert fill(SCHEMA, {"a": 0, "tags": [], "box": {"n": False}})["box"] == {"n": False}


def test_inputs_that_are_not_objects_are_left_alone() -> None:
    assert fill(SCHEMA, "text") == "text"
    assert fill(SCHEMA, [1]) == [1]
    assert fill(True, {}) == {}


def test_prefix_items_and_items() -> None:
    schema = {"type": "array",
              "prefixItems": [{"properties": {"first": {"default": True}}}],
              "items": {"properties": {"rest": {"default": True}}}}
    assert fill(schema, [{}, {}, {"rest": 0}]) == [{"first": True}, {"rest": True}, {"rest": 0}]


def test_branches_whose_choice_is_unknown_give_no_defaults() -> None:
    schema = {"anyOf": [{"properties": {"x": {"default": 1}}}],
              "oneOf": [{"properties": {"y": {"default": 1}}}],
              "if": {"properties": {"z": {"default": 1}}}}
    assert fill(schema, {}) == {}
    assert defaulted(schema, schema) == frozenset()


def test_defaults_lists_every_declared_default() -> None:
    assert [p for p, _ in defaults(SCHEMA)] == [("properties", "a"), ("properties", "tags"),
                                                ("properties", "box", "properties", "n")]


def test_a_recursive_default_is_refused() -> None:
    schema = {"$defs": {"n": {"default": {}, "properties": {"c": {"$ref": "#/$defs/n"}}}},
              "properties": {"root": {"$ref": "#/$defs/n"}}}
    with pytest.raises(ConfigurationError, match="nest more than 64 levels"):
        fill(schema, {})


def test_written_tells_a_given_value_from_a_filled_one() -> None:
    assert written({"a": [{"b": 1}]}, ["a", 0, "b"])
    assert written({"a": 1}, [])
    assert not written({"a": [{"b": 1}]}, ["a", 1])
    assert not written({"a": {}}, ["a", "c"])
