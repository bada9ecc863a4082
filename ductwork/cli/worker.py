"""`ductwork worker`: a process that runs due workflow runs and schedule occurrences."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ductwork.errors import ConfigurationError

if TYPE_CHECKING:
    import socket

    from ductwork.app import Ductwork

WORKER_HELP = """\
Claim and run due workflow runs (dispatched, waking from a sleep, signalled, timed out,
left behind by a dead process) and fire schedule occurrences, until SIGTERM/SIGINT.

Which Ductwork instance runs (Python workflows must be defined on it):
  --app pkg.module:dw      that object (or a function returning one)
  --import pkg.module      import modules; a Ductwork instance found at their top level
                           (e.g. `dw = Ductwork(...)`, or imported from a shared module) is
                           the app; a module with `register(dw)` instead gets the worker's
                           own instance
  neither                  Ductwork(specs=--specs or ./specs, store=--store): YAML only
The current directory is importable, as with `python -m`.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker", help="run due workflow runs and schedules (a worker process)",
        description=WORKER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_app_arguments(p, "run")
    p.add_argument("--concurrency", type=int, default=10, metavar="N",
                   help="runs driven at once by this worker (default 10)")
    p.add_argument("--queues", metavar="A,B", help="only claim runs of these queues")
    p.add_argument("--poll", default="1s", metavar="DURATION",
                   help="longest pause between two looks at the store (default 1s)")
    p.add_argument("--grace", default="30s", metavar="DURATION",
                   help="on SIGTERM, how long in-flight runs get to reach their next durable "
                   "point before they are released (default 30s)")
    p.add_argument("--no-schedules", action="store_true",
                   help="do not fire schedule occurrences in this worker")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (needs "
                   "ductwork[server])")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                   help="address of the metrics endpoint (default 127.0.0.1; 0.0.0.0 for a "
                   "scraper on another machine)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run_worker_command)


def run_worker_command(args: argparse.Namespace) -> int:
    import asyncio

    if args.concurrency < 1:
        raise ConfigurationError("--concurrency must be at least 1")
    for option, value in (("--poll", args.poll), ("--grace", args.grace)):
        if value.strip().replace(".", "", 1).isdigit() and 0 < float(value) < 100:
            # as in spec files: a bare number is milliseconds, and so small a one a slip
            raise ConfigurationError(f"{option} {value} means {value} milliseconds: write "
                                     f"{option} {value}s for seconds, or {value}ms to keep "
                                     "milliseconds")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.metrics_port is not None:
        try:
            import prometheus_client  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as e:
            raise ConfigurationError("--metrics-port needs the server extra: pip install "
                                     f"'ductwork[server]' ({e})") from None
    from ductwork.cli.common import load_secrets

    dw = load_app(app=args.app, imports=args.imports, specs=args.specs, store=args.store,
                  secrets=load_secrets(args.secrets_files), max_faults=args.max_faults)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    metrics = None
    if args.metrics_port is not None:
        from ductwork.server.metrics import metrics_socket

        metrics = metrics_socket(args.metrics_host, args.metrics_port)
    asyncio.run(_serve(dw, metrics, concurrency=args.concurrency, queues=queues,
                       poll=args.poll, grace=args.grace, schedules=not args.no_schedules))
    return 0


async def _serve(dw: Ductwork, metrics: socket.socket | None, **options: Any) -> None:
    import asyncio

    exporter: asyncio.Task[None] | None = None
    if metrics is not None:
        from ductwork.server.metrics import metrics_of, serve_metrics

        metrics_of(dw)  # attached before the first claim, so that every run is counted
        exporter = asyncio.create_task(serve_metrics(dw, metrics))
    try:
        await dw.workflows.run_worker(handle_signals=True, **options)
    finally:
        if exporter is not None:
            exporter.cancel()
            await asyncio.gather(exporter, return_exceptions=True)
        await dw.aclose()



