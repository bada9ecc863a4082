"""The shipped JSON Schemas in yaml-language-server (the engine of VS Code's YAML extension),
driven over LSP: no false diagnostics, errors at the right line, completions that insert valid
YAML, a description on hover for every step key."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ductwork.dsl import vocabulary as v
from tests.editor.lsp import LanguageServer, server_missing

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "ductwork" / "dsl" / "schema"
PRODUCT = """\
product: shop
envs: [dev]
databases:
  users-db:
    envs: {dev: {provider: sqlite}}
    tables:
      users: {columns: {id: {type: integer, primary_key: true}, email: text}}
    events:
      create-user: {op: insert, table: users}
apps:
  stripe:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events:
      create-charge: {method: POST, path: /v1/charges}
"""

# Skipped where the server is not installed, saying why; under CI (which installs it) a
# missing server fails instead, so the editor test cannot silently vanish from CI.
pytestmark = pytest.mark.skipif(server_missing() is not None and not os.environ.get("CI"),
                                reason=str(server_missing()))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanguageServer]:
    missing = server_missing()
    if missing is not None:
        pytest.fail(f"CI is set but the editor tests cannot run: {missing}")
    root = tmp_path_factory.mktemp("editor")
    ls = LanguageServer({(SCHEMAS / "workflow.json").as_uri(): ["**/workflows/*.yaml"],
                         (SCHEMAS / "product.json").as_uri(): ["**/product.yaml"]}, root)
    ls.root = root  # type: ignore[attr-defined]
    try:
        yield ls
    finally:
        ls.close()


def uri(server: LanguageServer, name: str) -> str:
    return (server.root / "shop" / name).as_uri()  # type: ignore[attr-defined]


def messages(diagnostics: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return sorted((d["range"]["start"]["line"] + 1, d["message"]) for d in diagnostics)


# -- diagnostics ---------------------------------------------------------------------------------
SHIPPED = sorted(ROOT.glob("specs/*/product.yaml")) + sorted(ROOT.glob("specs/*/workflows/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_every_shipped_spec_has_no_diagnostic(server: LanguageServer, path: Path) -> None:
    assert SHIPPED, "no specs found"
    assert messages(server.open(path.as_uri(), path.read_text("utf-8"))) == []


BROKEN = [
    # (file, text, line, words the diagnostic at that line says)
    ("workflows/a.yaml", "workflow: a\nsteps:\n  - tag: save\n    databse.insert: {}\n", 4,
     "Property databse.insert is not allowed"),
    ("workflows/b.yaml", "workflow: b\nsteps:\n  - tag: nap\n    sleep: 1sec\n", 4,
     "not a duration"),
    ("workflows/c.yaml", "workflow: c\nsteps:\n  - tag: x\n    python: m:f\n"
     "    retries: many\n", 5, "Incorrect type"),
    ("workflows/d.yaml", "workflow: d\nsteps:\n  - tag: x\n    python: m:f\n"
     "    retry_delay: 2 seconds\n", 5, "not a duration"),
    ("workflows/e.yaml", "workflow: e\noptions:\n  rollback_strategy: backwards\n"
     "steps:\n  - tag: x\n    python: m:f\n", 3, "reverse_all"),
    ("product.yaml", PRODUCT.replace("op: insert", "op: insrt"), 9, "insert"),
    ("product.yaml", PRODUCT.replace("method: POST", "method: FETCH"), 14, "POST"),
    ("product.yaml", PRODUCT.replace("email: text", "email: txt"), 7, "text"),
]


@pytest.mark.parametrize(("name", "text", "line", "said"), BROKEN,
                         ids=[f"{b[0]}:{b[2]}:{b[3][:20]}" for b in BROKEN])
def test_a_broken_spec_gets_a_diagnostic_at_its_line(
        server: LanguageServer, name: str, text: str, line: int, said: str) -> None:
    found = messages(server.open(uri(server, name), text))
    assert any(n == line and said in m for n, m in found), found


def test_a_misspelt_body_does_not_read_as_a_missing_action_run(server: LanguageServer) -> None:
    text = "workflow: a\nsteps:\n  - tag: save\n    database.insrt: {database: users-db}\n"
    found = messages(server.open(uri(server, "workflows/f.yaml"), text))
    assert (4, "Property database.insrt is not allowed.") in found
    assert not any("action.run" in m and "Missing" in m for _, m in found), found
    assert any(n == 3 and "exactly one body" in m for n, m in found), found


def test_the_product_file_is_typed(server: LanguageServer) -> None:
    assert messages(server.open(uri(server, "product.yaml"), PRODUCT)) == []


# -- completions ---------------------------------------------------------------------------------
def _plain(snippet: str) -> str:
    """A snippet as the editor leaves it once its placeholders are accepted."""
    text = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", snippet)
    return re.sub(r"\$\{?\d+\}?", "", text)


def _insert(text: str, item: dict[str, Any], line: int, col: int) -> str:
    """The document after accepting `item` (later lines indented like the line, as editors
    do with multi-line completions)."""
    edit = item.get("textEdit")
    new = _plain(edit["newText"] if edit else item.get("insertText") or item["label"])
    start, end = (edit["range"]["start"], edit["range"]["end"]) if edit else (
        {"line": line, "character": col}, {"line": line, "character": col})
    lines = text.split("\n")
    indent = re.match(r"\s*", lines[start["line"]]).group(0)  # type: ignore[union-attr]
    new = new.replace("\n", "\n" + indent)
    before = lines[start["line"]][:start["character"]]
    after = lines[end["line"]][end["character"]:]
    return "\n".join([*lines[:start["line"]], before + new + after, *lines[end["line"] + 1:]])


def _keys(data: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(data, dict):
        out |= {str(k) for k in data}
        for value in data.values():
            out |= _keys(value)
    elif isinstance(data, list):
        for value in data:
            out |= _keys(value)
    return out


@pytest.mark.parametrize(("where", "text", "line", "col", "expected"), [
    ("in a step", "workflow: a\nsteps:\n  - tag: one\n    \n", 3, 4,
     {"allow_fail", "rollback", "retries", "database.insert", "foreach", "catch"}),
    ("in database.insert", "workflow: a\nsteps:\n  - tag: one\n    database.insert:\n"
     "      database: users-db\n      \n", 5, 6, {"event", "data"}),
    ("at the top", "workflow: a\n\nsteps:\n  - tag: one\n    python: m:f\n", 1, 0,
     {"output", "options", "input", "signals"}),
])
def test_every_completion_inserts_valid_yaml(server: LanguageServer, where: str, text: str,
                                             line: int, col: int, expected: set[str]) -> None:
    doc = uri(server, f"workflows/complete-{line}.yaml")
    server.open(doc, text)
    items = server.completion(doc, line, col)
    labels = {i["label"] for i in items}
    assert expected <= labels, sorted(labels)
    for item in items:
        after = _insert(text, item, line, col)
        try:
            data = yaml.safe_load(after)
        except yaml.YAMLError as e:
            pytest.fail(f"{where}: accepting {item['label']!r} gives invalid YAML ({e}):\n{after}")
        if item.get("kind") == 10:  # a property: it must arrive as a key, with its colon
            assert item["label"] in _keys(data), f"{item['label']!r} inserted as:\n{after}"


def test_step_snippets_insert_whole_steps(server: LanguageServer) -> None:
    text = "workflow: a\nsteps:\n  - \n"
    doc = uri(server, "workflows/snippets.yaml")
    server.open(doc, text)
    items = {i["label"]: i for i in server.completion(doc, 2, 4)}
    for body in ("database.insert", "action.run", "notification.email", "python", "sleep"):
        item = items[f"step: {body}"]
        data = yaml.safe_load(_insert(text, item, 2, 4))
        step = data["steps"][0]
        assert set(step) == {"tag", body}, step


# -- hover ---------------------------------------------------------------------------------------
SAMPLE = {"tag": "x", "if": "true", "rollback": "{python: m:undo}", "allow_fail": "true",
          "retries": "2", "retry_delay": "2s", "timeout": "30s", "critical": "true",
          "catch": "[{steps: [{tag: h, log: {message: m}}]}]", "args": "{a: 1}",
          "returns": "{type: object}", "sleep": "1h", "wait_for_signal": "{name: go}",
          "checkpoint": "{name: c}", "set": "{k: 1}", "log": "{message: m}", "fail": "no",
          "foreach": "{items: [1], steps: [{tag: i, log: {message: m}}]}",
          "parallel": "[{steps: [{tag: p, log: {message: m}}]}]",
          "switch": "{cases: [{if: true, steps: [{tag: s, log: {message: m}}]}]}",
          "workflow": "{tag: child}", "python": "m:f", "return": "{a: 1}",
          "trigger_rollback": "{reason: r}"}


def test_hover_on_every_step_key_shows_its_description(server: LanguageServer) -> None:
    keys = [k for k in v.STEP_KEYS if k != "tag"]
    lines = ["workflow: a", "steps:"]
    spots: dict[str, int] = {}
    for i, key in enumerate(keys):
        lines.append(f"  - tag: s{i}")
        spots[key] = len(lines)
        value = SAMPLE.get(key, "{}")
        lines.append(f"    {key}: {value}")
        if key not in v.BODIES:
            lines.append("    python: m:f")
    spots["tag"] = 2
    doc = uri(server, "workflows/hover.yaml")
    server.open(doc, "\n".join(lines) + "\n")
    empty = []
    for key, line in spots.items():
        shown = server.hover(doc, line, 6)
        body = shown.split("\n\nSource:")[0].split("\n", 1)[-1].replace("\\", "")
        if f"Example: `{key}:" not in body or len(body.split("Example:")[0].strip()) < 10:
            empty.append((key, shown))
    assert empty == []
