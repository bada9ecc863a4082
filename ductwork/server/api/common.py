"""What the API modules share: the served Ductwork, redacted output, the body of a re-run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from ductwork.server.redact import redact

if TYPE_CHECKING:
    from ductwork.app import Ductwork

class ErrorBody(BaseModel):
    """Every error: what is wrong and how to fix it, and the ductwork error class if any."""

    detail: Any
    error: str | None = None


# The answers any route of the API may give besides its own (FastAPI's 422 is documented by it).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the engine refused the request (it says why)"},
    401: {"model": ErrorBody, "description": "no API token, or not a valid one"},
    403: {"model": ErrorBody, "description": "the token's scope does not allow this"},
    404: {"model": ErrorBody, "description": "no such run, workflow or schedule"},
    503: {"model": ErrorBody, "description": "the run store is unreachable"},
}

# A duration as the Python API takes it: "250ms", "5s", "2m", or a number of milliseconds.
Duration = str | float | None


def ductwork(request: Request) -> Ductwork:
    dw: Ductwork = request.app.state.ductwork
    return dw


def out(request: Request, value: Any) -> Any:
    """A response body: secrets masked (server/redact.py)."""
    return redact(ductwork(request), value)


class Body(BaseModel):
    """A request body: unknown fields are refused, so a misspelt option is not ignored."""

    model_config = ConfigDict(extra="forbid")


class RerunOptions(Body):
    """Where a re-run goes and whether the call waits for it."""

    new_workflow_id: str | None = Field(None, description="id of the new run (default: new)")
    wait: bool = Field(False, description="wait for the new run to end (up to `timeout`)")
    timeout: Duration = Field(None, description="how long to wait when wait is true")
    queue: bool = Field(False, description="leave the new run to a worker")

    def kwargs(self) -> dict[str, Any]:
        return {"new_workflow_id": self.new_workflow_id, "wait": self.wait,
                "timeout": self.timeout, "queue": self.queue}
