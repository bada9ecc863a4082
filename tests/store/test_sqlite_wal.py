"""SQLite WAL checkpoints run on a background thread, stop on close, and the WAL stays bounded."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from ductwork.store import sqlite_wal
from ductwork.store.protocol import Batch, RunRow, StepRow
from ductwork.store.sqlite import SQLiteStore
from ductwork.store.sqlite_wal import wal_pages

PAGE = 4096
BIG = "x" * 20_000  # a result spilling over ~5 overflow pages: many WAL frames per commit


async def _open(path: Path) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    t = time.time()
    await store.create_run(RunRow(workflow_id="r", product="p", tag="t", env="dev",
                                  created_at=t, updated_at=t), [])
    return store


async def _steps(store: SQLiteStore, first: int, n: int) -> None:
    for i in range(first, first + n):
        await store.commit("r", Batch(steps=[StepRow(workflow_id="r", step_key=f"s{i}",
                                                     tag=f"s{i}", seq=i, result=BIG)]))


def _wal_frames(path: Path) -> int:
    """Frames the WAL file has room for: its high-water mark since it was created."""
    return max(0, os.path.getsize(f"{path}-wal") - 32) // (PAGE + 24)


async def test_a_background_thread_checkpoints_and_stops_on_close(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = await _open(path)
    ck = store.checkpointer
    assert ck is not None and ck.alive
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == sqlite_wal.HARD_PAGES
    await _steps(store, 1, 300)  # ~1,800 frames: past SOFT_PAGES, short of HARD_PAGES
    fd = os.open(f"{path}-shm", os.O_RDONLY)
    try:
        frames, _ = wal_pages(fd)
        assert sqlite_wal.SOFT_PAGES < frames < sqlite_wal.HARD_PAGES
        for _ in range(500):  # the thread polls every POLL_S; give it up to ~10 s
            if ck.checkpoints:
                break
            await asyncio.sleep(0.02)
        # Only the thread can have copied pages: the committing connection waits for HARD_PAGES.
        assert ck.checkpoints >= 1
        assert wal_pages(fd)[1] > 0
    finally:
        os.close(fd)
    await store.close()
    assert not ck.alive and store.checkpointer is None
    # Everything committed is in the database after close, WAL and all.
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM dw_steps").fetchone()[0] == 300
    db.close()


@pytest.mark.parametrize("thread", ["running", "stopped"])
async def test_the_wal_is_bounded_even_if_the_thread_falls_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread: str) -> None:
    monkeypatch.setattr("ductwork.store.sqlite.HARD_PAGES", 600)
    path = tmp_path / "runs.db"
    store = await _open(path)
    if thread == "stopped":  # as if the thread were starved or died
        assert store.checkpointer is not None
        store.checkpointer.stop()
    await _steps(store, 1, 1_000)  # ~6,000 frames: ten times the bound
    # The committing connection checkpoints past the bound and the next writer restarts the
    # WAL from its start: the file never holds much more than the bound.
    assert _wal_frames(path) < 600 + 100
    await store.close()


async def test_an_in_memory_store_has_no_checkpointer() -> None:
    store = SQLiteStore("sqlite:///:memory:")
    await store.open()
    assert store.checkpointer is None
    await store.close()


async def test_with_synchronous_full_the_committing_connection_checkpoints(
        tmp_path: Path) -> None:
    # FULL fsyncs every commit: SQLite's own checkpoint every 1,000 pages restarts the WAL in
    # place, which a thread cannot do behind a busy writer (the WAL would grow, each fsync
    # extending the file).
    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}", synchronous="FULL")
    await store.open()
    try:
        assert store.checkpointer is None
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        await store.close()
