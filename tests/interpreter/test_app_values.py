"""App variables (per env) and constants of the product file: ctx.variable / ctx.constant in
Python, `${variables.<app>.<name>}` / `${constants.<app>.<name>}` in YAML, and the errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.dsl.specs import check_specs

PRODUCT = """\
product: shop
envs: [dev, prd]
apps:
  stripe:
    envs:
      dev:
        base_url: "http://127.0.0.1:9"
        variables: {api_version: "2024-06-20", webhook_key: "${secrets.STRIPE_HOOK_KEY}",
                    limits: {per_minute: 10}}
      prd:
        base_url: "https://api.stripe.com"
        auth: {type: bearer, token: "${secrets.STRIPE_KEY}"}
        variables: {api_version: "2025-01-01", webhook_key: "${env.PRD_HOOK_KEY}",
                    limits: {per_minute: 100}}
    constants: {default_currency: usd, fee_percent: 2.9}
    events: {charge: {method: POST, path: /charges}}
  courier:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events: {ship: {method: POST, path: /ship}}
"""

WORKFLOW = """\
workflow: app-values
steps:
  - tag: read
    set:
      version: "${variables.stripe.api_version}"
      per_minute: "${variables.stripe.limits.per_minute}"
      currency: "${constants.stripe.default_currency}"
      fee: "${constants.stripe.fee_percent}"
      header: "v${variables.stripe.api_version}"
      missing: "${default(variables.courier.region, 'eu')}"
output:
  version: "${state.version}"
  per_minute: "${state.per_minute}"
  currency: "${state.currency}"
  fee: "${state.fee}"
  header: "${state.header}"
  missing: "${state.missing}"
