"""A spec runs from any working directory; an --id reused with another input says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PRODUCT = """\
product: shop
envs: [dev]
databases:
  db:
    envs:
      dev: {provider: sqlite, url: "sqlite:///.ductwork/shop.db"}
    tables:
      orders:
        columns:
          id: {type: integer, primary_key: true, auto: true}
          total: integer
    events:
      add-order: {op: insert, table: orders}
"""

WORKFLOW = """\
workflow: order
input: {type: object, required: [qty]}
steps:
  - tag: price
    python: shoplib.pricing:price
    args: {qty: "${ctx.input.qty}"}
  - tag: save
    database.insert:
      database: db
      event: add-order
      data: {total: "${steps.price.total}"}
output: {total: "${steps.price.total}"}
"""


def _project(root: Path) -> Path:
    """specs/shop/{product.yaml, workflows/order.yaml} and specs/shoplib/pricing.py."""
    specs = root / "project" / "specs"
    (specs / "shop" / "workflows").mkdir(parents=True)
    (specs / "shop" / "product.yaml").write_text(PRODUCT)
    (specs / "shop" / "workflows" / "order.yaml").write_text(WORKFLOW)
    (specs / "shoplib").mkdir()
    (specs / "shoplib" / "pricing.py").write_text(textwrap.dedent("""\
        def price(ctx, qty):
            return {"total": 250 * qty}
        """))
    return specs


def _ductwork(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUCTWORK_", "PYTHONPATH"))}
    return subprocess.run([sys.executable, "-m", "ductwork.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_spec_runs_and_validates_from_another_folder(tmp_path: Path) -> None:
    specs = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checked = _ductwork(elsewhere, "validate", str(specs))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = _ductwork(elsewhere, "run", "shop", "order", "--specs", str(specs), "--store",
                     str(tmp_path / "runs.db"), "--input", '{"qty": 2}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["output"] == {"total": 500}
    # The database path is relative to the product file, not to where the command ran.
    assert (specs / "shop" / ".ductwork" / "shop.db").is_file()
    assert not (elsewhere / ".ductwork").exists()


def test_an_id_reused_with_another_input_warns_that_the_first_run_is_returned(
        tmp_path: Path) -> None:
    specs = _project(tmp_path)
    store = str(tmp_path / "runs.db")

    def run(payload: str) -> subprocess.CompletedProcess[str]:
        return _ductwork(tmp_path, "run", "shop", "order", "--specs", str(specs), "--store",
                         store, "--id", "order-1", "--input", payload)

    first = run('{"qty": 1}')
    assert first.returncode == 0 and "warning" not in first.stderr
    same = run('{ "qty": 1 }')  # the same value, spelt differently: no warning
    assert same.returncode == 0 and "warning" not in same.stderr
    other = run('{"qty": 3}')
    assert other.returncode == 0
    assert json.loads(other.stdout)["output"] == {"total": 250}  # the first run's
    assert "run order-1 exists already with another input" in other.stderr
    assert "pick a new one" in other.stderr
