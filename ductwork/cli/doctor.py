"""`ductwork doctor`: check every resource of an environment and print a table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ductwork.errors import ConfigurationError

DEFAULT_SPECS = "specs"


def register(subparsers: Any) -> None:
    d = subparsers.add_parser(
        "doctor", help="check that every resource of an environment answers",
        description="Connect to every app, database, notification, storage, graph and broker "
                    "of an environment (each provider of a `providers:` list), authenticate, "
                    "make one harmless call (HTTP HEAD or the `health:` path, SELECT 1, SMTP "
                    "NOOP, S3 list, PING) and print a table. Exit 1 when something is down.")
    d.add_argument("--env", default="dev", help="environment (default: dev)")
    d.add_argument("--specs", default=DEFAULT_SPECS, help=f"default: {DEFAULT_SPECS}")
    d.add_argument("--product", action="append", metavar="NAME",
                   help="only this product (repeatable; default: every product)")
    d.add_argument("--timeout", default="10s", metavar="DURATION",
                   help="how long one check may take (default: 10s)")
    d.add_argument("--json", action="store_true", help="print one JSON document for machines")
    d.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio

    from ductwork.util.durations import to_ms

    if not Path(args.specs).exists():
        raise ConfigurationError(f"specs folder not found: {args.specs} (use --specs DIR)")
    timeout_s = to_ms(args.timeout, "--timeout") / 1000
    rows = asyncio.run(_check(args.specs, args.env, args.product, timeout_s))
    down = [r for r in rows if r["status"] == "down"]
    if args.json:
        print(json.dumps({"env": args.env, "ok": not down, "resources": rows}, indent=2))
        return 1 if down else 0
    _table(rows, args.env)
    return 1 if down else 0


async def _check(specs: str, env: str, only: list[str] | None, timeout_s: float
                 ) -> list[dict[str, Any]]:
    from ductwork.app import Ductwork
    from ductwork.interpreter.health import check_env

    # An in-memory run store: a check writes nothing anywhere.
    async with Ductwork(specs=specs, store="sqlite://:memory:") as dw:
        products = sorted(dw.specs.products) if dw.specs is not None else []
        if only:
            unknown = [p for p in only if p not in products]
            if unknown:
                raise ConfigurationError(
                    f"--product {unknown[0]}: no such product in {specs} (products: "
                    f"{', '.join(products) or 'none'})")
            products = [p for p in products if p in only]
        out: list[dict[str, Any]] = []
        for product in products:
            envs = dw.specs.products[product].envs
            if envs and env not in envs:
                raise ConfigurationError(
                    f"--env {env}: product '{product}' has no such environment (its envs: "
                    f"{', '.join(envs)})")
            for row in await check_env(dw.connectors, product, env, timeout_s=timeout_s):
                out.append({"product": product, **row.to_dict()})
        return out


_STYLE = {"up": "green", "down": "bold red", "unchecked": "yellow"}


def _table(rows: list[dict[str, Any]], env: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"ductwork doctor: env {env}", title_justify="left")
    for col in ("product", "resource", "provider", "type", "status", "latency", "detail"):
        table.add_column(col, overflow="fold", no_wrap=col != "detail")
    for r in rows:
        latency = "" if r["latency_ms"] is None else f"{r['latency_ms']:g} ms"
        status = r["status"]
        table.add_row(r["product"], f"{r['kind']} {r['resource']}", r["member"], r["provider"],
                      f"[{_STYLE[status]}]{status}[/]", latency, r["detail"], )
    console.print(table)
    down = sum(1 for r in rows if r["status"] == "down")
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("up", "down", "unchecked")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no resources"
    console.print(("[bold red]" if down else "[green]") + text + "[/]", highlight=False)
