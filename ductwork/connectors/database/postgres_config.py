"""PostgreSQL database connector's configuration checks (no psycopg: `ductwork validate`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ductwork.connectors.base import Problem
from ductwork.connectors.database.core import (
    check_config,
    definition_problems,
    is_bool,
    is_duration,
    is_text,
)
from ductwork.connectors.util import env_path, is_ref, seconds_suspect


def _url_problem(v: Any) -> str | None:
    if not isinstance(v, str) or not v.strip():
        return "must be a PostgreSQL URL: postgresql://user:${secrets.DB_PASSWORD}@host/db"
    if is_ref(v):
        return None  # references are resolved later; the shape is checked when connecting
    if not v.startswith(("postgresql://", "postgres://")) and "=" not in v:
        return "must be a postgresql:// URL or a key=value conninfo string"
    return None


_pool_timeout = is_duration("pool.timeout")


def pool_timeout_problems(config: Mapping[str, Any], at: tuple[str | int, ...]
                           ) -> list[Problem]:
    # Reported at envs.<env>.pool.timeout itself, not at the whole pool mapping.
    pool = config.get("pool")
    problem = _pool_timeout(pool.get("timeout", "30s")) if isinstance(pool, Mapping) else None
    return [((*at, "pool", "timeout"), problem)] if problem else []


def _pool_problem(v: Any) -> str | None:
    if not isinstance(v, Mapping):
        return "pool must be {min: 1, max: 10, timeout: 30s}"
    bad = [k for k in v if k not in ("min", "max", "timeout")]
    if bad:
        return f"unknown pool setting {bad[0]!r} (known: min, max, timeout)"
    for k in ("min", "max"):
        if k in v and (not isinstance(v[k], int) or isinstance(v[k], bool) or v[k] < 0):
            return f"pool.{k} must be a non-negative integer"
    if v.get("max", 10) < max(1, v.get("min", 1)):
        return "pool.max must be >= pool.min and >= 1"
    return None


CHECKS = {"provider": is_text, "url": _url_problem, "dsn": _url_problem, "pool": _pool_problem,
          "connect_timeout": is_duration("connect_timeout"), "create_tables": is_bool,
          "description": is_text}


def validate(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    """Problems of one environment's PostgreSQL config plus the resource's tables and events."""
    at = env_path(definition, config)
    problems = check_config(config, CHECKS, at) + pool_timeout_problems(config, at)
    if not config.get("url") and not config.get("dsn"):
        problems.append((at, "a postgres database needs `url: postgresql://user:pass@host/db`"))
    pool = config.get("pool")
    for path, key, value in (
            (("connect_timeout",), "connect_timeout", config.get("connect_timeout")),
            (("pool", "timeout"), "pool.timeout",
             pool.get("timeout") if isinstance(pool, Mapping) else None)):
        warning = seconds_suspect(key, value)
        if warning:
            problems.append(((*at, *path), warning))
    return problems + definition_problems(definition, config)
