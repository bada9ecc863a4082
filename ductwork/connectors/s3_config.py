"""S3 storage provider's configuration checks (no boto3: `ductwork validate`)."""

from __future__ import annotations

from typing import Any

from ductwork.connectors.base import Problem
from ductwork.connectors.storage import normalize_prefix, validate_events
from ductwork.connectors.util import duration_problem, env_path, first_env, is_ref, unknown_keys

S3_KEYS = {
    "provider", "bucket", "region", "endpoint_url", "access_key_id", "secret_access_key",
    "session_token", "prefix", "addressing_style", "public_base_url", "max_attempts", "timeout",
}


def validate_s3(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    """Problems in an s3 storage resource (config of one env + the shared events)."""
    env = env_path(definition, config)
    problems = unknown_keys(definition, config, S3_KEYS, "s3")
    if not isinstance(config.get("bucket"), str) or not config.get("bucket"):
        problems.append(((*env, "bucket"), "bucket is required (the S3 bucket name)"))
    if ("access_key_id" in config) != ("secret_access_key" in config):
        problems.append(((*env,), "give both access_key_id and secret_access_key, or neither "
                         "(boto3's default credential chain)"))
    for key in ("secret_access_key", "session_token"):
        if key in config and not is_ref(config[key]):
            problems.append(((*env, key), f"{key} is a secret: write it as ${{env.NAME}} or "
                             "${secrets.NAME}, never inline"))
    style = config.get("addressing_style")
    if style is not None and style not in ("auto", "path", "virtual"):
        problems.append(((*env, "addressing_style"), "addressing_style is auto, path or virtual"))
    val = config.get("max_attempts")
    if val is not None and (isinstance(val, bool) or not isinstance(val, int | float) or val <= 0):
        problems.append(((*env, "max_attempts"), "max_attempts is a positive number"))
    problem = duration_problem("timeout", config.get("timeout"))
    if problem:
        problems.append(((*env, "timeout"), problem))
    if "prefix" in config:
        try:
            normalize_prefix(config["prefix"])
        except ValueError as e:
            problems.append(((*env, "prefix"), str(e)))
    return problems + (validate_events(definition) if first_env(definition, config) else [])
