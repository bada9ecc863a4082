"""`ductwork runs ...`: tables for people, --json for scripts, against a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.cli import main

APP = '''
from ductwork import Ductwork

dw = Ductwork(store=STORE, inline_wait="20ms")
BROKEN = {"ship": True}


@dw.workflows.workflow(product="shop", tag="order", signals=["approve"],
                       options={"rollback_strategy": "to_checkpoint"},
                       queries={"phase": lambda ctx: ctx.get_state("phase")})
async def order(ctx):
    r = await ctx.step("reserve", lambda: {"id": "r1", "sku": ctx.input.sku}, lambda r: None)
    await ctx.set_state("phase", "reserved")
    await ctx.checkpoint("reserved")
    await ctx.step("charge", lambda: {"id": "ch1"}, lambda r: None)

    def ship():
        if BROKEN["ship"] and not (ctx.is_restored or ctx.is_replay or ctx.is_restart):
            raise RuntimeError("carrier down")
        return {"tracking": "T-" + ctx.input.sku}

    return await ctx.step("ship", ship)


@dw.workflows.workflow(product="shop", tag="approval", signals=["approve"])
async def approval(ctx):
    ctx.log.info("waiting for approval")
    # A deadline keeps recover() from claiming the waiting run again and again (it treats a
    # waiting run without wake_at as due: reported to the store's owner).
    return await ctx.wait_for_signal("approve", timeout="1d")
'''


class Cli:
    """One store file, an app module defining its workflows, and a runner for the CLI."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
        self.url = f"sqlite:///{tmp_path / 'runs.db'}"
        self.module = f"cliapp_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{self.module}.py").write_text(
            textwrap.dedent(APP).replace("STORE", repr(self.url)))
        monkeypatch.chdir(tmp_path)  # the CLI imports --app modules from the working dir
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("COLUMNS", "200")
        self.capsys = capsys

    def __call__(self, *args: str, app: bool = False) -> tuple[int, str, str]:
        argv = [*args, "--store", self.url] + (["--app", f"{self.module}:dw"] if app else [])
        self.capsys.readouterr()
        code = main(argv)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str, app: bool = False) -> Any:
        code, out, err = self(*args, "--json", app=app)
        assert code in (0, 1), err
        return json.loads(out)

    def seed(self) -> None:
        """o-1 rolled back at ship; a-1 waiting for approval."""
        import importlib

        mod = importlib.import_module(self.module)

        async def go() -> None:
            dw: Ductwork = mod.dw
            async with dw:
                await dw.workflows.execute(product="shop", env="dev", tag="order",
                                           input={"sku": "book"}, workflow_id="o-1")
                await dw.workflows.execute(product="shop", env="dev", tag="approval",
                                           workflow_id="a-1")

        asyncio.run(go())

    def recover(self) -> list[Any]:
        import importlib

        mod = importlib.import_module(self.module)

        async def go() -> list[Any]:
            async with mod.dw:
                return [r.to_dict() for r in await mod.dw.workflows.recover()]

        return asyncio.run(go())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path, monkeypatch, capsys)
    c.seed()
    return c


