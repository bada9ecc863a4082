"""The JSON API on a real uvicorn server: every route, driven over HTTP by httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ductwork import Ductwork
from ductwork.server import ServerSettings, create_app
from ductwork.server.auth import TokenFile
from tests.server.conftest import client
from tests.support.apiserver import ThreadedServer

SECRET = "sk-very-secret-value-42"


def define(dw: Ductwork) -> None:
    async def ok(ctx: Any) -> Any:
        a = await ctx.step("reserve", lambda: {"item": ctx.input["item"], "token": SECRET})
        await ctx.set_state("stage", "reserved")
        await ctx.checkpoint("reserved", {"n": 1})
        b = await ctx.step("confirm", lambda: {"ok": True})
        ctx.log.info("confirmed", {"item": a["item"]})
        return {"item": a["item"], "ok": b["ok"]}

    dw.workflows.define(product="shop", tag="ok", handler=ok,
                        queries={"stage": lambda q: q.get_state("stage")})

    async def rolls_back(ctx: Any) -> Any:
        await ctx.step("charge", lambda: {"id": "ch_1"}, rollback=lambda r: None)
        await ctx.step("ship", _boom)

    dw.workflows.define(product="shop", tag="rolls-back", handler=rolls_back)

    async def waits(ctx: Any) -> Any:
        await ctx.step("ask", lambda: "asked")
        decision = await ctx.wait_for_signal("approve")
        return await ctx.step("act", lambda: decision)

    dw.workflows.define(product="shop", tag="waits", handler=waits, signals=["approve"])

    async def sleeps(ctx: Any) -> Any:
        await ctx.step("before", lambda: 1, rollback=lambda r: None)
        await ctx.sleep("1h")

    dw.workflows.define(product="shop", tag="sleeps", handler=sleeps)


def _boom() -> None:
    raise RuntimeError("the carrier is down")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[ThreadedServer, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("api")
    tf = TokenFile(folder / "tokens.json")
    tokens = {s: tf.create(s, f"test-{s}")[1] for s in ("read", "operator")}
    dw = Ductwork(store=f"sqlite:///{folder / 'runs.db'}", secrets={"API_KEY": SECRET},
                  inline_wait="200ms")
    define(dw)
    srv = ThreadedServer(create_app(ServerSettings(
        ductwork=dw, tokens_file=folder / "tokens.json"))).start()
    yield srv, tokens
    srv.stop()


@pytest.fixture
def op(api: tuple[ThreadedServer, dict[str, str]]) -> Iterator[httpx.Client]:
    with client(api[0], api[1]["operator"]) as c:
        yield c


@pytest.fixture
def reader(api: tuple[ThreadedServer, dict[str, str]]) -> Iterator[httpx.Client]:
    with client(api[0], api[1]["read"]) as c:
        yield c


def wait_for(c: httpx.Client, wid: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        st = c.get(f"/api/runs/{wid}").json()
        if st["status"] in statuses:
            return st
        assert time.monotonic() < deadline, f"run {wid} stayed {st['status']}"
        time.sleep(0.05)


def start(c: httpx.Client, tag: str, wid: str, **kw: Any) -> httpx.Response:
    body = {"product": "shop", "workflow": tag, "env": "dev", "workflow_id": wid, **kw}
    return c.post("/api/runs", json=body)


def test_start_waiting_returns_the_result(op: httpx.Client) -> None:
    r = start(op, "ok", "ok-1", input={"item": "lamp"}, wait=True)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed" and body["output"] == {"item": "lamp", "ok": True}
    assert body["completed_steps"] == ["reserve", "confirm"]
    # The same workflow_id again: the first run's result, nothing run twice.
    again = start(op, "ok", "ok-1", input={"item": "other"}, wait=True).json()
    assert again["output"] == {"item": "lamp", "ok": True}


def test_start_returns_the_id_at_once_then_result_waits(op: httpx.Client) -> None:
    r = start(op, "waits", "w-1")
    assert r.status_code == 202 and r.json()["workflow_id"] == "w-1"
    assert r.json()["status"] == "running"
    wait_for(op, "w-1", "waiting", "running")
    assert op.get("/api/runs/w-1/result", params={"timeout": "100ms"}).status_code == 202
    sent = op.post("/api/runs/w-1/signals/approve", json={"payload": {"by": "ann"}})
    assert sent.status_code == 200 and sent.json()["delivered"] is True
    res = op.get("/api/runs/w-1/result", params={"timeout": "30s"})
    assert res.status_code == 200 and res.json()["output"] == {"by": "ann"}


def test_reads_of_a_finished_run(op: httpx.Client, reader: httpx.Client) -> None:
    start(op, "ok", "ok-2", input={"item": "desk"}, wait=True)
    st = reader.get("/api/runs/ok-2").json()
    assert st["status"] == "completed" and st["state"] == {"stage": "reserved"}
    types = [e["type"] for e in reader.get("/api/runs/ok-2/history").json()]
    assert types[0] == "workflow_started" and types[-1] == "workflow_completed"
    assert "checkpoint_created" in types
    logs = reader.get("/api/runs/ok-2/logs").json()
    assert [(lg["level"], lg["message"], lg["data"]) for lg in logs] == [
        ("info", "confirmed", {"item": "desk"})]
    step = reader.get("/api/runs/ok-2/steps/reserve").json()
    assert step["status"] == "completed" and step["attempts"] == 1
    # Payloads are redacted: the secret value and the value of a `token` key never leave.
    assert step["output"] == {"item": "desk", "token": "***"}
    assert SECRET not in reader.get("/api/runs/ok-2/steps/reserve").text
    q = reader.get("/api/runs/ok-2/queries/stage").json()
    assert q == {"workflow_id": "ok-2", "query": "stage", "result": "reserved"}
    assert reader.get("/api/runs/ok-2/related").status_code == 200


def test_list_filters_and_pages(op: httpx.Client, reader: httpx.Client) -> None:
    for i in range(3):
        start(op, "ok", f"page-{i}", input={"item": str(i)}, wait=True)
    first = reader.get("/api/runs", params={"workflow": "ok", "limit": 2}).json()
    assert len(first["runs"]) == 2 and first["next_cursor"]
    second = reader.get("/api/runs", params={"workflow": "ok", "limit": 2,
                                             "cursor": first["next_cursor"]}).json()
    ids = [r["workflow_id"] for r in first["runs"] + second["runs"]]
    assert len(ids) == len(set(ids)) and {"page-0", "page-1", "page-2"} <= set(
        ids + [r["workflow_id"] for r in reader.get(
            "/api/runs", params={"workflow": "ok", "limit": 1000}).json()["runs"]])
    failed = reader.get("/api/runs", params={"status": ["failed", "rolled_back"]}).json()
    assert all(r["status"] in ("failed", "rolled_back") for r in failed["runs"])
    bad = reader.get("/api/runs", params={"status": "finished"})
    assert bad.status_code == 422 and "'completed'" in bad.text  # the statuses are listed


def test_rollback_then_replay_restart_resume(op: httpx.Client) -> None:
    r = start(op, "rolls-back", "rb-1", wait=True).json()
    assert r["status"] == "rolled_back" and r["failed_step"] == "ship"
    assert r["rollback_result"]["rolled_back_steps"] == ["charge"]
    assert "the carrier is down" in r["error"]

    replay = op.post("/api/runs/rb-1/replay", json={"reason": "retry", "wait": True,
                                                    "new_workflow_id": "rb-1-replay"})
    assert replay.status_code == 200 and replay.json()["replayed_from"] == "rb-1"
    restart = op.post("/api/runs/ok-1/restart", json={"merge_input": {"item": "chair"},
                                                      "wait": True}).json()
    assert restart["output"] == {"item": "chair", "ok": True}
    assert restart["restarted_from"] == "ok-1"
    resumed = op.post("/api/runs/ok-1/resume", json={"from_checkpoint": "reserved",
                                                     "wait": True}).json()
    assert resumed["status"] == "completed" and resumed["resumed_from"] == "ok-1"
    rfs = op.post("/api/runs/ok-1/replay-from-step", json={
        "from_step": "confirm", "step_outputs": {"confirm": {"ok": False}}, "wait": True})
    assert rfs.json()["output"] == {"item": "lamp", "ok": False}
    cmp = op.get("/api/compare", params={"workflow_id": ["ok-1", rfs.json()["workflow_id"]]})
    assert cmp.status_code == 200
    assert "confirm" in str(cmp.json())


def test_cancel_compensates(op: httpx.Client) -> None:
    start(op, "sleeps", "sl-1")
    wait_for(op, "sl-1", "sleeping")
    r = op.post("/api/runs/sl-1/cancel", json={"reason": "duplicate order"})
    assert r.status_code == 200
    body = r.json()
    assert body["cancelled"] is True and body["rolled_back_steps"] == ["before"]
    st = wait_for(op, "sl-1", "cancelled")
    assert "duplicate order (by test-operator)" in st["error"]


def test_dispatch_and_schedules(op: httpx.Client, reader: httpx.Client) -> None:
    job = op.post("/api/dispatch", json={"product": "shop", "workflow": "ok", "env": "dev",
                                         "input": {"item": "queued"}})
    assert job.status_code == 202 and job.json()["status"] in ("queued", "running")
    wid = job.json()["job_id"]
    assert wait_for(reader, wid, "completed")["status"] == "completed"  # the server's worker

    sched = op.post("/api/dispatch", json={
        "product": "shop", "workflow": "ok", "env": "dev", "input": {"item": "nightly"},
        "schedule": {"cron": "0 3 * * *"}, "workflow_id": "nightly"}).json()
    assert sched["job_id"] == "nightly" and sched["recurring"] is True
    assert [s["job_id"] for s in reader.get("/api/schedules").json()] == ["nightly"]
    assert op.post("/api/schedules/nightly/pause").json()["status"] == "paused"
    assert reader.get("/api/schedules/nightly").json()["status"] == "paused"
    assert op.post("/api/schedules/nightly/resume").json()["status"] == "scheduled"
    assert op.delete("/api/schedules/nightly").json()["status"] == "cancelled"
    missing = reader.get("/api/schedules/nope")
    assert missing.status_code == 404 and "No schedule with job_id 'nope'" in missing.text


def test_errors_say_what_is_wrong(op: httpx.Client, reader: httpx.Client) -> None:
    r = reader.get("/api/runs/no-such-run")
    assert r.status_code == 404 and r.json()["error"] == "RunNotFoundError"
    r = start(op, "nope", "x-1")
    assert r.status_code == 404 and "Workflow not found: shop/nope" in r.json()["detail"]
    r = op.post("/api/runs", json={"product": "shop", "workflow": "ok", "env": "dev",
                                   "wiat": True})
    assert r.status_code == 422 and "wiat" in r.text  # unknown fields are refused
    r = op.get("/api/runs/ok-1/steps/nope")
    assert r.status_code == 400 and "has no recorded step 'nope'" in r.json()["detail"]


def test_scopes(api: tuple[ThreadedServer, dict[str, str]], reader: httpx.Client) -> None:
    srv, _ = api
    r = start(reader, "ok", "denied-1", input={"item": "x"})
    assert r.status_code == 403 and "needs 'operator'" in r.json()["detail"]
    for method, path in [("post", "/api/runs/ok-1/cancel"), ("post", "/api/runs/ok-1/replay"),
                         ("post", "/api/dispatch"), ("post", "/api/schedules/x/pause"),
                         ("post", "/api/runs/ok-1/signals/approve")]:
        assert getattr(reader, method)(path, json={}).status_code == 403, path
    with client(srv) as anon:
        for path in ["/api/runs", "/api/runs/ok-1", "/api/definitions", "/api/schedules",
                     "/metrics"]:
            assert anon.get(path).status_code == 401, path
    assert reader.get("/api/runs/denied-1").status_code == 404  # nothing was started


def test_definitions(reader: httpx.Client) -> None:
    defs = {d["tag"]: d for d in reader.get("/api/definitions").json()}
    assert set(defs) == {"ok", "rolls-back", "waits", "sleeps"}
    assert defs["waits"]["signals"] == ["approve"] and defs["ok"]["queries"] == ["stage"]
    one = reader.get("/api/definitions/shop/waits").json()
    assert one["source"] == "python" and one["signals"] == ["approve"]
    assert reader.get("/api/definitions/shop/nope").status_code == 404


def test_every_route_is_in_the_openapi_document(api: tuple[ThreadedServer, dict[str, str]],
                                                reader: httpx.Client) -> None:
    srv, _ = api
    doc = reader.get("/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    app = srv.app
    served = {(m, r.path) for r in app.routes if getattr(r, "include_in_schema", False)
              for m in getattr(r, "methods", ()) - {"HEAD"}}
    assert served and served <= documented
    for path in ("/api/runs", "/api/runs/{workflow_id}/replay-from-step", "/api/dispatch",
                 "/api/schedules/{job_id}/pause", "/hooks/{product}/{workflow}", "/metrics"):
        assert path in doc["paths"], path
    for (method, path) in documented:
        assert doc["paths"][path][method.lower()].get("summary"), (method, path)


def test_openapi_document_needs_no_token_but_docs_page_is_served(
        api: tuple[ThreadedServer, dict[str, str]]) -> None:
    with client(api[0]) as anon:
        assert anon.get("/openapi.json").status_code == 200
        assert "swagger" in anon.get("/api/docs").text.lower()

