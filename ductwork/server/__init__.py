"""`ductwork server`: the HTTP API, webhooks, metrics and web UI (the optional `server` extra)."""

from __future__ import annotations

from ductwork.server.app import create_app
from ductwork.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
