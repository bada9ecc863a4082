"""Email messages, and the `outbox` provider that writes them to a Maildir.

Standard library only (email, mailbox): the development default works with the base install.
SMTP submission, which needs aiosmtplib (the `connectors` extra), is in notification.smtp.
"""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, ClassVar

from ductwork.connectors.base import ResourceSpec
from ductwork.connectors.notification.common import (
    BaseNotifier,
    Email,
    Push,
    base_path,
    parse_mailbox,
)

DEFAULT_OUTBOX = ".ductwork/outbox"


def build_email(
    sender: tuple[str, str], recipients: list[tuple[str, str]], mail: Email,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative message (text first, HTML preferred) with a fresh Message-ID."""
    msg = EmailMessage()
    msg["From"] = Address(display_name=sender[0], addr_spec=sender[1])
    if recipients:
        msg["To"] = tuple(Address(display_name=n, addr_spec=a) for n, a in recipients)
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(usegmt=True)
    # The sender's domain, not socket.getfqdn(): stable, and no DNS lookup per message.
    msg["Message-ID"] = make_msgid(domain=sender[1].rpartition("@")[2])
    for name, value in (headers or {}).items():
        msg[name] = value
    if mail.text is not None:
        msg.set_content(mail.text)
        if mail.html is not None:
            msg.add_alternative(mail.html, subtype="html")
    else:
        msg.set_content(mail.html or "", subtype="html")
    return msg


class _Mailer(BaseNotifier):
    """Shared by smtp and outbox: the `from` address."""

    def __init__(self, spec: ResourceSpec, default_from: str | None = None) -> None:
        super().__init__(spec)
        raw = self.conf_str("from", default_from, required=default_from is None)
        parsed = parse_mailbox(raw)
        if parsed is None:
            raise spec.error(f"`from` in envs.{spec.env} is not an email address: {raw!r}")
        self.sender = parsed


class OutboxNotifier(_Mailer):
    """Development default: every email, SMS and push becomes a message in a local Maildir."""

    provider: ClassVar[str] = "outbox"
    channels: ClassVar[tuple[str, ...]] = ("email", "sms", "push")

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec, default_from="ductwork@localhost")
        self.path = base_path(spec, self.conf_str("maildir", DEFAULT_OUTBOX))
        self._maildir: mailbox.Maildir | None = None

    async def ping(self) -> str:
        """The Maildir (or the folder it will be made in) is writable."""
        import os
        from pathlib import Path

        folder = Path(self.path)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not os.access(folder, os.W_OK):
            raise self.rspec.error(f"the outbox folder {folder} is not writable")
        return f"maildir {self.path} writable"

    def _add(self, msg: EmailMessage) -> str:
        if self._maildir is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._maildir = mailbox.Maildir(self.path, create=True)
        return str(self._maildir.add(msg.as_bytes()))

    async def _write(self, event: str, msgs: list[EmailMessage]) -> list[str]:
        try:
            return await asyncio.to_thread(lambda: [self._add(m) for m in msgs])
        except OSError as e:
            raise self.fail(f"cannot write to the outbox Maildir {self.path}: {e}", event) \
                from None

    def _note(self, event: str, channel: str, to: str, subject: str, body: str,
              extra: dict[str, str] | None = None) -> EmailMessage:
        msg = build_email(self.sender, [], Email(" ".join(subject.split()), body, None),
                          {"X-Ductwork-Event": event, "X-Ductwork-Channel": channel,
                           "X-Ductwork-To": to, **(extra or {})})
        return msg

    async def _deliver_email(
        self, event: str, recipients: list[tuple[str, str]], mail: Email
    ) -> dict[str, Any]:
        msg = build_email(self.sender, recipients, mail,
                          {"X-Ductwork-Event": event, "X-Ductwork-Channel": "email"})
        keys = await self._write(event, [msg])
        return {"provider": self.provider, "message_id": msg["Message-ID"],
                "accepted": [a for _, a in recipients], "rejected": {},
                "maildir": self.path, "key": keys[0]}

    async def _deliver_sms(self, event: str, phones: list[str], text: str) -> dict[str, Any]:
        msgs = [self._note(event, "sms", p, f"SMS to {p}", text) for p in phones]
        keys = await self._write(event, msgs)
        return {"provider": self.provider, "sids": keys, "maildir": self.path}

    async def _deliver_push(self, event: str, tokens: list[Any], note: Push) -> dict[str, Any]:
        msgs = []
        for token in tokens:
            to = token if isinstance(token, str) else str(token["endpoint"])
            extra = {"X-Ductwork-Data": json.dumps(note.data, default=str)} if note.data else {}
            msgs.append(self._note(event, "push", to, note.title or "(no title)",
                                   note.body or "", extra))
        keys = await self._write(event, msgs)
        return {"provider": self.provider, "message_ids": keys, "maildir": self.path}


def create_outbox(spec: ResourceSpec) -> OutboxNotifier:
    return OutboxNotifier(spec)
