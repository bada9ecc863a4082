"""When the run store fails under a run (locked by another session, deleted, down) the run is
the engine's trouble, not the workflow's: a clear StoreError, no compensation, and the run is
finished later from its last commit. And a crash in the middle of compensating a saga."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ductwork import Ductwork, StoreError
from ductwork.store.postgres import PostgresStore
from tests.interpreter.test_durability import wait_for_line
from tests.support.ports import free_port
from tests.support.postgres import PgServer, postgres_server  # noqa: F401 (session fixture)

SAGA_APP = Path(__file__).with_name("saga_crash_app.py")


def saga(dw: Ductwork, ran: list[str]) -> asyncio.Event:
    """Steps a, b, c with compensations; the handler waits for the returned event after a."""
    gate = asyncio.Event()

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        def step(name: str) -> Callable[[], str]:
            return lambda: ran.append(name) or name

        await ctx.step("a", step("a"), rollback=lambda _r: ran.append("undo a"))
        await gate.wait()
        await ctx.step("b", step("b"), rollback=lambda _r: ran.append("undo b"))
        await ctx.step("c", step("c"))
        return "done"

    return gate


async def ran_step(ran: list[str], name: str) -> bool:
    return name in ran


async def until(what: str, check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_sqlite_store_locked_by_another_connection_compensates_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    dw = Ductwork(store=f"sqlite:///{path}", inline_wait="5s", lease="3s")
    ran: list[str] = []
    gate = saga(dw, ran)
    async with dw:
        await dw.workflows.list()  # opens the store
        dw.store.conn.execute("PRAGMA busy_timeout=200")  # type: ignore[attr-defined]
        run = asyncio.create_task(dw.workflows.execute(product="p", env="dev", tag="t",
                                                       workflow_id="w"))
        await until("step a", lambda: ran_step(ran, "a"))
        # Another connection (a backup, a sqlite3 shell) holds the write lock past the busy
        # timeout while step b commits.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        gate.set()
        with pytest.raises(StoreError, match="database is locked") as err:
            await run
        assert "write lock" in str(err.value)
        # A new run meets the same lock: the store's error, not sqlite3's.
        with pytest.raises(StoreError, match="database is locked"):
            await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w2")
        other.execute("ROLLBACK")
        other.close()
        # Not failed, not rolled back: given back to be tried again once the store answers.
        assert ran == ["a", "b"]

        async def released() -> bool:
            return (await dw.workflows.status("w"))["status"] == "pending"

        await until("the run to be released", released)
        done = await until("the run to be recovered", dw.workflows.recover)
        assert [(r.workflow_id, r.status, r.output) for r in done] == [("w", "completed", "done")]
    # a committed before the lock: never again; b's commit never landed: at-least-once.
    assert ran == ["a", "b", "b", "c"]


async def test_a_sqlite_store_deleted_while_in_use_reports_no_run_finished(
        tmp_path: Path) -> None:
    folder = tmp_path / "state"
    dw = Ductwork(store=f"sqlite:///{folder / 'runs.db'}", inline_wait="5s")
    ran: list[str] = []
    gate = saga(dw, ran)
    async with dw:
        run = asyncio.create_task(dw.workflows.execute(product="p", env="dev", tag="t",
                                                       workflow_id="w"))
        await until("step a", lambda: ran_step(ran, "a"))
        shutil.rmtree(folder)  # a clean-up job removes the store's folder mid-run
        gate.set()
        with pytest.raises(StoreError, match="was deleted while in use"):
            await run
        # Given back to a store that is gone: not claimed again, here or by a worker.
        with pytest.raises(StoreError, match="was deleted while in use"):
            await dw.workflows.recover()
    assert ran == ["a", "b", "c"]  # no compensation either
    assert not folder.exists()


async def test_a_read_only_sqlite_store_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    path = folder / "runs.db"
    async with Ductwork(store=f"sqlite:///{path}") as dw:
        await dw.workflows.list()  # creates the store
    # Root ignores permission bits: an immutable file and folder are read-only even to root.
    lock = (["chattr", "+i"], ["chattr", "-i"]) if os.geteuid() == 0 else None
    if lock is None:
        path.chmod(0o444)
        folder.chmod(0o555)
    else:
        subprocess.run([*lock[0], str(path), str(folder)], check=True)
    try:
        with pytest.raises(StoreError, match="check permissions and read-only mounts"):
            async with Ductwork(store=f"sqlite:///{path}") as dw:
                await dw.workflows.execute(product="p", env="dev", tag="t")
    finally:
        if lock is None:
            folder.chmod(0o755)
            path.chmod(0o644)
        else:
            subprocess.run([*lock[1], str(path), str(folder)], check=True)


@pytest.fixture
def pg_url(postgres_server: PgServer) -> str:  # noqa: F811
    return postgres_server.create_database("f_" + uuid.uuid4().hex[:16])


async def test_postgres_tables_locked_past_lock_timeout_compensate_nothing(pg_url: str) -> None:
    # lock_timeout through libpq's options, as a user sets it (percent-encoded space).
    store = PostgresStore(pg_url + "?options=-c%20lock_timeout%3D200ms", retry_s=1)
    dw = Ductwork(store=store, inline_wait="5s", lease="3s")
    ran: list[str] = []
    gate = saga(dw, ran)
    async with dw, await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as locker:
        run = asyncio.create_task(dw.workflows.execute(product="p", env="dev", tag="t",
                                                       workflow_id="w"))
        await until("step a", lambda: ran_step(ran, "a"))
        await locker.execute("BEGIN")
        await locker.execute("LOCK TABLE dw_steps IN ACCESS EXCLUSIVE MODE")
        gate.set()
        with pytest.raises(StoreError, match="lock timeout") as err:
            await run
        assert "unreachable" not in str(err.value) and "dw_* tables" in str(err.value)
        await locker.execute("ROLLBACK")
        assert ran == ["a", "b"]
        assert (await dw.workflows.status("w"))["status"] == "pending"
        done = await until("the run to be recovered", dw.workflows.recover)
        assert [(r.workflow_id, r.status) for r in done] == [("w", "completed")]
    assert ran == ["a", "b", "b", "c"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_while_compensating_then_recover(tmp_path: Path, backend: str,
                                                 request: pytest.FixtureRequest) -> None:
    store = (f"sqlite:///{tmp_path / 'runs.db'}" if backend == "sqlite"
             else request.getfixturevalue("pg_url"))
    log = tmp_path / "effects.log"
    proc = subprocess.Popen([sys.executable, str(SAGA_APP), store, str(log), "execute"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_line(log, "undo b", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    rec = subprocess.run([sys.executable, str(SAGA_APP), store, str(log), "recover"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout.startswith("rolled_back Step 'charge' failed"), rec.stdout
    # d and c were compensated and recorded before the crash: not again. b's compensation
    # was cut off before its record: it runs again (at-least-once), then a; newest first.
    assert log.read_text().splitlines() == [
        "do a", "do b", "do c", "do d",
        "undo d", "undone d", "undo c", "undone c", "undo b",
        "undo b", "undone b", "undo a", "undone a"]


@pytest.fixture
def resetting_server() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP provider that reads each request and resets the connection without answering
    (its process died mid-call): its URL and the request lines it read."""
    seen: list[bytes] = []
    sock = socket.create_server(("127.0.0.1", free_port()))
    stop = threading.Event()

    sock.settimeout(0.05)  # accept() wakes up to see stop

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            seen.append(conn.recv(65536).split(b"\r\n", 1)[0])
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: the request may have been processed, no answer came back

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(5)
        sock.close()


