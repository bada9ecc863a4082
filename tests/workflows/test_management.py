"""Management: list, step_detail, replay, restart, resume, replay_from_step, lineage, compare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ductwork import ConfigurationError, Ductwork
from ductwork.workflows import reruns
from tests.support.postgres import PgServer, postgres_server  # noqa: F401 (session fixture)


def define_pipeline(dw: Ductwork, log: list[str], broken: dict[str, bool]) -> None:
    """extract -> state -> checkpoint -> transform -> load (which fails while broken)."""

    @dw.workflows.workflow(product="p", tag="pipeline",
                           options={"rollback_strategy": "to_checkpoint"},
                           input_schema={"type": "object", "required": ["source"]})
    async def pipeline(ctx: Any) -> Any:
        def extract() -> dict[str, Any]:
            log.append("extract")
            return {"rows": 3, "source": ctx.input.source}

        a = await ctx.step("extract", extract, lambda r: log.append("undo-extract"))
        await ctx.set_state("phase", "extracted")
        await ctx.checkpoint("extracted", {"rows": a["rows"]})
        b = await ctx.step("transform", lambda: log.append("transform") or a["rows"] * 2,
                           lambda r: log.append("undo-transform"))

        def load() -> int:
            log.append("load")
            if broken.get("load"):
                raise RuntimeError("warehouse down")
            return int(b) + 1

        c = await ctx.step("load", load)
        flags = {k: getattr(ctx, k) for k in (
            "is_replay", "is_restart", "is_restored", "replayed_from", "restarted_from",
            "resumed_from", "replay_reason", "restart_reason", "restored_checkpoint")}
        return {"loaded": c, "input": ctx.input.to_dict(), "flags": flags,
                "original_input": ctx.original_input, "checkpoint": ctx.checkpoint_name,
                "phase": await ctx.get_state("phase")}


async def failed_pipeline(dw: Ductwork, log: list[str], broken: dict[str, bool],
                          wid: str = "run-1") -> None:
    define_pipeline(dw, log, broken)
    broken["load"] = True
    r = await dw.workflows.execute(product="p", env="dev", tag="pipeline",
                                   input={"source": "s3://a"}, workflow_id=wid)
    assert r.status == "rolled_back" and r.failed_step == "load"
    assert log == ["extract", "transform", "load", "undo-transform"]  # to_checkpoint
    log.clear()
    broken["load"] = False


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    server: PgServer = request.getfixturevalue("postgres_server")
    return server.create_database("m_" + uuid.uuid4().hex[:12])


async def test_management_on_every_store(any_store: str) -> None:
    log: list[str] = []
    async with Ductwork(store=any_store, inline_wait="50ms") as dw:
        await failed_pipeline(dw, log, {})
        resumed = await dw.workflows.resume("run-1", new_workflow_id="run-1-resumed")
        assert resumed["status"] == "completed" and log == ["transform", "load"]
        redo = await dw.workflows.replay_from_step("run-1", "transform",
                                                   step_outputs={"extract": {"rows": 1}})
        assert redo["output"]["loaded"] == 3
        restarted = await dw.workflows.restart("run-1", merge_input={"source": "x"})
        page = await dw.workflows.list(limit=2)
        rest = await dw.workflows.list(limit=2, cursor=page["next_cursor"])
        assert len(page["runs"]) + len(rest["runs"]) == 4 and rest["next_cursor"] is None
        rel = await dw.workflows.related_executions("run-1")
        assert {d["workflow_id"] for d in rel["descendants"]} == {
            "run-1-resumed", redo["workflow_id"], restarted["workflow_id"]}
        cmp = await dw.workflows.compare(["run-1", "run-1-resumed"])
        assert [d["field"] for d in cmp["outcome"]["diffs"]][:1] == ["status"]
        detail = await dw.workflows.step_detail("run-1-resumed", "extract")
        assert detail["output"] == {"rows": 3, "source": "s3://a"}
        assert (await dw.workflows.status("run-1-resumed"))["state"] == {"phase": "extracted"}


# -- list ---------------------------------------------------------------------------------------
async def test_list_filters_and_pages_through_every_run(dw: Ductwork) -> None:
    for tag in ("a", "b"):
        @dw.workflows.workflow(product="p", tag=tag)
        async def wf(ctx: Any) -> Any:
            if ctx.input.get("fail"):
                raise ValueError("no")
            return 1

    ids = []
    for i in range(7):
        r = await dw.workflows.execute(product="p", env="dev", tag="a" if i % 2 else "b",
                                       input={"fail": i == 3}, workflow_id=f"r{i}")
        ids.append(r.workflow_id)
    page = await dw.workflows.list(limit=3)
    assert [r["workflow_id"] for r in page["runs"]] == ["r6", "r5", "r4"]
    seen = [r["workflow_id"] for r in page["runs"]]
    while page["next_cursor"]:
        page = await dw.workflows.list(limit=3, cursor=page["next_cursor"])
        seen += [r["workflow_id"] for r in page["runs"]]
    assert seen == ids[::-1]

    only_a = await dw.workflows.list(product="p", tag="a")
    assert {r["workflow_id"] for r in only_a["runs"]} == {"r1", "r3", "r5"}
    failed = await dw.workflows.list(status="failed")
    assert [r["workflow_id"] for r in failed["runs"]] == ["r3"]
    assert failed["runs"][0]["error"] == "ValueError: no"
    both = await dw.workflows.list(status=["failed", "completed"], tag="b")
    assert len(both["runs"]) == 4
    assert (await dw.workflows.list(since="1h"))["runs"][0]["workflow_id"] == "r6"
    assert (await dw.workflows.list(since=time.time() + 60))["runs"] == []
    assert (await dw.workflows.list(since="2999-01-01T00:00:00Z"))["runs"] == []
    row = (await dw.workflows.list(limit=1))["runs"][0]
    assert set(row) >= {"workflow_id", "product", "workflow_tag", "status", "env",
                        "created_at", "started_at", "finished_at", "execution_time"}


async def test_list_arguments_are_checked(dw: Ductwork) -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'completed'"):
        await dw.workflows.list(status="complete")
    with pytest.raises(ConfigurationError, match="limit must be an integer from 1 to 1000"):
        await dw.workflows.list(limit=0)
    with pytest.raises(ConfigurationError, match="pass next_cursor"):
        await dw.workflows.list(cursor="garbage")
    with pytest.raises(ConfigurationError, match="cannot read since='yesterday'"):
        await dw.workflows.list(since="yesterday")


# -- step_detail --------------------------------------------------------------------------------
async def test_step_detail_reports_each_recorded_step(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    d = await dw.workflows.step_detail("run-1", "transform")
    assert d["status"] == "rolled_back" and d["rollback_status"] == "rolled_back"
    assert d["output"] == 6 and d["attempts"] == 1 and d["error"] is None
    assert d["start_time"] and d["end_time"] and isinstance(d["duration"], int)
    assert set(d) >= {"tag", "status", "input", "output", "error", "attempts", "start_time",
                      "end_time", "duration", "rollback_status"}
    load = await dw.workflows.step_detail("run-1", "load")
    assert load["status"] == "failed" and "warehouse down" in load["error"]
    extract = await dw.workflows.step_detail("run-1", "extract")
    assert extract["status"] == "completed" and extract["rollback_status"] is None
    with pytest.raises(ConfigurationError, match="did you mean 'transform'"):
        await dw.workflows.step_detail("run-1", "transfrom")


async def test_step_detail_of_a_repeated_tag(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="loop")
    async def loop(ctx: Any) -> Any:
        for i in range(3):
            await ctx.step("item", lambda i=i: i * 10)

    r = await dw.workflows.execute(product="p", env="dev", tag="loop")
    first = await dw.workflows.step_detail(r.workflow_id, "item")
    third = await dw.workflows.step_detail(r.workflow_id, "item#3")
    assert (first["output"], first["occurrences"]) == (0, 3)
    assert (third["key"], third["output"]) == ("item#3", 20)


# -- replay and restart -------------------------------------------------------------------------
async def test_replay_is_a_new_run_with_the_same_input_and_flags(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    out = await dw.workflows.replay("run-1", reason="warehouse is back")
    assert out["status"] == "completed" and out["workflow_id"] != "run-1"
    assert out["replayed_from"] == "run-1"
    assert log == ["extract", "transform", "load"]  # a replay runs everything again
    flags = out["output"]["flags"]
    assert flags["is_replay"] and flags["replayed_from"] == "run-1"
    assert flags["replay_reason"] == "warehouse is back"
    assert not flags["is_restart"] and not flags["is_restored"]
    assert out["output"]["input"] == {"source": "s3://a"}
    assert (await dw.workflows.status("run-1"))["status"] == "rolled_back"  # untouched
    history = await dw.workflows.history(out["workflow_id"])
    assert history[0]["type"] == "workflow_started"
    assert history[0]["data"]["replayed_from"] == "run-1"


async def test_restart_with_merged_or_new_input(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    merged = await dw.workflows.restart("run-1", merge_input={"mode": "fast"}, reason="retry")
    assert merged["output"]["input"] == {"source": "s3://a", "mode": "fast"}
    assert merged["output"]["original_input"] == {"source": "s3://a"}
    flags = merged["output"]["flags"]
    assert flags["is_restart"] and flags["restarted_from"] == "run-1"
    assert flags["restart_reason"] == "retry"
    fresh = await dw.workflows.restart("run-1", input={"source": "gs://b"},
                                       new_workflow_id="run-1-again")
    assert fresh["workflow_id"] == "run-1-again"
    assert fresh["output"]["input"] == {"source": "gs://b"}
    again = await dw.workflows.restart("run-1", input={"source": "gs://b"},
                                       new_workflow_id="run-1-again")
    assert again["workflow_id"] == "run-1-again" and log.count("load") == 2  # not run twice
    with pytest.raises(ConfigurationError, match="does not match the workflow's input schema"):
        await dw.workflows.restart("run-1", input={"nope": 1})
    with pytest.raises(ConfigurationError, match="not both"):
        await dw.workflows.restart("run-1", input={"source": "x"}, merge_input={"a": 1})
    with pytest.raises(ConfigurationError, match="No workflow run with id 'run-9'"):
        await dw.workflows.replay("run-9")


async def test_replay_without_the_definition_here_is_left_for_a_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    log: list[str] = []
    owner = Ductwork(store=url, inline_wait="50ms")
    async with owner:
        await failed_pipeline(owner, log, {})
    ops = Ductwork(store=url)  # an operator's process: no handlers defined
    async with ops:
        queued = await ops.workflows.replay("run-1")
        assert queued["status"] == "pending" and queued["replayed_from"] == "run-1"
    worker = Ductwork(store=url, inline_wait="50ms")
    define_pipeline(worker, log, {})
    async with worker:
        (res,) = await worker.workflows.recover()
    assert res.workflow_id == queued["workflow_id"] and res.status == "completed"
    assert res.output["flags"]["is_replay"] and log == ["extract", "transform", "load"]


# -- resume and replay_from_step ----------------------------------------------------------------
async def test_resume_from_checkpoint_reuses_the_recorded_prefix(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    out = await dw.workflows.resume("run-1", from_checkpoint="extracted")
    assert out["status"] == "completed", out["error"]
    assert log == ["transform", "load"]  # extract (before the checkpoint) is not run again
    res = out["output"]
    assert res["loaded"] == 7 and res["checkpoint"] == "extracted" and res["phase"] == "extracted"
    flags = res["flags"]
    assert flags["is_restored"] and flags["resumed_from"] == "run-1"
    assert flags["restored_checkpoint"] == "extracted" and not flags["is_replay"]
    new = out["workflow_id"]
    assert (await dw.workflows.status(new))["state"] == {"phase": "extracted"}
    assert (await dw.workflows.step_detail(new, "extract"))["output"] == {
        "rows": 3, "source": "s3://a"}
    types = [e["type"] for e in await dw.workflows.history(new)]
    assert "workflow_restored" in types


async def test_resume_defaults_to_the_latest_checkpoint_and_can_skip_steps(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    out = await dw.workflows.resume("run-1", skip_steps=["transform"])
    assert out["status"] == "completed" and out["restored_checkpoint"] == "extracted"
    assert log == ["load"]  # transform reused its recorded result (6) instead of running
    assert out["output"]["loaded"] == 7
    out2 = await dw.workflows.resume("run-1", from_step="transform")
    assert out2["status"] == "completed" and log == ["load", "transform", "load"]


async def test_resume_without_checkpoint_continues_before_the_failed_step(dw: Ductwork) -> None:
    calls: list[str] = []
    broken = {"b": True}

    @dw.workflows.workflow(product="p", tag="plain")
    async def plain(ctx: Any) -> Any:
        await ctx.step("a", lambda: calls.append("a") or 1)

        def b() -> int:
            calls.append("b")
            if broken["b"]:
                raise RuntimeError("b broke")
            return 2

        return await ctx.step("b", b)

    r = await dw.workflows.execute(product="p", env="dev", tag="plain", workflow_id="x")
    assert r.status == "failed"
    broken["b"] = False
    out = await dw.workflows.resume("x")
    assert out["status"] == "completed" and out["output"] == 2
    assert calls == ["a", "b", "b"]


async def test_resume_refuses_what_cannot_be_reused(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    with pytest.raises(ConfigurationError, match="'transform' of run run-1 were rolled back"):
        await dw.workflows.resume("run-1", from_step="load")
    with pytest.raises(ConfigurationError, match="did you mean 'extracted'"):
        await dw.workflows.resume("run-1", from_checkpoint="extract")
    with pytest.raises(ConfigurationError, match="not both"):
        await dw.workflows.resume("run-1", from_checkpoint="extracted", from_step="load")
    with pytest.raises(ConfigurationError, match="did you mean 'transform'"):
        await dw.workflows.resume("run-1", skip_steps=["transfrom"])

    @dw.workflows.workflow(product="p", tag="waits")
    async def waits(ctx: Any) -> Any:
        await ctx.wait_for_signal("go")

    await dw.workflows.execute(product="p", env="dev", tag="waits", workflow_id="w",
                               timeout="1ms")
    with pytest.raises(ConfigurationError, match=r"still (running|waiting)"):
        await dw.workflows.resume("w")


async def test_replay_from_step_with_overridden_outputs(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    out = await dw.workflows.replay_from_step("run-1", "transform",
                                              step_outputs={"extract": {"rows": 10}})
    assert out["status"] == "completed" and log == ["transform", "load"]
    assert out["output"]["loaded"] == 21  # 10 rows (overridden) * 2 + 1
    assert out["output"]["flags"]["is_replay"]
    detail = await dw.workflows.step_detail(out["workflow_id"], "extract")
    assert detail["output"] == {"rows": 10}

    log.clear()
    skip = await dw.workflows.replay_from_step("run-1", "transform",
                                               step_outputs={"transform": 100})
    assert skip["output"]["loaded"] == 101 and log == ["load"]
    with pytest.raises(ConfigurationError, match="did you mean 'load'"):
        await dw.workflows.replay_from_step("run-1", "transform", step_outputs={"laod": 1})
    with pytest.raises(ConfigurationError, match="has no recorded step 'nope'"):
        await dw.workflows.replay_from_step("run-1", "nope")
    for bad in ([""], True, [("transform", 1)], "transform"):
        with pytest.raises(ConfigurationError, match="step_outputs must map step tags"):
            await dw.workflows.replay_from_step("run-1", "transform", step_outputs=bad)


async def test_overridden_outputs_do_not_leak_into_child_workflows(dw: Ductwork) -> None:
    ran: list[str] = []

    @dw.workflows.workflow(product="p", tag="kid")
    async def kid(ctx: Any) -> Any:
        return await ctx.step("work", lambda: ran.append("kid-work") or "kid-real")

    @dw.workflows.workflow(product="p", tag="boss")
    async def boss(ctx: Any) -> Any:
        mine = await ctx.step("work", lambda: ran.append("boss-work") or "boss-real")
        theirs = await ctx.workflow("k", "kid", {})
        return [mine, theirs]

    first = await dw.workflows.execute(product="p", env="dev", tag="boss", workflow_id="b")
    assert first.output == ["boss-real", "kid-real"]
    ran.clear()
    out = await dw.workflows.replay_from_step("b", "work", step_outputs={"work": "preset"})
    assert out["output"] == ["preset", "kid-real"] and ran == ["kid-work"]


async def test_a_crash_between_creating_and_filling_a_resumed_run(
        dw: Ductwork, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    real = reruns._commit_copies

    async def crash(*a: Any, **kw: Any) -> Any:
        raise KeyboardInterrupt  # the process dies between the two writes

    monkeypatch.setattr(reruns, "_commit_copies", crash)
    with pytest.raises(KeyboardInterrupt):
        await dw.workflows.resume("run-1", new_workflow_id="resumed")
    assert (await dw.workflows.status("resumed"))["status"] == "preparing"
    assert await dw.workflows.recover() == []  # never picked up without its reused results
    assert log == []
    monkeypatch.setattr(reruns, "_commit_copies", real)
    out = await dw.workflows.resume("run-1", new_workflow_id="resumed")  # the retried call
    assert out["workflow_id"] == "resumed" and out["status"] == "completed"
    assert log == ["transform", "load"]


# -- lineage and comparison ---------------------------------------------------------------------
async def test_related_executions_follow_reruns_both_ways_and_children(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    replay = await dw.workflows.replay("run-1")
    resumed = await dw.workflows.resume(replay["workflow_id"], from_checkpoint="extracted")
    restart = await dw.workflows.restart("run-1", merge_input={"x": 1})

    rel = await dw.workflows.related_executions(resumed["workflow_id"])
    assert rel["origin"] == "run-1"
    assert [(a["workflow_id"], a["relation"]) for a in rel["ancestors"]] == [
        (replay["workflow_id"], "resumed_from"), ("run-1", "replayed_from")]
    assert rel["descendants"] == []
    assert [s["workflow_id"] for s in rel["siblings"]] == [restart["workflow_id"]]

    root = await dw.workflows.related_executions("run-1")
    assert [(d["workflow_id"], d["relation"], d["of"]) for d in root["descendants"]] == [
        (replay["workflow_id"], "replay", "run-1"),
        (restart["workflow_id"], "restart", "run-1"),
        (resumed["workflow_id"], "resume", replay["workflow_id"])]

    @dw.workflows.workflow(product="p", tag="kid")
    async def kid(ctx: Any) -> Any:
        return 1

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        return await ctx.workflow("k1", "kid", {})

    par = await dw.workflows.execute(product="p", env="dev", tag="parent", workflow_id="par")
    assert par.status == "completed"
    fam = await dw.workflows.related_executions("par")
    (child,) = fam["children"]
    assert child["parent_id"] == "par" and child["workflow_tag"] == "kid"
    up = await dw.workflows.related_executions(child["workflow_id"])
    assert up["parent"]["workflow_id"] == "par"


async def test_compare_shows_input_step_and_outcome_differences(dw: Ductwork) -> None:
    log: list[str] = []
    await failed_pipeline(dw, log, {})
    ok = await dw.workflows.restart("run-1", merge_input={"source": "s3://b"})
    cmp = await dw.workflows.compare(["run-1", ok["workflow_id"]])
    assert not cmp["same"]
    assert cmp["input"]["diffs"] == [{"path": "source", "values": ["s3://a", "s3://b"],
                                      "present": [True, True]}]
    by_step = {d["step"]: d for d in cmp["steps"]["diffs"]}
    assert by_step["extract"]["fields"] == ["output"]
    assert by_step["transform"]["fields"] == ["status"]  # rolled back vs completed
    assert by_step["load"]["values"][0]["status"] == "failed"
    fields = {d["field"]: d["values"] for d in cmp["outcome"]["diffs"]}
    assert fields["status"] == ["rolled_back", "completed"]
    assert fields["failed_step"] == ["load", None]
    twin = await dw.workflows.restart("run-1", merge_input={"source": "s3://b"})
    same = await dw.workflows.compare([ok["workflow_id"], twin["workflow_id"]])
    assert same["same"] and same["steps"]["diffs"] == [] and same["input"]["same"]
    assert [r["workflow_id"] for r in same["runs"]] == [ok["workflow_id"], twin["workflow_id"]]
    with pytest.raises(ConfigurationError, match="two or more different"):
        await dw.workflows.compare(["run-1"])


# -- crash and recover --------------------------------------------------------------------------
APP = Path(__file__).with_name("resume_app.py")


def _child(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(APP), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _kill_when(log: Path, line: str, proc: subprocess.Popen[bytes], count: int = 1) -> None:
    """SIGKILL the child once `line` is in the log `count` times."""
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text().splitlines().count(line) >= count):
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"child never logged {line!r}")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()


def _finish(args: list[str]) -> dict[str, Any]:
    proc = _child(args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def test_resume_after_the_original_process_died_survives_its_own_crash(tmp_path: Path) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "effects.log"
    # 1. The original run's process dies inside `load`; 2. another process recovers it and
    # `load` fails for good, so `transform` (after the checkpoint) is rolled back.
    _kill_when(log, "start load", _child([str(db), str(log), "execute:hang-load"]))
    failed = _finish([str(db), str(log), "recover:fail-load"])
    assert failed["status"] == "rolled_back" and failed["failed_step"] == "load"
    # 3. Resume from the checkpoint; that process dies inside `transform`.
    _kill_when(log, "start transform", _child([str(db), str(log), "resume:hang-transform"]),
               count=2)
    # 4. A fresh process recovers the resumed run and finishes it.
    done = _finish([str(db), str(log), "recover"])
    assert done["workflow_id"] == "resumed" and done["status"] == "completed"
    assert done["output"] == {"loaded": 7, "restored": True, "from": "orig"}
    lines = log.read_text().splitlines()
    assert lines.count("done extract") == 1  # before the checkpoint: never run again
    assert lines.count("undo extract") == 0 and lines.count("undo transform") == 1
    assert lines.count("start transform") == 3  # original, killed resume, recovered resume
    assert lines.count("done load") == 1


async def test_an_unknown_run_id_is_one_error_everywhere(dw: Ductwork) -> None:
    from ductwork import RunNotFoundError

    define_pipeline(dw, [], {})
    wf = dw.workflows
    calls = [lambda: wf.status("nope"), lambda: wf.result("nope"), lambda: wf.history("nope"),
             lambda: wf.signal("nope", "s"), lambda: wf.cancel("nope"),
             lambda: wf.replay("nope"), lambda: wf.step_detail("nope", "load"),
             lambda: wf.query("nope", "q"), lambda: wf.related_executions("nope")]
    for call in calls:
        with pytest.raises(RunNotFoundError, match=r"^No workflow run with id 'nope'") as e:
            await call()
        assert isinstance(e.value, ConfigurationError) and e.value.workflow_id == "nope"