def test_list_table_json_filters_and_paging(cli: Cli) -> None:
    code, out, _ = cli("runs", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["WORKFLOW", "ID", "WORKFLOW", "ENV"]
    assert any(ln.startswith("o-1") and "rolled_back" in ln and "carrier down" in ln
               for ln in lines)
    assert any(ln.startswith("a-1") and "waiting" in ln for ln in lines)

    page = cli.json("runs", "list", "--status", "waiting,failed")
    assert [r["workflow_id"] for r in page["runs"]] == ["a-1"]
    first = cli.json("runs", "list", "--limit", "1")
    assert len(first["runs"]) == 1 and first["next_cursor"]
    second = cli.json("runs", "list", "--limit", "1", "--cursor", first["next_cursor"])
    assert {first["runs"][0]["workflow_id"], second["runs"][0]["workflow_id"]} == {"o-1", "a-1"}
    code, out, _ = cli("runs", "list", "--limit", "1")
    assert "more: --cursor" in out
    assert cli.json("runs", "list", "--tag", "nothing")["runs"] == []
    code, _, err = cli("runs", "list", "--status", "rolledback")
    assert code == 1 and "did you mean 'rolled_back'" in err


def test_show_and_history(cli: Cli) -> None:
    code, out, _ = cli("runs", "show", "o-1")
    assert code == 0
    assert "o-1  shop/order  env dev  rolled_back" in out
    assert "error: Step 'ship' failed: RuntimeError: carrier down" in out
    charge = next(ln for ln in out.splitlines() if ln.startswith("charge "))
    assert "rolled back" in charge and '{"id": "ch1"}' in charge
    doc = cli.json("runs", "show", "o-1")
    assert doc["run"]["status"] == "rolled_back" and doc["input"] == {"sku": "book"}
    assert [s["key"] for s in doc["steps"]] == ["reserve", "@state:phase",
                                                "@checkpoint:reserved", "charge", "ship"]
    assert doc["related"]["descendants"] == []

    events = cli.json("runs", "history", "o-1")
    types = [e["type"] for e in events]
    assert types[0] == "workflow_started" and "rollback_started" in types
    assert types[-1] == "workflow_rolled_back"
    both = cli.json("runs", "history", "a-1", "--logs")
    assert both["logs"][0]["message"] == "waiting for approval"
    code, out, _ = cli("runs", "history", "a-1", "--logs")
    assert "log.info" in out and "waiting for approval" in out
    code, _, err = cli("runs", "show", "o-2")
    assert code == 1 and "No workflow run with id 'o-2'" in err and "did you mean 'o-1'" in err


def test_signal_then_a_worker_finishes_the_run(cli: Cli) -> None:
    code, out, _ = cli("runs", "signal", "a-1", "approve", "--payload", '{"by": "ann"}',
                       app=True)
    assert code == 0 and out.strip() == "signal 'approve' sent to a-1"
    (res,) = cli.recover()
    assert res["workflow_id"] == "a-1" and res["output"] == {"by": "ann"}
    code, _, err = cli("runs", "signal", "a-1", "approve", "--payload", "{oops", app=True)
    assert code == 1 and "--payload: not valid JSON" in err


def test_cancel_rolls_back(cli: Cli) -> None:
    doc = cli.json("runs", "cancel", "a-1", "--reason", "customer asked", app=True)
    assert doc["cancelled"] and doc["status"] == "cancelled"
    assert cli.json("runs", "show", "a-1")["run"]["status"] == "cancelled"


def test_resume_replay_restart_and_query(cli: Cli) -> None:
    code, out, _ = cli("runs", "resume", "o-1", "--from-checkpoint", "reserved", "--id", "o-1r",
                       app=True)
    assert code == 0, out
    assert out.splitlines()[0] == "resumed o-1 -> o-1r: completed"
    assert 'output: {"tracking": "T-book"}' in out
    shown = cli.json("runs", "show", "o-1r")
    assert shown["related"]["ancestors"][0]["workflow_id"] == "o-1"

    doc = cli.json("runs", "replay", "o-1", "--from-step", "charge", "--output",
                   'reserve={"id": "r9", "sku": "pen"}', app=True)
    assert doc["status"] == "completed" and doc["replayed_from"] == "o-1"
    assert doc["output"] == {"tracking": "T-book"}
    detail = cli.json("runs", "show", doc["workflow_id"])
    assert detail["steps"][0]["output"] == {"id": "r9", "sku": "pen"}

    doc = cli.json("runs", "restart", "o-1", "--merge", '{"sku": "mug"}', app=True)
    assert doc["output"] == {"tracking": "T-mug"} and doc["restarted_from"] == "o-1"

    code, out, _ = cli("runs", "query", "o-1", "phase", app=True)
    assert code == 0 and json.loads(out) == "reserved"

    code, _, err = cli("runs", "resume", "o-1", "--from-checkpoint", "reservd", app=True)
    assert code == 1 and "did you mean 'reserved'" in err
    code, _, err = cli("runs", "replay", "o-1", "--output", "a=1", app=True)
    assert code == 1 and "--output needs --from-step" in err


def test_replay_queued_for_a_worker(cli: Cli) -> None:
    doc = cli.json("runs", "replay", "o-1", "--queue", "--reason", "carrier is back")
    assert doc["status"] == "pending"
    (res,) = cli.recover()
    assert res["workflow_id"] == doc["workflow_id"] and res["status"] == "completed"
    _code, out, _ = cli("runs", "replay", "o-1", "--queue")
    assert "queued: a worker that defines this workflow will run it" in out
