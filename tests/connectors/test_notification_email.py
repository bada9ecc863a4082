"""Email over SMTP against a real aiosmtpd server (plain, STARTTLS+AUTH, TLS), and the outbox."""

from __future__ import annotations

import email
import email.policy
import mailbox
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from ductwork.errors import ConnectorError
from tests.support.ports import free_port
from tests.support.smtp import (
    SmtpServer,
    notification_connector,
    self_signed_cert,
    smtp_server,
)

EVENTS: dict[str, Any] = {
    "welcome-email": {
        "subject": "Welcome, {{ name }}",
        "text": "Hi {{ name }},\nstart here: {{ link }}\n",
        "html": '<p>Hi <b>{{ name }}</b>, <a href="{{ link }}">start here</a></p>',
    },
    "text-only": {"subject": "Plain {{ n }}", "text": "number {{ n }}"},
    "alert-sms": {"message": "Your code is {{ code }}"},
    "new-follower": {"title": "{{ who }} follows you", "body": "Say hi to {{ who }}"},
}
SENDER = "Acme <noreply@acme.test>"
PASSWORD = "s3cret-Pa55word"


def parts(msg: Message) -> dict[str, str]:
    out = {}
    for part in msg.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_content_type()] = payload.decode(part.get_content_charset() or "utf-8")
    return out


@pytest.fixture
def plain(tmp_path: Path) -> Any:
    with smtp_server(tmp_path / "received") as server:
        yield server


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path)


def smtp_config(server: SmtpServer, **extra: Any) -> dict[str, Any]:
    return {"provider": "smtp", "host": server.host, "port": server.port, "tls": "none",
            "from": SENDER, **extra}


async def test_smtp_delivers_multipart_text_and_html_to_a_real_server(plain: SmtpServer) -> None:
    conn = notification_connector(smtp_config(plain), EVENTS)
    try:
        result = await conn.email(
            "welcome-email", ["Jane Doe <jane@example.com>", "bob@example.com"],
            subject={"name": "Jane"},
            template={"name": "Jane <J>", "link": "https://acme.test/start?a=1&b=2"})
    finally:
        await conn.aclose()
    assert result["provider"] == "smtp"
    assert result["accepted"] == ["jane@example.com", "bob@example.com"]
    assert result["rejected"] == {}

    [msg] = plain.messages()
    assert msg["Subject"] == "Welcome, Jane"
    assert msg["Message-ID"] == result["message_id"]
    assert result["message_id"].endswith("@acme.test>")
    assert msg["From"] == "Acme <noreply@acme.test>"
    assert msg["To"] == "Jane Doe <jane@example.com>, bob@example.com"
    assert msg["X-MailFrom"] == "noreply@acme.test"
    assert msg["X-RcptTo"] == "jane@example.com, bob@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    body = parts(msg)
    assert body["text/plain"] == "Hi Jane <J>,\nstart here: https://acme.test/start?a=1&b=2\n"
    # HTML variables are escaped; the template's own markup is not.
    assert body["text/html"].strip() == (
        '<p>Hi <b>Jane &lt;J&gt;</b>, '
        '<a href="https://acme.test/start?a=1&amp;b=2">start here</a></p>')


async def test_non_ascii_names_subjects_and_bodies_survive_the_trip(plain: SmtpServer) -> None:
    conn = notification_connector(smtp_config(plain, **{"from": "Zoë Ops <ops@acme.test>"}),
                                  EVENTS)
    try:
        await conn.email("welcome-email", ["Jürgen Groß <jg@example.com>"],
                         template={"name": "Jürgen 🎉", "link": "https://acme.test/ü"})
    finally:
        await conn.aclose()
    [raw] = plain.messages()
    msg = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "Welcome, Jürgen 🎉"
    assert str(msg["From"]) == "Zoë Ops <ops@acme.test>"
    assert str(msg["To"]) == "Jürgen Groß <jg@example.com>"
    assert "Hi Jürgen 🎉," in parts(msg)["text/plain"]


