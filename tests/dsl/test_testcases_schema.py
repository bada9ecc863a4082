"""`ductwork schema tests`: the schema of YAML test-case files accepts every shipped one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from ductwork.dsl.schema import build as schemas
from ductwork.dsl.schema import testcases
from ductwork.testing import cases

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted([*ROOT.glob("specs/*/tests/*.yaml"),
                  *ROOT.glob("ductwork/scaffold/*/specs/*/tests/*.yaml")])


def _validator() -> Draft202012Validator:
    return Draft202012Validator(schemas.schema("tests"))


def test_shipped_file_is_current_and_a_valid_schema() -> None:
    shipped = (ROOT / "ductwork" / "dsl" / "schema" / "tests.json").read_text("utf-8")
    assert shipped == schemas.dump("tests"), "regenerate: python -m ductwork.dsl.schema.build"
    Draft202012Validator.check_schema(json.loads(shipped))


def test_the_schema_knows_what_the_runner_knows() -> None:
    assert testcases.STATUSES == cases.STATUSES and testcases.ROLLBACKS == cases.ROLLBACKS
    doc = schemas.schema("tests")
    case = doc["properties"]["cases"]["items"]
    assert sorted(doc["properties"]) == sorted(cases.FILE_KEYS)
    assert sorted(case["properties"]) == sorted(cases.CASE_KEYS)
    assert sorted(case["properties"]["expect"]["properties"]) == sorted(cases.EXPECT_KEYS)
    mock = case["properties"]["mocks"]["additionalProperties"]
    assert sorted(mock["properties"]) == sorted((*cases.MOCK_KEYS, "rollback"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_test_file_matches(path: Path) -> None:
    errors = [e.message for e in _validator().iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("broken, said", [
    ({"cases": [{"name": "x", "expect": {"stauts": "completed"}}]}, "stauts"),
    ({"cases": [{"name": "x", "expect": {"status": "done"}}]}, "'done' is not one of"),
    ({"cases": [{"name": "x", "mocks": {"charge": {"reslt": 1}}}]}, "reslt"),
    ({"cases": [{"input": {}}]}, "'name' is a required property"),
    ({"workflow": "w"}, "'cases' is a required property"),
])
def test_mistakes_are_reported(broken: dict[str, object], said: str) -> None:
    messages = " ".join(e.message for e in _validator().iter_errors(broken))
    assert said in messages


def test_every_key_has_a_description_with_an_example() -> None:
    def walk(node: object, where: str) -> list[str]:
        missing: list[str] = []
        if isinstance(node, dict):
            for key, prop in (node.get("properties") or {}).items():
                if "Example: `" not in str(prop.get("description", "")):
                    missing.append(f"{where}.{key}")
            for key, sub in node.items():
                missing += walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                missing += walk(sub, f"{where}[{i}]")
        return missing

    assert walk(schemas.schema("tests"), "$") == []
