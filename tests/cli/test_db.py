"""`ductwork db upgrade` and `ductwork db status` on both backends."""

from __future__ import annotations

import json
import os
import time

import pytest

from ductwork.cli import main
from ductwork.store import open_store
from ductwork.store.protocol import RunRow
from ductwork.store.schema import SCHEMA_VERSION


def test_upgrade_then_status(store_url_any: str, capsys: pytest.CaptureFixture[str]) -> None:
    if store_url_any.startswith("sqlite:"):
        # a status never creates the file it looks at: a missing one is an error naming it
        path = store_url_any[len("sqlite:///"):]
        assert main(["db", "status", "--store", store_url_any, "--json"]) == 1
        assert f"no run store at {path} (--store)" in capsys.readouterr().err
        assert not os.path.exists(path)
    else:  # an empty PostgreSQL database exists: its status says what to run
        assert main(["db", "status", "--store", store_url_any, "--json"]) == 0
        before = json.loads(capsys.readouterr().out)
        assert before["schema_version"] == 0
        assert before["pending_migrations"] == list(range(1, SCHEMA_VERSION + 1))

    assert main(["db", "upgrade", "--store", store_url_any]) == 0
    assert f"from version 0 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--store", store_url_any]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["db", "status", "--store", store_url_any, "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["schema_version"] == SCHEMA_VERSION and after["pending_migrations"] == []
    assert after["runs"] == {} and after["owners"] == []


async def test_status_shows_runs_and_the_workers_holding_leases(
        store_url_any: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(store_url_any)
    await store.open()
    t = time.time()
    try:
        for i, (status, owner) in enumerate([("running", "host:1:aa"), ("running", "host:1:aa"),
                                             ("completed", None), ("pending", None)]):
            await store.create_run(RunRow(f"w{i}", "p", "t", "dev", status=status,
                                          created_at=t, updated_at=t, owner=owner,
                                          lease_until=t + 30 if owner else None), [])
    finally:
        await store.close()
    monkeypatch.setenv("DUCTWORK_STORE", store_url_any)  # the default --store
    import asyncio

    out = await asyncio.to_thread(main, ["db", "status"])
    assert out == 0
    text = capsys.readouterr().out
    assert "completed 1, pending 1, running 2" in text
    assert "1 holding leases" in text and "host:1:aa" in text
    assert "***" in text or "postgresql" not in store_url_any  # no password printed


def test_db_without_an_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db"]) == 2
    assert "upgrade" in capsys.readouterr().out
