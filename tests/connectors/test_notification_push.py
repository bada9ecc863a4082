"""Push: FCM HTTP v1 (token grant + send) and Web Push (a receiver that really decrypts)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.errors import ConnectorError
from tests.support.http import httpserver as httpserver  # fixture
from tests.support.http import module_http_server as module_http_server  # fixture
from tests.support.smtp import notification_connector

EVENTS: dict[str, Any] = {
    "new-follower": {"title": "{{ who }} follows you", "body": "Say hi to {{ who }}"},
    "title-only": {"title": "Ping {{ n }}"},
    "verify-code": {"message": "code {{ code }}"},
}
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
ACCESS = "ya29.local-access-token"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    head, claims, sig = token.split(".")
    return (json.loads(unb64url(head)), json.loads(unb64url(claims)), sig.encode(),
            f"{head}.{claims}".encode())


# ---------------------------------------------------------------------------------- FCM


class FakeFcm:
    """Token endpoint + messages:send on one local server; checks the grant's signature."""

    def __init__(self, server: HTTPServer, key: rsa.RSAPrivateKey) -> None:
        self.server, self.key = server, key
        self.email = "push@demo-project.iam.gserviceaccount.com"
        self.grants: list[dict[str, Any]] = []
        self.sends: list[dict[str, Any]] = []
        self.fail_next_send: tuple[int, dict[str, Any]] | None = None
        server.expect_request("/token", method="POST").respond_with_handler(self.token)
        server.expect_request("/v1/projects/demo-project/messages:send",
                              method="POST").respond_with_handler(self.send)

    def service_account(self) -> dict[str, Any]:
        pem = self.key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "demo-project",
                "private_key_id": "key-1", "private_key": pem, "client_email": self.email,
                "client_id": "1", "token_uri": self.server.url_for("/token")}

    def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        head, claims, sig, signed = jwt_parts(form["assertion"])
        self.key.public_key().verify(unb64url(sig.decode()), signed, padding.PKCS1v15(),
                                     hashes.SHA256())  # raises if the grant is forged
        self.grants.append({"grant_type": form["grant_type"], "head": head, "claims": claims})
        n = len(self.grants)
        return Response(json.dumps({"access_token": f"{ACCESS}-{n}", "expires_in": 3600,
                                    "token_type": "Bearer"}), content_type="application/json")

    def send(self, request: Request) -> Response:
        self.sends.append({"auth": request.headers.get("Authorization"),
                           "body": json.loads(request.get_data())})
        if self.fail_next_send is not None:
            status, body = self.fail_next_send
            self.fail_next_send = None
            return Response(json.dumps(body), status=status, content_type="application/json")
        return Response(json.dumps({"name": f"projects/demo-project/messages/0:{len(self.sends)}"}),
                        content_type="application/json")


