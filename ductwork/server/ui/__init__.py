"""The web UI's pages: create_app includes `router` (with /ui paths) when this package has one."""

from __future__ import annotations

from fastapi import APIRouter

# The UI's pages, static files and forms go on this router. create_app includes it after the
# JSON API, so it may use any path that is not /api, /hooks, /metrics or /openapi.json; it can
# protect a route with Depends(ductwork.server.auth.require("read" | "operator")) and reach
# the served Ductwork instance as request.app.state.ductwork. Stub until the UI lands.
router = APIRouter(include_in_schema=False)
