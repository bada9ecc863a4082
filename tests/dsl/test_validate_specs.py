"""`ductwork validate` on whole products: python: targets imported and their parameters
checked, child workflows calling each other in a circle, warnings and --strict."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ductwork.cli import main
from ductwork.dsl import load_specs
from ductwork.dsl.specs import check_specs

PRODUCT = "product: shop\nenvs: [dev]\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]]]:
    code = main(["validate", "--json", *args])
    return code, json.loads(capsys.readouterr().out)["diagnostics"]


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    write(tmp_path, {"specs/shop/product.yaml": PRODUCT})
    return tmp_path


# -- python: targets ----------------------------------------------------------------------------


HOOKS = """\
    def price(ctx, items, currency="EUR"):
        return 1

    def anything(ctx, **extra):
        return extra

    def no_ctx():
        return 0

    async def refund(ctx, charge_id):
        return None

    LIMIT = 3
"""


def test_python_parameters_are_checked_against_args(shop: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {"shop_hooks_a.py": HOOKS, "specs/shop/workflows/a.yaml": """\
        workflow: a
        steps:
          - tag: p1
            python: shop_hooks_a:price
            args: {itmes: [1]}
          - tag: p2
            python: shop_hooks_a:price
          - tag: p3
            python: shop_hooks_a:anything
            args: {whatever: 1, more: 2}
          - tag: p4
            python: shop_hooks_a:no_ctx
          - tag: p5
            python: shop_hooks_a:LIMIT
          - tag: p6
            python: shop_hooks_a:prise
            args: {items: []}
          - tag: p7
            python: shop_hooks_a:price
            args: "${ctx.input}"
            rollback:
              python: shop_hooks_a:refund
              args: {charge: "${result.id}"}
    """})
    code, found = validate(capsys, "specs")
    assert code == 1
    got = [(d["line"], d["col"], d["message"], d["hint"]) for d in found]
    assert got == [
        # the misspelt argument, once (not also "needs 'items'")
        (5, 12, "price() has no parameter 'itmes'", "did you mean 'items'?"),
        (7, 13, "price() needs 'items', which args does not give", "add items: ... to args"),
        (12, 13, "no_ctx() takes no ctx, but it is called as no_ctx(ctx, **args)",
         "make ctx its first parameter: def no_ctx(ctx, ...)"),
        (14, 13, "'shop_hooks_a:LIMIT' is not a function (it is int)", None),
        (16, 13, "module 'shop_hooks_a' has no function 'prise'", "did you mean 'price'?"),
        # p3 (**extra) takes anything; p7's args is an expression: only the run knows it;
        # a rollback's python is checked like a step's
        (23, 14, "refund() has no parameter 'charge'", "did you mean 'charge_id'?"),
    ]


def test_python_bodies_in_a_rollback_list_are_checked(shop: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {"shop_hooks_r.py": HOOKS, "specs/shop/workflows/r.yaml": """\
        workflow: r
        steps:
          - tag: p1
            python: shop_hooks_r:price
            args: {items: [1]}
            rollback:
              - log: {message: "undoing ${result}"}
              - python: shop_hooks_r:refund
                args: {charge: "${result.id}"}
              - python: shop_hooks_r:refnd
    """})
    code, found = validate(capsys, "specs")
    assert code == 1
    got = [(d["line"], d["col"], d["message"], d["hint"]) for d in found]
    assert got == [
        (9, 16, "refund() has no parameter 'charge'", "did you mean 'charge_id'?"),
        (10, 17, "module 'shop_hooks_r' has no function 'refnd'", "did you mean 'refund'?"),
    ]


def test_import_failures_are_findings_not_tracebacks(shop: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {
        "shop_broken_syntax.py": "def f(ctx:\n",
        "shop_raises.py": "raise RuntimeError('needs a database at import')\n",
        "shop_exits.py": "import sys\nsys.exit(3)\n",
        "specs/shop/workflows/b.yaml": """\
            workflow: b
            steps:
              - {tag: s1, python: "shop_broken_syntax:f"}
              - {tag: s2, python: "shop_raises:f"}
              - {tag: s3, python: "shop_exits:f"}
              - {tag: s4, python: "no_such_module_here:f"}
              - {tag: s5, python: "shop_raises:g"}
        """})
    code, found = validate(capsys, "specs")
    assert code == 1
    messages = [(d["line"], d["message"].split(":")[0] + ":" + d["message"].split(":")[1])
                for d in found]
    assert messages == [
        (3, "cannot import 'shop_broken_syntax': SyntaxError"),
        (4, "cannot import 'shop_raises': RuntimeError"),
        (5, "cannot import 'shop_exits': SystemExit"),
        (6, "cannot import 'no_such_module_here': ModuleNotFoundError"),
        (7, "cannot import 'shop_raises': RuntimeError"),  # imported once, reported per step
    ]
    assert all("--no-import" in str(d["hint"]) for d in found)
    # opting out: nothing is imported, nothing is reported
    assert validate(capsys, "--no-import", "specs") == (0, [])


def test_a_rendered_python_finding_has_the_caret(shop: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {"shop_hooks_c.py": HOOKS, "specs/shop/workflows/c.yaml": """\
        workflow: c
        steps:
          - tag: total
            python: shop_hooks_c:price
            args: {items: [], curency: USD}
    """})
    assert main(["validate", "specs"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "specs/shop/workflows/c.yaml:5:23: price() has no parameter 'curency'",
        "   5 |     args: {items: [], curency: USD}",
        "     |                       ^~~~~~~",
        "     = hint: did you mean 'currency'?",
    ]


# -- child workflows in a circle ------------------------------------------------------------


def test_child_workflows_that_start_each_other(shop: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {
        "specs/shop/workflows/order.yaml": """\
            workflow: order
            steps:
              - tag: pay
                workflow: {tag: payment}
        """,
        "specs/shop/workflows/payment.yaml": """\
            workflow: payment
            steps:
              - tag: retry-order
                workflow: {tag: order}
        """,
        "specs/shop/workflows/poll.yaml": """\
            workflow: poll
            steps:
              - tag: again
                if: "${ctx.input.attempt < 5}"
                workflow: {tag: poll, input: {attempt: "${ctx.input.attempt + 1}"}}
        """,
        "specs/shop/workflows/loop.yaml": """\
            workflow: loop
            steps:
              - tag: forever
                workflow: {tag: loop}
        """,
        "specs/shop/workflows/leaf.yaml": "workflow: leaf\nsteps: [{sleep: 1s}]\n",
        "specs/shop/workflows/caller.yaml": """\
            workflow: caller
            steps:
              - {tag: a, workflow: {tag: leaf}}
              - {tag: b, workflow: {tag: leaf}}
        """,
    })
    code, found = validate(capsys, "--no-import", "specs")
    assert code == 1
    got = [(Path(str(d["path"])).name, d["line"], d["col"], d["severity"], d["message"])
           for d in found]
    assert got == [
        ("loop.yaml", 4, 21, "error", "workflow 'loop' starts itself as a child"),
        ("order.yaml", 4, 21, "error",
         "workflow 'order' starts 'payment', which starts 'order' again: "
         "order -> payment -> order"),
        ("payment.yaml", 4, 21, "error",
         "workflow 'payment' starts 'order', which starts 'payment' again: "
         "payment -> order -> payment"),
        ("poll.yaml", 5, 21, "warning", "workflow 'poll' starts itself as a child"),
    ]
    assert "break the circle" in str(found[0]["hint"])
    assert "must end it" in str(found[3]["hint"])


def test_a_child_workflows_input_is_checked_against_its_schema(
        shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {
        "specs/shop/workflows/welcome.yaml": """\
            workflow: welcome
            input:
              type: object
              required: [email, name, plan]
              properties:
                email: {type: string}
                name: {type: string}
                plan: {type: string, default: free}
            steps: [{log: {message: "${ctx.input.email}"}}]
        """,
        "specs/shop/workflows/strict.yaml": """\
            workflow: strict
            input: {type: object, additionalProperties: false, properties: {id: {type: string}}}
            steps: [{log: {message: "${default(ctx.input.id, 'none')}"}}]
        """,
        "specs/shop/workflows/signup.yaml": """\
            workflow: signup
            steps:
              - tag: typo
                workflow: {tag: welcome, input: {emial: a@example.com, name: Ann}}
              - tag: none-given
                workflow: {tag: welcome}
              - tag: extra
                workflow: {tag: strict, input: {id: x, note: hi}}
              - tag: right
                workflow: {tag: welcome, input: {email: a@example.com, name: Ann, more: 1}}
              - tag: built
                workflow: {tag: welcome, input: "${ctx.input}"}
        """,
    })
    code, found = validate(capsys, "--no-import", "specs")
    assert code == 1
    got = [(d["line"], d["col"], d["message"], d["hint"]) for d in found]
    assert got == [
        (4, 37, "workflow 'welcome' requires input 'email', which this step does not give",
         "add email: ... to the child's input (its input schema requires it)"),
        (4, 38, "workflow 'welcome' has no input field 'emial'", "did you mean 'email'?"),
        (6, 5, "workflow 'welcome' requires input 'email', 'name', which this step does not "
         "give", "add email: ... to the child's input (its input schema requires it)"),
        (8, 44, "workflow 'strict' has no input field 'note'", "its input fields: id"),
    ]


# -- warnings -------------------------------------------------------------------------------------


def test_warnings_are_printed_but_do_not_fail(shop: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {
        "specs/shop/product.yaml": """\
            product: shop
            envs: [dev, prd]
            apps:
              stripe:
                envs: {dev: {base_url: "http://127.0.0.1:9"}}
                events: {charge: {method: POST, path: /c}}
        """,
        "specs/shop/workflows/w.yaml": "workflow: w\nsteps: [{sleep: 1s}]\n",
    })
    assert main(["validate", "specs"]) == 0
    out = capsys.readouterr().out
    assert "specs/shop/product.yaml:5:5: warning: app 'stripe' has no configuration for " \
           "env 'prd'" in out
    assert out.rstrip().endswith("ok: 1 product(s), 1 workflow(s), 2 file(s) checked, 1 warning")
    assert main(["validate", "--strict", "specs"]) == 1
    assert capsys.readouterr().out.rstrip().endswith("1 error in 1 file")
    code, found = validate(capsys, "specs")
    assert code == 0 and [d["severity"] for d in found] == ["warning"]
    # a product with warnings loads and runs
    assert list(load_specs(shop / "specs").products["shop"].workflows) == ["w"]
    report = check_specs(shop / "specs")
    assert report.ok and len(report.warnings) == 1 and report.errors == []


def test_errors_and_warnings_are_counted_apart(shop: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, {
        "specs/shop/product.yaml": """\
            product: shop
            envs: [dev, prd]
            apps:
              stripe:
                envs:
                  dev: {base_url: "http://127.0.0.1:9", auth: {type: bearer, token: "${secret.K}"}}
                events: {charge: {method: POST, path: /c}}
        """,
    })
    assert main(["validate", "specs"]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().endswith("1 error in 1 file, 1 warning")
    assert "'${secret.K}' is not a reference" in out


def test_a_mistyped_path_gets_the_near_name(shop: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, found = validate(capsys, "spec")
    assert code == 1
    assert [(d["message"], d["hint"]) for d in found] == [
        ("no such file or directory", "did you mean 'specs'?")]
    code, found = validate(capsys, "specs/shop/product.yml")
    assert [(d["message"], d["hint"]) for d in found] == [
        ("no such file or directory", "did you mean 'product.yaml'?")]
