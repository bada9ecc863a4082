"""`fallbacks:` and `quotas:` of a product file: named lists of calls on declared resources."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ductwork.connectors import providers as pools
from ductwork.dsl import vocabulary as v
from ductwork.dsl.diagnostics import did_you_mean, known
from ductwork.dsl.loader import DataPath

# Product-file section -> strategy of its definitions (also their kind in ProductSpec.resources).
POLICY_SECTIONS = {"fallbacks": "fallback", "quotas": "quota"}
# The kinds a target may call, and the connector method each one's call goes to.
TARGET_KINDS = {"app": "action", "notification": "notification", "database": "database",
                "storage": "storage"}
TARGET_METHODS = {"action": "run", "notification": "send", "database": "execute",
                  "storage": "upload"}
TARGET_KEYS = (*TARGET_KINDS, "event", "provider")

Fail = Callable[..., None]


def check_policy(fail: Fail, section: str, name: str, definition: Any,
                 resources: Mapping[str, Mapping[str, Any]]) -> None:
    """One fallback or quota definition: its pool settings, then each provider's target."""
    at: DataPath = (section, name)
    if not isinstance(definition, dict):
        return  # the schema said it
    strategy = POLICY_SECTIONS[section]
    if "strategy" in definition:
        fail((*at, "strategy"), f"'strategy' cannot be set here: a definition under "
             f"{section}: is a {strategy}",
             f"remove 'strategy', or move the definition under "
             f"{'quotas' if strategy == 'fallback' else 'fallbacks'}:", key=True)
    pool = {k: val for k, val in definition.items() if k not in ("strategy", "description")}
    for path, problem in pools.pool_problems({**pool, "strategy": strategy}):
        if path and path[0] == "window" and strategy == "fallback":
            continue
        message, hint = str(problem), getattr(problem, "hint", None)
        if message.endswith("is read by strategy quota only"):
            key = str(path[-1])
            message = f"'{key}' is read by quotas only"
            hint = f"move the definition under quotas:, or remove '{key}'"
        fail((*at, *path), message, hint, key=getattr(problem, "key", False),
             severity=getattr(problem, "severity", "error"))
    if strategy == "fallback" and "window" in definition:
        fail((*at, "window"), "'window' is read by quotas only",
             "remove it, or move the definition under quotas:", key=True, severity="warning")
    items = definition.get("providers")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            _target(fail, (*at, "providers", i), item, resources)


def _target(fail: Fail, at: DataPath, item: dict[str, Any],
            resources: Mapping[str, Mapping[str, Any]]) -> None:
    for key in item:
        if key not in TARGET_KEYS and key not in pools.MEMBER_KEYS:
            fail((*at, key), f"unknown key '{key}' in a provider of a fallback or quota",
                 did_you_mean(str(key), (*TARGET_KEYS, *pools.MEMBER_KEYS))
                 or f"a provider takes one of {', '.join(TARGET_KINDS)}, its event, and name, "
                    "provider, weight, limit, retries, retry_delay", key=True)
    given = [k for k in TARGET_KINDS if k in item]
    if len(given) != 1:
        what = "names no resource" if not given else f"names {' and '.join(given)}"
        fail(at, f"this provider {what}",
             "give exactly one of app, notification, database, storage, with its event: "
             "{name: primary, app: stripe, event: create-charge}")
        return
    word = given[0]
    kind = TARGET_KINDS[word]
    rname = item[word]
    declared = resources.get(kind) or {}
    if not isinstance(rname, str) or rname not in declared:
        fail((*at, word), f"unknown {v.NOUN[kind]} '{rname}'",
             did_you_mean(str(rname), declared)
             or f"{v.KIND_SECTION[kind]} declared: {known(declared)}")
        return
    definition = declared[rname]
    event = item.get("event")
    events = definition.get("events") if isinstance(definition, dict) else None
    if not isinstance(event, str):
        fail(at, "this provider has no event",
             f"say which event of {v.NOUN[kind]} '{rname}' it calls: event: <name>"
             + (f" (declared: {known(events)})" if isinstance(events, dict) else ""))
    elif isinstance(events, dict) and event not in events:
        fail((*at, "event"), f"unknown event '{event}' for {v.NOUN[kind]} '{rname}'",
             did_you_mean(event, events) or f"declared: {known(events)}")
    member = item.get("provider")
    if member is not None:
        names = _member_names(definition)
        if member not in names:
            fail((*at, "provider"), f"{v.NOUN[kind]} '{rname}' has no provider named "
                 f"{member!r}",
                 did_you_mean(str(member), names) or (
                     f"its providers: {known(names)}" if names else
                     f"'provider' picks one of the resource's `providers:` list, and "
                     f"{v.NOUN[kind]} '{rname}' lists none: remove it"))


def _member_names(definition: Any) -> list[str]:
    """The names of the providers a resource lists in any env."""
    out: list[str] = []
    envs = definition.get("envs") if isinstance(definition, dict) else None
    for config in (envs or {}).values() if isinstance(envs, dict) else ():
        if pools.is_pool(config) and isinstance(config.get("providers"), list):
            for item in config["providers"]:
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and name not in out:
                    out.append(name)
    return out
