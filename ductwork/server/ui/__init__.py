"""The web UI (server-rendered pages, htmx live updates): create_app includes its `router`."""

from __future__ import annotations

from ductwork.server.ui.pages import router

__all__ = ["router"]
