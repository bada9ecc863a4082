"""specs/my-app user-onboarding (the docs' User Onboarding): the path its YAML test cases cannot
take, because the verification code is random: the code is read from the email it was sent in,
then sent back as the signal."""

from __future__ import annotations

import re
from pathlib import Path

from ductwork.testing import WorkflowTestEnv
from ductwork.testing.doubles import MemoryDatabase, MemoryNotification

PRODUCT = Path(__file__).resolve().parents[2] / "specs" / "my-app"
INPUT = {"email": "ann@example.com", "name": "Ann", "passwordHash": "$2b$12$abc"}


class App:
    """In-memory connectors for every resource of my-app."""

    def __init__(self, env: WorkflowTestEnv) -> None:
        self.users = MemoryDatabase({"create-user": "users", "update-user": "users",
                                     "delete-user": "users"})
        self.profiles = MemoryDatabase({"create-profile": "profiles"})
        self.mail = MemoryNotification()
        env.dw.connectors.register("database", "users-db", self.users)
        env.dw.connectors.register("database", "profiles-db", self.profiles)
        env.dw.connectors.register("notification", "transactional", self.mail)

    def code(self) -> str:
        [sent] = [m for m in self.mail.sent if m["event"] == "email-verification"]
        return str(sent["template"]["code"])


async def test_the_emailed_code_activates_the_user() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="my-app", environ={},
                               auto_advance=False) as env:
        app = App(env)
        run = await env.execute("my-app", "user-onboarding", INPUT)
        assert run.status == "running"  # waiting for email-verified (24h)
        [user] = app.users.tables["users"]
        assert user["status"] == "pending_verification" and user["email"] == INPUT["email"]

        code = app.code()
        assert re.fullmatch(r"[0-9A-F]{6}", code)
        mail = app.mail.sent[0]
        assert mail["subject"] == {"appName": "MyApp"}
        assert mail["template"] == {"name": "Ann", "code": code, "expiresIn": "24 hours"}

        done = await env.signal(run.workflow_id, "email-verified", {"code": code})
        assert done.status == "completed", done.error
        assert done.output == {"success": True, "userId": user["id"], "email": INPUT["email"]}
        env.assert_steps(done, ["create-user", "send-verification", "activate-user",
                                "create-profile", "send-welcome"])
        assert user["status"] == "active" and user["verified_at"]
        assert app.profiles.tables["profiles"] == [
            {"id": 1, "user_id": user["id"], "display_name": "Ann", "avatar_url": None,
             "bio": None}]
        assert app.mail.sent[-1]["event"] == "welcome"
        assert app.mail.sent[-1]["template"] == {"name": "Ann",
                                                 "loginUrl": "https://myapp.com/login"}


async def test_a_wrong_code_deletes_the_user() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="my-app", environ={},
                               auto_advance=False) as env:
        app = App(env)
        run = await env.execute("my-app", "user-onboarding", INPUT)
        wrong = "X" + app.code()[1:]
        done = await env.signal(run.workflow_id, "email-verified", {"code": wrong})
        assert done.status == "rolled_back"
        assert done.output == {"success": False, "reason": "invalid_code"}
        env.assert_rolled_back(done, ["create-user"])
        assert app.users.tables["users"] == []
        assert "profiles" not in app.profiles.tables


async def test_a_code_is_new_for_every_run_and_kept_across_replays() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="my-app", environ={},
                               auto_advance=False) as env:
        app = App(env)
        first = await env.execute("my-app", "user-onboarding", INPUT)
        await env.execute("my-app", "user-onboarding", {**INPUT, "email": "bob@example.com"})
        codes = [m["template"]["code"] for m in app.mail.sent]
        assert len(codes) == 2 and codes[0] != codes[1]
        # the signal wakes the run up again (a replay): the recorded code is the one checked
        done = await env.signal(first.workflow_id, "email-verified", {"code": codes[0]})
        assert done.status == "completed", done.error