async def test_a_provider_resetting_the_connection_is_retried_then_rolls_back(
        tmp_path: Path, resetting_server: tuple[str, list[bytes]]) -> None:
    url, seen = resetting_server
    specs = tmp_path / "specs"
    (specs / "shop" / "workflows").mkdir(parents=True)
    (specs / "shop" / "product.yaml").write_text(textwrap.dedent(f"""
        product: shop
        envs: [dev]
        apps:
          psp:
            envs: {{dev: {{base_url: "{url}", timeout: 5s}}}}
            events: {{charge: {{method: POST, path: /v1/charges, body: [amount]}}}}
        """))
    (specs / "shop" / "workflows" / "pay.yaml").write_text(textwrap.dedent("""
        workflow: pay
        steps:
          - tag: hold
            python: tests.interpreter.test_faults:hold
            rollback:
              python: tests.interpreter.test_faults:release
          - tag: charge
            retries: 2
            retry_delay: 10ms
            action.run: {app: psp, event: charge, input: {amount: "${ctx.input.amount}"}}
        """))
    HELD.clear()
    async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        r = await dw.workflows.execute(product="shop", env="dev", tag="pay", input={"amount": 5})
    assert seen == [b"POST /v1/charges HTTP/1.1"] * 3  # the first attempt and two retries
    assert r.status == "rolled_back" and r.failed_step == "charge"
    assert r.error is not None and r.error.message.startswith(
        "Step 'charge' failed after 3 attempts: action/psp/charge (env dev): POST /v1/charges "
        f"failed at {url}")
    assert "ReadError: the server reset or closed the connection" in r.error.message
    assert HELD == ["hold", "release"]


HELD: list[str] = []


def hold(ctx: Any) -> dict[str, bool]:
    HELD.append("hold")
    return {"held": True}


def release(ctx: Any, *args: Any) -> None:
    HELD.append("release")
