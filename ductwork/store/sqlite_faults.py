"""What the SQLite store says when its file fails under it: locked, read-only, deleted."""

from __future__ import annotations

import os
import sqlite3

from ductwork.errors import StoreError


def explain(path: str, err: sqlite3.Error) -> StoreError:
    """sqlite3's exception as a StoreError saying what failed and what to do about it."""
    text = str(err) or type(err).__name__
    if "locked" in text or "busy" in text:
        why = ("another connection held the store's write lock for longer than the busy "
               "timeout (10 s): a long transaction, a backup or an open sqlite3 shell; end it, "
               "or use the PostgreSQL store for many concurrent writers")
    elif "readonly" in text or "read-only" in text:
        why = "the file or its folder cannot be written: check permissions and the disk"
    else:
        why = ("the file, its folder or its -wal/-shm files may have been removed, moved or "
               "damaged while in use")
    return StoreError(f"the SQLite store {path} failed: {text} ({why})")


def open_hint(err: sqlite3.Error) -> str:
    """What opening a store failed on, and the likely cause."""
    text = str(err) or type(err).__name__
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return (f"{text} (this process must be able to write the file and create its -wal and "
                "-shm files in the same folder: check permissions and read-only mounts)")
    return f"{text} (is it a ductwork SQLite store?)"


def check_not_deleted(path: str, fd: int) -> None:
    """A store file deleted while open (its folder removed) still takes commits, into a file
    that is gone when the process ends: a run must not be reported finished on it. Called
    when a run's status is committed (an fstat of a file kept open, once or twice a run)."""
    if os.fstat(fd).st_nlink == 0:
        raise StoreError(
            f"the SQLite store {path} was deleted while in use (its file or folder was "
            "removed): what was written since is lost when this process ends; keep the store "
            "where nothing cleans up, and restart the process")