"""


def write(root: Path, workflow: str | None = WORKFLOW) -> Path:
    (root / "shop" / "workflows").mkdir(parents=True)
    (root / "shop" / "product.yaml").write_text(PRODUCT)
    if workflow is not None:
        (root / "shop" / "workflows" / "app-values.yaml").write_text(workflow)
    return root


def open_dw(tmp_path: Path, **kw: Any) -> Ductwork:
    kw.setdefault("secrets", {"STRIPE_HOOK_KEY": "whsec_dev_1", "STRIPE_KEY": "sk_prd"})
    kw.setdefault("environ", {"PRD_HOOK_KEY": "whsec_prd_2"})
    return Ductwork(specs=write(tmp_path / "specs"), store=f"sqlite:///{tmp_path / 'runs.db'}",
                    **kw)


async def test_python_reads_each_envs_variables_and_the_apps_constants(tmp_path: Path) -> None:
    async with open_dw(tmp_path) as dw:
        @dw.workflows.workflow(product="shop", tag="read")
        async def read(ctx: Any) -> Any:
            hook_key = ctx.variable("stripe", "webhook_key")
            return {"version": ctx.variable("stripe", "api_version"),
                    "limits": ctx.variable("stripe", "limits"),
                    "currency": ctx.constant("stripe", "default_currency"),
                    "fee": ctx.constant("stripe", "fee_percent"),
                    "hook_key_length": len(hook_key), "hook_key_prefix": hook_key[:6]}

        dev = await dw.workflows.execute("shop", "dev", "read", {})
        prd = await dw.workflows.execute("shop", "prd", "read", {})
    assert dev.status == prd.status == "completed", (dev.error, prd.error)
    assert dev.output == {"version": "2024-06-20", "limits": {"per_minute": 10},
                          "currency": "usd", "fee": 2.9, "hook_key_length": 11,
                          "hook_key_prefix": "whsec_"}
    # prd: its own variables, ${env.NAME} read from Ductwork(environ=...); constants the same
    assert prd.output == {"version": "2025-01-01", "limits": {"per_minute": 100},
                          "currency": "usd", "fee": 2.9, "hook_key_length": 11,
                          "hook_key_prefix": "whsec_"}


async def test_a_secret_read_through_a_variable_is_redacted(tmp_path: Path) -> None:
    async with open_dw(tmp_path) as dw:
        @dw.workflows.workflow(product="shop", tag="leak")
        async def leak(ctx: Any) -> Any:
            raise ValueError(f"bad key {ctx.variable('stripe', 'webhook_key')}")

        done = await dw.workflows.execute("shop", "dev", "leak", {})
    assert done.status == "failed"
    assert "whsec_dev_1" not in str(done.error)


@pytest.mark.parametrize(("call", "message"), [
    ("ctx.variable('strip', 'api_version')",
     "ctx.variable('strip', ...): product 'shop' has no app 'strip'; declare it under `apps:` "
     "in the product file of shop ("),
    ("ctx.variable('stripe', 'api_versoin')",
     "ctx.variable('stripe', 'api_versoin'): app 'stripe' has no variable 'api_versoin' in env "
     "'dev' (its variables: api_version, limits, webhook_key); declare it under "
     "apps.stripe.envs.dev.variables in "),
    ("ctx.constant('stripe', 'currency')",
     "ctx.constant('stripe', 'currency'): app 'stripe' has no constant 'currency' (its "
     "constants: default_currency, fee_percent); declare it under apps.stripe.constants in "),
    ("ctx.variable('courier', 'region')",
     "ctx.variable('courier', 'region'): app 'courier' has no variable 'region' in env 'dev' "
     "(its variables: none); declare it under apps.courier.envs.dev.variables in "),
])
async def test_an_unknown_app_or_name_says_where_to_declare_it(tmp_path: Path, call: str,
                                                                message: str) -> None:
    async with open_dw(tmp_path) as dw:
        @dw.workflows.workflow(product="shop", tag="bad")
        async def bad(ctx: Any) -> Any:
            app, key = call.split("'")[1], call.split("'")[3]
            read = ctx.variable if call.startswith("ctx.variable") else ctx.constant
            return read(app, key)

        done = await dw.workflows.execute("shop", "dev", "bad", {})
    assert done.status == "failed"
    text = str(done.error)
    assert text.startswith(message), text
    if "'strip'" in call:
        assert text.endswith("did you mean 'stripe'?")
    elif "api_versoin" in call:
        assert text.endswith("did you mean 'api_version'?")


async def test_an_env_without_config_and_an_unset_secret_are_clear(tmp_path: Path) -> None:
    async with open_dw(tmp_path, secrets={}) as dw:
        @dw.workflows.workflow(product="shop", tag="courier")
        async def courier(ctx: Any) -> Any:
            return ctx.variable("courier", "region")

        @dw.workflows.workflow(product="shop", tag="hook")
        async def hook(ctx: Any) -> Any:
            return ctx.variable("stripe", "api_version")

        no_env = await dw.workflows.execute("shop", "prd", "courier", {})
        unset = await dw.workflows.execute("shop", "dev", "hook", {})
    assert str(no_env.error) == (
        "ctx.variable('courier', ...): app 'courier' has no config for env 'prd' (configured: "
        "dev); add `prd:` under apps.courier.envs with its `variables:`")
    assert str(unset.error).startswith(
        "apps.stripe.envs.dev.variables: secrets.STRIPE_HOOK_KEY is not set; pass it in "
        "Ductwork(secrets={...})")


async def test_yaml_reads_variables_and_constants(tmp_path: Path) -> None:
    async with open_dw(tmp_path) as dw:
        dev = await dw.workflows.execute("shop", "dev", "app-values", {})
        prd = await dw.workflows.execute("shop", "prd", "app-values", {})
    assert dev.status == "completed", dev.error
    assert dev.output == {"version": "2024-06-20", "per_minute": 10, "currency": "usd",
                          "fee": 2.9, "header": "v2024-06-20", "missing": "eu"}
    # default() covers a name an env does not declare, not an app the env has no config for
    assert prd.status == "failed"
    assert "app 'courier' has no config for env 'prd'" in str(prd.error)


async def test_yaml_reads_each_envs_own_variables(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    write(root, WORKFLOW.replace("${default(variables.courier.region, 'eu')}", "none"))
    async with Ductwork(specs=root, store=f"sqlite:///{tmp_path / 'runs.db'}",
                        secrets={"STRIPE_KEY": "k"}, environ={"PRD_HOOK_KEY": "h"}) as dw:
        done = await dw.workflows.execute("shop", "prd", "app-values", {})
    assert done.status == "completed", done.error
    assert done.output["version"] == "2025-01-01" and done.output["per_minute"] == 100


async def test_yaml_reading_a_missing_variable_fails_the_run_with_the_names(
        tmp_path: Path) -> None:
    workflow = WORKFLOW.replace("${default(variables.courier.region, 'eu')}", "plain")
    workflow = workflow.replace("per_minute: \"${variables.stripe.limits.per_minute}\"",
                                "per_minute: \"${variables.stripe.limits.per_hour}\"")
    root = tmp_path / "specs"
    write(root, workflow)
    async with Ductwork(specs=root, store=f"sqlite:///{tmp_path / 'runs.db'}",
                        secrets={"STRIPE_HOOK_KEY": "k"}) as dw:
        done = await dw.workflows.execute("shop", "dev", "app-values", {})
    assert done.status == "failed"
    assert "has no field 'per_hour'" in str(done.error)
    assert "per_minute" in str(done.error)


async def test_an_app_with_several_providers_keeps_its_variables_beside_them(
        tmp_path: Path) -> None:
    root = tmp_path / "specs"
    (root / "pay").mkdir(parents=True)
    (root / "pay" / "product.yaml").write_text("""\
product: pay
envs: [dev]
apps:
  payments:
    envs:
      dev:
        variables: {api_version: "2024-06-20"}
        providers:
          - {name: primary, base_url: "http://127.0.0.1:9"}
          - {name: backup, base_url: "http://127.0.0.1:10"}
    events: {charge: {method: POST, path: /charges}}
""")
    assert check_specs(root).errors == []
    async with Ductwork(specs=root, store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        @dw.workflows.workflow(product="pay", tag="version")
        async def version(ctx: Any) -> Any:
            health = await ctx.healthcheck.get_status("payments")  # builds the pool
            return [ctx.variable("payments", "api_version"), len(health["providers"])]

        done = await dw.workflows.execute("pay", "dev", "version", {})
    assert done.status == "completed", done.error
    assert done.output == ["2024-06-20", 2]
