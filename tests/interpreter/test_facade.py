"""ctx is a facade: only context.py reads its private attributes; the rest talks to the journal."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import ductwork
from ductwork import Ductwork
from ductwork.interpreter.context import WorkflowContext

PACKAGE = Path(ductwork.__file__).parent
FACADE = PACKAGE / "interpreter" / "context.py"
# `ctx._x`, `self._ctx._x`, `parent_ctx._x`: any name ending in ctx, then a private name (a
# dunder such as `ctx.__class__` is no private attribute of ours).
PRIVATE = re.compile(r"ctx\._(?!_)\w")


def private_uses(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if PRIVATE.search(line)]


def test_the_guard_sees_private_access_in_its_usual_spellings() -> None:
    text = "await ctx._commit(batch)\nself._ctx._engine.dw\nctx.step('a', f)\nctx.__class__"
    assert private_uses(text) == ["await ctx._commit(batch)", "self._ctx._engine.dw"]


def test_nothing_outside_context_py_reads_a_private_attribute_of_ctx() -> None:
    found = {str(p.relative_to(PACKAGE)): uses for p in sorted(PACKAGE.rglob("*.py"))
             if p != FACADE and (uses := private_uses(p.read_text(encoding="utf-8")))}
    assert found == {}, f"use the journal (or a public ctx attribute) instead: {found}"


async def test_ctx_keeps_the_journal_in_one_private_attribute(dw: Ductwork) -> None:
    seen: list[Any] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("a", lambda: 1)
        _ = ctx.database  # components are made on first use
        seen.append(ctx)

    await dw.workflows.execute(product="p", env="dev", tag="t")
    (ctx,) = seen
    assert [n for n in vars(ctx) if n.startswith("_")] == ["_journal"]
    assert not {"journal", "history", "commit", "event", "next_key", "take", "release_reason",
                "settle"} & set(dir(ctx))
    assert isinstance(ctx, WorkflowContext) and ctx.completed_steps == ["a"]
