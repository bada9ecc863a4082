"""Notification connectors: email (smtp, outbox), SMS (twilio), push (fcm, webpush)."""

from __future__ import annotations

from ductwork.connectors.base import register_provider, register_validator
from ductwork.connectors.notification.validation import validate

_MOD = "ductwork.connectors.notification"
# provider -> factory; the modules are imported on first use, so nobody pays for google-auth
# or pywebpush who does not send push.
FACTORIES: dict[str, str] = {
    "outbox": f"{_MOD}.email:create_outbox",
    "smtp": f"{_MOD}.email:create_smtp",
    "twilio": f"{_MOD}.sms:create_twilio",
    "fcm": f"{_MOD}.push:create_fcm",
    "webpush": f"{_MOD}.push:create_webpush",
}
VALIDATOR = f"{_MOD}:validate"


def register() -> None:
    """Register every notification provider and its validator (idempotent)."""
    for provider, factory in FACTORIES.items():
        register_provider("notification", provider, factory)
        register_validator("notification", provider, VALIDATOR)


__all__ = ["FACTORIES", "VALIDATOR", "register", "validate"]
