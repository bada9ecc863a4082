"""The worker: due sleeps, timed-out waits, signals, concurrency, crashes, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.cli.worker import load_app
from ductwork.errors import ConfigurationError, SignalTimeoutError

from .helpers import eventually, log_lines, run_worker, start_worker_process, wait_for_line
from .worker_app import build


async def _status(dw: Ductwork, wid: str) -> str:
    return str((await dw.workflows.status(wid))["status"])


async def test_worker_resumes_due_sleeps_and_timed_out_waits(store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="20ms")

    @dw.workflows.workflow(product="p", tag="nap")
    async def nap(ctx: Any) -> Any:
        await ctx.sleep("200ms")
        return "rested"

    @dw.workflows.workflow(product="p", tag="wait")
    async def wait(ctx: Any) -> Any:
        try:
            return await ctx.wait_for_signal("go", timeout="200ms")
        except SignalTimeoutError:
            return "gave up"

    async with dw:
        a = await dw.workflows.execute(product="p", env="dev", tag="nap", workflow_id="a")
        b = await dw.workflows.execute(product="p", env="dev", tag="wait", workflow_id="b")
        assert a.status == b.status == "running"
        async with run_worker(dw):
            await eventually(None, lambda: _both_done(dw))
        assert (await dw.workflows.result("a")).output == "rested"
        assert (await dw.workflows.result("b")).output == "gave up"


async def _both_done(dw: Ductwork) -> bool:
    return await _status(dw, "a") == await _status(dw, "b") == "completed"


async def test_a_signal_sent_while_no_process_runs_completes_under_a_worker(
        store_url: str) -> None:
    def build_app() -> Ductwork:
        dw = Ductwork(store=store_url, inline_wait="20ms")

        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            await ctx.step("prepare", lambda: 1)
            return await ctx.wait_for_signal("approve")

        return dw

    first = build_app()
    async with first:
        await first.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        await eventually(None, lambda: _is(first, "w", "waiting"))
    sender = Ductwork(store=store_url)  # knows no workflows: only sends the signal
    async with sender:
        await sender.workflows.signal("w", "approve", {"ok": True})
    worker_app = build_app()
    async with worker_app, run_worker(worker_app):
        res = await worker_app.workflows.result("w", timeout="10s")
    assert res.status == "completed" and res.output == {"ok": True}


async def _is(dw: Ductwork, wid: str, status: str) -> bool:
    return await _status(dw, wid) == status


async def test_the_concurrency_limit_holds(dw: Ductwork) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        async def body() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await gate.wait()
            running -= 1
            return 1

        return await ctx.step("work", body)

    for i in range(6):
        await dw.workflows.dispatch("p", "dev", "t", {}, workflow_id=f"j{i}")
    async with run_worker(dw, concurrency=2) as worker:
        await eventually(None, lambda: running == 2)
        assert len(worker.in_flight) == 2
        gate.set()
        await eventually(None, lambda: _all_completed(dw, 6))
    assert peak == 2


async def _all_completed(dw: Ductwork, n: int) -> bool:
    return all([await _status(dw, f"j{i}") == "completed" for i in range(n)])


async def test_queues_restrict_what_a_worker_claims(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("s", lambda: 1)

    await dw.workflows.dispatch("p", "dev", "t", {}, options={"queue": "emails"},
                                workflow_id="mail")
    await dw.workflows.dispatch("p", "dev", "t", {}, workflow_id="plain")
    async with run_worker(dw, queues=["default"]):
        await eventually(None, lambda: _is(dw, "plain", "completed"))
    assert await _status(dw, "mail") == "pending"
    async with run_worker(dw, queues=["emails"]):
        await eventually(None, lambda: _is(dw, "mail", "completed"))


async def test_a_run_this_worker_cannot_run_is_left_for_others(store_url: str) -> None:
    full = Ductwork(store=store_url)

    @full.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return 1

    async with full:
        await full.workflows.dispatch("p", "dev", "t", {}, workflow_id="x")
    bare = Ductwork(store=store_url)
    async with bare:
        async with run_worker(bare) as worker:
            await eventually(None, lambda: _released_later(bare, "x"))
        assert worker.claimed == 0


async def _released_later(dw: Ductwork, wid: str) -> bool:
    run = await dw.store.get_run(wid)
    return (run is not None and run.owner is None and run.status == "pending"
            and run.attempt == 1)


async def test_stop_suspends_inline_waits_at_once(store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="30s")

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("one", lambda: 1)
        await ctx.sleep("20s")
        return "late"

    async with dw:
        await dw.workflows.dispatch("p", "dev", "t", {}, workflow_id="w")
        async with run_worker(dw, grace="20s"):
            await eventually(None, lambda: _has_sleep(dw, "w"))
        run = await dw.store.get_run("w")
        assert run is not None and run.status == "sleeping" and run.owner is None
        assert dw.workflows._worker is None
        assert not dw._engine_obj.draining  # type: ignore[union-attr]


async def _has_sleep(dw: Ductwork, wid: str) -> bool:
    return any(s.kind == "sleep" for s in await dw.store.load_steps(wid))


async def test_one_worker_per_instance(dw: Ductwork) -> None:
    async with run_worker(dw):
        with pytest.raises(ConfigurationError, match="already running"):
            await dw.workflows.worker().run()
    with pytest.raises(ConfigurationError, match="concurrency"):
        dw.workflows.worker(concurrency=0)


# -- real processes ------------------------------------------------------------------------------
async def test_a_killed_worker_s_runs_are_finished_by_another(tmp_path: Path) -> None:
    store, log = f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "effects.log")
    dw = build(store, log)
    async with dw:
        await dw.workflows.dispatch("w", "dev", "steps", {}, workflow_id="k1")
        proc = start_worker_process(store, log, hang="b")
        try:
            await wait_for_line(log, "start k1 b", proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        async with run_worker(dw):
            res = await dw.workflows.result("k1", timeout="20s")
    assert res.status == "completed" and res.output == ["a", "b", "c"]
    lines = log_lines(log)
    assert lines.count("done k1 a") == 1  # completed before the crash: never again
    assert lines.count("start k1 b") == 2  # in flight at the crash: runs again
    assert lines.count("done k1 b") == 1 and lines.count("done k1 c") == 1


async def test_sigterm_lets_the_step_in_flight_finish_then_releases_the_run(
        tmp_path: Path) -> None:
    store, log = f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "effects.log")
    dw = build(store, log)
    async with dw:
        await dw.workflows.dispatch("w", "dev", "steps", {}, workflow_id="k1")
        proc = start_worker_process(store, log, hang="b:300")
        await wait_for_line(log, "start k1 b", proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        assert "SIGTERM" in err.decode()
        run = await dw.store.get_run("k1")
        assert run is not None and run.status == "pending" and run.owner is None
        assert [s.tag for s in await dw.store.load_steps("k1")] == ["a", "b"]
        assert log_lines(log)[-1] == "done k1 b"  # the step finished; c never started
        async with run_worker(dw):
            res = await dw.workflows.result("k1", timeout="20s")
    assert res.status == "completed"
    lines = log_lines(log)
    assert lines.count("start k1 b") == 1 and lines.count("done k1 c") == 1


async def test_sigterm_releases_a_step_longer_than_the_grace_period(tmp_path: Path) -> None:
    store, log = f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "effects.log")
    dw = build(store, log)
    async with dw:
        await dw.workflows.dispatch("w", "dev", "steps", {}, workflow_id="k1")
        proc = start_worker_process(store, log, "--grace", "100ms", hang="b")
        await wait_for_line(log, "start k1 b", proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        run = await dw.store.get_run("k1")
        assert run is not None and run.status == "pending" and run.owner is None
        async with run_worker(dw):
            res = await dw.workflows.result("k1", timeout="20s")
    assert res.status == "completed" and log_lines(log).count("done k1 a") == 1


# -- finding the app -----------------------------------------------------------------------------
def test_load_app_finds_the_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    store = f"sqlite:///{tmp_path / 'r.db'}"
    (tmp_path / "shared_app.py").write_text(textwrap.dedent(f"""
        from ductwork import Ductwork
        dw = Ductwork(store={store!r})
        def make():
            return dw
    """))
    (tmp_path / "flows_a.py").write_text(textwrap.dedent("""
        from shared_app import dw
        @dw.workflows.workflow(product="p", tag="a")
        async def a(ctx):
            return 1
    """))
    (tmp_path / "flows_reg.py").write_text(textwrap.dedent("""
        def register(dw):
            @dw.workflows.workflow(product="p", tag="r")
            async def r(ctx):
                return 2
    """))
    (tmp_path / "other_app.py").write_text("from ductwork import Ductwork\nx = Ductwork()\n")
    (tmp_path / "plain.py").write_text("X = 1\n")

    for name in ("shared_app", "flows_a", "flows_reg", "other_app", "plain"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    first = load_app(app="shared_app:dw")  # puts the current directory on sys.path
    import shared_app  # type: ignore[import-not-found]

    assert first is shared_app.dw
    assert load_app(app="shared_app:make") is shared_app.dw
    found = load_app(imports=["flows_a"])
    assert found is shared_app.dw and found.workflows.get("p", "a")
    own = load_app(imports=["flows_reg"], store=store)
    assert own is not shared_app.dw and own.workflows.get("p", "r")
    errors = {
        "MODULE:ATTR": dict(app="shared_app"),
        "no attribute": dict(app="shared_app:nope"),
        "not a Ductwork": dict(app="plain:X"),
        "no module named": dict(imports=["missing_mod"]),
        "several Ductwork instances": dict(imports=["flows_a", "other_app"]),
        "no register": dict(imports=["plain"]),
        "drop --store": dict(app="shared_app:dw", store="sqlite:///elsewhere.db"),
    }
    for text, kwargs in errors.items():
        with pytest.raises(ConfigurationError, match=text):
            load_app(**kwargs)  # type: ignore[arg-type]


async def test_a_failing_store_call_does_not_kill_the_worker(
        dw: Ductwork, monkeypatch: pytest.MonkeyPatch) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("s", lambda: 1)

    real = dw.store.claim_due
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            import sqlite3

            raise sqlite3.OperationalError("database is locked")
        return await real(*args, **kwargs)

    monkeypatch.setattr(dw.store, "claim_due", flaky)
    await dw.workflows.dispatch("p", "dev", "t", {}, workflow_id="x")
    async with run_worker(dw, poll="20ms"):
        await eventually(None, lambda: _is(dw, "x", "completed"))
    assert len(calls) >= 2


async def test_the_worker_command_runs_yaml_workflows_and_schedules(tmp_path: Path) -> None:
    import subprocess

    from .helpers import ROOT

    specs = tmp_path / "specs" / "shop"
    (specs / "workflows").mkdir(parents=True)
    (specs / "product.yaml").write_text("product: shop\nname: Shop\nenvs: [dev]\n")
    (specs / "workflows" / "nightly.yaml").write_text(textwrap.dedent("""
        workflow: nightly
        name: Nightly
        steps:
          - set: {n: "${ctx.input.n + 1}"}
        output: {n: "${state.n}"}
    """))
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    dw = Ductwork(specs=tmp_path / "specs", store=store)
    async with dw:
        await dw.workflows.dispatch("shop", "dev", "nightly", {"n": 1}, workflow_id="once")
        await dw.workflows.dispatch("shop", "dev", "nightly", {"n": 10}, workflow_id="sch",
                                    schedule={"every": "50ms", "limit": 3})
        proc = subprocess.Popen(
            [sys.executable, "-m", "ductwork.cli", "worker", "--store", store, "--poll", "50ms",
             "--concurrency", "2"], cwd=str(tmp_path), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            await eventually(None, lambda: _finished(dw, 4))
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        assert (await dw.workflows.result("once")).output == {"n": 2}
        assert (await dw.workflows.get_schedule("sch"))["runs"] == 3
        rows, _ = await dw.store.list_runs(tag="nightly")
        outputs = sorted([(await dw.workflows.result(r.workflow_id)).output["n"]
                          for r in rows])
    assert outputs == [2, 11, 11, 11]


async def _finished(dw: Ductwork, n: int) -> bool:
    rows, _ = await dw.store.list_runs(tag="nightly", status="completed")
    return len(rows) == n


def test_the_worker_command_reports_a_bad_app() -> None:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "ductwork.cli", "worker", "--app", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "error: --app 'nope': write MODULE:ATTR" in proc.stderr
    assert "Traceback" not in proc.stderr
