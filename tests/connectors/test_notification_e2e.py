"""The seed's onboarding through dw.workflows.execute, its welcome email delivered for real."""

from __future__ import annotations

import mailbox
import shutil
import textwrap
from pathlib import Path
from typing import Any

from ductwork import Ductwork
from ductwork.testing.doubles import MemoryDatabase
from tests.support.ports import free_port
from tests.support.smtp import notification_connector, self_signed_cert, smtp_server

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "smtp-Pa55-for-e2e"

EVENTS: dict[str, Any] = {
    "welcome-email": {
        "subject": "Welcome, {{ name }}!",
        "text": "Hi {{ name }}, your account is ready.",
        "html": "<h1>Hi {{ name }}</h1><p>Your account is ready.</p>",
    },
}


def smtp(port: int, cert: Path) -> Any:
    """The transactional resource's dev env, built through the provider registry."""
    return notification_connector(
        {"provider": "smtp", "host": "127.0.0.1", "port": port, "tls": "starttls",
         "ca_file": str(cert), "username": "mailer", "password": PASSWORD,
         "from": "Mail Shop <hello@mail-shop.test>"}, EVENTS, secrets=(PASSWORD,))


def onboarding(dw: Ductwork, mail: Any) -> None:
    """The seed's handler, step for step; the databases are the engine's in-memory doubles."""
    dw.connectors.register("database", "users-db", MemoryDatabase({"create-user": "users"}))
    dw.connectors.register("database", "audit-db", MemoryDatabase({"create-log": "logs"}))
    dw.connectors.register("notification", "transactional", mail)

    @dw.workflows.workflow(product="my-product", tag="user-onboarding", name="User Onboarding")
    async def handler(ctx: Any) -> dict[str, Any]:
        user = await ctx.step("create-user", lambda: ctx.database.insert(
            database="users-db", event="create-user",
            data={"email": ctx.input.email, "name": ctx.input.name}))

        async def welcome() -> Any:
            return await ctx.notification.email(
                notification="transactional", event="welcome-email",
                recipients=[ctx.input.email], subject={"name": ctx.input.name},
                template={"name": ctx.input.name})

        await ctx.step("send-welcome", welcome, None, {"allow_fail": True})
        await ctx.step("audit-log", lambda: ctx.database.insert(
            database="audit-db", event="create-log",
            data={"action": "user_created", "user_id": user["id"]}))
        return {"success": True, "userId": user["id"]}


async def run_onboarding(store: Path, mail: Any, email: str, name: str) -> tuple[Any, Any]:
    """One onboarding run with `mail` as the `transactional` notification: (result, steps)."""
    try:
        async with Ductwork(store=f"sqlite:///{store}") as dw:
            onboarding(dw, mail)
            result = await dw.workflows.execute(
                product="my-product", env="dev", tag="user-onboarding",
                input={"email": email, "name": name})
            detail = {s.tag: s for s in await dw.store.load_steps(result.workflow_id)}
    finally:
        await mail.aclose()  # registered instances belong to the caller
    return result, detail


async def test_onboarding_sends_the_welcome_email_over_starttls_and_auth(tmp_path: Path) -> None:
    cert = self_signed_cert(tmp_path)
    store = tmp_path / "runs.db"
    with smtp_server(tmp_path / "received", cert=cert, users={"mailer": PASSWORD}) as server:
        result, detail = await run_onboarding(store, smtp(server.port, cert[0]),
                                              "john@example.com", "John Doe")
        assert result.status == "completed", result.error
        assert result.completed_steps == ["create-user", "send-welcome", "audit-log"]
        [msg] = server.messages()
        assert server.logins == ["mailer"]
    assert msg["Subject"] == "Welcome, John Doe!"
    assert msg["To"] == "john@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    html = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    assert b"<h1>Hi John Doe</h1>" in html.get_payload(decode=True)
    # The step result is the connector's JSON answer, stored durably.
    sent = detail["send-welcome"]
    assert sent.status == "completed"
    assert "john@example.com" in str(sent.result) and msg["Message-ID"] in str(sent.result)
    assert PASSWORD.encode() not in store.read_bytes()


