"""SQLite-only properties: one WAL file created on first use, a versioned schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ductwork.errors import StoreError
from ductwork.store.schema import SCHEMA_VERSION
from ductwork.store.sqlite import SQLiteStore
from tests.store.rows import run


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


async def test_a_new_store_gets_small_pages_and_an_existing_one_keeps_its_own(
        tmp_path: Path) -> None:
    from ductwork.store.sqlite import PAGE_SIZE

    new = SQLiteStore(f"sqlite:///{tmp_path / 'new.db'}")
    await new.open()
    assert PAGE_SIZE == 2048
    assert new.conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert new.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await new.close()
    # An empty file (touched, or made by another tool) is new too.
    (tmp_path / "empty.db").touch()
    empty = SQLiteStore(f"sqlite:///{tmp_path / 'empty.db'}")
    await empty.open()
    assert empty.conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    await empty.close()

    # A store made with 4 KB pages (SQLite's default, and that of earlier ductwork versions),
    # with a run in it: opened, upgraded and written to, it keeps its pages and its data.
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE dw_meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO dw_meta VALUES ('schema_version', '0')")
    db.commit()
    db.close()
    old = SQLiteStore(f"sqlite:///{path}")
    await old.open()
    assert old.conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert old.schema_version() == SCHEMA_VERSION
    # Its WAL bounds are the same bytes as a new store's, in pages of its own size.
    assert old.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 8_000
    await old.create_run(run("kept"), [])
    await old.close()
    again = SQLiteStore(f"sqlite:///{path}")
    await again.open()
    assert again.conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert (await again.get_run("kept")) is not None
    await again.close()


async def test_a_file_that_is_not_a_store_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database " * 100)
    with pytest.raises(StoreError, match=r"cannot open the SQLite store at .*notes\.db: file "
                                         r"is not a database"):
        await SQLiteStore(f"sqlite:///{path}").open()
    assert path.read_bytes().startswith(b"these are my notes")  # left as it was


async def test_run_updates_of_every_shape_stamp_updated_at_and_keep_the_fence(
        tmp_path: Path) -> None:
    import time

    from ductwork.store.protocol import Batch, LeaseLostError

    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    try:
        await store.create_run(run("r", owner="me"), [])
        t = time.time()
        # The same shape twice (its statement is built once), a caller's updated_at ignored.
        for step in ("a", "b"):
            await store.commit("r", Batch(owner="me", run={"current_step": step,
                                                           "updated_at": 1.0}))
        row = await store.get_run("r")
        assert row is not None and row.current_step == "b" and row.updated_at >= t
        # Same fields, another owner: the fence still applies; without one, it does not.
        with pytest.raises(LeaseLostError):
            await store.commit("r", Batch(owner="other", run={"current_step": "c"}))
        await store.commit("r", Batch(run={"current_step": "d"}))
        row = await store.get_run("r")
        assert row is not None and row.current_step == "d"
    finally:
        await store.close()
