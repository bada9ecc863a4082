"""SMS through Twilio's REST API, against a real local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.errors import ConnectorError
from tests.support.http import httpserver as httpserver  # fixture
from tests.support.http import module_http_server as module_http_server  # fixture
from tests.support.ports import free_port
from tests.support.smtp import notification_connector

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "tw-auth-token-0123456789"
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"
EVENTS: dict[str, Any] = {
    "verify-code": {"message": "Your {{ app }} code is {{ code }}"},
    "welcome-email": {"subject": "Hi", "text": "Hi"},
}


def twilio(server: HTTPServer, **extra: Any) -> Any:
    config = {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN,
              "from": "+15005550006", "base_url": server.url_for("/").rstrip("/"), **extra}
    return notification_connector(config, EVENTS, name="sms", env="prd", secrets=(TOKEN,))


def recorder(seen: list[dict[str, Any]]) -> Any:
    def handle(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        seen.append({"auth": request.headers.get("Authorization"),
                     "content_type": request.headers.get("Content-Type"), "form": form})
        n = len(seen)
        return Response(json.dumps({"sid": f"SM{n:032d}", "status": "queued",
                                    "to": form.get("To")}), status=201,
                        content_type="application/json")
    return handle


async def test_one_form_post_per_phone_with_basic_auth(httpserver: HTTPServer) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_request(PATH, method="POST").respond_with_handler(recorder(seen))
    conn = twilio(httpserver)
    try:
        result = await conn.sms("verify-code", ["+14155550100", "+4915112345678"],
                                {"app": "Acme", "code": "123456"})
    finally:
        await conn.aclose()
    expected_auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert [s["auth"] for s in seen] == [expected_auth, expected_auth]
    assert all(s["content_type"] == "application/x-www-form-urlencoded" for s in seen)
    assert [s["form"] for s in seen] == [
        {"To": "+14155550100", "From": "+15005550006", "Body": "Your Acme code is 123456"},
        {"To": "+4915112345678", "From": "+15005550006", "Body": "Your Acme code is 123456"},
    ]
    assert result == {
        "provider": "twilio",
        "sids": [f"SM{1:032d}", f"SM{2:032d}"],
        "messages": [{"to": "+14155550100", "sid": f"SM{1:032d}", "status": "queued"},
                     {"to": "+4915112345678", "sid": f"SM{2:032d}", "status": "queued"}],
    }


async def test_messaging_service_sid_replaces_from_and_send_is_generic(
    httpserver: HTTPServer,
) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_request(PATH, method="POST").respond_with_handler(recorder(seen))
    conn = notification_connector(
        {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN,
         "messaging_service_sid": "MG0001", "base_url": httpserver.url_for("/")},
        EVENTS, name="sms")
    try:
        result = await conn.send("verify-code", {"phones": ["whatsapp:+14155550100"],
                                                 "app": "Acme", "code": 7})
    finally:
        await conn.aclose()
    assert seen[0]["form"] == {"To": "whatsapp:+14155550100", "MessagingServiceSid": "MG0001",
                               "Body": "Your Acme code is 7"}
    assert result["sids"] == [f"SM{1:032d}"]


async def test_twilio_error_carries_status_and_message_but_never_the_token(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"code": 21211, "message": "The 'To' number +14155550100 is not a valid phone number.",
         "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}, status=400)
    conn = twilio(httpserver)
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.sms("verify-code", ["+14155550100"], {"app": "A", "code": 1})
    finally:
        await conn.aclose()
    err = info.value
    assert str(err) == (
        "notification/sms/verify-code (env prd): Twilio answered 400 for +14155550100: "
        "The 'To' number +14155550100 is not a valid phone number. (Twilio error 21211, "
        "https://www.twilio.com/docs/errors/21211)")
    assert err.status == 400 and not err.retryable
    assert err.body["code"] == 21211


async def test_bad_credentials_say_what_to_check_and_redact_an_echoed_token(
    httpserver: HTTPServer,
) -> None:
    # A server that echoes the credential back must not get it into the error.
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"code": 20003, "message": f"Authenticate ({TOKEN})", "status": 401}, status=401)
    conn = twilio(httpserver)
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.sms("verify-code", ["+14155550100"], {"app": "A", "code": 1})
    finally:
        await conn.aclose()
    text = str(info.value)
    assert "401" in text and "check `account_sid`/`auth_token`" in text
    assert TOKEN not in text and TOKEN not in json.dumps(info.value.body)


async def test_server_errors_are_retryable_and_report_partial_delivery(
    httpserver: HTTPServer,
) -> None:
    seen: list[dict[str, Any]] = []
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_handler(recorder(seen))
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data(
        "upstream down", status=503)
    conn = twilio(httpserver)
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.sms("verify-code", ["+14155550100", "+14155550101"],
                           {"app": "A", "code": 1})
    finally:
        await conn.aclose()
    assert info.value.retryable and info.value.status == 503
    assert "upstream down" in str(info.value)
    assert "(already sent to +14155550100)" in str(info.value)


async def test_unreachable_twilio_and_bad_input() -> None:
    port = free_port()
    conn = notification_connector(
        {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN, "from": "+15005550006",
         "base_url": f"http://127.0.0.1:{port}"}, EVENTS, name="sms", secrets=(TOKEN,))
    try:
        with pytest.raises(ConnectorError, match=rf"cannot reach Twilio at http://127.0.0.1:{port}"
                           ) as info:
            await conn.sms("verify-code", ["+14155550100"], {"app": "A", "code": 1})
        assert info.value.retryable
        with pytest.raises(ConnectorError, match=r"phone '555-0100' is not an E\.164 number"):
            await conn.sms("verify-code", ["555-0100"], {"app": "A", "code": 1})
        with pytest.raises(ConnectorError, match=r"needs variable 'code'.*message=\{\.\.\.\}"):
            await conn.sms("verify-code", ["+14155550100"], {"app": "A"})
        with pytest.raises(ConnectorError, match=r"provider 'twilio' sends sms, not email"):
            await conn.email("welcome-email", ["a@example.com"])
    finally:
        await conn.aclose()


def test_twilio_needs_exactly_one_sender() -> None:
    base = {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN}
    with pytest.raises(ConnectorError, match="exactly one of `from`"):
        notification_connector(base, EVENTS)
    with pytest.raises(ConnectorError, match="exactly one of `from`"):
        notification_connector({**base, "from": "+1500", "messaging_service_sid": "MG1"},
                               EVENTS)
