"""SQLite-only properties: one WAL file created on first use, a versioned schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ductwork.errors import StoreError
from ductwork.store.schema import SCHEMA_VERSION
from ductwork.store.sqlite import SQLiteStore


async def test_file_is_created_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "runs.db"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    assert path.exists()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version() == SCHEMA_VERSION
    await store.close()
    again = SQLiteStore(f"sqlite:///{path}")
    await again.open()  # migrations are idempotent
    assert again.schema_version() == SCHEMA_VERSION
    await again.close()


async def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE dw_meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO dw_meta VALUES ('schema_version', '999')")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this ductwork"):
        await SQLiteStore(f"sqlite:///{path}").open()


def test_bad_urls_are_explained() -> None:
    from ductwork.store import open_store

    with pytest.raises(StoreError, match="unknown store URL 'mysql'"):
        open_store("mysql://x")
    with pytest.raises(StoreError, match="synchronous must be"):
        SQLiteStore("sqlite:///x.db", synchronous="SOMETIMES")


def test_the_default_store_comes_from_ductwork_store(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ductwork.store import open_store

    monkeypatch.setenv("DUCTWORK_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    store = open_store(None)
    assert isinstance(store, SQLiteStore) and store.path == str(tmp_path / "env.db")
