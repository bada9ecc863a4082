"""Prometheus metrics: an engine observer counting runs, steps, retries, claims and schedules."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ductwork.errors import ConfigurationError, DuctworkError
from ductwork.interpreter.observe import Observer

if TYPE_CHECKING:
    from ductwork.app import Ductwork
    from ductwork.store.protocol import RunRow

TERMINAL = frozenset({"completed", "failed", "rolled_back", "cancelled"})
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Steps call APIs and databases: from a few ms to minutes.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CLAIM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics(Observer):
    """The metrics of one process, in a registry of its own (so that two Ductwork instances
    in one process, or a test's, do not mix). Attach with `dw.observe(metrics)`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        wf = ["product", "workflow"]
        self.runs_started = Counter("ductwork_runs_started", "Runs started in this process",
                                    wf, registry=r)
        self.runs_finished = Counter(
            "ductwork_runs_finished", "Runs ended in this process, by final status (completed, "
            "failed, rolled_back, cancelled)", [*wf, "status"], registry=r)
        self.runs_in_progress = Gauge("ductwork_runs_in_progress",
                                      "Runs being driven by this process now", wf, registry=r)
        self.step_duration = Histogram(
            "ductwork_step_duration_seconds", "Duration of step attempts, by outcome "
            "(completed, retrying, failed)", [*wf, "step", "status"], buckets=STEP_BUCKETS,
            registry=r)
        self.step_retries = Counter("ductwork_step_retries", "Step attempts that failed and "
                                    "were retried", [*wf, "step"], registry=r)
        self.compensations = Counter(
            "ductwork_compensations", "Rollbacks of completed steps, by outcome (rolled_back, "
            "rollback_failed)", [*wf, "status"], registry=r)
        self.claim_latency = Histogram(
            "ductwork_claim_latency_seconds", "From the time a run became due to its claim by "
            "a worker", ["queue"], buckets=CLAIM_BUCKETS, registry=r)
        self.schedules_fired = Counter("ductwork_schedules_fired",
                                       "Schedule occurrences that started a run", wf, registry=r)
        self.queue_depth = Gauge("ductwork_queue_depth", "Runs due now that no worker has "
                                 "claimed yet, by queue (read from the store at scrape time)",
                                 ["queue"], registry=r)
        self.webhooks = Counter("ductwork_webhooks", "Webhook deliveries, by outcome "
                                "(started, bad_signature, stale, rejected)", [*wf, "outcome"],
                                registry=r)
        self._queues: set[str] = set()
        # labels() validates and locks on every call: a step's children are looked up here.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- the observer ------------------------------------------------------------------------------
    def run_started(self, run: RunRow, resumed: bool) -> Any:
        if not resumed:
            self.runs_started.labels(run.product, run.tag).inc()
        self.runs_in_progress.labels(run.product, run.tag).inc()
        return None

    def run_ended(self, run: RunRow, token: Any, status: str, error: str | None) -> None:
        self.runs_in_progress.labels(run.product, run.tag).dec()
        if status in TERMINAL:
            self.runs_finished.labels(run.product, run.tag, status).inc()

    def step_ended(self, run: RunRow, token: Any, tag: str, key: str, attempt: int,
                   status: str, error: BaseException | None, duration_s: float) -> None:
        self._child(self.step_duration, run.product, run.tag, tag, status).observe(duration_s)
        if status == "retrying":
            self._child(self.step_retries, run.product, run.tag, tag).inc()

    def compensation_ended(self, run: RunRow, token: Any, tag: str, key: str, status: str,
                           error: str | None) -> None:
        self.compensations.labels(run.product, run.tag, status).inc()

    def run_claimed(self, run: RunRow, latency_s: float) -> None:
        self.claim_latency.labels(run.queue).observe(max(latency_s, 0.0))

    def schedule_fired(self, product: str, tag: str, job_id: str, workflow_id: str) -> None:
        self.schedules_fired.labels(product, tag).inc()

    # -- scraping ----------------------------------------------------------------------------------
    async def refresh(self, dw: Ductwork) -> None:
        """Read what lives in the store (queue depth) just before a scrape."""
        engine = await dw.workflows._engine()
        try:
            depth = await engine.store.queue_depth(time.time())
        except DuctworkError:
            return  # the store is briefly unreachable: keep the last figures
        for queue in self._queues - depth.keys():
            self.queue_depth.labels(queue).set(0)
        for queue, n in depth.items():
            self.queue_depth.labels(queue).set(n)
        self._queues |= depth.keys()

    async def render(self, dw: Ductwork) -> bytes:
        await self.refresh(dw)
        return generate_latest(self.registry)


def metrics_of(dw: Ductwork) -> Metrics:
    """The Metrics observer attached to `dw`, attaching one on first use."""
    found = getattr(dw, "_metrics", None)
    if isinstance(found, Metrics):
        return found
    metrics = Metrics()
    dw.observe(metrics)
    dw._metrics = metrics  # type: ignore[attr-defined]
    return metrics


def metrics_socket(host: str, port: int) -> socket.socket:
    """The metrics endpoint's listening socket, bound now so that a taken port fails the
    worker's start with a clear error rather than later, inside the event loop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigurationError(f"--metrics-port: cannot listen on {host}:{port} "
                                 f"({e.strerror or e}); pick another port") from None
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def serve_metrics(dw: Ductwork, sock: socket.socket) -> None:
    """`ductwork worker --metrics-port`: GET /metrics on `sock`, in this event loop, until
    cancelled."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    metrics = metrics_of(dw)

    async def scrape(request: Request) -> Response:
        return Response(await metrics.render(dw), media_type=CONTENT_TYPE)

    class _Server(uvicorn.Server):
        # The worker handles SIGTERM/SIGINT itself (a graceful drain): uvicorn must not.
        def capture_signals(self) -> Any:
            return contextlib.nullcontext()

    app = Starlette(routes=[Route("/metrics", scrape)])
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        sock.close()
