"""Helpers every connector kind shares: where a config sits in its resource block, and so on."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from ductwork.connectors.base import Problem, ResourceSpec, SecretSet
from ductwork.util.durations import parse_ms

_REF = re.compile(r"\$\{[^}]*\}")
# A plain identifier: names of graph labels and properties, SQL and Cypher parameters.
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# A bare-number duration below this many milliseconds was most likely meant as seconds.
SUSPECT_MS = 100


def is_identifier(value: Any) -> bool:
    return isinstance(value, str) and bool(IDENT.match(value))


def is_ref(value: Any) -> bool:
    """A config value that is (or contains) an unresolved ${env.X}/${secrets.X} reference.

    Validators see the config before references are resolved: such a value is checked for
    presence only, its final shape is checked when the connector is built.
    """
    return isinstance(value, str) and bool(_REF.search(value))


def env_name(definition: Mapping[str, Any], config: Mapping[str, Any]) -> str | None:
    """The name of the env whose config this is: validators get the config, not its name.

    The same object first, then an equal one, so that two envs with identical configs still
    each find their own name.
    """
    envs = definition.get("envs")
    if not isinstance(envs, Mapping):
        return None
    for name, cfg in envs.items():
        if cfg is config:
            return str(name)
    for name, cfg in envs.items():
        if cfg == config:
            return str(name)
    return None


def env_path(definition: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[str | int, ...]:
    """("envs", <name>) of this config inside the resource block, so problems point at its line."""
    name = env_name(definition, config)
    return ("envs", name) if name is not None else ("envs",)


def unknown_keys(definition: Mapping[str, Any], config: Mapping[str, Any],
                 known: Iterable[str], provider: str) -> list[Problem]:
    """A problem for each key of one env's config that the provider does not know."""
    at = env_path(definition, config)
    names = sorted(known)
    return [((*at, key), f"unknown key '{key}' for provider {provider} (known: "
             f"{', '.join(names)})") for key in sorted(set(config) - set(names))]


def describe_problems(problems: Iterable[Problem], limit: int | None = None) -> str:
    """Problems as one line for an error, "path: message; ...", the first `limit` of them."""
    items = list(problems)
    shown = items if limit is None else items[:limit]
    text = "; ".join((".".join(str(p) for p in path) + ": " if path else "") + message
                     for path, message in shown)
    return text + (f" (and {len(items) - len(shown)} more)" if len(items) > len(shown) else "")


def first_env(definition: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether to report problems of the blocks all envs share (events, tables, schema...).

    Validators run once per environment; one typo should be listed once, with the first env
    (or with a config that belongs to no declared env).
    """
    envs = definition.get("envs")
    name = env_name(definition, config)
    if name is None or not isinstance(envs, Mapping) or not envs:
        return True
    return name == str(next(iter(envs)))


def secret_set(spec: ResourceSpec) -> SecretSet:
    """The resource's SecretSet, created when the engine gave none, so that a secret written
    inline (not through ${secrets.X}) can still be registered and redacted."""
    if spec.secrets is None:
        spec.secrets = SecretSet()
    return spec.secrets


def redact_value(value: Any, redact: Callable[[str], str]) -> Any:
    """A JSON-like value (e.g. a server's error body) with every string passed through redact."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, redact) for v in value]
    return value


# 4xx statuses that a later identical request may not get: request timeout, conflict (a
# concurrent change), too early, rate limited. Any other 4xx is the request's own fault.
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def retryable_status(status: int | None) -> bool | None:
    """Whether an HTTP status is worth a retry: True for a 5xx and 408/409/425/429, False for
    any other status (the request itself is wrong: a retry gets the same answer), None when
    there is no status (the caller knows better, e.g. a connection error)."""
    if status is None:
        return None
    return status in _RETRYABLE_4XX or 500 <= status <= 599


def duration_s(value: Any, key: str, *, allow_zero: bool = False) -> float:
    """Seconds of a config duration, for the client library at the call site.

    Product-file durations follow one rule (README "Semantics"): "250ms" "10s" "5m" "1h" "1d",
    a timedelta, or a bare number of MILLISECONDS. ValueError names `key` and says how to fix it.
    """
    ms = parse_ms(value)
    if ms is not None:
        if ms > 0 or allow_zero:
            return ms / 1000.0
        raise ValueError(f"{key} must be more than 0, got {value!r}")
    if isinstance(value, int | float | timedelta) and not isinstance(value, bool):
        raise ValueError(f"{key} cannot be negative, got {value!r}")
    raise ValueError(f"{key}: {value!r} is not a duration; write e.g. \"10s\", \"250ms\" "
                     "or \"2m\" (a bare number is milliseconds)")


def duration_problem(key: str, value: Any, *, allow_zero: bool = False) -> str | None:
    """For validate(): why a config duration is wrong, or a warning when a bare number is so
    small (under 100 ms) that it was probably meant as seconds; None when fine or a ${...}."""
    if value is None or is_ref(value):
        return None
    try:
        duration_s(value, key, allow_zero=allow_zero)
    except ValueError as e:
        return str(e)
    return seconds_suspect(key, value)


def seconds_suspect(key: str, value: Any) -> str | None:
    """The warning for a bare number under 100: milliseconds, but most likely meant as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < SUSPECT_MS:
        return (f"{key} {value:g} means {value:g} milliseconds (bare numbers are ms); "
                f"write \"{value:g}s\" if you meant seconds")
    return None
