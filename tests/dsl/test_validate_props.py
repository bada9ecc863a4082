"""`ductwork validate`, properties: a mangled spec gives located diagnostics, never a traceback."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ductwork.cli import main
from ductwork.cli.specs import validate_paths
from ductwork.dsl.plan import ProductSpec
from ductwork.dsl.specs import load_specs
from ductwork.testing.cases import parse_file

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "specs" / "my-product"
WORKFLOWS = sorted((PRODUCT / "workflows").glob("*.yaml"))
TEST_FILES = sorted((PRODUCT / "tests").glob("*.yaml"))
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

# What an author's slip can put where a value was: another type, an ambiguous word, a number
# no duration or count allows, text that needs quotes.
SCALARS = ["3", "-1", "0", "true", "yes", "on", "null", "[]", "{}", "'text'", ".inf", ".nan",
           "5 minutes", "1e999", "Note: x", "${", "@x", "*x", "{{ x }}", '"open', "x: y: z"]


def _mutate(text: str, data: st.DataObject) -> str:
    """One realistic slip: a line deleted, doubled, re-indented or tabbed; two keys swapped;
    a value replaced; the file cut short."""
    lines = text.split("\n")
    n = data.draw(st.integers(0, max(0, len(lines) - 1)), label="line")
    line = lines[n]
    kind = data.draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "tab", "swap",
                                      "scalar", "truncate"]), label="kind")
    if kind == "delete":
        del lines[n]
    elif kind == "duplicate":
        lines.insert(n, line)
    elif kind == "indent":
        lines[n] = " " * data.draw(st.integers(1, 4)) + line
    elif kind == "dedent":
        cut = data.draw(st.integers(1, 4))
        lines[n] = line[min(cut, len(line) - len(line.lstrip(" "))):]
    elif kind == "tab":
        lines[n] = "\t" + line
    elif kind == "swap":
        keys = [m.group(1) for m in re.finditer(r"^\s*(?:- )?([\w.-]+):", text, re.M)]
        m = re.match(r"^(\s*(?:- )?)([\w.-]+):", line)
        if m and keys:
            lines[n] = m.group(1) + data.draw(st.sampled_from(keys)) + line[m.end(2):]
    elif kind == "scalar":
        m = re.match(r"^(\s*(?:- )?[\w.-]+:\s)(.+)$", line)
        if m:
            lines[n] = m.group(1) + data.draw(st.sampled_from(SCALARS))
    else:
        return text[:data.draw(st.integers(0, len(text)), label="cut")]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A product folder with the example product and one workflow, rewritten per example."""
    root = tmp_path_factory.mktemp("specs") / "my-product"
    (root / "workflows").mkdir(parents=True)
    return root


def _check(folder: Path, mangled: str, target: Path, workflow: Path) -> None:
    for f in (folder / "workflows").iterdir():
        f.unlink()
    shutil.copy(PRODUCT / "product.yaml", folder / "product.yaml")
    shutil.copy(workflow, folder / "workflows" / workflow.name)
    (folder / "product.yaml" if target.name == "product.yaml"
     else folder / "workflows" / target.name).write_text(mangled, "utf-8")
    report = validate_paths([str(folder)])  # raising anything here fails the property
    for d in report.diagnostics:
        assert d.line >= 1 and d.col >= 1, d.render()  # located: file, line and column
        assert d.message and d.render().startswith(f"{d.location}: ")


@SETTINGS
@given(workflow=st.sampled_from(WORKFLOWS), data=st.data())
def test_a_mangled_workflow_gives_located_diagnostics(folder: Path, workflow: Path,
                                                      data: st.DataObject) -> None:
    _check(folder, _mutate(workflow.read_text("utf-8"), data), workflow, workflow)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mangled_product_gives_located_diagnostics(folder: Path, data: st.DataObject) -> None:
    product = PRODUCT / "product.yaml"
    _check(folder, _mutate(product.read_text("utf-8"), data), product, WORKFLOWS[0])


@pytest.fixture(scope="module")
def example() -> ProductSpec:
    return load_specs(ROOT / "specs").products["my-product"]


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(test_file=st.sampled_from(TEST_FILES), data=st.data())
def test_a_mangled_test_file_gives_located_diagnostics(
        tmp_path_factory: pytest.TempPathFactory, example: ProductSpec, test_file: Path,
        data: st.DataObject) -> None:
    f = tmp_path_factory.mktemp("tests") / test_file.name
    f.write_text(_mutate(test_file.read_text("utf-8"), data), "utf-8")
    _, problems = parse_file(f, example.workflows)
    for d in problems:
        assert d.line >= 1 and d.col >= 1, d.render()


def test_validate_exits_1_with_every_problem_of_a_file_rendered(tmp_path: Path) -> None:
    """One run reports a YAML-level and several shape-level mistakes of one file, each with
    its line, caret and hint; the exit code is 1."""
    folder = tmp_path / "my-product"
    shutil.copytree(PRODUCT, folder)
    (folder / "workflows" / "sloppy.yaml").write_text(
        "workflow: sloppy\n"
        "steps:\n"
        "  - tag: charge\n"
        "    action.run: {app: stripe, event: create-charge}\n"
        "    retries: '3'\n"
        "    tag: note\n"
        "  - wait_for_signal: approve\n"
        "  - sleep: 5 minutes\n", "utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["validate", str(folder)]) == 1
    text = out.getvalue()
    for where, hint in (
            ("sloppy.yaml:5:14: 'retries' must be an integer", "without quotes: retries: 3"),
            ("sloppy.yaml:6:5: duplicate key 'tag'", "put '- ' before it"),
            ("sloppy.yaml:7:22: 'wait_for_signal' must be a mapping", "{name: approve}"),
            ("sloppy.yaml:8:12: 'sleep' must be a duration", "write sleep: 5m")):
        assert where in text and hint in text, (where, text)
    assert "4 errors in 1 file" in text
    assert "^" in text and "Traceback" not in text