async def test_refused_recipients_are_reported_and_all_refused_is_an_error(
    tmp_path: Path,
) -> None:
    with smtp_server(tmp_path / "box", refuse=("ghost@example.com", "nobody@example.com")
                     ) as server:
        conn = notification_connector(smtp_config(server), EVENTS)
        try:
            result = await conn.email("text-only", ["jane@example.com", "ghost@example.com"],
                                      template={"n": 1})
            with pytest.raises(ConnectorError, match=r"refused every recipient \("
                                                     r"ghost@example.com: 550"):
                await conn.email("text-only", ["ghost@example.com", "nobody@example.com"],
                                 template={"n": 2})
            # the connection is still usable after a refused transaction
            await conn.email("text-only", ["jane@example.com"], template={"n": 3})
        finally:
            await conn.aclose()
        assert result["accepted"] == ["jane@example.com"]
        assert result["rejected"] == {"ghost@example.com": "550 5.1.1 no such user here"}
        assert [m["X-RcptTo"] for m in server.messages()] == ["jane@example.com"] * 2
        assert server.connections == 1


async def test_template_vars_render_the_subject_when_subject_vars_are_omitted(
    plain: SmtpServer,
) -> None:
    conn = notification_connector(smtp_config(plain), EVENTS)
    try:
        await conn.email("welcome-email", ["jane@example.com"], None,
                         {"name": "Jane Doe", "link": "x"})
        await conn.email("text-only", "solo@example.com", template={"n": 7})
    finally:
        await conn.aclose()
    first, second = plain.messages()
    assert {first["Subject"], second["Subject"]} == {"Welcome, Jane Doe", "Plain 7"}
    text_only = first if first["Subject"] == "Plain 7" else second
    assert text_only.get_content_type() == "text/plain"
    assert parts(text_only) == {"text/plain": "number 7\n"}


async def test_one_connection_is_reused_and_reopened_after_the_server_dropped_it(
    plain: SmtpServer,
) -> None:
    conn = notification_connector(smtp_config(plain), EVENTS)
    try:
        await conn.email("text-only", ["a@example.com"], template={"n": 1})
        transport = conn._smtp.transport
        await conn.email("text-only", ["a@example.com"], template={"n": 2})
        assert conn._smtp.transport is transport
        assert plain.connections == 1
        plain.drop_connections()  # as a server does after its idle timeout
        await conn.email("text-only", ["a@example.com"], template={"n": 3})
        assert conn._smtp.transport is not transport
        assert plain.connections == 2
    finally:
        await conn.aclose()
    assert not conn._smtp.is_connected
    assert sorted(m["Subject"] for m in plain.messages()) == ["Plain 1", "Plain 2", "Plain 3"]


