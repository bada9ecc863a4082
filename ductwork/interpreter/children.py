"""Child workflows: ctx.workflow(child_id, tag, input, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError

if TYPE_CHECKING:
    from ductwork.interpreter.context import WorkflowContext
    from ductwork.interpreter.engine import Engine


async def run_child(engine: Engine, ctx: WorkflowContext, child_id: str, tag: str, input: Any,
                    **options: Any) -> Any:
    raise ConfigurationError("ctx.workflow (child workflows) is not available yet")
