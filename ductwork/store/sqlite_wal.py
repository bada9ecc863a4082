"""Background WAL checkpoints for the SQLite store, off the thread that commits."""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import time

# Bounds in bytes of WAL, whatever the database's page size (a store keeps the page size it
# was created with): the committing connection checkpoints on its own only past HARD_BYTES,
# the bound on the WAL if this thread falls behind, dies or is stopped (~32 MB: the 8,000
# pages of 4 KB it was before stores had smaller pages).
HARD_BYTES = 8_000 * 4096
# This thread checkpoints once SOFT_BYTES wait (~4 MB: SQLite's own default of 1,000 pages of
# 4 KB), or whatever waits after IDLE_S. With synchronous=FULL, where there is no thread, the
# committing connection checkpoints at SOFT_BYTES.
SOFT_BYTES = 1_000 * 4096
IDLE_S = 1.0
# Polling the -shm header while the store writes; once nothing has been written for IDLE_S
# and everything is copied, the thread sleeps until the store's next commit wakes it (or
# IDLE_POLL_S passes: another process may write to the same file).
POLL_S = 0.02
IDLE_POLL_S = 2.0
# The wal-index header in the -shm file (sqlite.org/walformat.html), in native byte order:
# mxFrame (frames in the WAL) at byte 16, nBackfill (frames copied to the database) at 96.
_SHM_LEN = 136
_MX_FRAME = struct.Struct("=I")


def pages(nbytes: int, page_size: int) -> int:
    """How many pages of page_size make nbytes (at least 100)."""
    return max(100, nbytes // max(page_size, 512))


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
    connection keeps `wal_autocheckpoint` at HARD_BYTES as the bound, and calls `wake()`
    when it writes while the thread is `idle`."""

    def __init__(self, path: str, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous  # the checkpoint's fsyncs follow the store's setting
        self.checkpoints = 0  # completed passes that copied pages (for tests and benchmarks)
        self.polls = 0  # reads of the -shm header (for tests)
        # Read by the store on each commit without a lock: a stale False costs nothing (the
        # thread is polling), a stale True one needless wake().
        self.idle = False
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ductwork-wal-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """The store wrote: poll again at POLL_S."""
        self.idle = False
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
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
            soft = pages(SOFT_BYTES, db.execute("PRAGMA page_size").fetchone()[0])
            last = changed = time.monotonic()
            seen = -1
            while True:
                woken = self._wake.wait(IDLE_POLL_S if self.idle else POLL_S)
                if self._stopping:
                    return
                if woken:  # the store wrote: poll at POLL_S for IDLE_S at least
                    self._wake.clear()
                    changed = time.monotonic()
                try:
                    if shm is None:
                        shm = os.open(self.path + "-shm", os.O_RDONLY)
                    frames, copied = wal_pages(shm)
                except OSError:
                    continue  # no WAL yet
                self.polls += 1
                t = time.monotonic()
                if frames != seen:
                    seen, changed = frames, t
                    self.idle = False
                waiting = frames - copied
                if waiting <= 0:
                    # Nothing to copy and nothing written for a while: sleep until woken. The
                    # store checks `idle` after each write: a write that checked before it
                    # was set is seen by the read after (the store's _wrote()).
                    if t - changed >= IDLE_S and not self.idle:
                        self.idle = True
                        if wal_pages(shm)[0] != frames:
                            self.idle = False
                    continue
                if waiting < soft and t - last < IDLE_S:
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
