"""Run stores: the protocol, SQLite and PostgreSQL; open_store picks one from a URL."""

from __future__ import annotations

from ductwork.errors import StoreError
from ductwork.store.protocol import RunStore

__all__ = ["RunStore", "open_store"]


def open_store(url: str | RunStore | None, *, synchronous: str = "NORMAL") -> RunStore:
    """A store from a URL: sqlite:///path, sqlite://:memory:, postgresql://... (None: the
    DUCTWORK_STORE environment variable, else sqlite:///.ductwork/runs.db)."""
    if isinstance(url, RunStore):
        return url
    if url is None:
        import os

        url = os.environ.get("DUCTWORK_STORE") or "sqlite:///.ductwork/runs.db"
    if url.startswith("sqlite:"):
        from ductwork.store.sqlite import SQLiteStore

        return SQLiteStore(url, synchronous=synchronous)
    if url.startswith(("postgresql:", "postgres:")):
        try:
            from ductwork.store.postgres import PostgresStore
        except ImportError as e:
            raise StoreError(
                f"the PostgreSQL store needs psycopg: pip install 'ductwork[postgres]' ({e})"
            ) from None
        store: RunStore = PostgresStore(url)
        return store
    raise StoreError(
        f"unknown store URL {url.split('://')[0]!r}: use sqlite:///path/to/runs.db, "
        "sqlite://:memory: or postgresql://user@host/db"
    )
