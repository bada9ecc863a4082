"""Several providers for one resource in one environment: the pool's config, read and checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ductwork.connectors.base import Problem
from ductwork.connectors.checks import Detail
from ductwork.connectors.util import duration_problem, is_ref
from ductwork.util.durations import parse_ms
from ductwork.util.suggest import did_you_mean

STRATEGIES = ("fallback", "quota")
# Keys of an env's config that holds a `providers:` list (the members carry the rest).
POOL_KEYS = ("providers", "strategy", "retries", "retry_delay", "breaker", "window")
# Keys of one member that belong to the pool; every other key is the provider's own config.
MEMBER_KEYS = ("name", "weight", "limit", "retries", "retry_delay")
BREAKER_KEYS = ("failures", "cooldown")

DEFAULT_FAILURES = 5
DEFAULT_COOLDOWN_MS = 30_000.0
DEFAULT_WINDOW_MS = 60_000.0
DEFAULT_RETRY_DELAY_MS = 200.0


@dataclass(frozen=True)
class Member:
    """One provider of a pool: its name, its share and limit, its retries, its own config."""

    name: str
    config: dict[str, Any]
    weight: int = 1
    limit: int | None = None
    retries: int = 0
    retry_delay_ms: float = DEFAULT_RETRY_DELAY_MS


@dataclass(frozen=True)
class Pool:
    """`providers:` of one env: tried in order (fallback) or spread by weight (quota)."""

    strategy: str
    members: tuple[Member, ...]
    failures: int = DEFAULT_FAILURES
    cooldown_ms: float = DEFAULT_COOLDOWN_MS
    window_ms: float = DEFAULT_WINDOW_MS

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)


def is_pool(config: Any) -> bool:
    return isinstance(config, Mapping) and "providers" in config


def read_pool(config: Mapping[str, Any]) -> Pool:
    """The pool of a config that passed `pool_problems` (references resolved); ValueError
    says what is wrong when it did not."""
    problems = [(path, m) for path, m in pool_problems(config)
                if getattr(m, "severity", "error") == "error"]  # a warning does not stop it
    if problems:
        path, message = problems[0]
        at = ".".join(str(p) for p in path)
        raise ValueError(f"{at}: {message}" if at else message)
    retries = int(config.get("retries") or 0)
    delay = _ms(config.get("retry_delay"), DEFAULT_RETRY_DELAY_MS)
    breaker = dict(config.get("breaker") or {})
    members = []
    for item in config["providers"]:
        own = {k: v for k, v in item.items() if k not in MEMBER_KEYS}
        members.append(Member(
            name=str(item["name"]), config=own, weight=int(item.get("weight", 1)),
            limit=None if item.get("limit") is None else int(item["limit"]),
            retries=int(item.get("retries", retries)),
            retry_delay_ms=_ms(item.get("retry_delay"), delay)))
    return Pool(strategy=str(config.get("strategy") or "fallback"), members=tuple(members),
                failures=int(breaker.get("failures", DEFAULT_FAILURES)),
                cooldown_ms=_ms(breaker.get("cooldown"), DEFAULT_COOLDOWN_MS),
                window_ms=_ms(config.get("window"), DEFAULT_WINDOW_MS))


def _ms(value: Any, default: float) -> float:
    ms = parse_ms(value) if value is not None else None
    return default if ms is None else ms


def pool_problems(config: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a pool's own keys (paths relative to the env's config); each
    member's provider config is checked by its provider's validator."""
    out: list[Problem] = []
    for key in config:
        if key not in POOL_KEYS:
            out.append(((key,), Detail(
                f"unknown key '{key}' beside `providers:`",
                did_you_mean(str(key), POOL_KEYS)
                or f"move '{key}' into each provider's item (each provider has its own "
                   f"settings); beside `providers:` go {', '.join(POOL_KEYS[1:])}",
                key=True)))
    strategy = config.get("strategy", "fallback")
    if strategy not in STRATEGIES:
        out.append((("strategy",), Detail(
            f"unknown strategy {strategy!r}",
            "write 'fallback' (in order, the next on failure) or 'quota' (spread by weight)"
            + did_you_mean(str(strategy), STRATEGIES, prefix="; "))))
    out += _count("retries", config.get("retries"), (), minimum=0)
    out += _duration(("retry_delay",), config.get("retry_delay"))
    out += _duration(("window",), config.get("window"), nonzero=True)
    breaker = config.get("breaker")
    if breaker is not None:
        if not isinstance(breaker, Mapping):
            out.append((("breaker",), Detail(
                "breaker must be a mapping", "write breaker: {failures: 3, cooldown: 30s}")))
        else:
            for key in breaker:
                if key not in BREAKER_KEYS:
                    out.append((("breaker", key), Detail(
                        f"unknown key '{key}' in breaker",
                        "a breaker takes failures (in a row before it opens) and cooldown "
                        "(how long the provider is skipped)"
                        + did_you_mean(str(key), BREAKER_KEYS, prefix="; "), key=True)))
            out += _count("failures", breaker.get("failures"), ("breaker",), minimum=1)
            out += _duration(("breaker", "cooldown"), breaker.get("cooldown"), nonzero=True)
    providers = config.get("providers")
    if not isinstance(providers, list) or not providers:
        out.append((("providers",), Detail(
            "providers must be a non-empty list",
            "write providers: [{name: primary, ...}, {name: backup, ...}], each item one "
            "provider's config with a name")))
        return out
    seen: set[str] = set()
    for i, item in enumerate(providers):
        at: tuple[str | int, ...] = ("providers", i)
        if not isinstance(item, Mapping):
            out.append((at, Detail("a provider must be a mapping",
                                   "write {name: primary, provider: ..., ...}")))
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name:
            out.append((at, Detail("this provider has no name",
                                   "give each provider a name: {name: primary, ...}; results "
                                   "and `ductwork doctor` report it")))
        elif name in seen:
            out.append(((*at, "name"), Detail(f"two providers are named '{name}'",
                                              "give each provider of the list its own name")))
        else:
            seen.add(name)
        if item.get("providers") is not None:
            out.append(((*at, "providers"), Detail("a provider cannot list providers itself",
                                                   "flatten the list: one level of providers",
                                                   key=True)))
        out += _count("weight", item.get("weight"), at, minimum=1)
        out += _count("limit", item.get("limit"), at, minimum=1)
        out += _count("retries", item.get("retries"), at, minimum=0)
        out += _duration((*at, "retry_delay"), item.get("retry_delay"))
        if config.get("strategy", "fallback") == "fallback":
            for key in ("weight", "limit"):
                if key in item:
                    out.append(((*at, key), Detail(
                        f"'{key}' is read by strategy quota only",
                        "add strategy: quota to the env to spread calls by weight and limit, "
                        f"or remove '{key}'", key=True, severity="warning")))
    return out


def _count(key: str, value: Any, at: tuple[str | int, ...], *, minimum: int) -> list[Problem]:
    if value is None or is_ref(value):
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        example = 100 if key == "limit" else max(minimum, 3)
        return [((*at, key), Detail(f"{key} must be a whole number >= {minimum}, got {value!r}",
                                    f"write e.g. {key}: {example}"))]
    return []


def _duration(path: tuple[str | int, ...], value: Any, *, nonzero: bool = False
              ) -> list[Problem]:
    problem = duration_problem(str(path[-1]), value, allow_zero=not nonzero)
    if problem is None:
        return []
    severity = "warning" if "means" in problem and "milliseconds" in problem else "error"
    return [(path, Detail(problem, "write e.g. \"500ms\", \"30s\" or \"1m\"",
                          severity=severity))]


def member_definition(definition: Mapping[str, Any], env: str, config: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """The resource block as one member's provider validator must see it: `config` as the
    config of `env` (validators locate a config by identity inside the block)."""
    out = dict(definition)
    out["envs"] = {**dict(definition.get("envs") or {}), env: config}
    return out
