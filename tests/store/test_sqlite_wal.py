"""SQLite WAL checkpoints run on a background thread that sleeps while nothing is written, stop
on close, and keep the WAL bounded in bytes whatever the page size."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ductwork.store import sqlite_wal
from ductwork.store.protocol import Batch, RunRow, StepRow
from ductwork.store.sqlite import SQLiteStore
from ductwork.store.sqlite_wal import pages, wal_pages

BIG = "x" * 20_000  # a result spilling over many overflow pages: many WAL frames per commit


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


def _wal_frames(path: Path, page: int) -> int:
    """Frames the WAL file has room for: its high-water mark since it was created."""
    return max(0, os.path.getsize(f"{path}-wal") - 32) // (page + 24)


def _page(store: SQLiteStore) -> int:
    return int(store.conn.execute("PRAGMA page_size").fetchone()[0])


async def test_a_background_thread_checkpoints_and_stops_on_close(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = await _open(path)
    ck = store.checkpointer
    assert ck is not None and ck.alive
    soft, hard = (pages(n, _page(store)) for n in (sqlite_wal.SOFT_BYTES, sqlite_wal.HARD_BYTES))
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == hard
    await _steps(store, 1, 300)  # ~6 MB of WAL: past SOFT_BYTES, short of HARD_BYTES
    fd = os.open(f"{path}-shm", os.O_RDONLY)
    try:
        frames, _ = wal_pages(fd)
        assert soft < frames < hard
        for _ in range(500):  # the thread polls every POLL_S; give it up to ~10 s
            if ck.checkpoints:
                break
            await asyncio.sleep(0.02)
        # Only the thread can have copied pages: the committing connection waits for HARD_BYTES.
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
    path = tmp_path / "runs.db"
    store = await _open(path)
    page = _page(store)
    store.conn.execute(f"PRAGMA wal_autocheckpoint={pages(600 * page, page)}")  # a small bound
    if thread == "stopped":  # as if the thread were starved or died
        assert store.checkpointer is not None
        store.checkpointer.stop()
    await _steps(store, 1, 1_000)  # ~20 MB of WAL: thirty times the bound
    # The committing connection checkpoints past the bound and the next writer restarts the
    # WAL from its start: the file never holds much more than the bound.
    assert _wal_frames(path, page) < 600 + 100
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
        # SOFT_BYTES of WAL, as SQLite's own 1,000 pages of 4 KB.
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == pages(
            sqlite_wal.SOFT_BYTES, _page(store)) == 2_000
    finally:
        await store.close()


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(500):  # up to ~10 s on a loaded machine
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_thread_sleeps_while_nothing_is_written_and_a_commit_wakes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_wal, "IDLE_S", 0.3)
    monkeypatch.setattr(sqlite_wal, "IDLE_POLL_S", 3600.0)  # asleep: no poll in this test
    path = tmp_path / "runs.db"
    store = await _open(path)
    ck = store.checkpointer
    assert ck is not None
    # The store's first writes are copied, then nothing is written: the thread goes idle.
    await _until(lambda: ck.idle, "the thread to go idle")
    polls = ck.polls
    await asyncio.sleep(0.3)  # fifteen polling intervals
    assert ck.polls == polls and ck.idle
    before = ck.checkpoints
    # A commit wakes it at once, and it copies what was written (the committing connection
    # never checkpoints below HARD_BYTES).
    await _steps(store, 1, 1)
    assert not ck.idle
    await _until(lambda: ck.checkpoints > before, "a checkpoint after the wake-up")
    fd = os.open(f"{path}-shm", os.O_RDONLY)
    try:
        await _until(lambda: wal_pages(fd)[0] == wal_pages(fd)[1], "every frame copied")
    finally:
        os.close(fd)
    await _until(lambda: ck.idle, "the thread to go idle again")
    await store.close()  # stop() wakes a sleeping thread: close does not wait for IDLE_POLL_S
    assert not ck.alive


async def test_an_idle_thread_still_sees_writes_of_another_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_wal, "IDLE_S", 0.1)
    monkeypatch.setattr(sqlite_wal, "IDLE_POLL_S", 0.2)
    path = tmp_path / "runs.db"
    store = await _open(path)
    ck = store.checkpointer
    assert ck is not None
    await _until(lambda: ck.idle, "the thread to go idle")
    before = ck.checkpoints
    other = sqlite3.connect(path, isolation_level=None)  # no wake-up from this one
    try:
        other.execute("PRAGMA wal_autocheckpoint=0")
        other.execute("INSERT INTO dw_state VALUES ('r', 'k', 'v')")
    finally:
        other.close()
    await _until(lambda: ck.checkpoints > before, "the idle poll to copy the write")
    await store.close()


async def test_no_write_is_left_behind_by_a_thread_going_to_sleep(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Writes at random moments around the thread's decision to sleep: each one is either seen
    # by its last read or wakes it, so each is copied soon (the idle poll is an hour away).
    monkeypatch.setattr(sqlite_wal, "IDLE_S", 0.03)
    monkeypatch.setattr(sqlite_wal, "POLL_S", 0.005)
    monkeypatch.setattr(sqlite_wal, "IDLE_POLL_S", 3600.0)
    path = tmp_path / "runs.db"
    store = await _open(path)
    rnd = random.Random(12)
    fd = os.open(f"{path}-shm", os.O_RDONLY)
    try:
        for i in range(80):
            await asyncio.sleep(rnd.random() * 0.06)
            await store.commit("r", Batch(steps=[StepRow(workflow_id="r", step_key=f"s{i}",
                                                         tag="s", seq=i + 1, result="x")]))
            await _until(lambda: wal_pages(fd)[0] == wal_pages(fd)[1], f"write {i} copied")
    finally:
        os.close(fd)
    await store.close()
