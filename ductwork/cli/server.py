"""`ductwork server`: the HTTP API (and web UI) on uvicorn; `ductwork server token ...`."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ductwork.cli.worker import add_app_arguments
from ductwork.errors import ConfigurationError
from ductwork.util.durations import to_ms

SERVER_HELP = """\
Serve the JSON API, webhooks, /metrics and the web UI of one Ductwork instance.

Callers authenticate with an API token (`ductwork server token create --scope read|operator`),
sent as 'Authorization: Bearer <token>'. --insecure-local skips tokens for a developer's own
machine: the server then listens on 127.0.0.1 only.

Which Ductwork instance is served: as for `ductwork worker` (--app, --import, else --specs and
--store). The server runs a worker of its own unless --no-worker (run `ductwork worker`
processes instead, e.g. against PostgreSQL).
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "server", help="serve the HTTP API, webhooks, metrics and web UI",
        description=SERVER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_app_arguments(p, "serve")
    p.add_argument("--host", default=None, metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=None,
                   help="port to listen on (default $DUCTWORK_PORT, else 8000)")
    p.add_argument("--tokens", metavar="FILE", help="the API tokens file (default "
                   "$DUCTWORK_TOKENS_FILE or .ductwork/tokens.json)")
    p.add_argument("--insecure-local", action="store_true",
                   help="no tokens: anyone on this machine may read and act (binds 127.0.0.1)")
    p.add_argument("--no-worker", action="store_true",
                   help="do not run a worker in the server process")
    p.add_argument("--concurrency", type=int, default=10, metavar="N",
                   help="runs driven at once by the server's worker (default 10)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run_server_command)

    sub = p.add_subparsers(dest="server_command", metavar="COMMAND")
    token = sub.add_parser("token", help="create, list and revoke API tokens")
    tsub = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = tsub.add_parser("create", help="create a token (shown once) with a scope",
                             epilog="example: ductwork server token create --scope read "
                             "--name grafana")
    create.add_argument("--scope", required=True, choices=["read", "operator"],
                        help="read: look at runs and definitions; operator: also start, "
                        "signal, cancel and re-run")
    create.add_argument("--name", default=None, help="who the token is for (shown in errors)")
    create.add_argument("--tokens", dest="token_file", metavar="FILE",
                        help="the tokens file (default as for the server)")
    create.add_argument("--expires", metavar="DURATION", default=None,
                        help="the token stops working this long from now (e.g. 90d, 12h); "
                        "default: never")
    create.add_argument("--json", action="store_true", help="print the record as JSON")
    create.set_defaults(func=token_create)
    lst = tsub.add_parser("list", help="list tokens (never their secret)",
                          epilog="example: ductwork server token list --json")
    lst.add_argument("--tokens", dest="token_file", metavar="FILE")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=token_list)
    rev = tsub.add_parser("revoke", help="revoke a token by its id",
                          epilog="example: ductwork server token revoke 3f9a1c2e")
    rev.add_argument("token_id", metavar="ID")
    rev.add_argument("--tokens", dest="token_file", metavar="FILE")
    rev.set_defaults(func=token_revoke)


def _need_server_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ConfigurationError(f"the server needs its extra: pip install 'ductwork[server]' "
                                 f"({e})") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server_command(args: argparse.Namespace) -> int:
    _need_server_extra()
    import uvicorn

    from ductwork.cli.worker import load_app
    from ductwork.server import ServerSettings, create_app

    if args.concurrency < 1:
        raise ConfigurationError("--concurrency must be at least 1")
    host = args.host or "127.0.0.1"
    port = args.port if args.port is not None else _env_port()
    if args.insecure_local and not _is_loopback(host):
        raise ConfigurationError(f"--insecure-local serves this machine only; it cannot listen "
                                 f"on {host} (drop --host, or use tokens instead)")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ductwork.cli.common import load_secrets

    dw = load_app(app=args.app, imports=args.imports, specs=args.specs, store=args.store,
                  secrets=load_secrets(args.secrets_files), max_faults=args.max_faults)
    settings = ServerSettings(ductwork=dw, tokens_file=Path(args.tokens) if args.tokens else None,
                              insecure_local=args.insecure_local, worker=not args.no_worker,
                              worker_concurrency=args.concurrency)
    if not args.insecure_local and not _token_file(args.tokens).list():
        print(f"warning: no API tokens in {settings.tokens_path()}: every request will be "
              "refused; create one with `ductwork server token create --scope operator`",
              file=sys.stderr)
    app = create_app(settings)
    print(f"ductwork server on http://{host}:{port} (API docs at /api/docs)"
          + (" -- insecure-local: no tokens" if args.insecure_local else ""), file=sys.stderr)
    # uvicorn stops gracefully on SIGTERM, then raises the signal again for the handler it
    # found: a no-op here, so that a stop asked for (systemd, docker stop) exits 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        uvicorn.run(app, host=host, port=port, log_level=args.log_level,
                    lifespan="on", server_header=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _env_port() -> int:
    text = os.environ.get("DUCTWORK_PORT", "").strip()
    if not text:
        return 8000
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigurationError(f"DUCTWORK_PORT={text!r} is not a port number (1-65535)")
    return int(text)


def _token_file(path: str | None) -> Any:
    from ductwork.server.auth import TokenFile
    from ductwork.server.settings import default_tokens_file

    return TokenFile(Path(path) if path else default_tokens_file())


def token_create(args: argparse.Namespace) -> int:
    _need_server_extra()
    tokens = _token_file(args.token_file)
    expires = None if args.expires is None else to_ms(args.expires, "--expires") / 1000
    record, token = tokens.create(args.scope, args.name or f"{args.scope}-token",
                                  expires_in=expires)
    if args.json:
        print(json.dumps({**record, "token": token}))
    else:
        print(token)
        print(f"id {record['id']}, scope {record['scope']}, stored hashed in {tokens.path}; "
              "this is the only time the token is shown", file=sys.stderr)
    return 0


def token_list(args: argparse.Namespace) -> int:
    _need_server_extra()
    records = _token_file(args.token_file).list()
    if args.json:
        print(json.dumps(records))
        return 0
    if not records:
        print("no tokens")
    now = time.time()
    for r in records:
        expires = r.get("expires_at")
        until = "" if expires is None else (
            ("  expired " if expires <= now else "  expires ")
            + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires)))
        print(f"{r['id']}  {r['scope']:<8}  {r.get('name') or ''}{until}")
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    _need_server_extra()
    tokens = _token_file(args.token_file)
    if not tokens.revoke(args.token_id):
        raise ConfigurationError(f"no token with id {args.token_id!r} in {tokens.path} "
                                 "(`ductwork server token list` shows the ids)")
    print(f"revoked {args.token_id}")
    return 0
