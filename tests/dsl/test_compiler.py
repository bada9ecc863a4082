"""Phase 3: semantic checks and the compiled Plan (plus the validate/graph commands)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ductwork import Ductwork
from ductwork.cli import main
from ductwork.dsl import load_specs
from ductwork.dsl import plan as p
from ductwork.dsl.compiler import compile_workflow
from ductwork.dsl.loader import load_text
from ductwork.dsl.product import compile_product
from ductwork.dsl.vocabulary import BODIES, MODIFIERS
from ductwork.errors import CompileError

ROOT = Path(__file__).resolve().parents[2]
NO_STATE = shutil.ignore_patterns(".ductwork")

PRODUCT = """
product: shop
envs: [dev]
apps:
  stripe:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events: {charge: {method: POST, path: /c}, refund: {method: POST, path: /r}}
databases:
  db:
    envs: {dev: {provider: sqlite}}
    tables: {t: {columns: {id: {type: integer, primary_key: true, auto: true}}}}
    events: {put: {op: insert, table: t}}
"""


@pytest.fixture(scope="module")
def shop() -> p.ProductSpec:
    product, diagnostics = compile_product(load_text(PRODUCT, "product.yaml"))
    assert diagnostics == [] and product is not None
    return product


def compile_text(text: str, shop: p.ProductSpec) -> tuple[p.WorkflowPlan | None, list[str]]:
    doc = load_text(textwrap.dedent(text), "w.yaml")
    plan, diagnostics = compile_workflow(doc, shop)
    return plan, [d.short() for d in diagnostics]


def ok(text: str, shop: p.ProductSpec) -> p.WorkflowPlan:
    plan, problems = compile_text(text, shop)
    assert problems == []
    assert plan is not None
    return plan


# -- the plan ------------------------------------------------------------------------------


def test_example_specs_compile_to_plans() -> None:
    specs = load_specs(ROOT / "specs")
    product = specs.products["my-product"]
    assert product.envs == ("dev", "staging", "prd")
    assert sorted(product.workflows) == ["charge-payment", "order-fulfilment", "user-onboarding"]
    assert product.resources["database"]["users-db"]["events"]["create-user"] == {
        "op": "insert", "table": "users"}
    assert Path(product.base_dir) == (ROOT / "specs" / "my-product").resolve()

    charge = product.workflows["charge-payment"]
    assert charge.options == p.WorkflowOptions("reverse_all", timeout=300_000)
    step = charge.steps[0]
    assert isinstance(step, p.TaskStep) and isinstance(step.body, p.Call)
    assert (step.tag, step.body.key, step.body.resource) == (
        "charge-payment", "action.run", "stripe")
    assert step.options == p.TaskOptions(retries=2, retry_delay=2000)
    (refund,) = step.rollback
    assert isinstance(refund, p.Call)
    assert refund.args.evaluate({"result": {"id": "ch_1"}}) == {
        "app": "stripe", "event": "refund-charge", "input": {"body": {"charge": "ch_1"}}}

    onboarding = product.workflows["user-onboarding"]
    welcome = onboarding.steps[1]
    assert isinstance(welcome, p.TaskStep) and welcome.options.allow_fail
    assert onboarding.output is not None
    assert onboarding.output.evaluate({"steps": {"create-user": {"id": 7}}}) == {
        "success": True, "userId": 7}
    assert welcome.loc.line == 18 and welcome.loc.path.endswith("user-onboarding.yaml")


def test_fulfilment_plan_shapes() -> None:
    plan = load_specs(ROOT / "specs").workflow("my-product", "order-fulfilment")
    assert plan is not None
    kinds = [s.kind for s in plan.steps]
    assert kinds == ["task", "task", "foreach", "parallel", "checkpoint", "switch", "set",
                     "task", "log"]
    foreach = plan.steps[2]
    assert isinstance(foreach, p.ForeachStep)
    assert (foreach.tag, foreach.alias, foreach.concurrency) == ("reserve-stock", "line", 4)
    switch = plan.steps[5]
    assert isinstance(switch, p.SwitchStep) and len(switch.cases) == 2
    assert switch.default is not None and isinstance(switch.default[0], p.SleepStep)
    wait = switch.cases[1].steps[0]
    assert isinstance(wait, p.WaitStep)
    assert (wait.names, wait.timeout) == (("picked-up",), 7 * 86_400_000)
    assert plan.signals == {"picked-up": {"type": "object"}}
    assert [s.tag for s in plan.walk() if s.tag] == [
        "reject-empty", "price-order", "reserve-stock", "reserve", "store-invoice",
        "audit-order", "ship", "ship-express", "wait-pickup", "ship-standard",
        "notify-customer"]


def test_constant_values_are_copied_on_evaluate() -> None:
    tree = p.ValueTree.of({"a": [1]})
    first = tree.evaluate({})
    first["a"].append(2)
    assert tree.evaluate({}) == {"a": [1]}


# -- step addressing -----------------------------------------------------------------------


def test_hyphenated_tags_both_spellings(shop: p.ProductSpec) -> None:
    plan = ok("""
        workflow: w
        steps:
          - tag: put-row
            database.insert: {database: db, event: put, data: {}}
        output:
          dotted: "${steps.put-row.id}"
          indexed: '${steps["put-row"].id}'
          minus: "${steps.put-row.id - 1}"
    """, shop)
    assert plan.output is not None
    assert plan.output.evaluate({"steps": {"put-row": {"id": 5}}}) == {
        "dotted": 5, "indexed": 5, "minus": 4}


def test_hyphenated_tag_confusing_cases(shop: p.ProductSpec) -> None:
    # `steps.put - row` is a subtraction: step 'put' does not exist, and neither does `row`
    _, problems = compile_text("""
        workflow: w
        steps:
          - tag: put-row
            database.insert: {database: db, event: put, data: {}}
        output: {a: "${steps.put - row.id}", b: '${steps["put_row"]}'}
    """, shop)
    assert problems == ["6:22: unknown step 'put'", "6:28: unknown name 'row'",
                        "6:50: unknown step 'put_row'"]


def test_nested_scopes(shop: p.ProductSpec) -> None:
    ok("""
        workflow: w
        steps:
          - tag: first
            python: m:f
          - tag: each
            foreach:
              items: [1, 2]
              as: n
              steps:
                - tag: inner
                  python: m:f
                  args: {n: "${n}", i: "${index}", first: "${steps.first}"}
                - tag: inner-2
                  python: m:f
                  args: {prev: "${steps.inner}", item: "${item}"}
          - parallel:
              - steps:
                  - tag: left
                    python: m:f
                    args: {each: "${steps.each[0].inner}"}
              - steps:
                  - tag: right
                    python: m:f
          - tag: pick
            switch:
              cases:
                - if: "${steps.left == steps.right}"
                  steps:
                    - tag: same
                      python: m:f
              default:
                - tag: different
                  python: m:f
                  rollback:
                    python: m:undo
                    args: {what: "${result}", left: "${steps.left}"}
        output: ["${default(steps.same, null)}", "${default(steps.different, null)}",
                 "${steps.pick}"]
    """, shop)


def test_input_fields_follow_the_input_schema(shop: p.ProductSpec) -> None:
    base = """
        workflow: w
        input:
          type: object
          properties:
            user: {type: object, properties: {email: {type: string}}}
            extra: {type: object}
          {more}
        steps:
          - log: {message: "${ctx.input.user.email} ${ctx.input.extra.anything} ${ctx.input.x}"}
    """
    _, problems = compile_text(base.replace("{more}", ""), shop)
    assert problems == ["10:85: ctx.input has no field 'x' in the input schema"]
    # an open schema (additionalProperties) lets any field through
    ok(base.replace("{more}", "additionalProperties: true"), shop)


def test_every_problem_of_a_file_is_reported(shop: p.ProductSpec) -> None:
    _, problems = compile_text("""
        workflow: w
        steps:
          - tag: a
            database.insert: {database: dbx, event: put, data: "${steps.b}"}
          - tag: a
            sleep: 1s
            retries: 2
          - tag: c
            python: m:f
            args: {x: "${nope(1)}", y: "${ctx.input.}"}
    """, shop)
    assert problems == [
        "5:33: unknown database 'dbx'",
        "5:65: unknown step 'b'",
        "6:10: duplicate step tag 'a'",
        "8:5: 'retries' has no effect on a sleep step",
        "11:18: unknown function 'nope'",
        "11:44: bad expression: unexpected character '.'; a field name (starting with a letter "
        "or '_') must follow '.'",
    ]


def test_compile_raises_with_sorted_diagnostics(shop: p.ProductSpec) -> None:
    from ductwork.dsl import compile

    doc = load_text("workflow: w\nsteps:\n  - tag: a\n    sleep: 1s\n    retries: 1\n", "w.yaml")
    with pytest.raises(CompileError) as exc:
        compile(doc, shop)
    assert [d.short() for d in exc.value.diagnostics] == [
        "5:5: 'retries' has no effect on a sleep step"]
    assert "     = hint: only steps that call something" in str(exc.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(
        ["${steps.a}", "${", "a", "1s", "m:f", "db", "put", "${item}", "${result}", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from([*BODIES, *MODIFIERS, "tag", "if", "args", "steps", "items",
                         "cases", "default", "database", "event", "data", "name", "x"]),
        inner, max_size=4),
    max_leaves=20))
def test_arbitrary_step_trees_only_produce_diagnostics(shop: p.ProductSpec, steps: Any) -> None:
    text = json.dumps({"workflow": "w", "steps": steps if isinstance(steps, list) else [steps]})
    plan, diagnostics = compile_workflow(load_text(text, "w.yaml"), shop)
    assert plan is not None or diagnostics


_SOUP = st.lists(st.sampled_from([*"ab:-[]{}$\"' \n.\\",
    "steps", "tag: ", "sleep: ", "${", "}", "python: ", "- ", "workflow: w\n", "if: ",
    "foreach: ", "items: ", "rollback: ", "database.insert: ", "  "]), max_size=40).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SOUP)
def test_arbitrary_text_only_produces_diagnostics(shop: p.ProductSpec, text: str) -> None:
    try:
        doc = load_text(text, "w.yaml")
    except CompileError as e:
        assert e.diagnostics
        return
    plan, diagnostics = compile_workflow(doc, shop)
    assert plan is not None or diagnostics


# -- folders --------------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_load_specs_collects_errors_of_all_files(tmp_path: Path) -> None:
    write(tmp_path, {
        "shop/product.yaml": "product: shop\nenvs: [dev]\n",
        "shop/workflows/a.yaml": "workflow: a\nsteps:\n  - sleep: soon\n",
        "shop/workflows/b.yaml": "workflow: b\nsteps:\n  - log: {message: '${steps.x}'}\n",
        "shop/workflows/c.yml": "workflow: c\nsteps: [{sleep: 1s}]\n",
        "other/product.yaml": "product: not-other\nenvs: [dev]\n",
    })
    with pytest.raises(CompileError) as exc:
        load_specs(tmp_path)
    got = [(Path(d.path).relative_to(tmp_path).as_posix(), d.short())
           for d in exc.value.diagnostics]
    assert [g[0] for g in got] == ["other/product.yaml", "shop/workflows/a.yaml",
                                   "shop/workflows/b.yaml"]
    assert got[0][1] == "1:10: product 'not-other' lives in folder 'other'"
    assert got[2][1] == "3:29: unknown step 'x'"


def test_one_product_folder_and_missing_folders(tmp_path: Path) -> None:
    write(tmp_path, {"shop/product.yaml": "product: shop\nenvs: [dev]\n",
                     "shop/workflows/a.yaml": "workflow: a\nsteps: [{sleep: 1s}]\n"})
    assert list(load_specs(tmp_path / "shop").products) == ["shop"]
    with pytest.raises(CompileError, match=r"no product\.yaml found"):
        load_specs(tmp_path / "shop" / "workflows")
    with pytest.raises(CompileError, match="no such file or directory"):
        load_specs(tmp_path / "nowhere")


def test_ductwork_refuses_invalid_specs(tmp_path: Path) -> None:
    write(tmp_path, {"shop/product.yaml": "product: shop\nenvs: [dev]\n",
                     "shop/workflows/a.yaml": "workflow: a\nsteps: [{sleep: 1, tag: [x]}]\n"})
    with pytest.raises(CompileError, match=r"a\.yaml:2:25: 'tag' must be a string, not a list"):
        Ductwork(specs=tmp_path, store="sqlite://:memory:")


# -- commands ---------------------------------------------------------------------------------


def test_validate_passes_on_the_examples(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", "specs/"]) == 0  # python: targets imported, by default
    out = capsys.readouterr().out.strip()
    assert out.startswith("ok: ") and out.endswith("file(s) checked"), out  # no warnings
    assert main(["validate", "--no-import", "--strict"]) == 0
    assert main(["validate", "--import"]) == 0  # the old flag still works
    capsys.readouterr()


def test_validate_reports_like_a_compiler(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "specs", tmp_path / "specs", ignore=NO_STATE)
    wf = tmp_path / "specs" / "my-product" / "workflows" / "charge-payment.yaml"
    wf.write_text(wf.read_text().replace("${steps.charge-payment.id}", "${steps.chrage.id}", 1))
    line = '      data: {action: payment_charged, order_id: "${steps.chrage.id}"}'
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "specs"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "specs/my-product/workflows/charge-payment.yaml:37:58: unknown step 'chrage'",
        f"  37 | {line}",
        "     | " + " " * 57 + "^~~~~~",
        "     = hint: did you mean 'charge-payment'?",
    ]
    assert out.rstrip().endswith("1 error in 1 file")
    # one file only; and --json for machines
    assert main(["validate", "specs/my-product/workflows/user-onboarding.yaml"]) == 0
    capsys.readouterr()
    assert main(["validate", "--json", str(wf)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["diagnostics"] == [{
        "path": "specs/my-product/workflows/charge-payment.yaml", "line": 37, "col": 58,
        "message": "unknown step 'chrage'", "hint": "did you mean 'charge-payment'?",
        "severity": "error"}]


def test_validate_import_finds_missing_python_targets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {
        "specs/shop/product.yaml": "product: shop\nenvs: [dev]\n",
        "specs/shop/workflows/a.yaml": """\
            workflow: a
            steps:
              - tag: x
                python: helpers_for_a:missing
              - tag: y
                python: helpers_for_a:present
              - tag: z
                python: no_such_module_xyz:fn
        """,
        "helpers_for_a.py": "def present(ctx):\n    return 1\n",
    })
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["validate", "--no-import", "specs"]) == 0
    capsys.readouterr()
    assert main(["validate", "--json", "specs"]) == 1
    messages = [(d["line"], d["message"]) for d in
                json.loads(capsys.readouterr().out)["diagnostics"]]
    assert messages == [
        (4, "module 'helpers_for_a' has no function 'missing'"),
        (8, "cannot import 'no_such_module_xyz': ModuleNotFoundError: No module named "
            "'no_such_module_xyz'"),
    ]


def test_graph_prints_mermaid(capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["graph", "my-product", "charge-payment"]) == 0
    assert capsys.readouterr().out == textwrap.dedent("""\
        flowchart TD
            n1(["start my-product/charge-payment"])
            n2["charge-payment: action.run stripe/create-charge (retries 2)"]
            n1 --> n2
            n3>"rollback charge-payment: action.run stripe/refund-charge"]
            n2 -.->|"rollback"| n3
            n4["record-payment: database.insert audit-db/create-log"]
            n2 --> n4
            n5(["output"])
            n4 --> n5
    """)
    assert main(["graph", "my-product", "order-fulfilment", "--specs", "specs"]) == 0
    chart = capsys.readouterr().out
    assert 'n12{"ship: switch"}' in chart
    assert "-.->|\"next item\"|" in chart
    assert "|\"default(ctx.input.shipping, 'standard') == 'express'\"|" in chart
    assert main(["graph", "my-product", "nope"]) == 1
    assert "Workflow not found: my-product/nope" in capsys.readouterr().err
