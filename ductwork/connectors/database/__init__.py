"""Database connectors: SQLite (embedded default) and PostgreSQL, sharing one SQL builder.

Providers (registered in ductwork.connectors): database/sqlite -> database.sqlite:create,
database/postgres (alias postgresql) -> database.postgres:create.
"""
