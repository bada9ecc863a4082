"""A test run's sandbox: files of file-backed resources in a temporary folder, no network."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path, PurePath

from ductwork.connectors.base import ResourceSpec
from ductwork.errors import ConnectorError

# (kind, provider) -> the config keys that name a file or folder the provider writes.
FILE_PROVIDERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("database", "sqlite"): ("path", "url"),
    ("notification", "outbox"): ("maildir",),
    ("storage", "local"): ("root",),
    ("graph", "ladybug"): ("path",),
}
MEMORY = ":memory:"


def _inside(base: Path, raw: str) -> str:
    """Where `raw` (absolute, relative, `~/...`, with `..`) lands under `base`: the same path,
    re-rooted, so two resources that shared a file still share it, and nothing escapes."""
    parts = [p for p in PurePath(os.path.normpath(os.path.expanduser(raw))).parts
             if p not in ("..", ".", os.sep, "/") and not p.endswith((":\\", ":/"))]
    return str(base.joinpath(*parts)) if parts else str(base)


def _rehome(config: dict[str, object], keys: tuple[str, ...], base: Path) -> dict[str, object]:
    out = dict(config)
    for key in keys:
        value = out.get(key)
        if not isinstance(value, str) or value == MEMORY:
            continue
        if key == "url":
            if not value.startswith("sqlite:"):
                continue  # a wrong scheme: the provider's own validation says so
            raw = value[len("sqlite:"):]
            raw = raw[3:] if raw.startswith("///") else raw[2:] if raw.startswith("//") else raw
            if raw in (MEMORY, "/" + MEMORY, ""):
                continue
            out[key] = "sqlite:///" + _inside(base, raw)
        else:
            out[key] = _inside(base, value)
    return out


class Sandbox:
    """A ConnectorRegistry.spec_hook keeping every file a resource writes under `root`
    (`root/<product>/...`, relative paths as if the product file were there) and refusing
    a resource served over the network, which a test must not reach."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def admit(self, kind: str, name: str, provider: str, env: str) -> None:
        if (kind, provider) in FILE_PROVIDERS:
            return
        raise ConnectorError(
            f"a network service ({provider}), which a test run never reaches: mock the step "
            "that uses it "
            "(mocks: {<step tag>: {result: ...}}), or its rollback "
            "(mocks: {<step tag>: {rollback: {result: ...}}})",
            kind=kind, resource=name, env=env, retryable=False)

    def prepare(self, spec: ResourceSpec) -> ResourceSpec:
        keys = FILE_PROVIDERS.get((spec.kind, spec.provider))
        if keys is None:  # the provider came from a reference: admit() could not see it
            self.admit(spec.kind, spec.name, spec.provider, spec.env)
            return spec
        base = self.root / spec.product
        base.mkdir(parents=True, exist_ok=True)
        return dataclasses.replace(spec, config=_rehome(spec.config, keys, base),
                                   base_dir=str(base))
