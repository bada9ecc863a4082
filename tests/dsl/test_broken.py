"""The broken-spec catalogue: each file in broken/<category>/ is one realistic mistake.

A file starts with one `# expect: LINE:COL: message` line per diagnostic, each followed by
`#   hint: text` when the diagnostic carries a hint (no hint line pins "no hint"); the header
counts in the line numbers. A warning's message starts with "warning: ". Categories: yaml,
shape, expr, connector, product, flow.
`product-*.yaml` files are product files; the others are workflows compiled against
broken/product.yaml (product "shop").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ductwork.dsl.compiler import compile_workflow, tag_of
from ductwork.dsl.diagnostics import Diagnostic
from ductwork.dsl.loader import load_file
from ductwork.dsl.plan import ProductSpec
from ductwork.dsl.product import compile_product
from ductwork.errors import CompileError

HERE = Path(__file__).parent / "broken"
CASES = sorted(HERE.glob("*/*.yaml"))
CATEGORIES = ("yaml", "shape", "expr", "connector", "product", "flow")


@pytest.fixture(scope="module")
def shop() -> ProductSpec:
    product, diagnostics = compile_product(load_file(HERE / "product.yaml"))
    assert diagnostics == []
    assert product is not None
    return product


def compile_case(path: Path, shop: ProductSpec) -> list[Diagnostic]:
    try:
        doc = load_file(path, strict=False)  # as `ductwork validate` reads it
    except CompileError as e:
        return e.diagnostics
    if path.stem.startswith("product-"):
        _, diagnostics = compile_product(doc)
        return diagnostics
    known = {tag_of(f) for f in CASES} | {"child-flow"}
    plan, diagnostics = compile_workflow(doc, shop, workflows=known, expected_tag=path.stem)
    # Warnings alone leave a plan: the spec runs, maybe not as meant.
    assert (plan is None) == any(d.is_error for d in diagnostics)
    return diagnostics


def expected(path: Path) -> list[tuple[str, str | None]]:
    """(LINE:COL: message, hint or None) pairs from the file's header."""
    out: list[tuple[str, str | None]] = []
    for line in path.read_text("utf-8").splitlines():
        if line.startswith("# expect: "):
            out.append((line.removeprefix("# expect: "), None))
        elif line.startswith("#   hint: "):
            assert out, f"{path.name}: a hint line before any expect line"
            out[-1] = (out[-1][0], line.removeprefix("#   hint: "))
        else:
            break
    return out


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 150
    assert {c.parent.name for c in CASES} == set(CATEGORIES)


def test_every_case_says_how_to_fix_it() -> None:
    no_hint = [f"{c.parent.name}/{c.stem}" for c in CASES if not any(h for _, h in expected(c))]
    assert no_hint == []


@pytest.mark.parametrize("path", CASES, ids=[f"{c.parent.name}/{c.stem}" for c in CASES])
def test_broken_spec(path: Path, shop: ProductSpec) -> None:
    want = expected(path)
    assert want, f"{path.name} has no '# expect:' header"
    diagnostics = compile_case(path, shop)
    got = [(d.short(), d.hint) for d in sorted(diagnostics, key=lambda d: (d.line, d.col))]
    assert got == want
    for d in diagnostics:
        assert d.path == str(path)
        rendered = d.render().splitlines()
        assert rendered[0] == f"{path}:{d.short()}"
        # the offending source line and a caret under the column
        assert rendered[1].endswith((d.source or "").replace("\t", " "))  # a tab shows as one space
        caret = rendered[2]
        assert caret.index("^") - caret.index("|") - 2 == d.col - 1
