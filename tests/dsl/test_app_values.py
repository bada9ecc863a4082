"""`ductwork validate` on app variables and constants: the product file's shape, and what
`${variables.<app>.<name>}` / `${constants.<app>.<name>}` name, at file:line."""

from __future__ import annotations

from pathlib import Path

from ductwork.dsl.specs import check_specs

PRODUCT = """\
product: shop
envs: [dev, prd]
apps:
  stripe:
    envs:
      dev: {base_url: "http://127.0.0.1:9", variables: {api_version: "2024-06-20"}}
      prd: {base_url: "https://api.stripe.com",
            variables: {api_version: "${secrets.VERSION}", region: eu}}
    constants: {default_currency: usd}
    events: {charge: {method: POST, path: /charges}}
"""
GOOD = """\
workflow: good
steps:
  - set:
      version: "${variables.stripe.api_version}"
      region: "${variables.stripe.region}"
      currency: "${constants.stripe.default_currency}"
      guarded: "${default(variables.stripe.other, 1)}"
"""


def write(root: Path, workflow: str, product: str = PRODUCT) -> Path:
    (root / "shop" / "workflows").mkdir(parents=True)
    (root / "shop" / "product.yaml").write_text(product)
    (root / "shop" / "workflows" / "w.yaml").write_text(workflow)
    return root


def said(root: Path) -> list[tuple[str, int, str, str | None]]:
    report = check_specs(root)
    return [(Path(d.path).name, d.line, d.message, d.hint) for d in report.errors]


def test_declared_values_pass(tmp_path: Path) -> None:
    assert said(write(tmp_path / "specs", GOOD.replace("good", "w"))) == []


def test_an_unknown_app_or_name_is_reported_at_its_line_with_a_suggestion(
        tmp_path: Path) -> None:
    workflow = """\
workflow: w
steps:
  - set:
      a: "${variables.strpe.api_version}"
      b: "${constants.stripe.default_curency}"
      c: "${variables.stripe.api_versio}"
      d: "${variables.stripe.nothing_like_it}"
"""
    assert said(write(tmp_path / "specs", workflow)) == [
        ("w.yaml", 4, "unknown app 'strpe' in variables.strpe", "did you mean 'stripe'?"),
        ("w.yaml", 5, "app 'stripe' has no constant 'default_curency'",
         "did you mean 'default_currency'?"),
        ("w.yaml", 6, "app 'stripe' has no variable 'api_versio'",
         "did you mean 'api_version'?"),
        ("w.yaml", 7, "app 'stripe' has no variable 'nothing_like_it'",
         "declare it in `variables:` under each env of apps.stripe.envs of the product file"),
    ]


def test_queries_cannot_read_app_values(tmp_path: Path) -> None:
    workflow = GOOD.replace("good", "w") + """\
queries:
  version: "${variables.stripe.api_version}"
  currency: "${constants.stripe.default_currency}"
"""
    assert [(line, msg) for _, line, msg, _ in said(write(tmp_path / "specs", workflow))] == [
        (9, "a query cannot read variables.*"), (10, "a query cannot read constants.*")]


def test_the_product_files_shape(tmp_path: Path) -> None:
    product = PRODUCT.replace(
        '    constants: {default_currency: usd}\n',
        '    constants: {default_currency: usd, key: "${secrets.KEY}"}\n'
        '    variables: {region: eu}\n').replace(
        'variables: {api_version: "2024-06-20"}', 'variables: [api_version]')
    assert said(write(tmp_path / "specs", GOOD.replace("good", "w"), product)) == [
        ("product.yaml", 6, "'variables' must be a mapping, not a list",
         "a mapping from each name to its settings, not a list: variables: {api_version: ...}"),
        ("product.yaml", 9, "constant 'key' of app 'stripe' holds a `${...}` reference, but "
         "constants are written as they are, the same in every env",
         "move it to `variables:` under each of apps.stripe.envs: variables resolve "
         "${env.NAME} and ${secrets.NAME}"),
        ("product.yaml", 10, "unknown key 'variables' in app 'stripe'",
         "'variables' goes inside each entry of 'envs': envs: {<name>: {variables: "
         "{region: eu}}}"),
    ]
