"""Database connectors: SQLite (embedded default) and PostgreSQL, sharing one SQL builder.

Providers (registered in ductwork.connectors):
    database/sqlite      ductwork.connectors.database.sqlite:create
    database/postgres    ductwork.connectors.database.postgres:create   (alias: postgresql)
"""

from __future__ import annotations

PROVIDERS = {
    "sqlite": "ductwork.connectors.database.sqlite",
    "postgres": "ductwork.connectors.database.postgres",
    "postgresql": "ductwork.connectors.database.postgres",
}


def register() -> None:
    """Register the providers and validators (idempotent)."""
    from ductwork.connectors.base import register_provider, register_validator

    for provider, module in PROVIDERS.items():
        register_provider("database", provider, f"{module}:create")
        register_validator("database", provider, f"{module}:validate")
