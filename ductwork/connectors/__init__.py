"""Connectors: one provider per backend, imported lazily on first use."""

from __future__ import annotations

from ductwork.connectors.base import register_provider, register_validator

_C = "ductwork.connectors"
# (kind, provider) -> (factory, config validator); strings so that nobody imports boto3 or
# google-auth before a workflow actually uses S3 or FCM.
BUILTIN: dict[tuple[str, str], tuple[str, str | None]] = {
    ("action", "http"): (f"{_C}.action:create", f"{_C}.action_config:validate"),
    ("database", "sqlite"): (f"{_C}.database.sqlite:create", f"{_C}.database.sqlite:validate"),
    ("database", "postgres"): (f"{_C}.database.postgres:create",
                               f"{_C}.database.postgres_config:validate"),
    ("database", "postgresql"): (f"{_C}.database.postgres:create",
                                 f"{_C}.database.postgres_config:validate"),
    ("notification", "outbox"): (f"{_C}.notification.email:create_outbox",
                                 f"{_C}.notification:validate"),
    ("notification", "smtp"): (f"{_C}.notification.smtp:create_smtp",
                               f"{_C}.notification:validate"),
    ("notification", "twilio"): (f"{_C}.notification.sms:create_twilio",
                                 f"{_C}.notification:validate"),
    ("notification", "fcm"): (f"{_C}.notification.push:create_fcm",
                              f"{_C}.notification:validate"),
    ("notification", "webpush"): (f"{_C}.notification.push:create_webpush",
                                  f"{_C}.notification:validate"),
    ("storage", "local"): (f"{_C}.storage:create", f"{_C}.storage:validate_local"),
    ("storage", "s3"): (f"{_C}.s3:create", f"{_C}.s3_config:validate_s3"),
    ("graph", "ladybug"): (f"{_C}.graph.ladybug:create", f"{_C}.graph.ladybug:validate_ladybug"),
    ("graph", "falkordb"): (f"{_C}.graph.falkordb:create",
                            f"{_C}.graph.falkordb_config:validate_falkordb"),
    ("broker", "redis"): (f"{_C}.messaging.redis_streams:create",
                          f"{_C}.messaging.redis_streams:validate"),
    ("broker", "nats"): (f"{_C}.messaging.nats_js:create", f"{_C}.messaging.nats_js:validate"),
    ("broker", "kafka"): (f"{_C}.messaging.kafka:create", f"{_C}.messaging.kafka:validate"),
}

for (_kind, _provider), (_factory, _validator) in BUILTIN.items():
    register_provider(_kind, _provider, _factory)
    if _validator is not None:
        register_validator(_kind, _provider, _validator)
