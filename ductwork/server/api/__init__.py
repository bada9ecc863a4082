"""The JSON API under /api: one module per resource, assembled into `router`."""

from __future__ import annotations

from fastapi import APIRouter

from ductwork.server.api import definitions, runs, schedules

router = APIRouter()
router.include_router(definitions.router)
router.include_router(runs.router)
router.include_router(schedules.router)