@pytest.fixture
def fcm(httpserver: HTTPServer) -> FakeFcm:
    return FakeFcm(httpserver, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def fcm_connector(fcm: FakeFcm, service_account: Any = None, base_dir: Path | str = ".",
                  **extra: Any) -> Any:
    sa = fcm.service_account() if service_account is None else service_account
    config = {"provider": "fcm", "service_account": sa,
              "base_url": fcm.server.url_for("/"), **extra}
    return notification_connector(config, EVENTS, name="mobile", env="prd", base_dir=base_dir,
                                  secrets=(fcm.service_account()["private_key"],))


async def test_fcm_grants_a_token_once_and_sends_v1_messages(
    fcm: FakeFcm, tmp_path: Path
) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "fcm.json").write_text(json.dumps(fcm.service_account()))
    # a path, relative to the product file
    conn = fcm_connector(fcm, "keys/fcm.json", base_dir=tmp_path)
    try:
        first = await conn.push("new-follower", ["tok-A", "tok-B"], {"who": "Ann"},
                                data={"user_id": 7, "kind": "follow"})
        second = await conn.push("title-only", "tok-C", {"n": 2})
    finally:
        await conn.aclose()
    assert first == {"provider": "fcm", "message_ids": ["projects/demo-project/messages/0:1",
                                                        "projects/demo-project/messages/0:2"]}
    assert second["message_ids"] == ["projects/demo-project/messages/0:3"]
    # One JWT-bearer grant, signed by the service account's key, with the FCM scope.
    [grant] = fcm.grants
    assert grant["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert grant["head"]["alg"] == "RS256" and grant["head"]["kid"] == "key-1"
    assert grant["claims"]["iss"] == fcm.email
    # google-auth always signs for Google's audience; token_uri only says where to post it.
    assert grant["claims"]["aud"] == "https://oauth2.googleapis.com/token"
    assert grant["claims"]["scope"] == SCOPE
    assert {s["auth"] for s in fcm.sends} == {f"Bearer {ACCESS}-1"}
    assert fcm.sends[0]["body"] == {"message": {
        "token": "tok-A",
        "notification": {"title": "Ann follows you", "body": "Say hi to Ann"},
        "data": {"user_id": "7", "kind": "follow"},  # FCM data values are strings
    }}
    assert fcm.sends[2]["body"] == {"message": {"token": "tok-C",
                                                "notification": {"title": "Ping 2"}}}


async def test_fcm_error_names_the_fcm_code(fcm: FakeFcm) -> None:
    fcm.fail_next_send = (404, {"error": {
        "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                     "errorCode": "UNREGISTERED"}]}})
    conn = fcm_connector(fcm)
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.push("new-follower", ["stale-token"], {"who": "Ann"})
    finally:
        await conn.aclose()
    assert str(info.value) == ("notification/mobile/new-follower (env prd): FCM answered 404: "
                               "NOT_FOUND Requested entity was not found. (UNREGISTERED)")
    assert info.value.status == 404 and not info.value.retryable


async def test_fcm_renews_the_token_once_on_401(fcm: FakeFcm) -> None:
    fcm.fail_next_send = (401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                          "message": "token revoked"}})
    conn = fcm_connector(fcm)
    try:
        result = await conn.push("title-only", ["tok"], {"n": 1})
    finally:
        await conn.aclose()
    assert len(fcm.grants) == 2
    assert [s["auth"] for s in fcm.sends] == [f"Bearer {ACCESS}-1", f"Bearer {ACCESS}-2"]
    assert result["message_ids"] == ["projects/demo-project/messages/0:2"]


async def test_fcm_refused_grant_is_an_error_without_the_private_key(
    httpserver: HTTPServer,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake = FakeFcm.__new__(FakeFcm)
    fake.server, fake.key, fake.email = httpserver, key, "x@demo.iam.gserviceaccount.com"
    httpserver.expect_request("/token", method="POST").respond_with_json(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400)
    sa = fake.service_account()
    conn = fcm_connector(fake, sa)
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.push("title-only", ["tok"], {"n": 1})
    finally:
        await conn.aclose()
    text = str(info.value)
    assert text.startswith("notification/mobile/title-only (env prd): cannot get an FCM "
                           f"access token from {httpserver.url_for('/token')}")
    assert "invalid_grant" in text
    assert "PRIVATE KEY" not in text


async def test_fcm_input_and_config_errors(fcm: FakeFcm, tmp_path: Path) -> None:
    conn = fcm_connector(fcm)
    try:
        with pytest.raises(ConnectorError, match=r"tokens\[0\]: an FCM token is a registration"):
            await conn.push("new-follower", [{"endpoint": "https://x"}], {"who": "A"})
        with pytest.raises(ConnectorError, match="provider 'fcm' sends push, not sms"):
            await conn.sms("verify-code", ["+14155550100"], {"code": 1})
        with pytest.raises(ConnectorError, match="push data must be a mapping"):
            await conn.push("new-follower", ["t"], {"who": "A"}, data=["x"])
    finally:
        await conn.aclose()
    assert fcm.sends == []
    with pytest.raises(ConnectorError, match=r"cannot read `service_account` file .*nope\.json"):
        fcm_connector(fcm, "nope.json")
    with pytest.raises(ConnectorError, match="is not a usable service account key"):
        fcm_connector(fcm, {"project_id": "p", "private_key": "x"})


# ----------------------------------------------------------------------------- Web Push


class PushReceiver:
    """A push service endpoint holding the browser's subscription keys; decrypts every body."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.ua_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.received: list[dict[str, Any]] = []
        self.status = 201
        server.expect_request("/push/sub-1", method="POST").respond_with_handler(self.handle)

    def subscription(self) -> dict[str, Any]:
        public = self.ua_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.server.url_for("/push/sub-1"),
                "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}

    def handle(self, request: Request) -> Response:
        if self.status >= 300:
            return Response("gone", status=self.status)
        # RFC 8292: Authorization: vapid t=<JWT>, k=<application server public key>
        scheme, _, params = request.headers["Authorization"].partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(","))
        head, claims, sig, signed = jwt_parts(fields["t"])
        raw = unb64url(sig.decode())
        vapid_public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), unb64url(fields["k"]))
        vapid_public.verify(
            encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
            signed, ec.ECDSA(hashes.SHA256()))
        plain = http_ece.decrypt(request.get_data(), private_key=self.ua_key,
                                 auth_secret=self.auth, version="aes128gcm")
        self.received.append({
            "scheme": scheme, "alg": head["alg"], "claims": claims, "vapid_k": fields["k"],
            "encoding": request.headers.get("Content-Encoding"),
            "ttl": request.headers.get("TTL"), "payload": json.loads(plain)})
        return Response("", status=201)


def vapid_key() -> tuple[ec.EllipticCurvePrivateKey, str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    return key, pem, b64url(public)


async def test_webpush_payload_is_decrypted_by_the_receiver(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = PushReceiver(httpserver)
    _key, pem, public = vapid_key()
    (tmp_path / "vapid.pem").write_text(pem)
    conn = notification_connector(
        {"provider": "webpush", "vapid_private_key": "vapid.pem",
         "vapid_claims": {"sub": "mailto:ops@acme.test"}, "ttl": 600},
        EVENTS, name="browser", base_dir=tmp_path)
    try:
        result = await conn.push("new-follower", [receiver.subscription()], {"who": "Ann"},
                                 data={"url": "/u/ann", "n": 3})
        generic = await conn.send("title-only", {"tokens": [receiver.subscription()], "n": 5})
    finally:
        await conn.aclose()
    assert result == {"provider": "webpush", "sent": 1, "statuses": [201]}
    assert generic["statuses"] == [201]
    first, second = receiver.received
    assert first["payload"] == {"title": "Ann follows you", "body": "Say hi to Ann",
                                "data": {"url": "/u/ann", "n": 3}}
    assert second["payload"] == {"title": "Ping 5"}
    assert first["encoding"] == "aes128gcm" and first["ttl"] == "600"
    assert first["scheme"] == "vapid" and first["alg"] == "ES256"
    assert first["vapid_k"] == public
    host = httpserver.url_for("/").rstrip("/")
    assert first["claims"]["aud"] == host and first["claims"]["sub"] == "mailto:ops@acme.test"
    assert first["claims"]["exp"] > time.time()


async def test_webpush_ttl_with_a_unit_reaches_the_ttl_header_in_seconds(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # `ttl` is the one notification duration whose bare number is seconds (the protocol's);
    # a unit works too, and `timeout` is an ordinary duration.
    receiver = PushReceiver(httpserver)
    _key, pem, _public = vapid_key()
    (tmp_path / "vapid.pem").write_text(pem)
    conn = notification_connector(
        {"provider": "webpush", "vapid_private_key": "vapid.pem",
         "vapid_claims": {"sub": "mailto:ops@acme.test"}, "ttl": "10m", "timeout": "5s"},
        EVENTS, name="browser", base_dir=tmp_path)
    try:
        await conn.send("title-only", {"tokens": [receiver.subscription()], "n": 1})
    finally:
        await conn.aclose()
    (got,) = receiver.received
    assert got["ttl"] == "600"


async def test_webpush_raw_key_and_gone_subscription(httpserver: HTTPServer) -> None:
    receiver = PushReceiver(httpserver)
    key, _pem, _public = vapid_key()
    raw = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    conn = notification_connector(
        {"provider": "webpush", "vapid_private_key": raw,
         "vapid_claims": {"sub": "https://acme.test"}},
        EVENTS, name="browser", secrets=(raw,))
    try:
        await conn.push("title-only", [receiver.subscription()], {"n": 1})
        receiver.status = 410
        with pytest.raises(ConnectorError) as info:
            await conn.push("title-only", [receiver.subscription()], {"n": 2})
    finally:
        await conn.aclose()
    assert len(receiver.received) == 1
    assert info.value.status == 410
    assert "subscription expired or was unsubscribed; delete it" in str(info.value)
    assert str(info.value).startswith("notification/browser/title-only (env dev): ")


async def test_webpush_rejects_bad_subscriptions_and_keys(httpserver: HTTPServer) -> None:
    _key, pem, _public = vapid_key()
    config = {"provider": "webpush", "vapid_private_key": pem,
              "vapid_claims": {"sub": "mailto:ops@acme.test"}}
    conn = notification_connector(config, EVENTS, name="browser")
    try:
        with pytest.raises(ConnectorError, match=r"tokens\[0\]: a Web Push token is a "
                                                 r"subscription object"):
            await conn.push("title-only", ["just-a-string"], {"n": 1})
        with pytest.raises(ConnectorError, match=r"subscription needs `keys`"):
            await conn.push("title-only", [{"endpoint": "https://push.test/x"}], {"n": 1})
    finally:
        await conn.aclose()
    with pytest.raises(ConnectorError, match="is not a P-256 private key") as info:
        notification_connector({**config, "vapid_private_key": "bm90LWEta2V5"}, EVENTS)
    assert "bm90LWEta2V5" not in str(info.value)
    for bad in ("ops", "mailto:ops", "https://acme.test/contact"):
        with pytest.raises(ConnectorError, match=r"vapid_claims: \{sub: mailto:"):
            notification_connector({**config, "vapid_claims": {"sub": bad}}, EVENTS)
