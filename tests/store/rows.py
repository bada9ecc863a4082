"""Run rows for the store tests: an owned running run, and a queued one."""

from __future__ import annotations

import time
from typing import Any

from ductwork.store.protocol import RunRow, RunStore


def run(wid: str, **kw: Any) -> RunRow:
    t = time.time()
    fields: dict[str, Any] = {"status": "running", "created_at": t, "updated_at": t,
                              "started_at": t, "owner": "me", "lease_until": t + 30}
    fields.update(kw)
    return RunRow(wid, "p", "t", "dev", **fields)


def pending(wid: str, **kw: Any) -> RunRow:
    t = time.time()
    fields: dict[str, Any] = {"status": "pending", "created_at": t, "updated_at": t,
                              "wake_at": t - 1}
    fields.update(kw)
    return RunRow(wid, "p", "t", "dev", **fields)


async def create_owned(store: RunStore, *wids: str, owner: str = "me") -> None:
    """Running runs held by `owner`, as a worker's runs are when it commits for them."""
    for wid in wids:
        await store.create_run(run(wid, owner=owner), [])
