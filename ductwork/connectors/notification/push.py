"""Push: FCM HTTP v1 (service-account OAuth2 token via google-auth) and Web Push (VAPID)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import requests

from ductwork.connectors.base import ResourceSpec
from ductwork.connectors.notification.common import (
    VAPID_SUB,
    BaseNotifier,
    Push,
    base_path,
    push_data,
    response_body,
    subscription_problem,
    webpush_ttl,
)
from ductwork.connectors.util import redact_value, retryable_status
from ductwork.errors import ConnectorError

FCM_BASE_URL = "https://fcm.googleapis.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


class FcmNotifier(BaseNotifier):
    """POST {base_url}/v1/projects/{project_id}/messages:send, one message per device token."""

    provider: ClassVar[str] = "fcm"
    channels: ClassVar[tuple[str, ...]] = ("push",)

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        info = self._service_account()
        self.project_id = self.conf_str("project_id") or str(info.get("project_id") or "")
        if not self.project_id:
            raise spec.error(f"envs.{spec.env} needs `project_id` (the service account JSON "
                             "has none)")
        try:
            self.credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[FCM_SCOPE])
        except (ValueError, TypeError, KeyError) as e:
            raise spec.error(f"`service_account` in envs.{spec.env} is not a usable service "
                             f"account key: {type(e).__name__}: {e}") from None
        self.token_uri = str(info.get("token_uri"))
        self.base_url = self.conf_str("base_url", FCM_BASE_URL).rstrip("/")
        self.url = f"/v1/projects/{self.project_id}/messages:send"
        self._session = requests.Session()  # token grants, made in a worker thread
        self._request = Request(session=self._session)
        self._client = httpx.AsyncClient(base_url=self.base_url,
                                         timeout=self.conf_seconds("timeout", 30.0))
        self._token_lock = asyncio.Lock()

    def _service_account(self) -> dict[str, Any]:
        env = self.rspec.env
        value = self.rspec.config.get("service_account")
        if isinstance(value, Mapping):
            return dict(value)
        if not isinstance(value, str) or not value.strip():
            raise self.rspec.error(f"provider 'fcm' needs `service_account` in envs.{env} "
                                   "(a path to the JSON key file, or the JSON itself)")
        text, source = value, "the inline JSON"
        if not value.lstrip().startswith("{"):
            path = base_path(self.rspec, value)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                raise self.rspec.error(f"cannot read `service_account` file {path}: "
                                       f"{e.strerror}") from None
            source = path
        try:
            info = json.loads(text)
        except json.JSONDecodeError as e:
            raise self.rspec.error(f"`service_account` ({source}) is not JSON: line {e.lineno}"
                                   ) from None
        if not isinstance(info, dict):
            raise self.rspec.error(f"`service_account` ({source}) must be a JSON object")
        return info

    async def _token(self, event: str, *, renew: bool = False) -> str:
        from google.auth import exceptions as gexc

        async with self._token_lock:
            if renew or not self.credentials.valid:
                try:
                    await asyncio.to_thread(self.credentials.refresh, self._request)
                except (gexc.RefreshError, gexc.TransportError) as e:
                    raise self.fail(
                        f"cannot get an FCM access token from {self.token_uri}: {e}", event,
                        retryable=isinstance(e, gexc.TransportError)) from None
            return str(self.credentials.token)

    async def _deliver_push(self, event: str, tokens: list[Any], note: Push) -> dict[str, Any]:
        ids: list[str] = []
        for token in tokens:
            notification = {k: v for k, v in (("title", note.title), ("body", note.body))
                            if v is not None}
            message: dict[str, Any] = {"token": token, "notification": notification}
            if note.data:
                message["data"] = push_data(note.data)
            resp = await self._post(event, {"message": message})
            if resp.status_code == 401:  # token revoked/expired early: one fresh grant
                resp = await self._post(event, {"message": message}, renew=True)
            if not resp.is_success:
                raise self._status_error(resp, event, len(ids))
            ids.append(str(resp.json().get("name", "")))
        return {"provider": self.provider, "message_ids": ids}

    async def _post(self, event: str, payload: dict[str, Any], *,
                    renew: bool = False) -> httpx.Response:
        token = await self._token(event, renew=renew)
        try:
            return await self._client.post(
                self.url, json=payload, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as e:
            raise self.fail(f"cannot reach FCM at {self.base_url}: {type(e).__name__}: {e}",
                            event, retryable=True) from None

    def _status_error(self, resp: httpx.Response, event: str, sent: int) -> ConnectorError:
        body = response_body(resp)
        detail = str(body) or resp.reason_phrase
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            detail = f"{err.get('status', '')} {err.get('message', '')}".strip()
            codes = [str(d.get("errorCode")) for d in err.get("details") or []
                     if isinstance(d, dict) and d.get("errorCode")]
            if codes:
                detail += f" ({', '.join(codes)})"
        already = f" (already sent to {sent} of the tokens)" if sent else ""
        return self.fail(f"FCM answered {resp.status_code}: {detail}{already}", event,
                         status=resp.status_code, body=redact_value(body, self.rspec.redact),
                         retryable=retryable_status(resp.status_code))

    def token_problem(self, token: Any) -> str | None:
        if not isinstance(token, str):
            return f"an FCM token is a registration token string, not {type(token).__name__}"
        return super().token_problem(token)

    async def aclose(self) -> None:
        await self._client.aclose()
        self._session.close()


class WebPushNotifier(BaseNotifier):
    """Web Push (RFC 8030/8291/8292): aes128gcm payload to each subscription's endpoint."""

    provider: ClassVar[str] = "webpush"
    channels: ClassVar[tuple[str, ...]] = ("push",)

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        env = spec.env
        self.vapid = self._vapid()
        claims = spec.config.get("vapid_claims")
        sub = claims.get("sub") if isinstance(claims, Mapping) else None
        if not isinstance(sub, str) or not VAPID_SUB.match(sub):
            raise spec.error(f"envs.{env} needs `vapid_claims: {{sub: mailto:you@example.com}}` "
                             "(a mailto: address or a bare https://host contact for the push "
                             "services)")
        self.sub = sub
        try:
            self.ttl = webpush_ttl(spec.config.get("ttl", 86400))
        except ValueError as e:
            raise spec.error(f"envs.{env}: {e}") from None
        self.timeout = self.conf_seconds("timeout", 30.0)
        self._session = requests.Session()

    def _vapid(self) -> Any:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        from py_vapid import Vapid

        env = self.rspec.env
        value = self.conf_str("vapid_private_key", required=True).strip()
        if not value.startswith("-----BEGIN") and not re.fullmatch(r"[A-Za-z0-9_\-+/=]+", value):
            path = base_path(self.rspec, value)
            try:
                with open(path, encoding="ascii") as f:
                    value = f.read().strip()
            except (OSError, ValueError) as e:
                raise self.rspec.error(f"cannot read `vapid_private_key` file {path}: "
                                       f"{type(e).__name__}") from None
        try:
            if value.startswith("-----BEGIN"):
                key = load_pem_private_key(value.encode(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey) or \
                        key.curve.name != "secp256r1":
                    raise ValueError("not a P-256 key")
                return Vapid(key)
            return Vapid.from_string(value)
        except Exception:  # the message could quote key material: say only what to fix
            raise self.rspec.error(
                f"`vapid_private_key` in envs.{env} is not a P-256 private key (give a PEM, a "
                "path to one, or the base64url raw/DER key)") from None

    async def _deliver_push(self, event: str, tokens: list[Any], note: Push) -> dict[str, Any]:
        payload = json.dumps({k: v for k, v in (("title", note.title), ("body", note.body),
                                                ("data", note.data)) if v is not None},
                             default=str)
        statuses: list[int] = []
        for token in tokens:
            statuses.append(await self._send_one(event, dict(token), payload, len(statuses)))
        return {"provider": self.provider, "sent": len(statuses), "statuses": statuses}

    async def _send_one(self, event: str, subscription: dict[str, Any], payload: str,
                        sent: int) -> int:
        from py_vapid import VapidException
        from pywebpush import WebPushException, webpush

        host = httpx.URL(subscription["endpoint"]).host
        already = f" (already sent to {sent} of the tokens)" if sent else ""
        try:
            resp = await asyncio.to_thread(
                webpush, subscription_info=subscription, data=payload,
                vapid_private_key=self.vapid,
                # pywebpush writes `aud`/`exp` into the dict: a fresh one per endpoint.
                vapid_claims={"sub": self.sub}, ttl=self.ttl, timeout=self.timeout,
                requests_session=self._session)
        except WebPushException as e:
            status = getattr(e.response, "status_code", None)
            text = (getattr(e.response, "text", "") or "")[:300]
            if status in (404, 410):
                msg = (f"push service {host} answered {status}: the subscription expired or "
                       "was unsubscribed; delete it")
            else:
                msg = f"push service {host} answered {status}: {text or e.message}"
            raise self.fail(msg + already, event, status=status,
                            retryable=retryable_status(status)) from None
        except requests.RequestException as e:
            raise self.fail(f"cannot reach push service {host}: {type(e).__name__}: {e}"
                            + already, event, retryable=True) from None
        except VapidException as e:
            raise self.fail(f"cannot sign the VAPID claims: {e}" + already, event) from None
        except (ValueError, TypeError) as e:  # undecodable p256dh/auth keys
            raise self.fail(f"subscription keys are not usable: {e}" + already, event) \
                from None
        return int(getattr(resp, "status_code", 0))

    def token_problem(self, token: Any) -> str | None:
        return subscription_problem(token)

    async def aclose(self) -> None:
        self._session.close()


def create_fcm(spec: ResourceSpec) -> FcmNotifier:
    return FcmNotifier(spec)


def create_webpush(spec: ResourceSpec) -> WebPushNotifier:
    return WebPushNotifier(spec)

