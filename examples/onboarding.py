"""The getting-started example end to end on the embedded SQLite store (`make run`).

Runs the getting-started onboarding workflow twice: once from its YAML spec
(specs/my-product/workflows/user-onboarding.yaml) and once as the equivalent Python handler,
both against the resources of specs/my-product/product.yaml (SQLite databases and an outbox
Maildir in dev), then shows the welcome email and the run's history.
"""

from __future__ import annotations

import asyncio
import json
import mailbox
import sys
import uuid
from pathlib import Path
from typing import Any

from ductwork import Ductwork

ROOT = Path(__file__).resolve().parent.parent


async def main() -> int:
    dw = Ductwork(specs=ROOT / "specs", store=f"sqlite:///{ROOT / '.ductwork' / 'runs.db'}")

    # The same workflow as a Python handler.
    @dw.workflows.workflow(product="my-product", tag="user-onboarding-py",
                           name="User Onboarding (Python)")
    async def onboarding(ctx: Any) -> dict[str, Any]:
        user = await ctx.step("create-user", lambda: ctx.database.insert(
            database="users-db", event="create-user",
            data={"email": ctx.input.email, "name": ctx.input.name}))
        await ctx.step("send-welcome", lambda: ctx.notification.email(
            notification="transactional", event="welcome-email", recipients=[ctx.input.email],
            subject={"name": ctx.input.name}, template={"name": ctx.input.name}),
            None, {"allow_fail": True})
        await ctx.step("audit-log", lambda: ctx.database.insert(
            database="audit-db", event="create-log",
            data={"action": "user_created", "user_id": user["id"]}))
        return {"success": True, "userId": user["id"]}

    async with dw:
        for tag in ("user-onboarding", "user-onboarding-py"):
            email = f"john+{uuid.uuid4().hex[:6]}@example.com"
            result = await dw.workflows.execute(
                product="my-product", env="dev", tag=tag,
                input={"email": email, "name": "John Doe"})
            print(f"== {tag}")
            print(json.dumps(result.to_dict(), indent=2))
            if result.status != "completed":
                return 1
        history = await dw.workflows.history(result.workflow_id)
        print("== history of the last run")
        for event in history:
            print(f"  {event['timestamp']}  {event['type']:<20} {event['step'] or ''}")
    outbox = ROOT / "specs" / "my-product" / ".ductwork" / "outbox"
    messages = list(mailbox.Maildir(outbox, create=False)) if outbox.exists() else []
    mine = [m for m in messages if m["To"] == email]
    if mine:
        print(f"== outbox ({outbox.relative_to(ROOT)}): the welcome email of the last run")
        print(f"  To: {mine[0]['To']}\n  Subject: {mine[0]['Subject']}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
