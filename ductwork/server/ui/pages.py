"""The UI's routes: runs, a run, workflows, login; forms that act on runs and schedules."""

from __future__ import annotations

import inspect
import json
import mimetypes
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from ductwork.errors import DuctworkError
from ductwork.server.auth import COOKIE, Authenticator, Principal
from ductwork.server.ui import views
from ductwork.server.ui.csrf import FIELD, Csrf, set_cookies
from ductwork.store.protocol import TERMINAL

router = APIRouter(include_in_schema=False)
_env = Environment(loader=PackageLoader("ductwork.server.ui", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
_env.filters["duration"] = views.duration
_env.filters["when"] = views.when
STATIC = resources.files("ductwork.server.ui") / "static"
STATUSES = ("pending", "running", "sleeping", "waiting", "completed", "failed", "rolled_back",
            "cancelled")
SINCE = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
# A long JSON value is cut in the page (the API has the whole of it).
MAX_PRE = 20_000


# -- plumbing --------------------------------------------------------------------------------------
def _dw(request: Request) -> Any:
    return request.app.state.ductwork


def _csrf(request: Request) -> Csrf:
    csrf = getattr(request.app.state, "ui_csrf", None)
    if csrf is None:
        csrf = request.app.state.ui_csrf = Csrf()
    return csrf


def _who(request: Request, scope: str = "read") -> Principal:
    """The caller, or a redirect to the login page (a browser has no token yet)."""
    auth: Authenticator = request.app.state.authenticator
    try:
        principal = auth.principal(request)
    except HTTPException as e:
        if e.status_code == 401:
            raise HTTPException(303, "log in first", headers={
                "Location": "/ui/login?" + urlencode({"next": str(request.url.path)})}) from None
        raise
    if not principal.allows(scope):
        raise HTTPException(403, f"token '{principal.name}' has scope '{principal.scope}'; "
                                 f"this needs '{scope}'")
    return principal


def _page(request: Request, template: str, principal: Principal | None, status: int = 200,
          **ctx: Any) -> HTMLResponse:
    cookies: dict[str, str] = {}
    token = _csrf(request).token(request, cookies)
    html = _env.get_template(template).render(
        request=request, principal=principal, csrf_field=FIELD, csrf=token,
        operator=principal is not None and principal.allows("operator"),
        flash=request.query_params.get("flash"), **ctx)
    resp = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
    set_cookies(resp, cookies, request.url.scheme == "https")
    return resp


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the only kind the UI's forms send)."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


async def _posted(request: Request, scope: str = "operator") -> tuple[Principal, dict[str, str]]:
    principal = _who(request, scope)
    form = await _form(request)
    _csrf(request).check(request, form)
    return principal, form


def _back(path: str, flash: str) -> RedirectResponse:
    return RedirectResponse(path + "?" + urlencode({"flash": flash}), status_code=303)


def _short(text: str | None) -> str | None:
    if text is not None and len(text) > MAX_PRE:
        return text[:MAX_PRE] + f"\n... ({len(text) - MAX_PRE} more characters)"
    return text


# -- static files, login ------------------------------------------------------------------------
@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/runs", status_code=307)


@router.get("/ui")
@router.get("/ui/")
async def ui_home() -> RedirectResponse:
    return RedirectResponse("/ui/runs", status_code=307)


@router.get("/ui/static/{name}")
async def static(name: str) -> Response:
    item = STATIC / name
    if "/" in name or name.startswith(".") or not item.is_file():
        raise HTTPException(404, "no such file")
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".js"):
        media = "text/javascript"
    return Response(item.read_bytes(), media_type=media,
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/ui/login")
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html", None, next=_next(request.query_params.get("next")))


@router.post("/ui/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    _csrf(request).check(request, form)
    auth: Authenticator = request.app.state.authenticator
    token = form.get("token", "").strip()
    principal = auth.tokens.check(token) if auth.tokens is not None and token else None
    if principal is None:
        return _page(request, "login.html", None, status=401, next=_next(form.get("next")),
                     error="That token is not valid (or was revoked).")
    resp = RedirectResponse(_next(form.get("next")), status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                    secure=request.url.scheme == "https")
    return resp


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    _csrf(request).check(request, form)
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


def _next(value: str | None) -> str:
    # Only a path of this UI: never an absolute URL (an open redirect).
    return value if value and value.startswith("/ui/") and "//" not in value else "/ui/runs"


# -- runs ----------------------------------------------------------------------------------------
def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {k: q.get(k, "").strip() for k in ("workflow", "status", "since", "q")}


async def _runs(request: Request) -> dict[str, Any]:
    dw = _dw(request)
    f = _filters(request)
    since = SINCE.get(f["since"])
    rows, nxt = await views.find_runs(
        dw, workflow=f["workflow"] or None,
        status=f["status"] if f["status"] in STATUSES else None,
        since=None if since is None else time.time() - since, q=f["q"] or None,
        cursor=request.query_params.get("cursor") or None)
    query = urlencode({k: v for k, v in f.items() if v})
    return {"runs": [views.run_item(dw, r) for r in rows], "filters": f, "query": query,
            "next_page": None if nxt is None else "/ui/runs?" + urlencode(
                {**{k: v for k, v in f.items() if v}, "cursor": nxt}),
            "workflows": sorted(f"{w.product}/{w.tag}" for w in dw.workflows.definitions()),
            "statuses": STATUSES, "since_choices": list(SINCE), "searched": views.SEARCH_SCAN}


@router.get("/ui/runs")
async def runs_page(request: Request) -> HTMLResponse:
    principal = _who(request)
    return _page(request, "runs.html", principal, **await _runs(request))


@router.get("/ui/runs/table")
async def runs_table(request: Request) -> HTMLResponse:
    """The list alone: what the page's live update swaps in."""
    principal = _who(request)
    return _page(request, "_runs_table.html", principal, **await _runs(request))


async def _run(request: Request, workflow_id: str) -> dict[str, Any]:
    dw = _dw(request)
    store = dw.store
    run = await store.get_run(workflow_id)
    if run is None:
        raise HTTPException(404, f"no run {workflow_id!r}")
    steps = await store.load_steps(workflow_id)
    events = await store.events(workflow_id)
    tl = views.timeline(dw, run, steps, events)
    for bar in tl.main + tl.rollback:
        bar.input, bar.output = _short(bar.input), _short(bar.output)
    stored_state = await store.get_state(workflow_id)
    state = {k: _short(views.pretty(dw, v)) for k, v in stored_state.items()}
    logs = [{"at": views.when(lg["ts"]), "level": lg["level"], "step": lg["step"],
             "message": dw.redact(lg["message"]), "data": _short(views.pretty(dw, lg["data"]))}
            for lg in await store.logs(workflow_id)]
    kids, _ = await store.list_runs(parent_id=workflow_id, limit=100)
    wf = dw.workflows.definitions()
    signals = next((sorted(w.signals) for w in wf
                    if (w.product, w.tag) == (run.product, run.tag)), [])
    waiting_for = [b.label.removeprefix("signal ").split(" | ") for b in tl.main
                   if b.kind == "signal" and b.status == "waiting"]
    return {"run": run, "item": views.run_item(dw, run), "tl": tl, "state": state, "logs": logs,
            "children": [views.run_item(dw, k) for k in kids],
            "active": run.status not in TERMINAL, "ended": run.status in TERMINAL,
            "signals": sorted({*signals, *[n for names in waiting_for for n in names]}),
            "input": _short(views.pretty(dw, run.input)),
            "output": _short(views.pretty(dw, run.output)),
            "error": None if run.error is None else dw.redact(run.error),
            "checkpoints": tl.checkpoints, "trace_id": views.trace_id(run)}


@router.get("/ui/runs/{workflow_id}")
async def run_page(request: Request, workflow_id: str) -> HTMLResponse:
    principal = _who(request)
    return _page(request, "run.html", principal, **await _run(request, workflow_id))


@router.get("/ui/runs/{workflow_id}/live")
async def run_live(request: Request, workflow_id: str) -> HTMLResponse:
    """The changing part of a run's page (status, timeline, state, logs), for live updates."""
    principal = _who(request)
    return _page(request, "_run_live.html", principal, **await _run(request, workflow_id))


@router.post("/ui/runs/{workflow_id}/signal")
async def signal(request: Request, workflow_id: str) -> Response:
    _, form = await _posted(request)
    name = form.get("name", "").strip()
    raw = form.get("payload", "").strip()
    path = f"/ui/runs/{workflow_id}"
    if not name:
        return _back(path, "Give the signal a name.")
    try:
        payload = json.loads(raw) if raw else None
    except ValueError as e:
        return _back(path, f"The payload is not JSON: {e}")
    try:
        await _dw(request).workflows.signal(workflow_id, name, payload)
    except DuctworkError as e:
        return _back(path, _dw(request).redact(str(e)))
    return _back(path, f"Signal '{name}' sent.")


@router.post("/ui/runs/{workflow_id}/cancel")
async def cancel(request: Request, workflow_id: str) -> Response:
    _, form = await _posted(request)
    reason = form.get("reason", "").strip() or "cancelled from the web UI"
    path = f"/ui/runs/{workflow_id}"
    try:
        out = await _dw(request).workflows.cancel(workflow_id, reason)
    except DuctworkError as e:
        return _back(path, _dw(request).redact(str(e)))
    return _back(path, f"Cancel requested: {out.get('status', 'cancelled')}.")


@router.post("/ui/runs/{workflow_id}/{action}")
async def rerun(request: Request, workflow_id: str, action: str) -> Response:
    """replay (same input, from the start) or resume (reusing results up to the latest
    checkpoint or the failed step): a new run, queued for the worker."""
    _, form = await _posted(request)
    path = f"/ui/runs/{workflow_id}"
    workflows = _dw(request).workflows
    try:
        if action == "replay":
            out = await workflows.replay(workflow_id, form.get("reason") or "replayed from the UI",
                                         wait=False, queue=True)
        elif action == "resume":
            out = await workflows.resume(workflow_id, form.get("checkpoint") or None,
                                         wait=False, queue=True)
        else:
            raise HTTPException(404, f"no action {action!r}")
    except DuctworkError as e:
        return _back(path, _dw(request).redact(str(e)))
    new_id = out.get("workflow_id") or out.get("new_workflow_id")
    return _back(f"/ui/runs/{new_id}", f"Started by {action} of {workflow_id}.")


# -- workflows and schedules -----------------------------------------------------------------------
@router.get("/ui/workflows")
async def workflows_page(request: Request) -> HTMLResponse:
    principal = _who(request)
    dw = _dw(request)
    defs = sorted(dw.workflows.definitions(), key=lambda w: (w.product, w.tag))
    schedules = await dw.workflows.list_schedules(limit=500)
    return _page(request, "workflows.html", principal, defs=defs, schedules=schedules)


@router.get("/ui/workflows/{product}/{tag}")
async def workflow_page(request: Request, product: str, tag: str) -> HTMLResponse:
    principal = _who(request)
    dw = _dw(request)
    try:
        wf = dw.workflows.get(product, tag)
    except DuctworkError as e:
        raise HTTPException(404, dw.redact(str(e))) from None
    source, language, graph = _definition(dw, wf)
    rows, _ = await dw.store.list_runs(product=product, tag=tag, limit=20)
    schedules = [s for s in await dw.workflows.list_schedules(limit=500)
                 if (s.get("product"), s.get("workflow")) == (product, tag)
                 or (s.get("product"), s.get("tag")) == (product, tag)]
    return _page(request, "workflow.html", principal, wf=wf, source=source, language=language,
                 graph=graph, runs=[views.run_item(dw, r) for r in rows], schedules=schedules)


def _definition(dw: Any, wf: Any) -> tuple[str | None, str, str | None]:
    """(source text, "yaml" | "python", Mermaid flowchart or None)."""
    if wf.source and wf.source != "python" and Path(wf.source).is_file():
        graph = None
        plan = None
        specs = getattr(dw, "specs", None)
        if specs is not None and wf.product in specs.products:
            plan = specs.products[wf.product].workflows.get(wf.tag)
        if plan is not None:
            from ductwork.dsl.graph import mermaid

            graph = mermaid(plan)
        return Path(wf.source).read_text("utf-8"), "yaml", graph
    try:
        return inspect.getsource(wf.handler), "python", None
    except (OSError, TypeError):
        return None, "python", None


@router.post("/ui/schedules/{job_id}/{action}")
async def schedule_action(request: Request, job_id: str, action: str) -> Response:
    _, form = await _posted(request)
    back = _next(form.get("next")) if form.get("next") else "/ui/workflows"
    workflows = _dw(request).workflows
    try:
        if action == "pause":
            await workflows.pause_schedule(job_id)
        elif action == "resume":
            await workflows.resume_schedule(job_id)
        else:
            raise HTTPException(404, f"no action {action!r}")
    except DuctworkError as e:
        return _back(back, _dw(request).redact(str(e)))
    return _back(back, f"Schedule {job_id} {'paused' if action == 'pause' else 'resumed'}.")
