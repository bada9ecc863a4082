"""create_app: the FastAPI application serving one Ductwork instance (API, hooks, metrics, UI)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ductwork.errors import (
    CompileError,
    ConfigurationError,
    DuctworkError,
    RunNotFoundError,
    StoreError,
    WorkflowNotFoundError,
)
from ductwork.server.auth import Authenticator, TokenFile, require
from ductwork.server.settings import ServerSettings

if TYPE_CHECKING:
    from ductwork.app import Ductwork

log = logging.getLogger("ductwork.server")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The server's ASGI application. It opens the store (and starts its worker, unless
    settings.worker is False) when the application starts, and closes them when it stops."""
    from ductwork import __version__
    from ductwork.app import Ductwork

    settings = settings or ServerSettings()
    owned = settings.ductwork is None
    dw = settings.ductwork or Ductwork(specs=settings.specs, store=settings.store,
                                       secrets=settings.secrets)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await dw.workflows._engine()  # open the store now: a bad URL fails the start-up
        worker_task: asyncio.Task[None] | None = None
        worker: Any = None
        if settings.worker:
            worker = dw.workflows.worker(concurrency=settings.worker_concurrency)
            worker_task = asyncio.create_task(worker.run(), name="ductwork:server-worker")
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):
                    await worker_task
            if owned:
                await dw.aclose()

    app = FastAPI(title="ductwork", version=__version__, lifespan=lifespan,
                  description="Durable workflows: runs, definitions, schedules, webhooks.",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.ductwork = dw
    app.state.settings = settings
    app.state.authenticator = Authenticator(
        None if settings.insecure_local else TokenFile(settings.tokens_path()),
        settings.insecure_local)
    _error_handlers(app)

    from ductwork.server import api, hooks

    app.include_router(api.router)
    app.include_router(hooks.router)
    app.state.metrics = None
    if settings.metrics:
        _metrics_route(app, dw)
    _include_ui(app)
    return app


def _metrics_route(app: FastAPI, dw: Ductwork) -> None:
    from ductwork.server.api.common import ERRORS
    from ductwork.server.metrics import CONTENT_TYPE, metrics_of

    metrics = app.state.metrics = metrics_of(dw)

    @app.get("/metrics", summary="Prometheus metrics (text format; a read token)",
             tags=["metrics"], dependencies=[Depends(require("read"))],
             response_class=Response, responses={
                 200: {"content": {"text/plain": {}}, "description": "the metrics"},
                 401: ERRORS[401], 403: ERRORS[403]})
    async def scrape() -> Response:
        return Response(await metrics.render(dw), media_type=CONTENT_TYPE)


def _include_ui(app: FastAPI) -> None:
    """The web UI lives in ductwork.server.ui; its `router` is mounted when it has one."""
    try:
        ui = importlib.import_module("ductwork.server.ui")
    except ImportError as e:  # a UI dependency missing must not take the API down
        log.warning("web UI not available: %s", e)
        return
    router = getattr(ui, "router", None)
    if router is not None:
        app.include_router(router)


def _status_of(err: DuctworkError) -> int:
    if isinstance(err, RunNotFoundError | WorkflowNotFoundError):
        return 404
    if isinstance(err, ConfigurationError | CompileError):
        return 400
    return 503 if isinstance(err, StoreError) else 500


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DuctworkError)
    async def ductwork_error(request: Request, err: DuctworkError) -> JSONResponse:
        status = _status_of(err)
        dw = request.app.state.ductwork
        message = dw.redact(str(err))
        if status >= 500:
            log.error("%s %s: %s: %s", request.method, request.url.path,
                      type(err).__name__, message)
        return JSONResponse({"detail": message, "error": type(err).__name__}, status_code=status)
