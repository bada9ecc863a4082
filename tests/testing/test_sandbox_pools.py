"""A test run's sandbox holds every provider of a `providers:` list, and refuses the network."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ductwork.testing import WorkflowTestEnv


async def test_each_provider_of_a_list_is_sandboxed_or_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    product = tmp_path / "specs" / "mail"
    product.mkdir(parents=True)
    (product / "product.yaml").write_text(textwrap.dedent("""\
        product: mail
        envs: [dev]
        notifications:
          local:
            envs:
              dev:
                providers:
                  - {name: first, provider: outbox, maildir: out/first}
                  - {name: second, provider: outbox, maildir: /var/mail/second}
            events: {receipt: {subject: Receipt, text: Thanks}}
          relays:
            envs:
              dev:
                providers:
                  - {name: spool, provider: outbox, maildir: out/spool}
                  - {name: relay, provider: smtp, host: smtp.example.com, from: a@example.com}
            events: {receipt: {subject: Receipt, text: Thanks}}
        """))
    monkeypatch.chdir(tmp_path)
    box = tmp_path / "box"
    async with WorkflowTestEnv(specs=product.parent, product="mail", environ={},
                               sandbox=box) as env:
        @env.dw.workflows.workflow(product="mail", tag="send")
        async def send(ctx: Any) -> Any:
            return await ctx.step("mail", lambda: ctx.notification.email(
                notification=ctx.input.to, event="receipt", recipients=["a@example.com"]))

        run = await env.execute("send", {"to": "local"})
        assert run.status == "completed", run.error
        refused = await env.execute("send", {"to": "relays"})
    assert refused.status == "failed"
    assert "a network service (smtp)" in str(refused.error)
    assert sorted(p.name for p in (box / "mail" / "out").iterdir()) == ["first"]
    assert not (product / "out").exists() and not (tmp_path / "out").exists()