async def test_starttls_with_auth_against_a_self_signed_server(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    with smtp_server(tmp_path / "tls", cert=cert, users={"mailer": PASSWORD}) as server:
        conn = notification_connector(
            smtp_config(server, tls="starttls", username="mailer", password=PASSWORD,
                        ca_file="cert.pem"),
            EVENTS, env="prd", base_dir=tmp_path, secrets=(PASSWORD,))
        try:
            result = await conn.email("welcome-email", ["jane@example.com"],
                                      template={"name": "Jane", "link": "x"})
            assert conn._smtp.get_transport_info("sslcontext") is not None
        finally:
            await conn.aclose()
        assert server.logins == ["mailer"]
        [msg] = server.messages()
        assert msg["Message-ID"] == result["message_id"]
        assert msg["Subject"] == "Welcome, Jane"


async def test_implicit_tls(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    # aiosmtpd offers AUTH only after STARTTLS, so this one is TLS without AUTH.
    with smtp_server(tmp_path / "smtps", cert=cert, implicit_tls=True) as server:
        conn = notification_connector(smtp_config(server, tls="tls", ca_file=str(cert[0])),
                                      EVENTS)
        try:
            await conn.email("text-only", ["jane@example.com"], template={"n": 1})
            assert conn._smtp.get_transport_info("sslcontext") is not None
        finally:
            await conn.aclose()
        assert [m["Subject"] for m in server.messages()] == ["Plain 1"]


async def test_bad_password_names_resource_event_env_and_hides_the_password(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    wrong = "wr0ng-Pa55word"
    with smtp_server(tmp_path / "tls", cert=cert, users={"mailer": PASSWORD}) as server:
        conn = notification_connector(
            smtp_config(server, tls="starttls", username="mailer", password=wrong,
                        ca_file=str(cert[0])),
            EVENTS, env="prd", secrets=(wrong,))
        try:
            with pytest.raises(ConnectorError) as info:
                await conn.email("welcome-email", ["jane@example.com"],
                                 template={"name": "Jane", "link": "x"})
        finally:
            await conn.aclose()
        assert server.messages() == []
    err = info.value
    text = str(err)
    assert text.startswith("notification/transactional/welcome-email (env prd): ")
    assert "rejected the login of user 'mailer'" in text and "535" in text
    assert (err.resource, err.event, err.env, err.status) == (
        "transactional", "welcome-email", "prd", 535)
    assert wrong not in text and PASSWORD not in text


async def test_untrusted_certificate_is_a_tls_error_that_says_how_to_fix_it(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    with smtp_server(tmp_path / "tls", cert=cert) as server:
        conn = notification_connector(smtp_config(server, tls="starttls"), EVENTS)
        try:
            with pytest.raises(ConnectorError, match=r"TLS with SMTP server .* failed.*ca_file"):
                await conn.email("text-only", ["a@example.com"], template={"n": 1})
        finally:
            await conn.aclose()
        # verify: false is the explicit opt-out for a test server
        conn = notification_connector(smtp_config(server, tls="starttls", verify=False), EVENTS)
        try:
            await conn.email("text-only", ["a@example.com"], template={"n": 2})
        finally:
            await conn.aclose()
        assert [m["Subject"] for m in server.messages()] == ["Plain 2"]


async def test_starttls_required_but_not_offered(plain: SmtpServer) -> None:
    conn = notification_connector(smtp_config(plain, tls="starttls"), EVENTS)
    try:
        with pytest.raises(ConnectorError, match=r"STARTTLS.*check `tls`"):
            await conn.email("text-only", ["a@example.com"], template={"n": 1})
    finally:
        await conn.aclose()


async def test_unreachable_server_is_a_retryable_error_naming_the_resource() -> None:
    port = free_port()
    conn = notification_connector(
        {"provider": "smtp", "host": "127.0.0.1", "port": port, "tls": "none", "from": SENDER},
        EVENTS, env="staging")
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.email("text-only", ["a@example.com"], template={"n": 1})
    finally:
        await conn.aclose()
    assert str(info.value).startswith("notification/transactional/text-only (env staging): ")
    assert f"cannot talk to SMTP server 127.0.0.1:{port}" in str(info.value)
    assert info.value.retryable


@pytest.mark.parametrize("bad", [
    "jane@example.com\r\nBcc: evil@example.com",
    "jane@example.com, evil@example.com",
    "not-an-address",
    "Jane <jane@exa mple.com>",
    "",
    42,
])
async def test_bad_recipients_are_rejected_before_anything_is_sent(
    plain: SmtpServer, bad: Any
) -> None:
    conn = notification_connector(smtp_config(plain), EVENTS)
    try:
        with pytest.raises(ConnectorError, match="is not an email address"):
            await conn.email("text-only", ["ok@example.com", bad], template={"n": 1})
        with pytest.raises(ConnectorError, match="recipients is empty"):
            await conn.email("text-only", [], template={"n": 1})
    finally:
        await conn.aclose()
    assert plain.messages() == []
    assert conn._smtp.transport is None  # never even connected


async def test_unknown_event_missing_variable_and_wrong_channel(plain: SmtpServer) -> None:
    conn = notification_connector(smtp_config(plain), EVENTS)
    try:
        with pytest.raises(ConnectorError, match=r"unknown event 'welcom-email' \(known: .*"
                                                 r"welcome-email"):
            await conn.email("welcom-email", ["a@example.com"], template={})
        with pytest.raises(ConnectorError) as info:
            await conn.email("welcome-email", ["a@example.com"], template={"link": "x"})
        assert str(info.value) == (
            "notification/transactional/welcome-email (env dev): template 'subject' needs "
            "variable 'name', which was not passed (pass it in template={...})")
        with pytest.raises(ConnectorError, match=r"provider 'smtp' sends email, not sms"):
            await conn.sms("alert-sms", ["+14155550100"], {"code": 1})
        with pytest.raises(ConnectorError, match=r"event declares no 'subject' template"):
            await conn.email("alert-sms", ["a@example.com"], template={"code": 1})
    finally:
        await conn.aclose()
    assert plain.messages() == []


async def test_generic_send_uses_the_whole_input_as_template_variables(
    plain: SmtpServer,
) -> None:
    conn = notification_connector(smtp_config(plain), EVENTS)
    try:
        result = await conn.send("welcome-email", {"recipients": ["jane@example.com"],
                                                   "name": "Jane", "link": "L"})
        with pytest.raises(ConnectorError, match="exactly one of recipients"):
            await conn.send("welcome-email", {"name": "Jane"})
    finally:
        await conn.aclose()
    [msg] = plain.messages()
    assert result["accepted"] == ["jane@example.com"]
    assert msg["Subject"] == "Welcome, Jane"


async def test_outbox_writes_a_maildir_relative_to_the_product_file(tmp_path: Path) -> None:
    conn = notification_connector(
        {"provider": "outbox", "maildir": ".ductwork/outbox", "from": SENDER}, EVENTS,
        base_dir=tmp_path)
    try:
        result = await conn.email("welcome-email", ["jane@example.com"], {"name": "Jane"},
                                  {"name": "Jane", "link": "https://acme.test"})
    finally:
        await conn.aclose()
    box = mailbox.Maildir(tmp_path / ".ductwork" / "outbox", create=False)
    assert result["maildir"] == str(tmp_path / ".ductwork" / "outbox")
    msg = box.get_message(result["key"])
    assert msg["Subject"] == "Welcome, Jane"
    assert msg["Message-ID"] == result["message_id"]
    assert msg["To"] == "jane@example.com"
    assert msg["X-Ductwork-Event"] == "welcome-email"
    assert parts(msg)["text/html"].startswith("<p>Hi <b>Jane</b>")
    assert result["accepted"] == ["jane@example.com"]


async def test_outbox_also_records_sms_and_push(tmp_path: Path) -> None:
    conn = notification_connector({}, EVENTS, base_dir=tmp_path)  # provider defaults to outbox
    try:
        sms = await conn.sms("alert-sms", ["+14155550100", "whatsapp:+4915112345678"],
                             {"code": 123456})
        push = await conn.push("new-follower", ["device-token-1"], {"who": "Ann"},
                               data={"user_id": 7})
        generic = await conn.send("alert-sms", {"phones": "+14155550101", "code": 9})
    finally:
        await conn.aclose()
    box = mailbox.Maildir(tmp_path / ".ductwork" / "outbox", create=False)
    assert len(box) == 4
    first = box.get_message(sms["sids"][0])
    assert first["X-Ductwork-Channel"] == "sms"
    assert first["X-Ductwork-To"] == "+14155550100"
    assert first.get_payload(decode=True) == b"Your code is 123456\n"
    note = box.get_message(push["message_ids"][0])
    assert (note["Subject"], note["X-Ductwork-To"], note["X-Ductwork-Data"]) == (
        "Ann follows you", "device-token-1", '{"user_id": 7}')
    assert note.get_payload(decode=True) == b"Say hi to Ann\n"
    assert box.get_message(generic["sids"][0]).get_payload(decode=True) == b"Your code is 9\n"


async def test_outbox_refuses_bad_phone_numbers(tmp_path: Path) -> None:
    conn = notification_connector({"provider": "outbox"}, EVENTS, base_dir=tmp_path)
    with pytest.raises(ConnectorError, match=r"phone '0415 555' is not an E.164 number"):
        await conn.sms("alert-sms", ["0415 555"], {"code": 1})
    assert not (tmp_path / ".ductwork").exists()


def test_config_mistakes_fail_when_the_connector_is_built() -> None:
    with pytest.raises(ConnectorError, match=r"provider .smtp. needs `host` in envs\.dev"):
        notification_connector({"provider": "smtp", "from": SENDER}, EVENTS)
    with pytest.raises(ConnectorError, match=r"`tls` in envs\.dev must be one of"):
        notification_connector({"provider": "smtp", "host": "h", "from": SENDER,
                                "tls": "ssl"}, EVENTS)
    with pytest.raises(ConnectorError, match="both `username` and `password`"):
        notification_connector({"provider": "smtp", "host": "h", "from": SENDER,
                                "username": "u"}, EVENTS)
    with pytest.raises(ConnectorError, match=r"`from` in envs\.dev is not an email address"):
        notification_connector({"provider": "outbox", "from": "nobody"}, EVENTS)
