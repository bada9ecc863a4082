"""Product files -> ProductSpec: schema, environments, and each provider's config validator."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from ductwork.connectors import base as connectors
from ductwork.connectors import providers as pools
from ductwork.dsl import policies
from ductwork.dsl import vocabulary as v
from ductwork.dsl.diagnostics import WARNING, Diagnostic, did_you_mean, known
from ductwork.dsl.loader import DataPath, Document
from ductwork.dsl.plan import ProductSpec
from ductwork.dsl.schema import checker as schema_check
from ductwork.dsl.secrets import SECRET_REF, secret_findings
from ductwork.errors import DuctworkError

# The warning `installed` gives; `ductwork validate --env` reads the env back from it.
MISSING_PACKAGE = re.compile(r"in env '(?P<env>[^']+)', whose package \S+ is not installed here")


def compile_product(doc: Document, folder: str | None = None
                    ) -> tuple[ProductSpec | None, list[Diagnostic]]:
    """Check one product file; returns the spec (even with errors, for workflow checks)."""
    chk = _ProductCheck(doc, list(schema_check.check(doc, "product")))
    data = doc.data
    if not isinstance(data, dict):
        return None, chk.diagnostics
    name = data.get("product")
    if not isinstance(name, str):
        name = folder or "?"
    elif folder is not None and name != folder:
        chk.fail(("product",), f"product '{name}' lives in folder '{folder}'",
                 "the folder name is the product name: rename one of them")
    # A misspelt reference is said first: a provider's validator would read it as a value.
    findings = secret_findings(data)
    for found in findings:
        if found.reference:
            chk.fail(found.path, found.message, found.hint, offset=found.offset,
                     length=found.length)
            chk.taken.add(doc.locate(found.path, offset=found.offset))
    envs_raw = data.get("envs")
    envs = tuple(e for e in envs_raw if isinstance(e, str)) if isinstance(envs_raw, list) else ()
    resources: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in v.KIND_SECTION}
    for section, kind in v.SECTIONS.items():
        block = data.get(section)
        if not isinstance(block, dict):
            continue
        for rname, definition in block.items():
            if isinstance(definition, dict):
                resources[kind][rname] = copy.deepcopy(definition)
                chk.resource(section, kind, rname, definition, envs)
    for section, kind in policies.POLICY_SECTIONS.items():
        block = data.get(section)
        for pname, definition in (block.items() if isinstance(block, dict) else ()):
            if isinstance(definition, dict):
                resources[kind][pname] = copy.deepcopy(definition)
                policies.check_policy(chk.fail, section, pname, definition, resources)
    chk.app_constants(data.get("apps"))
    taken = {(d.line, d.col) for d in chk.diagnostics}
    for found in findings:
        # A provider's validator may have said it already, in its own words.
        if not found.reference and doc.locate(found.path, offset=found.offset) not in taken:
            chk.fail(found.path, found.message, found.hint, offset=found.offset,
                     length=found.length)
    base_dir = str(Path(doc.path).resolve().parent)
    spec = ProductSpec(
        name=name, title=str(data.get("name") or name),
        description=str(data.get("description") or ""), envs=envs, resources=resources,
        workflows={}, base_dir=base_dir, path=doc.path, webhooks=chk.webhooks(data, envs),
    )
    return spec, chk.diagnostics


def webhook_targets(doc: Document, spec: ProductSpec, tags: set[str]) -> list[Diagnostic]:
    """A webhook keyed by a tag that no YAML workflow of the product has: a warning, since a
    Python workflow of that tag may be defined where the server runs."""
    chk = _ProductCheck(doc, [])
    for tag in spec.webhooks:
        if tag not in tags:
            hint = did_you_mean(tag, sorted(tags)) or (
                f"the product's YAML workflows: {known(sorted(tags))}" if tags else
                "the product has no YAML workflow yet")
            chk.fail(("webhooks", tag), f"webhook '{tag}' names no workflow of product "
                     f"'{spec.name}' (fine if a Python workflow '{tag}' is defined where the "
                     "server runs)", hint, key=True, severity=WARNING)
    return chk.diagnostics


class _ProductCheck:
    """The diagnostics of one product file, and the spots already reported (said once)."""

    def __init__(self, doc: Document, diagnostics: list[Diagnostic]) -> None:
        self.doc, self.diagnostics = doc, diagnostics
        self.taken: set[tuple[int, int]] = set()

    def fail(self, path: DataPath, message: str, hint: str | None = None, *, key: bool = False,
             offset: int | None = None, length: int | None = None,
             severity: str = "error") -> None:
        doc = self.doc
        line, col = doc.locate(path, key=key, offset=offset)
        if length is None:
            length = len(str(path[-1])) if key and path else doc.width(path)
        d = Diagnostic(doc.path, line, col, message, hint, doc.source_line(line), length,
                       severity)
        if d not in self.diagnostics:  # validators of several envs may report a block twice
            self.diagnostics.append(d)

    def app_constants(self, apps: Any) -> None:
        """An app's `constants:` are written as they are: a `${...}` there is a mistake."""
        for app, definition in (apps.items() if isinstance(apps, dict) else ()):
            consts = definition.get("constants") if isinstance(definition, dict) else None
            for key, value in (consts.items() if isinstance(consts, dict) else ()):
                if isinstance(value, str) and "${" in value:
                    self.fail(("apps", app, "constants", key), f"constant '{key}' of app "
                              f"'{app}' holds a `${{...}}` reference, but constants are "
                              "written as they are, the same in every env",
                              f"move it to `variables:` under each of apps.{app}.envs: "
                              "variables resolve ${env.NAME} and ${secrets.NAME}")

    def webhooks(self, data: dict[str, Any], envs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """Each webhook's env, secret (a reference, never a value) and idempotency source."""
        block = data.get("webhooks")
        if not isinstance(block, dict):
            return {}
        out: dict[str, dict[str, Any]] = {}
        for tag, hook in block.items():
            if not isinstance(hook, dict):
                continue
            where: DataPath = ("webhooks", tag)
            env = hook.get("env")
            if isinstance(env, str) and envs and env not in envs:
                self.fail((*where, "env"), f"unknown environment '{env}' in webhook '{tag}'",
                          did_you_mean(env, envs) or f"the product declares {known(envs)}")
            secret = hook.get("secret")
            if isinstance(secret, str) and not SECRET_REF.fullmatch(secret):
                named = re.search(r"\.\s*([A-Za-z_]\w*)\s*\}", secret)
                if named is not None:
                    self.fail((*where, "secret"), f"webhook '{tag}': the secret is not a "
                              "${secrets.NAME} reference",
                              f"write ${{secrets.{named.group(1)}}}")
                else:
                    self.fail((*where, "secret"), f"webhook '{tag}': the secret is written "
                              "inline", "keep the key out of the file: write secret: "
                              "${secrets.NAME} and set NAME where the server runs")
            if hook.get("idempotency_header") and hook.get("idempotency_field"):
                self.fail((*where, "idempotency_field"), f"webhook '{tag}' takes its "
                          "idempotency key from both a header and a body field",
                          "keep one: idempotency_header or idempotency_field", key=True)
            if hook.get("tolerance") is not None and not hook.get("timestamp_header"):
                self.fail((*where, "tolerance"), f"webhook '{tag}' has a tolerance but no "
                          "timestamp_header, so there is no timestamp to hold to it",
                          "add timestamp_header: <the header your sender puts the Unix time "
                          "in>, or remove tolerance", key=True)
            out[str(tag)] = copy.deepcopy(hook)
        return out

    def resource(self, section: str, kind: str, rname: str, definition: dict[str, Any],
                 envs: tuple[str, ...]) -> None:
        """One resource: an env of the product without config, then each env's config."""
        # The validators find the env name by identity of `config` inside `definition`.
        checked = copy.deepcopy(definition)
        configs = checked.get("envs")
        if not isinstance(configs, dict):
            return
        missing = [e for e in envs if e not in configs]
        if missing:
            names = " and ".join(f"'{e}'" for e in missing)
            strays = [str(e) for e in configs if e not in envs]
            hint = (f"a step that uses it in {missing[0]} fails when it runs: add "
                    f"{missing[0]}: {{...}} under its envs")
            if strays:
                hint = f"'{strays[0]}' is no env of the product: rename it {missing[0]}, " \
                       f"or add {missing[0]}: {{...}}"
            self.fail((section, rname, "envs"), f"{v.NOUN[kind]} '{rname}' has no configuration "
                      f"for env{'s' if len(missing) > 1 else ''} {names}", hint, key=True,
                      severity=WARNING)
        for env, config in configs.items():
            if envs and env not in envs:
                self.fail((section, rname, "envs", env),
                          f"unknown environment '{env}' in {kind} '{rname}'",
                          did_you_mean(env, envs) or f"the product declares {known(envs)}",
                          key=True)
            if isinstance(config, dict) and pools.is_pool(config):
                self.pool(section, kind, rname, checked, str(env), config)
            elif isinstance(config, dict):
                self.installed(section, kind, rname, env, config)
                self.config(section, kind, rname, checked, config)

    def pool(self, section: str, kind: str, rname: str, checked: dict[str, Any], env: str,
             config: dict[str, Any]) -> None:
        """An env that lists several providers: the pool's own keys, then each member's
        config by its provider's validator (as if it were the env's whole config)."""
        at: DataPath = (section, rname, "envs", env)
        said = {(d.line, d.col) for d in self.diagnostics}  # the schema's, said once
        own = {k: val for k, val in config.items()
               if not (kind == "action" and k == "variables")}  # the app's (ctx.variable)
        for path, problem in pools.pool_problems(own):
            on_key = getattr(problem, "key", False)
            if self.doc.locate((*at, *path), key=on_key) in said:
                continue
            self.fail((*at, *path), str(problem), getattr(problem, "hint", None), key=on_key,
                      severity=getattr(problem, "severity", "error"))
        items = config.get("providers")
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue
            member = {k: val for k, val in item.items() if k not in pools.MEMBER_KEYS}
            self.installed(section, kind, rname, env, member, at=(*at, "providers", i))
            self.config(section, kind, rname, pools.member_definition(checked, env, member),
                        member, remap=(("envs", env), ("envs", env, "providers", i)))

    def installed(self, section: str, kind: str, rname: str, env: str,
                  config: dict[str, Any], at: DataPath | None = None) -> None:
        """A provider whose client library is not installed here: a warning (the machine
        that validates, a CI runner say, need not be the one that runs it)."""
        provider = config.get("provider", connectors.DEFAULT_PROVIDER.get(kind))
        if not isinstance(provider, str) or provider not in v.PROVIDERS[kind]:
            return
        module = connectors.uninstalled_module(provider)
        if module is None:
            return
        path: DataPath = at or (section, rname, "envs", env)
        path = (*path, "provider") if "provider" in config else path
        said = "" if "provider" in config else " (the default)"
        self.fail(path, f"{v.NOUN[kind]} '{rname}' uses provider '{provider}'{said} in env "
                  f"'{env}', whose package {module} is not installed here",
                  f"{connectors.pip_install(provider)} where it runs", key=True,
                  severity=WARNING)

    def config(self, section: str, kind: str, rname: str, checked: dict[str, Any],
               config: dict[str, Any],
               remap: tuple[DataPath, DataPath] | None = None) -> None:
        """The provider's own validator on one env's config, each problem located (`remap`:
        a path prefix to rewrite, for a member of a providers list)."""
        for problem_path, problem in _validate(kind, checked, config):
            if remap is not None and tuple(problem_path[:len(remap[0])]) == remap[0]:
                problem_path = (*remap[1], *problem_path[len(remap[0]):])
            message, _, hint = problem.partition("; did you mean ")
            last = problem_path[-1] if problem_path else None
            # "unknown key 'x'" points at the key, other problems at the value;
            # a Detail (connectors.checks) knows its hint and its exact spot.
            offset = getattr(problem, "offset", None)
            on_key = getattr(problem, "key", False) or (
                offset is None and isinstance(last, str) and "unknown" in message
                and f"'{last}'" in message)
            if self.doc.locate((section, rname, *problem_path), key=on_key,
                               offset=offset) in self.taken:
                continue
            self.fail((section, rname, *problem_path), message,
                      getattr(problem, "hint", None)
                      or (f"did you mean {hint}" if hint else None),
                      key=on_key, offset=offset, length=getattr(problem, "length", None))


def _validate(kind: str, definition: dict[str, Any], config: dict[str, Any]
              ) -> list[tuple[tuple[str | int, ...], str]]:
    provider = config.get("provider")
    if provider is not None and provider not in v.PROVIDERS[kind]:
        return []  # the schema reported it
    try:
        return connectors.validate_resource(kind, definition, config)
    except DuctworkError as e:
        return [((), str(e))]
    except Exception as e:  # a validator bug must not hide the user's other errors
        return [((), f"the {kind} config validator failed: {type(e).__name__}: {e}")]
