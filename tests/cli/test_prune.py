"""`ductwork runs prune` and dw.workflows.prune: old finished runs go, active ones stay."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib

import pytest

from ductwork.errors import ConfigurationError
from tests.cli.test_runs import Cli, cli  # noqa: F401 (fixture)


def test_prune_cli_deletes_finished_runs_only(cli: Cli) -> None:  # noqa: F811
    # o-1 ended rolled_back just now; a-1 is waiting for a signal.
    assert cli.json("runs", "prune", "--older-than", "30d") == {"deleted": 0}
    code, out, _ = cli("runs", "prune", "--older-than", "0s", "--status", "completed")
    assert code == 0 and "nothing to delete" in out
    code, out, _ = cli("runs", "prune", "--older-than", "0s")
    assert code == 0 and "deleted 1 finished run(s)" in out
    ids = [r["workflow_id"] for r in cli.json("runs", "list")["runs"]]
    assert ids == ["a-1"]
    code, _, err = cli("runs", "prune", "--older-than", "0s", "--status", "waiting")
    assert code != 0 and "only finished runs" in err
    assert [r["workflow_id"] for r in cli.json("runs", "list")["runs"]] == ["a-1"]


def test_prune_api_reads_ages_and_times(cli: Cli) -> None:  # noqa: F811
    mod = importlib.import_module(cli.module)

    async def go() -> None:
        async with mod.dw:
            wf = mod.dw.workflows
            for bad in ("soon", 30, "30"):
                with pytest.raises(ConfigurationError, match="older_than"):
                    await wf.prune(older_than=bad)
            with pytest.raises(ConfigurationError, match="limit"):
                await wf.prune(older_than="1d", limit=0)
            past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
            assert await wf.prune(older_than=past) == {"deleted": 0}
            assert await wf.prune(older_than=dt.timedelta(0), status=["rolled_back"],
                                  limit=10) == {"deleted": 1}

    asyncio.run(go())
