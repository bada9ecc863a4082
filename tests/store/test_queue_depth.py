"""queue_depth: runs due now that nobody owns, by queue (the metrics' gauge), on every backend."""

from __future__ import annotations

import time

from ductwork.store import RunStore
from tests.store.rows import pending, run


async def test_queue_depth_counts_due_unowned_runs(store: RunStore) -> None:
    t = time.time()
    rows = [
        pending("due-1"), pending("due-2"), pending("mail-1", queue="emails"),
        pending("queued-now", wake_at=None),                   # queued: due at once
        pending("later", wake_at=t + 3600),                    # not due yet
        run("owned"),                                          # a worker holds it
        pending("asleep", status="sleeping", wake_at=t - 5),   # woke up, not claimed
        pending("waits", status="waiting", wake_at=None),      # waits for a signal: not due
        pending("done", status="completed"),
    ]
    for r in rows:
        await store.create_run(r, [])
    assert await store.queue_depth(time.time()) == {"default": 4, "emails": 1}
