"""/api/runs: start, list, read (status, result, history, logs, steps, queries), act on runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from ductwork.interpreter.result import ExecutionResult
from ductwork.server.api.common import ERRORS, Body, Duration, RerunOptions, ductwork, out
from ductwork.server.auth import Principal, require

router = APIRouter(prefix="/api", tags=["runs"], responses=ERRORS)
READ = [Depends(require("read"))]
Operator = Annotated[Principal, Depends(require("operator"))]
RunId = Annotated[str, Path(description="the run's workflow_id")]
TERMINAL = ("completed", "failed", "rolled_back", "cancelled")
RunStatus = Literal["pending", "preparing", "running", "sleeping", "waiting", "completed",
                    "failed", "rolled_back", "cancelled"]


def _result(request: Request, res: ExecutionResult) -> JSONResponse:
    """A run's outcome: 200 when it has ended, 202 while it is still going."""
    body = {**res.to_dict(), "rollback_result": res.rollback_result}
    return JSONResponse(out(request, body), status_code=200 if res.status in TERMINAL else 202)


def _rerun(request: Request, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(out(request, body),
                        status_code=200 if body.get("status") in TERMINAL else 202)


# -- starting ---------------------------------------------------------------------------------
class StartRun(Body):
    product: str
    workflow: str = Field(description="the workflow's tag")
    env: str
    input: Any = None
    workflow_id: str | None = Field(None, description="caller-chosen id: an idempotency key; "
                                    "the same id again returns the first run")
    idempotency_key: str | None = Field(None, description="the run's id becomes "
                                        "<product>:<workflow>:<key>")
    wait: bool = Field(False, description="false: return the id at once (the run goes on); "
                       "true: wait for the end, or until `timeout`")
    timeout: Duration = Field(None, description="with wait: the longest wait ('30s', ms)")


@router.post("/runs", summary="Start a run (execute); returns at once unless wait is true",
             status_code=202, responses={200: {"description": "the run has ended"},
                                         202: {"description": "the run is still going"}})
async def start_run(request: Request, body: StartRun, principal: Operator) -> JSONResponse:
    dw = ductwork(request)
    res = await dw.workflows.execute(
        body.product, body.env, body.workflow, body.input, body.workflow_id,
        idempotency_key=body.idempotency_key, timeout=body.timeout if body.wait else 0,
        context={"started_by": principal.name, "via": "api"})
    return _result(request, res)


# -- reading ----------------------------------------------------------------------------------
@router.get("/runs", summary="List runs, newest first; pass next_cursor for the next page",
            dependencies=READ)
async def list_runs(
    request: Request, product: str | None = None,
    workflow: Annotated[str | None, Query(description="the workflow's tag")] = None,
    status: Annotated[list[RunStatus] | None, Query(description="repeatable")] = None,
    since: Annotated[str | None, Query(description="ISO time or how long ago ('15m', '2h', "
                                       "'1d')")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50, cursor: str | None = None) -> Any:
    dw = ductwork(request)
    return out(request, await dw.workflows.list(product=product, tag=workflow,
                                                status=list(status) if status else None,
                                                since=since, limit=limit, cursor=cursor))


@router.get("/runs/{workflow_id}", summary="A run's status, current step and state",
            dependencies=READ)
async def run_status(request: Request, workflow_id: RunId) -> Any:
    return out(request, await ductwork(request).workflows.status(workflow_id))


@router.get("/runs/{workflow_id}/result",
            summary="A run's result, waiting up to `timeout` for its end (200 ended, 202 not)",
            dependencies=READ, responses={202: {"description": "the run is still going"}})
async def run_result(request: Request, workflow_id: RunId,
                     timeout: Annotated[str, Query(description="the longest wait")] = "0s"
                     ) -> JSONResponse:
    return _result(request, await ductwork(request).workflows.result(workflow_id, timeout))


@router.get("/runs/{workflow_id}/history", summary="The run's events, oldest first",
            dependencies=READ)
async def run_history(request: Request, workflow_id: RunId) -> Any:
    return out(request, await ductwork(request).workflows.history(workflow_id))


@router.get("/runs/{workflow_id}/logs", summary="The run's ctx.log lines", dependencies=READ)
async def run_logs(request: Request, workflow_id: RunId) -> Any:
    return out(request, await ductwork(request).workflows.logs(workflow_id))


@router.get("/runs/{workflow_id}/steps/{step}",
            summary="One step: input, output, error, attempts, timing, rollback",
            dependencies=READ)
async def step_detail(
        request: Request, workflow_id: RunId,
        step: Annotated[str, Path(description="a tag, or tag#n for its n-th occurrence")]
) -> Any:
    return out(request, await ductwork(request).workflows.step_detail(workflow_id, step))


@router.get("/runs/{workflow_id}/queries/{query}",
            summary="Answer a declared query from the run's latest state", dependencies=READ)
async def run_query(request: Request, workflow_id: RunId, query: str) -> Any:
    value = await ductwork(request).workflows.query(workflow_id, query)
    return out(request, {"workflow_id": workflow_id, "query": query, "result": value})


@router.get("/runs/{workflow_id}/related",
            summary="The run's family: parent, children, replays and restarts", dependencies=READ)
async def related(request: Request, workflow_id: RunId) -> Any:
    return out(request, await ductwork(request).workflows.related_executions(workflow_id))


@router.get("/compare", summary="Compare runs step by step (two or more workflow_id)",
            dependencies=READ)
async def compare(request: Request, workflow_id: Annotated[list[str], Query(
        description="repeat: ?workflow_id=a&workflow_id=b")]) -> Any:
    return out(request, await ductwork(request).workflows.compare(workflow_id))


# -- acting -----------------------------------------------------------------------------------
class SignalBody(Body):
    payload: Any = None


@router.post("/runs/{workflow_id}/signals/{signal}", summary="Send a signal to a run")
async def send_signal(request: Request, workflow_id: RunId, signal: str, body: SignalBody,
                      principal: Operator) -> Any:
    return out(request, await ductwork(request).workflows.signal(workflow_id, signal,
                                                                 body.payload))


class CancelBody(Body):
    reason: str = "cancelled"
    timeout: Duration = Field(None, description="wait this long for a run another process "
                              "owns to end")


@router.post("/runs/{workflow_id}/cancel",
             summary="Cancel a run and compensate its completed steps")
async def cancel(request: Request, workflow_id: RunId, body: CancelBody,
                 principal: Operator) -> Any:
    reason = f"{body.reason} (by {principal.name})" if principal.name != "local" else body.reason
    return out(request, await ductwork(request).workflows.cancel(workflow_id, reason,
                                                                 timeout=body.timeout))


class ReplayBody(RerunOptions):
    reason: str | None = None


@router.post("/runs/{workflow_id}/replay",
             summary="A new run of the same workflow with the same input",
             responses={202: {"description": "the new run is still going"}})
async def replay(request: Request, workflow_id: RunId, body: ReplayBody,
                 principal: Operator) -> JSONResponse:
    return _rerun(request, await ductwork(request).workflows.replay(
        workflow_id, body.reason, **body.kwargs()))


class RestartBody(RerunOptions):
    input: Any = Field(None, description="a whole new input")
    merge_input: dict[str, Any] | None = Field(None, description="fields to change")
    reason: str | None = None


@router.post("/runs/{workflow_id}/restart", summary="A new run from scratch, input changed",
             responses={202: {"description": "the new run is still going"}})
async def restart(request: Request, workflow_id: RunId, body: RestartBody,
                  principal: Operator) -> JSONResponse:
    return _rerun(request, await ductwork(request).workflows.restart(
        workflow_id, body.input, body.merge_input, body.reason, **body.kwargs()))


class ResumeBody(RerunOptions):
    from_checkpoint: str | None = None
    from_step: str | None = None
    skip_steps: list[str] | None = None


@router.post("/runs/{workflow_id}/resume",
             summary="A new run reusing the recorded results up to a checkpoint or step",
             responses={202: {"description": "the new run is still going"}})
async def resume(request: Request, workflow_id: RunId, body: ResumeBody,
                 principal: Operator) -> JSONResponse:
    return _rerun(request, await ductwork(request).workflows.resume(
        workflow_id, body.from_checkpoint, body.from_step, body.skip_steps, **body.kwargs()))


class ReplayFromStepBody(RerunOptions):
    from_step: str
    step_outputs: dict[str, Any] | None = Field(None, description="outputs to use instead "
                                                "of running those steps")
    reason: str | None = None


@router.post("/runs/{workflow_id}/replay-from-step",
             summary="A new run reusing recorded outputs before a step",
             responses={202: {"description": "the new run is still going"}})
async def replay_from_step(request: Request, workflow_id: RunId, body: ReplayFromStepBody,
                           principal: Operator) -> JSONResponse:
    return _rerun(request, await ductwork(request).workflows.replay_from_step(
        workflow_id, body.from_step, body.step_outputs, reason=body.reason, **body.kwargs()))
