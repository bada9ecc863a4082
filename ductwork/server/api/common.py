"""What the API modules share: the served Ductwork, redacted output, the body of a re-run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from ductwork.server.redact import redact

if TYPE_CHECKING:
    from ductwork.app import Ductwork

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
