"""GET /api/definitions: the workflows this server knows, YAML or Python; GET /api/health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from ductwork.interpreter.result import WorkflowDef
from ductwork.server.api.common import ERRORS
from ductwork.server.auth import require

router = APIRouter(tags=["definitions"], responses=ERRORS)


def describe(wf: WorkflowDef) -> dict[str, Any]:
    return {"product": wf.product, "tag": wf.tag, "name": wf.name,
            "description": wf.description, "source": wf.source, "envs": wf.envs,
            "options": wf.options, "signals": sorted(wf.signals), "queries": sorted(wf.queries),
            "input_schema": wf.input_schema}


@router.get("/api/health", summary="Liveness: the server answers (no token needed)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/api/definitions", summary="Every workflow definition this server knows",
            dependencies=[Depends(require("read"))])
async def list_definitions(request: Request) -> list[dict[str, Any]]:
    dw = request.app.state.ductwork
    return [describe(wf) for wf in sorted(dw.workflows.definitions(),
                                          key=lambda w: (w.product, w.tag))]


@router.get("/api/definitions/{product}/{tag}", summary="One workflow definition",
            dependencies=[Depends(require("read"))])
async def get_definition(request: Request, product: str, tag: str) -> dict[str, Any]:
    return describe(request.app.state.ductwork.workflows.get(product, tag))
