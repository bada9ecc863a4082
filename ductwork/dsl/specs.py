"""Loading a folder of products (product.yaml + workflows/*.yaml), every error of every file."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ductwork.dsl.compiler import compile_workflow, tag_of
from ductwork.dsl.compiler.flow import child_cycles, child_inputs
from ductwork.dsl.diagnostics import Diagnostic, did_you_mean, errors, sort_key
from ductwork.dsl.loader import Document, load_file
from ductwork.dsl.plan import ProductSpec, Specs
from ductwork.dsl.product import compile_product, webhook_targets
from ductwork.dsl.targets import Targets
from ductwork.errors import CompileError
from ductwork.util.paths import display_path

PRODUCT_FILE = "product.yaml"
WORKFLOW_DIR = "workflows"


@dataclass
class Report:
    """What checking a specs folder found: the specs, every diagnostic, the files read."""

    specs: Specs
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings do not count)."""
        return not errors(self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return errors(self.diagnostics)

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


def product_dirs(root: Path) -> list[Path]:
    """The product folders under `root` (or `root` itself when it holds a product.yaml)."""
    if root.is_file():
        root = root.parent
    if (root / PRODUCT_FILE).is_file():
        return [root]
    return sorted(d for d in root.iterdir() if d.is_dir() and (d / PRODUCT_FILE).is_file()) \
        if root.is_dir() else []


def workflow_files(product_dir: Path) -> list[Path]:
    wdir = product_dir / WORKFLOW_DIR
    if not wdir.is_dir():
        return []
    return sorted(f for f in wdir.iterdir()
                  if f.is_file() and f.suffix in (".yaml", ".yml"))


def _display(path: Path) -> str:
    return display_path(path)


def _importable(product_dir: Path) -> None:
    """`python:` modules are found next to the product folder (its parent is importable, after
    what is importable already), so a spec runs from any working directory."""
    parent = os.path.dirname(os.path.abspath(product_dir))
    if parent not in sys.path:
        sys.path.append(parent)


def check_product(product_dir: Path, report: Report, targets: Targets | None = None
                  ) -> ProductSpec | None:
    """Check one product folder into `report`; with `targets`, also import python: targets."""
    pfile = product_dir / PRODUCT_FILE
    report.files.append(_display(pfile))
    try:
        # strict=False: duplicate keys and the like come out with the schema's findings.
        doc = load_file(_display(pfile), strict=False)
    except CompileError as e:
        report.diagnostics.extend(e.diagnostics)
        return None
    product, diagnostics = compile_product(doc, folder=product_dir.name)
    report.diagnostics.extend(diagnostics)
    if product is None:
        return None
    _importable(product_dir)
    files = workflow_files(product_dir)
    tags = {tag_of(f) for f in files}
    docs: dict[str, Document] = {}
    for f in files:
        report.files.append(_display(f))
        try:
            wdoc = load_file(_display(f), strict=False)
        except CompileError as e:
            report.diagnostics.extend(e.diagnostics)
            continue
        tag = tag_of(f)
        if tag in product.workflows or (f.suffix == ".yml" and (f.with_suffix(".yaml")).exists()):
            report.diagnostics.append(Diagnostic(_display(f), 0, 0,
                                                 f"workflow '{tag}' is defined twice "
                                                 "(.yaml and .yml)"))
            continue
        docs[tag] = wdoc
        plan, wdiags = compile_workflow(wdoc, product, workflows=tags, expected_tag=tag)
        report.diagnostics.extend(wdiags)
        if targets is not None:
            report.diagnostics.extend(targets.problems(wdoc))
        if plan is not None:
            product.workflows[plan.tag] = plan
    # Checks across the product's workflows, once every file is read.
    report.diagnostics.extend(child_cycles(docs))
    report.diagnostics.extend(child_inputs(docs))
    report.diagnostics.extend(webhook_targets(doc, product, tags))
    return product


def check_specs(path: str | os.PathLike[str], *, import_python: bool = False) -> Report:
    """Check every product under `path`; never raises for problems in the files.

    With `import_python`, each `python:` target is imported (running its module's top-level
    code) and its parameters are checked against the step's `args:`."""
    targets = Targets() if import_python else None
    root = Path(path)
    report = Report(Specs(root=str(root)))
    if not root.exists():
        parent = root.parent if str(root.parent) else Path(".")
        near = did_you_mean(root.name, [p.name for p in parent.iterdir()]) \
            if parent.is_dir() else None  # `spec` for `specs`, `product.yml` for `.yaml`
        report.diagnostics.append(Diagnostic(str(path), 0, 0, "no such file or directory",
                                             near))
        return report
    dirs = product_dirs(root)
    if not dirs:
        report.diagnostics.append(Diagnostic(
            str(path), 0, 0, f"no {PRODUCT_FILE} found",
            f"a specs folder holds <product>/{PRODUCT_FILE} and <product>/{WORKFLOW_DIR}/*.yaml"))
    for d in dirs:
        product = check_product(d, report, targets)
        if product is None:
            continue
        if product.name in report.specs.products:
            other = report.specs.products[product.name].path
            report.diagnostics.append(Diagnostic(product.path, 0, 0,
                                                 f"product '{product.name}' is also defined "
                                                 f"in {other}"))
            continue
        report.specs.products[product.name] = product
    report.diagnostics.sort(key=sort_key)
    return report


def load_specs(path: str | os.PathLike[str]) -> Specs:
    """Load a specs folder; raises CompileError carrying every error of every file (warnings
    do not stop a spec from loading)."""
    report = check_specs(path)
    if report.errors:
        raise CompileError(report.errors)
    return report.specs
