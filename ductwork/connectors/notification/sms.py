"""SMS through Twilio's Messages REST API with httpx (no SDK)."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from ductwork.connectors.base import ResourceSpec
from ductwork.connectors.notification.common import BaseNotifier, response_body
from ductwork.connectors.util import redact_value, retryable_status
from ductwork.errors import ConnectorError

TWILIO_BASE_URL = "https://api.twilio.com"


class TwilioNotifier(BaseNotifier):
    """POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json, one message per phone."""

    provider: ClassVar[str] = "twilio"
    channels: ClassVar[tuple[str, ...]] = ("sms",)

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self.account_sid = self.conf_str("account_sid", required=True)
        auth_token = self.conf_str("auth_token", required=True)
        self.sender = self.conf_str("from")
        self.service_sid = self.conf_str("messaging_service_sid")
        if bool(self.sender) == bool(self.service_sid):
            raise spec.error(f"envs.{spec.env} needs exactly one of `from` (a Twilio number) "
                             "or `messaging_service_sid`")
        self.base_url = self.conf_str("base_url", TWILIO_BASE_URL).rstrip("/")
        self.url = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        self._client = httpx.AsyncClient(
            base_url=self.base_url, auth=httpx.BasicAuth(self.account_sid, auth_token),
            timeout=self.conf_seconds("timeout", 30.0),
            headers={"Accept": "application/json"},
        )

    async def _deliver_sms(self, event: str, phones: list[str], text: str) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for phone in phones:
            form = {"To": phone, "Body": text}
            if self.service_sid:
                form["MessagingServiceSid"] = self.service_sid
            else:
                form["From"] = self.sender
            try:
                resp = await self._client.post(self.url, data=form)
            except httpx.HTTPError as e:
                raise self._partial(self.fail(
                    f"cannot reach Twilio at {self.base_url}: {type(e).__name__}: {e}",
                    event, retryable=True), messages) from None
            if not resp.is_success:
                raise self._partial(self._status_error(resp, event, phone), messages)
            try:
                answer = resp.json()
            except ValueError:
                answer = {}
            messages.append({"to": phone, "sid": answer.get("sid"),
                             "status": answer.get("status")})
        return {"provider": self.provider, "sids": [m["sid"] for m in messages],
                "messages": messages}

    def _status_error(self, resp: httpx.Response, event: str, phone: str) -> ConnectorError:
        body = response_body(resp)
        if isinstance(body, dict):
            detail = str(body.get("message") or "no message")
            if body.get("code"):
                detail += f" (Twilio error {body['code']}"
                detail += f", {body['more_info']})" if body.get("more_info") else ")"
        else:
            detail = str(body) or resp.reason_phrase
        hint = "; check `account_sid`/`auth_token`" if resp.status_code in (401, 403) else ""
        return self.fail(
            f"Twilio answered {resp.status_code} for {phone}: {detail}{hint}", event,
            status=resp.status_code, body=redact_value(body, self.rspec.redact),
            retryable=retryable_status(resp.status_code))

    @staticmethod
    def _partial(err: ConnectorError, sent: list[dict[str, Any]]) -> ConnectorError:
        if sent:
            # Retrying the step resends to these; say so rather than hide it.
            err.args = (f"{err.args[0]} (already sent to {', '.join(m['to'] for m in sent)})",)
        return err

    async def aclose(self) -> None:
        await self._client.aclose()


def create_twilio(spec: ResourceSpec) -> TwilioNotifier:
    return TwilioNotifier(spec)
