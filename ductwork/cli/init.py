"""`ductwork init`: scaffold a project (specs, test cases, a Python handler) to start from."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

TEMPLATES = {
    "starter": "a product with a database, email outbox and file storage in dev, a sign-up "
               "workflow (rollback, retries, allow_fail), its test cases and a Python twin",
    "blank": "a product with no resources yet and a one-step hello workflow",
    "example": "the getting-started product my-product: onboarding, payments, fulfilment",
}
# The placeholder the starter and blank templates carry for the product's name.
PLACEHOLDER = "__PRODUCT__"
# What the templates' folders may hold at build time that is not part of a template.
SKIPPED = {"__pycache__", ".ductwork"}
PRODUCT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "init", help="create a project folder to start from (specs, tests, a Python handler)",
        description="Scaffold a ductwork project: specs/<product>/ with its product file, a "
                    "workflow and its test cases, ready for `validate`, `test` and `run`.")
    p.add_argument("directory", nargs="?", default=".", metavar="DIR",
                   help="the project folder (default: the current folder); created if missing")
    p.add_argument("--product", default=None, metavar="NAME",
                   help="the product's name (default: the folder's name, e.g. shop)")
    p.add_argument("--template", choices=sorted(TEMPLATES), default="starter",
                   help="; ".join(f"{k}: {v}" for k, v in TEMPLATES.items()))
    p.set_defaults(func=cmd_init)


def _product_name(directory: Path, given: str | None) -> str:
    if given is not None:
        if not PRODUCT_NAME.match(given):
            raise ConfigurationError(
                f"--product {given!r} is not a product name: use lowercase letters, digits "
                "and '-', starting with a letter (e.g. --product shop)")
        return given
    # From the folder's name: "My Shop_2" -> "my-shop-2"; a name with nothing usable -> "app".
    slug = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")
    slug = slug.lstrip("0123456789-")[:63].rstrip("-")
    return slug or "app"


def _files(root: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], bytes]]:
    """Every file of a template as (relative parts, content), in a stable order."""
    out: list[tuple[tuple[str, ...], bytes]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name in SKIPPED or entry.name.endswith(".pyc"):
            continue
        parts = (*prefix, entry.name)
        if entry.is_dir():
            out.extend(_files(entry, parts))
        else:
            out.append((parts, entry.read_bytes()))
    return out


def scaffold(directory: Path, *, template: str = "starter",
             product: str | None = None) -> tuple[str, list[Path]]:
    """Write `template` into `directory`; return the product's name and the files written.

    Refuses (writing nothing) when any file it would write exists already.
    """
    if template not in TEMPLATES:
        raise ConfigurationError(f"unknown template {template!r}: choose one of "
                                 f"{', '.join(sorted(TEMPLATES))}")
    if directory.exists() and not directory.is_dir():
        raise ConfigurationError(f"{directory} exists and is not a folder: name a new or "
                                 "existing folder for the project")
    name = "my-product" if template == "example" else _product_name(directory, product)
    if template == "example" and product not in (None, name):
        raise ConfigurationError("--product cannot rename the example (it is my-product): "
                                 "use --template starter for a product of your own")
    from importlib import resources

    root = resources.files("ductwork.scaffold").joinpath(template)
    plan: list[tuple[Path, bytes]] = []
    for parts, content in _files(root):
        # Hidden files are not package data (setuptools' globs skip them): "dot-x" is ".x".
        parts = tuple("." + p[4:] if p.startswith("dot-") else p for p in parts)
        rel = Path(*(p.replace(PLACEHOLDER, name) for p in parts))
        plan.append((directory / rel, content.replace(PLACEHOLDER.encode(), name.encode())))
    clashes = [str(path) for path, _ in plan if path.exists()]
    if clashes:
        raise ConfigurationError(
            f"{len(clashes)} file(s) of the scaffold exist already, e.g. {clashes[0]}: nothing "
            "was written. Choose an empty folder (ductwork init NEW-FOLDER) or another "
            "--product name")
    for path, content in plan:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return name, [path for path, _ in plan]


def _next_steps(directory: Path, product: str, template: str) -> list[str]:
    run = {
        "starter": f"ductwork run {product} signup --input "
                   "'{\"email\": \"ann@example.com\", \"name\": \"Ann\"}'",
        "blank": f"ductwork run {product} hello --input '{{\"name\": \"Ann\"}}'",
        "example": f"ductwork run {product} user-onboarding --input "
                   "'{\"email\": \"ann@example.com\", \"name\": \"Ann\"}'",
    }[template]
    steps = ["ductwork validate", "ductwork test specs", run]
    if directory.resolve() != Path.cwd().resolve():
        steps.insert(0, f"cd {directory}")
    return steps


def cmd_init(args: Any) -> int:
    directory = Path(args.directory)
    product, written = scaffold(directory, template=args.template, product=args.product)
    print(f"created {len(written)} files for product {product!r} in {directory}/:")
    for path in written:
        print(f"  {path.relative_to(directory)}")
    print("next:")
    for line in _next_steps(directory, product, args.template):
        print(f"  {line}")
    sys.stdout.flush()
    return 0
