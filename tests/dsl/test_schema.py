"""Phase 2: the shipped JSON Schemas and how their errors read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from ductwork.cli import main
from ductwork.connectors.base import PROVIDERS, register_provider
from ductwork.dsl.loader import load_text
from ductwork.dsl.schema import SCHEMA_NAMES
from ductwork.dsl.schema import build as schemas
from ductwork.dsl.schema.checker import check

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str, which: str = "workflow") -> list[str]:
    return [d.short() for d in check(load_text(text, "f.yaml"), which)]


def hints(text: str, which: str = "workflow") -> list[str | None]:
    return [d.hint for d in check(load_text(text, "f.yaml"), which)]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_shipped_schema_is_current_and_valid(name: str) -> None:
    shipped = (ROOT / "ductwork" / "dsl" / "schema" / f"{name}.json").read_text("utf-8")
    assert shipped == schemas.dump(name), "regenerate: python -m ductwork.dsl.schema.build"
    Draft202012Validator.check_schema(json.loads(shipped))


def test_example_specs_match_the_schemas() -> None:
    from ductwork.dsl.loader import load_file

    folder = ROOT / "specs" / "my-product"
    assert check(load_file(folder / "product.yaml"), "product") == []
    for f in sorted((folder / "workflows").glob("*.yaml")):
        assert check(load_file(f), "workflow") == [], f.name


def test_schema_command_prints_each_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "product"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("ductwork product file")
    assert main(["schema"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == schemas.schema("workflow")
    assert "database.insert" in out["$defs"]["step"]["properties"]


WF = "workflow: w\nsteps:\n"


def test_unknown_key_points_at_the_key_with_a_suggestion() -> None:
    text = WF + "  - tag: a\n    python: m:f\n    alow_fail: true\n"
    assert problems(text) == ["5:5: unknown key 'alow_fail' in step 'a'"]
    assert hints(text) == ["did you mean 'allow_fail'?"]


def test_other_engines_spellings_get_the_way_to_say_it_here() -> None:
    text = WF + "  - tag: a\n    python: m:f\n    retry: {max_attempts: 3, backoff: 2s}\n"
    assert problems(text) == ["5:5: unknown key 'retry' in step 'a'"]
    assert hints(text) == [
        "write 'retries: <n>' and 'retry_delay: <duration>' (there is no 'retry' block)"]


def test_missing_required_keys() -> None:
    assert problems("steps:\n  - sleep: 1s\n") == [
        "1:1: the file is missing required key 'workflow'"]
    text = WF + "  - tag: a\n    database.insert: {database: db}\n"
    assert problems(text) == [
        "4:22: 'database.insert' is missing required key 'event'",
        "4:22: 'database.insert' is missing required key 'data'",
    ]


def test_type_errors_say_what_was_expected() -> None:
    assert problems("workflow: w\nsteps: {a: 1}\n") == [
        "2:8: 'steps' must be a list, not a mapping"]
    text = WF + "  - tag: a\n    python: m:f\n    retries: many\n"
    assert problems(text) == ["5:14: 'retries' must be an integer, not a string"]


def test_durations() -> None:
    text = WF + "  - sleep: 5 seconds\n"
    assert problems(text) == ["3:12: 'sleep' must be a duration, not '5 seconds'"]
    assert hints(text) == [
        "write sleep: 5s (a number and one unit: ms, s, m, h, d or w; a bare number is "
        "milliseconds)"]
    for ok in ("250ms", "5s", "1.5m", "1h", "1d", "100", 100, 0, "${ctx.input.delay}"):
        assert problems(WF + f"  - sleep: {json.dumps(ok)}\n") == [], ok


@pytest.mark.parametrize(("written", "meant"), [
    ("5 minutes", "5m"), ("1sec", "1s"), ("10mins", "10m"), ("2 hours", "2h"), ("1h30m", "90m"),
    ("PT30S", "30s"), ("P1D", "1d"), ("1 day 12 hours", "36h"), ("500 millis", "500ms"),
])
def test_a_duration_in_words_gets_the_spelling_meant(written: str, meant: str) -> None:
    assert hints(WF + f"  - sleep: {written}\n") == [
        f"write sleep: {meant} (a number and one unit: ms, s, m, h, d or w; a bare number is "
        "milliseconds)"]


def test_a_bare_duration_under_100_is_milliseconds_surely_meant_as_seconds() -> None:
    text = WF + "  - tag: a\n    python: m:f\n    retries: 2\n    retry_delay: 30\n"
    assert problems(text) == ["6:18: 'retry_delay: 30' means 30 milliseconds"]
    assert hints(text) == ["bare numbers are milliseconds: write retry_delay: 30s if you meant "
                           "seconds, or retry_delay: 30ms to keep milliseconds"]
    assert problems(WF + "  - sleep: -5\n") == ["3:12: 'sleep' must be a duration, not -5"]


def test_enum_with_suggestion() -> None:
    text = WF + "  - log: {message: hi, level: warning}\n"
    assert problems(text) == [
        "3:31: 'level' must be one of debug, info, warn, error; got 'warning'"]
    assert hints(text) == ["did you mean 'warn'?"]


def test_patterns_explain_themselves() -> None:
    assert problems(WF + "  - tag: a\n    python: mod.fn\n") == [
        "4:13: 'mod.fn' is not a python target: write 'package.module:function'"]
    assert problems(WF + "  - tag: 'bad tag'\n    python: m:f\n") == [
        "3:10: 'bad tag' is not a valid name: use letters, digits, '-' and '_', starting with a "
        "letter"]


def test_a_step_needs_exactly_one_body() -> None:
    assert problems(WF + "  - tag: a\n") == ["3:5: no body in step 'a'"]
    hint = hints(WF + "  - tag: a\n")[0]
    assert hint is not None and hint.startswith("add one body such as action.run")
    assert problems(WF + "  - tag: a\n    sleep: 1s\n    log: {message: x}\n") == [
        "5:5: step 'a' has two bodies, 'sleep' and 'log'"]


def test_a_misspelt_body_is_reported_once() -> None:
    text = WF + "  - tag: a\n    databse.insert: {database: d, event: e, data: {}}\n"
    assert problems(text) == ["4:5: unknown key 'databse.insert' in step 'a'"]
    assert hints(text) == ["did you mean 'database.insert'?"]


def test_rollback_is_one_call() -> None:
    text = WF + "  - tag: a\n    python: m:f\n    rollback: {sleep: 1s}\n"
    assert problems(text) == ["5:16: unknown key 'sleep' in rollback of step 'a'"]
    assert hints(text) == [
        "a rollback is one call: action.run, database.*, notification.*, ..., python or log"]
    assert problems(WF + "  - tag: a\n    python: m:f\n    rollback: {}\n") == [
        "5:15: no body in rollback of step 'a'"]


def test_duplicates_in_lists() -> None:
    assert problems("workflow: w\nenvs: [dev, dev]\nsteps: [{sleep: 1s}]\n") == [
        "2:13: 'dev' is listed twice in 'envs'"]


def test_product_file_shape() -> None:
    text = ("product: p\nenvs: [dev]\ndatabases:\n  users:\n    envs: {dev: {provider: sqlit}}\n"
            "    tabels: {}\n")
    assert problems(text, "product") == [
        "5:28: 'provider' must be one of sqlite, postgresql, postgres; got 'sqlit'",
        "6:5: unknown key 'tabels' in database 'users'",
    ]
    assert hints(text, "product") == ["did you mean 'sqlite'?", "did you mean 'tables'?"]


def test_resource_names_are_checked() -> None:
    text = "product: p\nenvs: [dev]\napps:\n  'my app': {envs: {}}\n"
    assert problems(text, "product") == [
        "4:3: 'my app' is not a valid name: use letters, digits, '-' and '_', starting with a "
        "letter"]


def test_a_registered_custom_provider_is_accepted() -> None:
    text = "product: p\nenvs: [dev]\nbrokers:\n  bus:\n    envs: {dev: {provider: rabbit}}\n"
    assert len(problems(text, "product")) == 1
    register_provider("broker", "rabbit", "tests.nowhere:create")
    try:
        assert problems(text, "product") == []
    finally:
        PROVIDERS.pop(("broker", "rabbit"))


def test_the_shipped_schema_itself_enforces_one_body() -> None:
    """check() applies the one-body rule in code (faster); editors get it from the schema."""
    shipped = Draft202012Validator(schemas.schema("workflow"))
    for bad in ({"tag": "a"}, {"tag": "a", "sleep": "1s", "log": {"message": "x"}},
                {"tag": "a", "python": "m:f", "rollback": {}}):
        assert not shipped.is_valid({"workflow": "w", "steps": [bad]})
        assert problems(json.dumps({"workflow": "w", "steps": [bad]}))
    assert shipped.is_valid({"workflow": "w", "steps": [{"tag": "a", "sleep": "1s"}]})


def test_loader_findings_join_the_schema_findings_in_one_pass() -> None:
    """Duplicate keys and YAML 1.1 booleans come out with the schema's problems; at a shared
    spot one word: the loader's for a value, the unknown key's for a key."""
    text = "workflow: w\non: push\nsteps:\n  - tag: a\n    python: m:f\n    allow_fail: yes\n" \
           "    retries: many\n    retries: 2\n"
    doc = load_text(text, "f.yaml", strict=False)
    assert [d.short() for d in check(doc, "workflow")] == [
        "2:1: unknown key 'on' in the file",
        "6:17: ambiguous value 'yes': YAML 1.1 tools read it as the boolean true",  # an error:
        # allow_fail gets the text "yes", not a boolean
        "7:14: 'retries' must be an integer, not a string",
        "8:5: duplicate key 'retries' (first defined on line 7)",
    ]


def test_misplaced_keys_say_where_they_belong() -> None:
    text = WF + "  - tag: a\n    wait_for_signal: {name: go}\n    foreach: {items: [1]}\n"
    assert hints(WF + "  - tag: a\n    database.insert: {database: d, event: e, data: {},"
                      " timeout: 5s}\n") == [
        "'timeout' goes next to 'database.insert:' (on step 'a'), not inside it"]
    assert hints("workflow: w\nrollback_strategy: none\nsteps: [{sleep: 1s}]\n") == [
        "'rollback_strategy' is a key of 'options', not of the file "
        "(options: {rollback_strategy: none, ...})"]
    assert problems(text)  # two bodies: reported, and no crash on the half-written foreach


def test_signal_payload_schemas_are_checked_like_the_input() -> None:
    text = "workflow: w\nsignals:\n  approve: {type: object, propertes: {by: {type: string}}}\n" \
           "steps: [{sleep: 1s}]\n"
    assert problems(text) == ["3:27: unknown JSON Schema keyword 'propertes' (JSON Schema skips "
                              "it, so it checks nothing)"]
    assert hints(text) == ["did you mean 'properties'?"]


def _properties(node: object, path: str = "") -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    if isinstance(node, dict):
        for key, sub in (node.get("properties") or {}).items():
            out.append((f"{path}.{key}", sub))
        for key, sub in node.items():
            if key != "properties" or not isinstance(sub, dict):
                out += _properties(sub, f"{path}/{key}")
            else:
                for name, prop in sub.items():
                    out += _properties(prop, f"{path}.{name}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            out += _properties(sub, f"{path}[{i}]")
    return out


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_key_and_enum_value_is_described_with_an_example(name: str) -> None:
    """What an editor shows on hover and completion (tests/editor drives a real one)."""
    found = _properties(schemas.schema(name))
    assert len(found) > 100
    for where, prop in found:
        text = str(prop.get("description") or "")
        assert "Example: `" in text and len(text.split("Example:")[0]) > 5, where
        assert "type" in prop or "anyOf" in prop, where  # completions insert `key: ...`
        if "enum" in prop:
            said = prop.get("enumDescriptions")
            assert isinstance(said, list) and len(said) == len(prop["enum"]), where  # type: ignore[arg-type]
            assert all("Example: `" in str(s) for s in said), where


def test_the_checker_reads_the_core_schema_not_the_editor_annotations() -> None:
    core, shipped = schemas.core("workflow"), schemas.schema("workflow")
    assert "anyOf" in core["$defs"]["duration"] and "anyOf" not in shipped["$defs"]["duration"]
    assert "defaultSnippets" not in json.dumps(core)
    assert problems(WF + "  - tag: a\n    sleep: 1sec\n") == [
        "4:12: 'sleep' must be a duration, not '1sec'"]
