"""Input defaults from the command line: `ductwork run` and `runs show` see them, `validate`
refuses an input or signal payload default its own schema refuses, at its line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

WORKFLOW = """\
workflow: greet
input:
  type: object
  properties:
    name: {type: string, default: world}
    style:
      type: object
      default: {}
      properties:
        mark: {type: string, enum: ["!", "?"], default: "!"}
steps:
  - set: {text: "Hello, ${ctx.input.name}${ctx.input.style.mark}"}
output: {text: "${state.text}"}
"""


def _project(tmp_path: Path, workflow: str) -> Path:
    product = tmp_path / "specs" / "hi"
    (product / "workflows").mkdir(parents=True)
    (product / "product.yaml").write_text("product: hi\nenvs: [dev]\n")
    (product / "workflows" / "greet.yaml").write_text(workflow)
    return tmp_path


def _ductwork(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ductwork.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_run_fills_the_defaults_and_the_run_keeps_them(tmp_path: Path) -> None:
    root = _project(tmp_path, WORKFLOW)
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    done = _ductwork(root, "run", "hi", "greet", "--store", store, "--id", "g1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"text": "Hello, world!"}
    given = _ductwork(root, "run", "hi", "greet", "--store", store, "--id", "g2",
                      "--input", '{"name": "Ann", "style": {}}')
    assert json.loads(given.stdout)["output"] == {"text": "Hello, Ann!"}
    shown = _ductwork(root, "runs", "show", "g1", "--store", store, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["input"] == {"name": "world", "style": {"mark": "!"}}


def test_validate_points_at_a_default_its_schema_refuses(tmp_path: Path) -> None:
    root = _project(tmp_path, WORKFLOW.replace('default: "!"', 'default: "."'))
    out = _ductwork(root, "validate", "specs")
    assert out.returncode == 1
    assert "specs/hi/workflows/greet.yaml:10:57: default '.' is not one of the enum values" \
        in out.stdout + out.stderr
    assert "hint: use one of '!', '?': a run that leaves 'mark' out would fail the input " \
        "check" in out.stdout + out.stderr


SIGNALS = """\
workflow: greet
signals:
  approve:
    type: object
    properties:
      by: {type: string, default: ops}
      level: {type: integer, minimum: 1, default: 0}
steps:
  - tag: wait
    wait_for_signal: {name: approve, timeout: 1h}
output: {by: "${steps.wait.by}"}
"""


def test_validate_points_at_a_signal_payload_default_its_schema_refuses(tmp_path: Path) -> None:
    root = _project(tmp_path, SIGNALS)
    out = _ductwork(root, "validate", "specs")
    assert out.returncode == 1
    assert ("specs/hi/workflows/greet.yaml:7:51: default does not match its schema: 0 is less "
            "than the minimum of 1") in out.stdout + out.stderr
    assert "a signal that leaves 'level' out would fail the payload check" in out.stdout
    fixed = _project(tmp_path / "fixed", SIGNALS.replace("default: 0", "default: 1"))
    assert _ductwork(fixed, "validate", "specs").returncode == 0
