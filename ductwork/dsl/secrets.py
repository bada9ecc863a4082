"""Secrets in a product file: values written inline, and references the resolver cannot read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ductwork.dsl import vocabulary as v
from ductwork.dsl.loader import DataPath
from ductwork.util.secretkeys import secret_key

# What connectors.base.resolve_refs replaces; any other `${...}` in a config stays as text.
REF = re.compile(r"\$\{\s*(env|secrets)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
# A whole value that is one secret reference (a webhook's key): `${secrets.NAME}`.
SECRET_REF = re.compile(r"\s*\$\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\s*")
_ANY_REF = re.compile(r"\$\{\{[^}]*\}\}|\$\{[^}]*\}?")  # ${{ x }} as GitHub Actions writes it
_WRITTEN = re.compile(r"^\{?\s*([A-Za-z_]+)\s*(?:\.|:|/|\s)\s*([A-Za-z_][\w\-]*)\s*\}?$")
_SHELL = re.compile(r"(?<![\w$])\$(?:(env|secrets?)\.([A-Za-z_]\w*)|([A-Z][A-Z0-9_]+)\b)")
_JINJA = re.compile(r"(?<!\$)\{\{\s*(env|secrets?)\.([A-Za-z_]\w*)\s*\}\}")

# Under `auth:` (apps), the api_key scheme keeps its key in `value`.
AUTH_SECRET_KEYS = frozenset({"value"})
# Values that look like credentials wherever they are written: (pattern, what it is).
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{8,}"), "a Stripe secret key"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\b(?:ghp|gho|ghs|ghu)_[A-Za-z0-9]{20,}|\bgithub_pat_\w{20,}"),
     "a GitHub token"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"), "a JWT"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
)
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@/\s]+)(@)", re.IGNORECASE)
_BEARER = re.compile(r"^(Bearer|Basic|Token)\s+(\S{8,})$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    path: DataPath
    message: str
    hint: str
    offset: int | None = None
    length: int = 1
    reference: bool = False  # a misspelt reference (else a secret written inline)


def secret_findings(data: dict[str, Any]) -> list[Finding]:
    """Every inline secret and misspelt reference in a product file's resources."""
    out: list[Finding] = []
    for section in v.SECTIONS:
        block = data.get(section)
        if not isinstance(block, dict):
            continue
        for rname, definition in block.items():
            if not isinstance(definition, dict):
                continue
            for path, value in _leaves(definition, (section, rname)):
                in_config = len(path) > 3 and path[2] == "envs"
                out += _check(path, value, str(rname), in_config)
    return out


def _leaves(value: Any, path: DataPath) -> Iterator[tuple[DataPath, Any]]:
    if isinstance(value, dict):
        for k, item in value.items():
            yield from _leaves(item, (*path, k))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path, value


