"""A YAML run whose expression breaks an evaluation limit fails with the limit's message."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ductwork import Ductwork

WORKFLOW = """
workflow: echo
steps:
  - tag: body
    set: {body: "${json(ctx.input)}"}
  - tag: grid
    if: "${default(ctx.input.grid, false)}"
    set: {grid: "${[[0] * 100000] * 100000}"}
output: {size: "${size(state.body)}"}
"""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "specs" / "shop"
    (root / "workflows").mkdir(parents=True)
    (root / "product.yaml").write_text("product: shop\nenvs: [dev]\n")
    (root / "workflows" / "echo.yaml").write_text(WORKFLOW)
    return tmp_path / "specs"


async def test_a_huge_decimal_input_fails_the_run_instead_of_stalling_it(
        specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        ok = await dw.workflows.execute(product="shop", env="dev", tag="echo",
                                        input={"x": Decimal("12.5")})
        assert ok.status == "completed"
        assert ok.output == {"size": len('{"x":12.5}')}
        run = await dw.workflows.execute(product="shop", env="dev", tag="echo",
                                         input={"x": Decimal("1e999999")})
        assert run.status == "failed"
        assert "1E+999999 has more than 4000 digits" in str(run.error)


async def test_a_value_too_large_to_build_fails_the_run(specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        run = await dw.workflows.execute(product="shop", env="dev", tag="echo",
                                         input={"grid": True})
        assert run.status == "failed"
        assert "would hold more than 1,000,000 values" in str(run.error)
