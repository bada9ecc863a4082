"""CLI commands of the YAML front end: validate, schema, graph (and run, once the engine is in)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ductwork.cli.common import load_secrets, read_json, store_url
from ductwork.dsl.schema import ALL_SCHEMAS
from ductwork.errors import ConfigurationError, WorkflowNotFoundError

if TYPE_CHECKING:  # the compiler is imported when a command runs, not when the CLI starts
    from ductwork.dsl import plan as p
    from ductwork.dsl.specs import Report

DEFAULT_SPECS = "specs"
PRODUCT_FILE = "product.yaml"
WORKFLOW_DIR = "workflows"


def register(subparsers: Any) -> None:
    v = subparsers.add_parser(
        "validate", help="check product and workflow files (exit 0 when all is well)",
        description="Check specs folders, product folders or single files: YAML, schema, "
                    "and everything the compiler can know before a run.")
    v.add_argument("paths", nargs="*", default=[DEFAULT_SPECS], metavar="PATH",
                   help=f"specs folder, product folder or file (default: {DEFAULT_SPECS})")
    v.add_argument("--json", action="store_true", help="print one JSON document for machines")
    v.add_argument("--no-import", dest="do_import", action="store_false",
                   help="do not import `python:` targets (by default each is imported, which "
                        "runs its module's top-level code, and its parameters are checked)")
    # The flag of the time when importing was opt-in: accepted, and the default anyway.
    v.add_argument("--import", dest="do_import", action="store_true", help=argparse.SUPPRESS)
    v.add_argument("--strict", action="store_true",
                   help="treat warnings as errors (exit 1 when there is any)")
    v.add_argument("--env", default=None, metavar="ENV",
                   help="the environment that will run here: each product must declare it, "
                        "and a provider of ENV whose package is not installed is an error "
                        "(other envs' providers are not checked against this machine)")
    v.set_defaults(func=cmd_validate, do_import=True)

    s = subparsers.add_parser("schema", help="print the JSON Schema of product or workflow files")
    s.add_argument("which", nargs="?", choices=ALL_SCHEMAS, default="workflow",
                   help="product files, workflow files (default) or test-case files (tests)")
    s.set_defaults(func=cmd_schema)

    r = subparsers.add_parser(
        "run", help="run a workflow to its end and print the result as JSON",
        description="Execute a YAML (or registered) workflow once; exit 0 when it completed.")
    r.add_argument("product")
    r.add_argument("tag")
    r.add_argument("--env", default="dev", help="environment (default: dev)")
    r.add_argument("--input", default="{}", metavar="JSON|@FILE",
                   help="the input as JSON text, or @path/to/input.json")
    r.add_argument("--specs", default=DEFAULT_SPECS, help=f"default: {DEFAULT_SPECS}")
    r.add_argument("--store", default=None, help="run store URL or SQLite file path (default: "
                   "$DUCTWORK_STORE, else sqlite:///.ductwork/runs.db)")
    r.add_argument("--secrets-file", dest="secrets_files", action="append", default=[],
                   metavar="FILE", help="secrets for ${secrets.NAME}: a dotenv or YAML file "
                   "(repeatable, a later one wins; DUCTWORK_SECRET_<NAME> variables win over "
                   "files)")
    r.add_argument("--id", dest="workflow_id", default=None,
                   help="workflow id (idempotency key: the same id never runs twice)")
    r.set_defaults(func=cmd_run)

    g = subparsers.add_parser("graph", help="print a workflow as a Mermaid flowchart")
    g.add_argument("product")
    g.add_argument("tag")
    g.add_argument("--specs", default=DEFAULT_SPECS, help=f"default: {DEFAULT_SPECS}")
    g.set_defaults(func=cmd_graph)


# -- validate ---------------------------------------------------------------------------


def _scope(path: Path) -> tuple[Path, Path | None]:
    """The folder to check for `path`, and the single file to report on (if one was named)."""
    if path.is_file():
        if path.name == PRODUCT_FILE:
            return path.parent, None
        if path.parent.name == WORKFLOW_DIR and (path.parent.parent / PRODUCT_FILE).is_file():
            return path.parent.parent, path
    return path, None


def validate_paths(paths: list[str], *, do_import: bool = True,
                   strict: bool = False, env: str | None = None) -> Report:
    """Check every path; one merged report. `strict` turns warnings into errors; `env` is the
    environment meant to run on this machine (see `_for_env`)."""
    from ductwork.dsl.diagnostics import as_error, sort_key
    from ductwork.dsl.specs import check_specs

    if do_import:
        cwd = os.getcwd()
        if cwd not in sys.path:  # python: targets are importable from where validate runs
            sys.path.insert(0, cwd)
    merged: Report | None = None
    for raw in paths:
        folder, only = _scope(Path(raw))
        report = check_specs(folder, import_python=do_import)
        if only is not None:  # report on that file (and the product file it depends on)
            wanted = {only.resolve(), (folder / PRODUCT_FILE).resolve()}
            report.diagnostics = [d for d in report.diagnostics
                                  if Path(d.path).resolve() in wanted]
            report.files = [f for f in report.files if Path(f).resolve() in wanted]
        if merged is None:
            merged = report
        else:
            merged.diagnostics.extend(report.diagnostics)
            merged.files.extend(report.files)
            merged.specs.products.update(report.specs.products)
    assert merged is not None
    if env is not None:
        _for_env(merged, env)
    if strict:
        merged.diagnostics = [as_error(d) for d in merged.diagnostics]
    merged.diagnostics.sort(key=sort_key)
    return merged


def _for_env(report: Report, env: str) -> None:
    """Validate for one env: a product must declare it; its providers' packages must be
    installed here (an error), other envs' missing packages are not this machine's concern."""
    from ductwork.dsl.diagnostics import Diagnostic, as_error, did_you_mean
    from ductwork.dsl.product import MISSING_PACKAGE

    kept = []
    for d in report.diagnostics:
        found = MISSING_PACKAGE.search(d.message)
        if found is None:
            kept.append(d)
        elif found["env"] == env:
            kept.append(as_error(d))
    for name, product in report.specs.products.items():
        if env not in product.envs:
            kept.append(Diagnostic(
                product.path, 0, 0,
                f"--env {env}: product '{name}' has no environment '{env}'",
                did_you_mean(env, list(product.envs))
                or f"it declares {', '.join(product.envs)}"))
    report.diagnostics = kept


def cmd_validate(args: argparse.Namespace) -> int:
    report = validate_paths(list(args.paths), do_import=args.do_import, strict=args.strict,
                            env=args.env)
    products = report.specs.products
    n_workflows = sum(len(pr.workflows) for pr in products.values())
    if args.json:
        doc = {
            "ok": report.ok,
            "files": report.files,
            "products": {name: sorted(pr.workflows) for name, pr in sorted(products.items())},
            "diagnostics": [d.to_dict() for d in report.diagnostics],
        }
        print(json.dumps(doc, indent=2))
        return 0 if report.ok else 1
    for d in report.diagnostics:
        print(d.render())
        print()
    n_errors, n_warnings = len(report.errors), len(report.warnings)
    warned = f", {_count(n_warnings, 'warning')}" if n_warnings else ""
    if report.ok:
        print(f"ok: {len(products)} product(s), {n_workflows} workflow(s), "
              f"{len(report.files)} file(s) checked{warned}")
        return 0
    files = len({d.path for d in report.errors})
    print(f"{_count(n_errors, 'error')} in {_count(files, 'file')}{warned}")
    return 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


# -- schema / graph -----------------------------------------------------------------------


def cmd_schema(args: argparse.Namespace) -> int:
    from ductwork.dsl.schema import build as schemas

    print(json.dumps(schemas.schema(args.which), indent=2))
    return 0


def find_plan(specs_dir: str, product: str, tag: str) -> p.WorkflowPlan:
    from ductwork.dsl.specs import load_specs

    specs = load_specs(specs_dir)
    if product not in specs.products and tag in specs.products \
            and product in specs.products[tag].workflows:
        raise WorkflowNotFoundError(product, tag, f"the product comes first: '{tag}' is a "
                                    f"product and '{product}' its workflow, {tag} {product}")
    if product not in specs.products:
        known = ", ".join(sorted(specs.products)) or "none"
        raise WorkflowNotFoundError(product, tag, f"no product '{product}' in {specs_dir}; "
                                                  f"products: {known}")
    plan = specs.products[product].workflows.get(tag)
    if plan is None:
        known = ", ".join(sorted(specs.products[product].workflows)) or "none"
        raise WorkflowNotFoundError(product, tag, f"workflows of {product}: {known}")
    return plan


def cmd_graph(args: argparse.Namespace) -> int:
    if not Path(args.specs).exists():
        raise ConfigurationError(f"specs folder not found: {args.specs} (use --specs DIR)")
    from ductwork.dsl.graph import mermaid

    sys.stdout.write(mermaid(find_plan(args.specs, args.product, args.tag)))
    return 0


# -- run ----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from ductwork.app import Ductwork

    if not Path(args.specs).exists():
        raise ConfigurationError(f"specs folder not found: {args.specs} (use --specs DIR)")
    data = read_json(args.input, "--input")
    secrets = load_secrets(args.secrets_files)
    store = store_url(args.store)[0]
    cwd = os.getcwd()
    if cwd not in sys.path:  # python: targets are importable from where the command runs
        sys.path.insert(0, cwd)

    dw = Ductwork(specs=args.specs, store=store, secrets=secrets)
    # An unknown workflow or env, or an input the schema refuses, is refused before the store
    # is opened: a mistyped command leaves no new, empty store behind.
    wf = dw.runtime.definitions.get(args.product, args.tag)
    dw.runtime.definitions.check_env(wf, args.env)
    dw.runtime.definitions.validate_input(wf, {} if data is None else data)

    async def go() -> Any:
        async with dw:
            return await dw.workflows.execute(product=args.product, env=args.env, tag=args.tag,
                                              input=data, workflow_id=args.workflow_id)

    # The warning of a reused --id with another input goes to stderr (stdout stays JSON).
    notices = logging.getLogger("ductwork.workflows.running")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    notices.addHandler(handler)
    try:
        result = asyncio.run(go())
    finally:
        notices.removeHandler(handler)
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0 if result.status == "completed" else 1