async def test_a_down_mail_server_does_not_fail_onboarding_and_the_error_names_it(
    tmp_path: Path,
) -> None:
    cert = self_signed_cert(tmp_path)
    store = tmp_path / "runs.db"
    result, detail = await run_onboarding(store, smtp(free_port(), cert[0]),
                                          "jane@example.com", "Jane")
    assert result.status == "completed"
    assert result.completed_steps == ["create-user", "audit-log"]
    error = detail["send-welcome"].error or ""
    assert detail["send-welcome"].status == "skipped"
    assert "notification/transactional/welcome-email (env dev)" in error
    assert "cannot talk to SMTP server 127.0.0.1" in error
    assert PASSWORD.encode() not in store.read_bytes()


async def test_the_example_product_writes_the_welcome_email_to_the_dev_outbox(
    tmp_path: Path,
) -> None:
    """What the README's run command does: the YAML onboarding, dev env, no mail server."""
    shutil.copytree(ROOT / "specs", tmp_path / "specs",
                    ignore=shutil.ignore_patterns(".ductwork", "__pycache__"))
    async with Ductwork(specs=tmp_path / "specs", store=f"sqlite:///{tmp_path / 'runs.db'}",
                        environ={}) as dw:
        result = await dw.workflows.execute(
            product="my-product", env="dev", tag="user-onboarding",
            input={"email": "ann@example.com", "name": "Ann"})
    assert result.status == "completed", result.error
    assert "send-welcome" in result.completed_steps
    box = mailbox.Maildir(tmp_path / "specs" / "my-product" / ".ductwork" / "outbox",
                          create=False)
    [msg] = list(box)
    assert msg["Subject"] == "Welcome, Ann!"
    assert msg["To"] == "ann@example.com"
    assert msg["X-Ductwork-Event"] == "welcome-email"


PRODUCT = """\
product: mail-shop
envs: [dev]
databases:
  users-db:
    envs: {dev: {provider: sqlite, url: "sqlite:///.ductwork/users.db"}}
    tables:
      users:
        columns:
          id: {type: integer, primary_key: true, auto: true}
          email: {type: text, nullable: false}
          name: text
    events:
      create-user: {op: insert, table: users}
notifications:
  transactional:
    envs:
      dev:
        provider: smtp
        host: 127.0.0.1
        port: "${env.SMTP_PORT}"
        tls: starttls
        ca_file: cert.pem
        username: mailer
        password: "${secrets.SMTP_PASSWORD}"
        from: "Mail Shop <hello@mail-shop.test>"
    events:
      welcome-email:
        subject: "Welcome, {{ name }}!"
        text: "Hi {{ name }}, your account is ready."
"""
WORKFLOW = """\
workflow: user-onboarding
input: {type: object, required: [email, name]}
steps:
  - tag: create-user
    database.insert:
      database: users-db
      event: create-user
      data: {email: "${ctx.input.email}", name: "${ctx.input.name}"}
  - tag: send-welcome
    allow_fail: true
    notification.email:
      notification: transactional
      event: welcome-email
      recipients: ["${ctx.input.email}"]
      template: {name: "${ctx.input.name}"}
output: {userId: "${steps.create-user.id}", mail: "${steps.send-welcome}"}
"""


async def test_a_yaml_workflow_mails_through_the_product_files_smtp_config(
    tmp_path: Path,
) -> None:
    """Config from the product file: ${env.*}/${secrets.*} resolved, relative ca_file."""
    product = tmp_path / "specs" / "mail-shop"
    (product / "workflows").mkdir(parents=True)
    (product / "product.yaml").write_text(PRODUCT)
    (product / "workflows" / "user-onboarding.yaml").write_text(textwrap.dedent(WORKFLOW))
    cert = self_signed_cert(product)
    store = tmp_path / "runs.db"
    with smtp_server(tmp_path / "received", cert=cert, users={"mailer": PASSWORD}) as server:
        async with Ductwork(specs=tmp_path / "specs", store=f"sqlite:///{store}",
                            secrets={"SMTP_PASSWORD": PASSWORD},
                            environ={"SMTP_PORT": str(server.port)}) as dw:
            result = await dw.workflows.execute(
                product="mail-shop", env="dev", tag="user-onboarding",
                input={"email": "kim@example.com", "name": "Kim"})
        assert result.status == "completed", result.error
        [msg] = server.messages()
    assert result.completed_steps == ["create-user", "send-welcome"]
    assert result.output["mail"]["accepted"] == ["kim@example.com"]
    assert result.output["mail"]["message_id"] == msg["Message-ID"]
    assert msg["Subject"] == "Welcome, Kim!"
    assert PASSWORD.encode() not in store.read_bytes()

