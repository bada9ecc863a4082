"""The sign-up workflow as a Python handler: the twin of specs/__PRODUCT__/workflows/signup.yaml.

Run it with `python handlers/signup.py` from the project folder: it uses the same resources
(specs/__PRODUCT__/product.yaml, env dev) and the same run store as `ductwork run`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ductwork import Ductwork

PROJECT = Path(__file__).resolve().parent.parent
dw = Ductwork(specs=PROJECT / "specs", store=f"sqlite:///{PROJECT / '.ductwork' / 'runs.db'}")


@dw.workflows.workflow(product="__PRODUCT__", tag="signup-py", name="Sign-up (Python)")
async def signup(ctx: Any) -> dict[str, Any]:
    account = await ctx.step(
        "create-account",
        lambda: ctx.database.insert(database="app-db", event="create-account",
                                    data={"email": ctx.input.email, "name": ctx.input.name}),
        # runs if a later step fails, with the row this step returned
        rollback=lambda row: ctx.database.delete(database="app-db", event="delete-account",
                                                 where={"id": row["id"]}))
    await ctx.step(
        "save-profile",
        lambda: ctx.storage.upload(
            storage="files", event="profile",
            input={"buffer": json.dumps({"email": ctx.input.email, "name": ctx.input.name}),
                   "file_name": f"{account['id']}.json", "mime_type": "application/json"}),
        retries=2)
    await ctx.step(
        "send-welcome",
        lambda: ctx.notification.email(notification="mail", event="welcome",
                                       recipients=[ctx.input.email],
                                       subject={"name": ctx.input.name},
                                       template={"name": ctx.input.name}),
        allow_fail=True)                                  # best effort
    return {"account_id": account["id"], "email": ctx.input.email}


async def main(email: str, name: str) -> int:
    async with dw:
        result = await dw.workflows.execute(product="__PRODUCT__", env="dev", tag="signup-py",
                                            input={"email": email, "name": name})
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    args = sys.argv[1:] or ["ann@example.com", "Ann"]
    sys.exit(asyncio.run(main(*args[:2])))
