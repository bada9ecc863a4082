"""Signal payload schema defaults: filled in when a signal is sent, stored as the run reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import ConfigurationError

DECISION: dict[str, Any] = {
    "type": "object",
    "required": ["approved"],
    "properties": {
        "approved": {"type": "boolean"},
        "by": {"type": "string", "default": "ops"},
        "level": {"type": "integer", "minimum": 1, "default": 1},
        "note": {"type": ["string", "null"], "default": "none"},
        "notify": {
            "type": "object", "default": {},
            "properties": {"channel": {"type": "string", "default": "email"},
                           "tries": {"type": "integer", "default": 3}},
        },
    },
}
FILLED = {"approved": True, "by": "ops", "level": 1, "note": "none",
          "notify": {"channel": "email", "tries": 3}}


def define(dw: Ductwork, schema: Any = DECISION) -> None:
    @dw.workflows.workflow(product="p", tag="approval", signals={"decide": schema})
    async def approval(ctx: Any) -> Any:
        return await ctx.wait_for_signal("decide", timeout="10s")


async def _send_and_run(dw: Ductwork, wid: str, payload: Any) -> tuple[Any, Any]:
    """(the payload stored with the signal, what the run's wait returned): the signal is sent
    before the run starts, so it is kept until the wait consumes it."""
    await dw.workflows.dispatch(product="p", env="dev", workflow="approval", input={},
                                workflow_id=wid)
    await dw.workflows.signal(wid, "decide", payload)
    row = await dw.store.find_signal(wid, ["decide"])
    assert row is not None
    stored = json.loads(row.payload or "null")
    await dw.workflows.recover()
    res = await dw.workflows.result(wid, timeout="10s")
    assert res.status == "completed", res.error
    return stored, res.output


async def test_a_signal_gets_its_schema_s_defaults_stored_and_read(dw: Ductwork) -> None:
    define(dw)
    stored, read = await _send_and_run(dw, "a-1", {"approved": True})
    assert stored == FILLED and read == FILLED


async def test_given_values_win_nested_objects_are_filled_and_null_is_a_value(
        dw: Ductwork) -> None:
    define(dw)
    given = {"approved": False, "by": "ann", "note": None, "notify": {"tries": 5}}
    stored, read = await _send_and_run(dw, "a-2", given)
    assert read == stored == {"approved": False, "by": "ann", "level": 1, "note": None,
                              "notify": {"channel": "email", "tries": 5}}
    assert given["notify"] == {"tries": 5}  # the caller's payload is never changed in place


async def test_the_filled_payload_is_checked_against_the_schema(dw: Ductwork) -> None:
    define(dw)
    await dw.workflows.dispatch(product="p", env="dev", workflow="approval", input={},
                                workflow_id="a-3")
    with pytest.raises(ConfigurationError, match=r"signal 'decide' payload does not match its "
                       r"declared shape: level: 0 is less than the minimum of 1"):
        await dw.workflows.signal("a-3", "decide", {"approved": True, "level": 0})
    with pytest.raises(ConfigurationError, match="'approved' is a required property"):
        await dw.workflows.signal("a-3", "decide", {})
    assert await dw.store.find_signal("a-3", ["decide"]) is None  # nothing half-sent


async def test_signals_without_schema_or_defaults_pass_the_payload_as_sent(
        dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="plain",
                           signals={"go": None, "typed": {"type": "object"}})
    async def plain(ctx: Any) -> Any:
        return [await ctx.wait_for_signal("go"), await ctx.wait_for_signal("typed")]

    await dw.workflows.dispatch(product="p", env="dev", workflow="plain", input={},
                                workflow_id="b-1")
    await dw.workflows.signal("b-1", "go", {"x": 1})
    await dw.workflows.signal("b-1", "typed", {})
    await dw.workflows.recover()
    res = await dw.workflows.result("b-1", timeout="10s")
    assert res.status == "completed", res.error
    assert res.output == [{"x": 1}, {}]


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "object", "properties": {"level": {"type": "integer", "minimum": 1,
                                                 "default": 0}}},
     r"define\(p/approval\): the payload schema of signal 'decide' properties/level/default 0 "
     r"does not match its own schema: 0 is less than the minimum of 1; fix the default or the "
     r"schema \(a signal that leaves the property out would fail the payload check\)"),
    ({"type": "object", "properties": {"who": {"type": "object", "required": ["id"],
                                               "default": {}}}},
     r"properties/who/default \{\} does not match its own schema: 'id' is a required"),
])
def test_define_refuses_a_signal_default_its_schema_refuses(dw: Ductwork, schema: Any,
                                                            message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        define(dw, schema)


YAML_WORKFLOW = """\
workflow: approval
signals:
  decide:
    type: object
    required: [approved]
    properties:
      approved: {type: boolean}
      by: {type: string, default: ops}
      notify:
        type: object
        default: {}
        properties:
          channel: {type: string, enum: [email, sms], default: email}
steps:
  - tag: wait
    wait_for_signal: {name: decide, timeout: 10s}
output:
  who: "${steps.wait.by}"
  channel: "${steps.wait.notify.channel}"
"""


async def test_a_yaml_workflow_reads_the_filled_payload(tmp_path: Path) -> None:
    product = tmp_path / "specs" / "p"
    (product / "workflows").mkdir(parents=True)
    (product / "product.yaml").write_text("product: p\nenvs: [dev]\n")
    (product / "workflows" / "approval.yaml").write_text(YAML_WORKFLOW)
    dw = Ductwork(specs=str(tmp_path / "specs"), store=f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        stored, read = await _send_and_run(dw, "y-1", {"approved": True})
        assert stored == {"approved": True, "by": "ops", "notify": {"channel": "email"}}
        assert read == {"who": "ops", "channel": "email"}
    finally:
        await dw.aclose()
