"""SMTP submission through aiosmtplib (the `connectors` extra)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, ClassVar

import aiosmtplib

from ductwork.connectors.base import ResourceSpec
from ductwork.connectors.notification.common import Email, base_path
from ductwork.connectors.notification.email import _Mailer, build_email
from ductwork.errors import ConnectorError

TLS_MODES: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}


class SmtpNotifier(_Mailer):
    """SMTP submission; one connection per connector, reopened when the server dropped it."""

    provider: ClassVar[str] = "smtp"
    channels: ClassVar[tuple[str, ...]] = ("email",)

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        env = spec.env
        self.host = self.conf_str("host", required=True)
        self.tls = self.conf_str("tls", "starttls").lower()
        if self.tls not in TLS_MODES:
            raise spec.error(f"`tls` in envs.{env} must be one of starttls, tls, none; "
                             f"got {self.tls!r}")
        port = spec.config.get("port", TLS_MODES[self.tls])
        try:
            self.port = int(port)
        except (TypeError, ValueError):
            raise spec.error(f"`port` in envs.{env} must be a number, not {port!r}") from None
        self.username = self.conf_str("username") or None
        password = self.conf_str("password") or None
        if (self.username is None) != (password is None):
            raise spec.error(f"envs.{env} needs both `username` and `password` for SMTP AUTH "
                             "(or neither)")
        timeout = self.conf_seconds("timeout", 30.0)
        tls_context = self._tls_context() if self.tls != "none" else None
        self._smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username, password=password,
            timeout=timeout, use_tls=self.tls == "tls",
            start_tls=self.tls == "starttls",
            tls_context=tls_context, local_hostname=self.conf_str("helo") or None,
        )
        self._lock = asyncio.Lock()

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.conf_str("ca_file")
        cafile = base_path(self.rspec, ca_file) if ca_file else None
        try:
            ctx = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as e:
            raise self.rspec.error(f"cannot load `ca_file` {ca_file!r}: {e}") from None
        if self.rspec.config.get("verify", True) is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    @property
    def where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    async def _connected(self, event: str) -> aiosmtplib.SMTP:
        smtp = self._smtp
        if smtp.is_connected:
            try:
                # A kept-open connection may have been dropped by the server since last use;
                # checking first means a message is never sent twice by a blind retry.
                await smtp.noop()
                return smtp
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
        try:
            await smtp.connect()
        except aiosmtplib.SMTPAuthenticationError as e:
            smtp.close()
            raise self.fail(
                f"{self.where} rejected the login of user '{self.username}' "
                f"({e.code} {e.message}); check `username`/`password` in envs.{self.rspec.env}",
                event, status=e.code) from None
        except asyncio.CancelledError:
            smtp.close()
            raise
        except Exception as e:
            smtp.close()
            raise self._error(e, event) from None
        return smtp

    def _error(self, e: Exception, event: str) -> ConnectorError:
        if isinstance(e, aiosmtplib.SMTPRecipientsRefused):
            refused = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in e.recipients)
            return self.fail(f"{self.where} refused every recipient ({refused})", event)
        if isinstance(e, aiosmtplib.SMTPResponseException):
            return self.fail(f"{self.where} answered {e.code} {e.message}", event,
                             status=e.code, retryable=400 <= e.code < 500)
        cause = e.__cause__ or e.__context__
        if isinstance(e, ssl.SSLError) or isinstance(cause, ssl.SSLError):
            return self.fail(f"TLS with {self.where} failed: {cause or e}; set `ca_file` "
                             f"(or `verify: false` for a test server) in envs.{self.rspec.env}",
                             event)
        # A server without STARTTLS/AUTH is a config mismatch, not a hiccup worth retrying.
        if isinstance(e, aiosmtplib.SMTPNotSupported) or (
                type(e) is aiosmtplib.SMTPException and "not supported" in str(e)):
            return self.fail(f"{self.where}: {e}; check `tls` and `username`/`password` in "
                             f"envs.{self.rspec.env}", event)
        if isinstance(e, (aiosmtplib.SMTPException, OSError)):
            return self.fail(f"cannot talk to {self.where}: {e}", event, retryable=True)
        return self.fail(f"{self.where}: {type(e).__name__}: {e}", event)

    async def ping(self) -> str:
        """Connect (TLS, AUTH as configured) or reuse the connection, then NOOP."""
        async with self._lock:
            smtp = await self._connected("health")
            try:
                await smtp.noop()
            except Exception as e:
                smtp.close()
                raise self._error(e, "health") from None
        steps = ["EHLO", *(["STARTTLS"] if self.tls == "starttls" else []),
                 *(["AUTH"] if self.username else []), "NOOP"]
        return f"{', '.join(steps)} at {self.host}:{self.port}"

    async def _deliver_email(
        self, event: str, recipients: list[tuple[str, str]], mail: Email
    ) -> dict[str, Any]:
        msg = build_email(self.sender, recipients, mail)
        addrs = [a for _, a in recipients]
        async with self._lock:
            smtp = await self._connected(event)
            try:
                errors, _reply = await smtp.send_message(
                    msg, sender=self.sender[1], recipients=addrs)
            except Exception as e:
                # After a refusal aiosmtplib has sent RSET: the connection stays good.
                if not isinstance(e, (aiosmtplib.SMTPResponseException,
                                      aiosmtplib.SMTPRecipientsRefused)):
                    smtp.close()
                raise self._error(e, event) from None
        return {
            "provider": self.provider,
            "message_id": msg["Message-ID"],
            "accepted": [a for a in addrs if a not in errors],
            "rejected": {a: f"{r.code} {r.message}" for a, r in errors.items()},
        }

    async def aclose(self) -> None:
        if self._smtp.is_connected:
            try:
                await self._smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                self._smtp.close()


def create_smtp(spec: ResourceSpec) -> SmtpNotifier:
    return SmtpNotifier(spec)
