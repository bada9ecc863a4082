"""Broker connectors: Redis Streams (default), NATS JetStream and Kafka behind `produce()`."""

from __future__ import annotations

from ductwork.connectors.base import register_provider, register_validator

# (provider, module) for every broker provider; modules import their client library lazily.
PROVIDERS = {
    "redis": "ductwork.connectors.messaging.redis_streams",
    "nats": "ductwork.connectors.messaging.nats_js",
    "kafka": "ductwork.connectors.messaging.kafka",
}


def register() -> None:
    """Register the factory and the config validator of each broker provider (idempotent)."""
    for provider, module in PROVIDERS.items():
        register_provider("broker", provider, f"{module}:create")
        register_validator("broker", provider, f"{module}:validate")
