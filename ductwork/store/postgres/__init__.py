"""The PostgreSQL run store (scale-out): SQL text, LISTEN/NOTIFY reader and the store."""

from __future__ import annotations

from ductwork.store.postgres.store import PostgresStore, safe_url

__all__ = ["PostgresStore", "safe_url"]