def _name(resource: str, key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{resource}_{key}").strip("_").upper()


def _check(path: DataPath, value: Any, resource: str, in_config: bool) -> list[Finding]:
    key = str(path[-1])
    if in_config:
        wrong = _misspelt(path, value) if isinstance(value, str) else []
        if wrong:
            return wrong
    if isinstance(value, str) and REF.search(value):
        return []
    secret_key = in_config and _is_secret_key(path)
    if isinstance(value, str):
        found = _inline(path, value, resource, key, in_config)
        if found:
            return [found]
    if secret_key and value not in (None, "", True, False):
        name = _name(resource, key)
        return [Finding(path, f"'{key}' is a secret written inline in product.yaml",
                        f'write {key}: "${{secrets.{name}}}" and pass the value in '
                        f'Ductwork(secrets={{...}}), or "${{env.{name}}}" to read it from the '
                        "environment")]
    return []


def _inline(path: DataPath, value: str, resource: str, key: str,
            in_config: bool) -> Finding | None:
    """A value that looks like a credential, whatever its key."""
    bearer = _BEARER.match(value.strip()) if in_config else None
    if bearer and len(path) > 1 and "header" in str(path[-2]).lower():
        name = _name(resource, "token")
        return Finding(path, f"a {bearer.group(1)} credential written inline in a header",
                       f'write {key}: "{bearer.group(1)} ${{secrets.{name}}}"',
                       value.index(bearer.group(2)), len(bearer.group(2)))
    found = _URL_PASSWORD.match(value)
    if found:
        name = _name(resource, "password")
        fixed = found.group(1) + f"${{secrets.{name}}}" + value[found.end(2):]
        return Finding(path, "a password written inline in a URL", f'write "{fixed}"',
                       found.start(2), len(found.group(2)))
    for pattern, what in PATTERNS:
        m = pattern.search(value)
        if m:
            name = _name(resource, key)
            return Finding(path, f"{what} written inline in product.yaml",
                           f'write {key}: "${{secrets.{name}}}" (or "${{env.{name}}}") and keep '
                           "the value out of the file", m.start(), min(len(m.group(0)), 12))
    return None


def _is_secret_key(path: DataPath) -> bool:
    key = str(path[-1])  # header names too: X-Api-Key, Auth-Token
    if secret_key(key):
        return True
    return key.lower() in AUTH_SECRET_KEYS and len(path) > 1 and str(path[-2]).lower() == "auth"


def _misspelt(path: DataPath, text: str) -> list[Finding]:
    """`${secret.X}`, `${env:X}`, `$X`, `{{ env.X }}`: written like a reference, read as text."""
    out: list[Finding] = []
    for m in _ANY_REF.finditer(text):
        token = m.group(0)
        if REF.fullmatch(token):
            continue
        out.append(Finding(path, f"'{token}' is not a reference: the config would use it as "
                           "text", _fix(token), m.start(), len(token), True))
    for m in _SHELL.finditer(text):
        root, name = (m.group(1), m.group(2)) if m.group(2) else (None, m.group(3))
        out.append(Finding(path, f"'{m.group(0)}' is not expanded: a product file is not a "
                           "shell", f"write {_suggest(root, name)}", m.start(), len(m.group(0)),
                           True))
    for m in _JINJA.finditer(text):
        out.append(Finding(path, f"'{m.group(0)}' is not a reference: the config would use it "
                           "as text", f"write {_suggest(m.group(1), m.group(2))}", m.start(),
                           len(m.group(0)), True))
    return out


def _fix(token: str) -> str:
    inner = token[2:-1] if token.endswith("}") else token[2:]
    if not token.endswith("}"):
        found = _WRITTEN.match(inner.strip())
        if found:
            return f"close it: {_suggest(found.group(1), found.group(2))}"
        return "close it with '}': ${env.NAME} or ${secrets.NAME}"
    found = _WRITTEN.match(inner.strip())
    if found:
        fixed = _suggest(found.group(1), found.group(2))
        if "-" in found.group(2):
            return f"write {fixed}: a name is letters, digits and _"
        return f"write {fixed}"
    bare = re.fullmatch(r"\s*([A-Za-z_][\w\-]*)\s*", inner)
    if bare:
        name = _clean(bare.group(1))
        return f"write ${{env.{name}}} (the environment) or ${{secrets.{name}}} " \
               "(Ductwork(secrets=...))"
    return "references are ${env.NAME} (the environment) and ${secrets.NAME} " \
           "(Ductwork(secrets=...))"


def _suggest(root: str | None, name: str) -> str:
    word = (root or "").lower()
    fixed = _clean(name)
    if word.startswith("secret") or word in ("vault", "secure"):
        return f"${{secrets.{fixed}}}"
    if word in ("env", "environ", "environment", "os", "envs", ""):
        return f"${{env.{fixed}}}"
    return f"${{env.{fixed}}} or ${{secrets.{fixed}}}"


def _clean(name: str) -> str:
    return re.sub(r"\W", "_", name.replace("-", "_"))
