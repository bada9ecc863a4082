"""Notification connectors: email (smtp, outbox), SMS (twilio), push (fcm, webpush)."""

from __future__ import annotations

# The validator of every notification provider (registered in ductwork.connectors).
from ductwork.connectors.notification.validation import validate

__all__ = ["validate"]
