"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 writing a Maildir, with optional TLS/AUTH."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import mailbox
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.ports import free_port


def self_signed_cert(directory: Path, host: str = "localhost") -> tuple[Path, Path]:
    """A throwaway certificate for `host` and 127.0.0.1; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class SmtpServer:
    host: str
    port: int
    maildir: Path
    controller: Any
    logins: list[str] = field(default_factory=list)

    def messages(self) -> list[Message]:
        box = mailbox.Maildir(self.maildir, create=False)
        return [box.get_message(key) for key in sorted(box.keys())]

    @property
    def connections(self) -> int:
        """Client connections accepted so far (the controller's own readiness probe excluded)."""
        return len(self.controller.sessions) - self.controller.probes

    def drop_connections(self) -> None:
        """Close every open client connection from the server side, and wait until done."""

        async def close_all() -> None:
            for session in self.controller.sessions:
                if session.transport is not None:
                    session.transport.close()

        asyncio.run_coroutine_threadsafe(close_all(), self.controller.loop).result(10)


class _Mailbox(Mailbox):
    """The Maildir handler, refusing RCPT TO for the addresses in `refuse`."""

    def __init__(self, maildir: Path, refuse: frozenset[str]) -> None:
        super().__init__(maildir)
        self.refuse = refuse

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class _Controller(Controller):
    """Remembers each connection's SMTP protocol so a test can drop connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[Any] = []
        self.probes = 0

    def factory(self) -> Any:
        smtp = super().factory()
        self.sessions.append(smtp)
        return smtp

    def start(self) -> None:
        super().start()
        self.probes = len(self.sessions)


@contextmanager
def smtp_server(
    maildir: Path, *, cert: tuple[Path, Path] | None = None, implicit_tls: bool = False,
    users: dict[str, str] | None = None, refuse: tuple[str, ...] = (),
) -> Iterator[SmtpServer]:
    """aiosmtpd with a Maildir handler. `cert` enables STARTTLS (or implicit TLS), `users` AUTH.

    With users, AUTH is only offered after STARTTLS (auth_require_tls), as on real
    submission servers."""
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    logins: list[str] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or users is None:
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = users.get(login) == password
        if ok:
            logins.append(login)
        return AuthResult(success=ok, handled=False)

    kwargs: dict[str, Any] = {}
    if users is not None:
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=cert is not None)
    if context is not None and implicit_tls:
        kwargs["ssl_context"] = context
    elif context is not None:
        kwargs["tls_context"] = context
    mailbox.Maildir(maildir, create=True)  # the handler expects cur/new/tmp to exist
    port = free_port()
    controller = _Controller(_Mailbox(maildir, frozenset(refuse)), hostname="127.0.0.1",
                             port=port, **kwargs)
    controller.start()
    try:
        server = SmtpServer("127.0.0.1", port, maildir, controller, logins)
        yield server
    finally:
        # Connections a test left open would otherwise die with the server loop, unclosed.
        SmtpServer("127.0.0.1", port, maildir, controller).drop_connections()
        controller.stop()


def notification_connector(
    config: dict[str, Any], events: dict[str, Any], *, name: str = "transactional",
    env: str = "dev", base_dir: Path | str = ".", secrets: tuple[str, ...] = (),
) -> Any:
    """Build a notification connector through the provider registry, as the engine does."""
    from ductwork.connectors.base import ResourceSpec, SecretSet, build_connector

    secret_set = SecretSet()
    for value in secrets:
        secret_set.add(value)
    spec = ResourceSpec(kind="notification", name=name, env=env, product="shop",
                        config=config, definition={"envs": {env: config}, "events": events},
                        base_dir=str(base_dir), secrets=secret_set)
    return build_connector(spec)
