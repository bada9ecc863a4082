"""/api/dispatch and /api/schedules: queue runs for workers, recurring schedules, pause/resume."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import Field

from ductwork.errors import ConfigurationError
from ductwork.server.api.common import ERRORS, Body, ductwork, out
from ductwork.server.auth import require

router = APIRouter(prefix="/api", tags=["schedules"], responses=ERRORS)
READ = [Depends(require("read"))]
OPERATOR = [Depends(require("operator"))]
JobId = Annotated[str, Path(description="the schedule's job_id")]


async def _one(request: Request, call: Awaitable[dict[str, Any]]) -> Any:
    """One schedule's answer; an unknown job_id is a 404."""
    try:
        return out(request, await call)
    except ConfigurationError as e:
        if str(e).startswith("No schedule with job_id"):
            raise HTTPException(404, str(e)) from None
        raise


class DispatchBody(Body):
    product: str
    workflow: str = Field(description="the workflow's tag")
    env: str
    input: Any = None
    schedule: dict[str, Any] | None = Field(
        None, description="start_at, cron, every, timezone, limit, end_date, catchup")
    options: dict[str, Any] | None = Field(None, description="retries, timeout, queue, priority")
    workflow_id: str | None = None


@router.post("/dispatch", summary="Queue a run for a worker, or store a recurring schedule",
             dependencies=OPERATOR, status_code=202)
async def dispatch(request: Request, body: DispatchBody) -> Any:
    return out(request, await ductwork(request).workflows.dispatch(
        body.product, body.env, body.workflow, body.input, body.schedule, body.options,
        body.workflow_id))


@router.get("/schedules", summary="Recurring schedules", dependencies=READ)
async def list_schedules(
    request: Request,
    status: Annotated[list[Literal["active", "paused", "completed", "cancelled"]] | None,
                      Query(description="repeatable")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    return out(request, await ductwork(request).workflows.list_schedules(
        list(status) if status else None, limit))


@router.get("/schedules/{job_id}", summary="One schedule, with its next fire time",
            dependencies=READ)
async def get_schedule(request: Request, job_id: JobId) -> Any:
    return await _one(request, ductwork(request).workflows.get_schedule(job_id))


@router.post("/schedules/{job_id}/pause", summary="Pause a schedule", dependencies=OPERATOR)
async def pause(request: Request, job_id: JobId) -> Any:
    return await _one(request, ductwork(request).workflows.pause_schedule(job_id))


@router.post("/schedules/{job_id}/resume", summary="Resume a paused schedule",
             dependencies=OPERATOR)
async def resume(request: Request, job_id: JobId) -> Any:
    return await _one(request, ductwork(request).workflows.resume_schedule(job_id))


@router.delete("/schedules/{job_id}", summary="Cancel a schedule (no further runs)",
               dependencies=OPERATOR)
async def cancel(request: Request, job_id: JobId) -> Any:
    return await _one(request, ductwork(request).workflows.cancel_schedule(job_id))
