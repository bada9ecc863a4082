"""Background WAL checkpoints for the SQLite store, off the thread that commits."""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import time

# The committing connection checkpoints on its own only past HARD_PAGES frames: the bound on
# the WAL if this thread falls behind, dies or is stopped (SQLite's own default is 1,000).
HARD_PAGES = 8_000
# This thread checkpoints once SOFT_PAGES frames wait, or whatever waits after IDLE_S.
SOFT_PAGES = 1_000
IDLE_S = 1.0
POLL_S = 0.02
# The wal-index header in the -shm file (sqlite.org/walformat.html), in native byte order:
# mxFrame (frames in the WAL) at byte 16, nBackfill (frames copied to the database) at 96.
_SHM_LEN = 136
_MX_FRAME = struct.Struct("=I")


def wal_pages(shm_fd: int) -> tuple[int, int]:
    """(frames in the WAL, frames of them already copied into the database file)."""
    head = os.pread(shm_fd, _SHM_LEN, 0)
    if len(head) < _SHM_LEN:
        return 0, 0
    return _MX_FRAME.unpack_from(head, 16)[0], _MX_FRAME.unpack_from(head, 96)[0]


class Checkpointer:
    """A daemon thread with its own connection: a PASSIVE checkpoint copies committed pages
    into the database file and fsyncs it; sqlite3 releases the GIL meanwhile, so the event
    loop keeps committing (a passive checkpoint never blocks a writer). The committing
    connection keeps `wal_autocheckpoint=HARD_PAGES` as the bound."""

    def __init__(self, path: str, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous  # the checkpoint's fsyncs follow the store's setting
        self.checkpoints = 0  # completed passes that copied pages (for tests and benchmarks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ductwork-wal-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=0.0)
        except sqlite3.Error:
            return  # the committing connection's own auto-checkpoint still bounds the WAL
        shm: int | None = None
        try:
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA wal_autocheckpoint=0")  # this connection never writes anyway
            last = time.monotonic()
            while not self._stop.wait(POLL_S):
                try:
                    if shm is None:
                        shm = os.open(self.path + "-shm", os.O_RDONLY)
                    frames, copied = wal_pages(shm)
                except OSError:
                    continue  # no WAL yet
                waiting = frames - copied
                if waiting <= 0 or (waiting < SOFT_PAGES and time.monotonic() - last < IDLE_S):
                    continue
                try:
                    busy, _, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    continue  # e.g. another process is checkpointing: try on the next tick
                last = time.monotonic()
                if not busy and done > 0:
                    self.checkpoints += 1
        finally:
            if shm is not None:
                os.close(shm)
            db.close()
