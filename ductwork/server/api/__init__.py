"""The JSON API under /api: one module per resource, assembled into `router`."""

from __future__ import annotations

from fastapi import APIRouter

from ductwork.server.api import definitions

router = APIRouter()
router.include_router(definitions.router)
