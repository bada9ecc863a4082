"""`ductwork db upgrade|status`: schema migrations and a look at the run store."""

from __future__ import annotations

import argparse
import json
import sqlite3
from typing import Any

from ductwork.cli.common import DEFAULT_STORE, require_store, sqlite_version, store_url


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="run store: migrations and status",
                               description="Manage the run store (SQLite file or PostgreSQL).")
    sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    for name, func, text in (
            ("upgrade", _upgrade, "apply pending schema migrations (safe with running workers: "
                                  "migrations only add tables, columns and indexes)"),
            ("status", _status, "schema version, runs per status and the workers holding "
                                "leases")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--store", metavar="URL",
                       help=f"run store URL or SQLite file path (default $DUCTWORK_STORE "
                            f"or {DEFAULT_STORE})")
        if name == "status":
            p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.set_defaults(func=func)
    db.set_defaults(func=lambda _args: db.print_help() or 2)


def _url(args: argparse.Namespace) -> str:
    return store_url(args.store)[0]


def _safe(url: str) -> str:
    from ductwork.store.postgres import safe_url

    return safe_url(url) if url.startswith(("postgres:", "postgresql:")) else url


def _upgrade(args: argparse.Namespace) -> int:
    import asyncio

    url = _url(args)
    before, after = asyncio.run(_upgrade_async(url))
    if before == after:
        print(f"{_safe(url)}: schema version {after}, up to date")
    else:
        print(f"{_safe(url)}: schema upgraded from version {before} to {after}")
    return 0


async def _upgrade_async(url: str) -> tuple[int, int]:
    if url.startswith("sqlite:"):
        from ductwork.store.sqlite import SQLiteStore

        lite = SQLiteStore(url)
        before = sqlite_version(lite.path)
        await lite.open()  # migrates under BEGIN IMMEDIATE
        await lite.close()
        from ductwork.store.schema import SCHEMA_VERSION

        return before, SCHEMA_VERSION
    from ductwork.store.postgres import PostgresStore

    return await PostgresStore(url).upgrade()


def _status(args: argparse.Namespace) -> int:
    import asyncio

    url, origin = store_url(args.store)
    info = asyncio.run(_status_async(url, origin))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"store           {info['store']}")
    print(f"schema version  {info['schema_version']} (this ductwork: {info['code_version']})")
    if info["pending_migrations"]:
        print(f"pending         {info['pending_migrations']}: run `ductwork db upgrade`")
    runs = info.get("runs") or {}
    print("runs            " + (", ".join(f"{k} {v}" for k, v in runs.items()) or "none"))
    owners = info.get("owners") or []
    print(f"workers         {len(owners)} holding leases")
    for o in owners:
        print(f"  {o['owner']:<40} {o['runs']:>6} run(s), lease {o['lease_left_s']:+.1f}s")
    return 0


async def _status_async(url: str, origin: str) -> dict[str, Any]:
    from ductwork.store.schema import SCHEMA_VERSION

    info: dict[str, Any] = {"store": _safe(url), "code_version": SCHEMA_VERSION}
    if url.startswith("sqlite:"):
        from ductwork.store.sqlite import SQLiteStore

        lite = SQLiteStore(url)
        await require_store(lite, origin)  # a status never creates the file it looks at
        path = lite.path
        version = sqlite_version(path)
        info.update(schema_version=version, **_sqlite_stats(path, version))
    else:
        from ductwork.store.postgres import PostgresStore

        store = PostgresStore(url, min_size=0, max_size=1, migrate=False)
        version = await store.schema_version()
        info["schema_version"] = version
        if version:
            await store._open_pool()  # read-only: no migration, whatever the version
            try:
                info.update(await store.stats())
            finally:
                await store.close()
    info["pending_migrations"] = list(range(info["schema_version"] + 1, SCHEMA_VERSION + 1))
    return info


def _sqlite_stats(path: str, version: int) -> dict[str, Any]:
    if not version:
        return {"runs": {}, "owners": []}
    import time

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        runs = dict(db.execute("SELECT status, count(*) FROM dw_runs GROUP BY status "
                               "ORDER BY status").fetchall())
        owners = [{"owner": o, "runs": n, "lease_left_s": round(float(lu or 0) - time.time(), 1)}
                  for o, n, lu in db.execute(
                      "SELECT owner, count(*), max(lease_until) FROM dw_runs WHERE owner IS "
                      "NOT NULL GROUP BY owner ORDER BY owner").fetchall()]
    finally:
        db.close()
    return {"runs": runs, "owners": owners}
