"""New run ids: the creation time first (index inserts at the right edge), then 64 random bits."""

from __future__ import annotations

import re
import time
from typing import Any

from ductwork import Ductwork
from ductwork.workflows.inputs import new_workflow_id

_ID = re.compile(r"wf_([0-9a-f]{11})[0-9a-f]{16}")


def test_ids_sort_in_creation_order_and_do_not_repeat() -> None:
    made = []
    for _ in range(5):
        made.append(new_workflow_id())
        time.sleep(0.002)  # a new millisecond each time
    assert made == sorted(made)
    many = {new_workflow_id() for _ in range(20_000)}  # most share a millisecond
    assert len(many) == 20_000
    assert all(_ID.fullmatch(i) for i in many)


async def test_a_run_started_without_an_id_carries_its_creation_time(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("a", lambda: {"ok": True})

    before = time.time_ns() // 1_000_000
    first = await dw.workflows.execute("p", "dev", "t")
    time.sleep(0.002)  # the second run in a later millisecond
    second = await dw.workflows.execute("p", "dev", "t")
    after = time.time_ns() // 1_000_000
    m = _ID.fullmatch(first.workflow_id)
    assert m is not None and before <= int(m.group(1), 16) <= after
    assert first.status == second.status == "completed"
    # the listing, newest first, agrees with the ids' own order
    listed = [r["workflow_id"] for r in (await dw.workflows.list(limit=2))["runs"]]
    assert listed == sorted([first.workflow_id, second.workflow_id], reverse=True)