def add_app_arguments(p: Any, verb: str) -> None:
    """What `load_app` reads: the Ductwork instance (--app, --import, --specs), its store and
    its secrets; shared by `ductwork worker` and `ductwork server`."""
    p.add_argument("--app", metavar="MODULE:ATTR",
                   help=f"the Ductwork instance to {verb}, e.g. myapp.workflows:dw")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module that defines workflows (repeatable)")
    p.add_argument("--specs", metavar="DIR", help="folder of YAML products (default ./specs "
                   "when it exists and no --app/--import instance is used)")
    p.add_argument("--store", metavar="URL",
                   help="run store URL or SQLite file path (default $DUCTWORK_STORE or "
                        "sqlite:///.ductwork/runs.db)")
    p.add_argument("--secrets-file", dest="secrets_files", action="append", default=[],
                   metavar="FILE", help="secrets for ${secrets.NAME}: a dotenv or YAML file "
                   "(repeatable, a later one wins; DUCTWORK_SECRET_<NAME> variables win over "
                   "files)")
    p.add_argument("--max-faults", type=int, metavar="N",
                   help="fail a run after N failures in a row of ductwork itself (not the "
                   "workflow's code) while processing it (default: the app's own "
                   "Ductwork(max_faults=), else 3)")

def load_app(*, app: str | None = None, imports: list[str] | None = None,
             specs: str | None = None, store: str | None = None,
             secrets: Mapping[str, str] | None = None,
             max_faults: int | None = None) -> Ductwork:
    """Find or build the Ductwork instance a worker runs (rules in WORKER_HELP); `secrets`
    (read from the command line) are added to an app's own, and win over them; so does
    `max_faults` (an operator's knob, like --concurrency)."""
    if max_faults is not None and (isinstance(max_faults, bool) or not isinstance(
            max_faults, int) or max_faults < 1):
        raise ConfigurationError(
            f"--max-faults must be a whole number >= 1 (the failures of ductwork itself in a "
            f"row after which a run is failed; 1 fails it at the first), got {max_faults!r}")
    dw = _find_app(app, imports, specs, store, secrets)
    if max_faults is not None:
        dw.runtime.max_faults = max_faults  # read at each fault: takes effect for every run
    return dw


def _find_app(app: str | None, imports: list[str] | None, specs: str | None,
              store: str | None, secrets: Mapping[str, str] | None) -> Ductwork:
    from ductwork.app import Ductwork
    from ductwork.cli.common import store_url

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    modules = [_import(name, "--import") for name in imports or []]
    dw: Ductwork | None = None
    if app is not None:
        dw = _resolve_app(app)
    else:
        found: dict[int, tuple[str, Ductwork]] = {}
        for mod in modules:
            for attr, val in vars(mod).items():
                if isinstance(val, Ductwork):
                    found.setdefault(id(val), (f"{mod.__name__}:{attr}", val))
        if len(found) > 1:
            names = ", ".join(sorted(n for n, _ in found.values()))
            raise ConfigurationError(
                f"the imported modules hold several Ductwork instances ({names}); pick the one "
                "to run with --app MODULE:ATTR")
        if found:
            dw = next(iter(found.values()))[1]
    if dw is not None:
        if store is not None and store_url(store)[0] != dw.store.url:
            raise ConfigurationError(
                f"--store conflicts with the app's own store ({_safe(dw.store.url)}); the "
                "store of an app is configured in code: drop --store")
        if specs is not None:
            dw.load_specs(specs)
        if secrets:
            dw.runtime.secrets.update(secrets)
        return dw
    if specs is None and Path("specs").is_dir():
        specs = "specs"
    dw = Ductwork(specs=specs, store=store_url(store)[0], secrets=secrets)
    for mod in modules:
        reg = getattr(mod, "register", None)
        if not callable(reg):
            raise ConfigurationError(
                f"module {mod.__name__} defines no Ductwork instance and no register(dw) "
                "function, so its workflows cannot reach the worker; expose `dw = Ductwork("
                "...)` in it, or pass --app MODULE:ATTR")
        reg(dw)
    return dw


def _resolve_app(spec: str) -> Ductwork:
    from ductwork.app import Ductwork

    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigurationError(f"--app {spec!r}: write MODULE:ATTR, e.g. myapp.workflows:dw")
    obj: Any = _import(mod_name, "--app")
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"--app {spec!r}: module {mod_name} has no attribute "
                                     f"{attr!r}") from None
    if not isinstance(obj, Ductwork) and callable(obj):
        obj = obj()
    if not isinstance(obj, Ductwork):
        raise ConfigurationError(f"--app {spec!r} is a {type(obj).__name__}, not a Ductwork "
                                 "instance (or a function returning one)")
    return obj


def _import(name: str, flag: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise ConfigurationError(
                f"{flag} {name}: no module named {e.name!r} (run from the project folder, or "
                "set PYTHONPATH)") from None
        raise


def _safe(url: str) -> str:
    """The URL with its password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
