"""Checks and encoding of what callers pass in: a new run's input and its workflow_id."""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError
from ductwork.interpreter import codec
from ductwork.util.text import check_text

if TYPE_CHECKING:
    from ductwork.interpreter.definitions import Definitions
    from ductwork.interpreter.result import WorkflowDef


def new_workflow_id() -> str:
    """A new run's id: "wf_", the creation time in milliseconds (11 hex digits, until the year
    2527), then 16 random hex digits. Ids that grow with time put each new run's keys at the
    right edge of the run and step tables' indexes: random ids scatter them, which costs page
    reads and writes all over those indexes once a store outgrows the database's cache (and on
    PostgreSQL a full-page image of each page first touched after a checkpoint). 64 random
    bits per millisecond keep ids unique however many processes start runs at once."""
    return f"wf_{time.time_ns() // 1_000_000:011x}{secrets.token_hex(8)}"


def check_workflow_id(workflow_id: Any, where: str) -> None:
    check_text(workflow_id, "workflow_id", where, optional=True)


def encode_input(data: Any, where: str) -> str:
    try:
        return codec.dumps(data, "input")
    except (TypeError, ValueError) as e:
        raise ConfigurationError(
            f"{where}: the input cannot be stored: {e}; use {codec.SUPPORTED}") from None


def prepare_input(defs: Definitions, wf: WorkflowDef, env: str, input: Any, where: str) -> str:
    """Check env and input against the definition; the input encoded for the store, with the
    schema's defaults filled in (a replay reads what this run read)."""
    defs.check_env(wf, env)
    if isinstance(input, str) and input.lstrip().startswith("{") and _json_object(input):
        # A request body passed on as it came: ctx.input.x would fail in the middle of the run.
        raise ConfigurationError(f"{where}: the input is a str holding a JSON object; pass the "
                                 "object itself: input=json.loads(text)")
    data = {} if input is None else input
    # Encoded first: the codec bounds the depth (and refuses what no store holds) before the
    # schema check walks the value.
    enc = "{}" if input is None else encode_input(data, where)
    filled = defs.validate_input(wf, data)
    return enc if filled is data else encode_input(filled, where)


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
