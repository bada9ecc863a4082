"""`ductwork runs ...` (inspect and manage runs) and `ductwork test` (YAML test cases)."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import decimal
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ductwork.cli.common import read_json, require_store, store_url
from ductwork.errors import ConfigurationError

if TYPE_CHECKING:
    from rich.console import Console

    from ductwork.app import Ductwork

RUNS_HELP = """\
Inspect and manage workflow runs in a run store.

  ductwork runs list [--status failed] [--tag T] [--since 1h]
  ductwork runs show ID            status, every recorded step, related runs
  ductwork runs history ID         typed events with timestamps
  ductwork runs signal ID NAME --payload '{"ok": true}'
  ductwork runs cancel ID --reason "customer asked"
  ductwork runs replay ID          a new run with the same input
  ductwork runs replay ID --from-step charge --output reserve='{"id": 1}'
  ductwork runs restart ID --merge '{"amount": 5}'
  ductwork runs resume ID [--from-checkpoint NAME | --from-step TAG] [--skip TAG]
  ductwork runs prune --older-than 30d [--status completed]   delete old finished runs

Commands that start runs need the workflow's definition: YAML under --specs (default
./specs), or Python via --app MODULE:ATTR / --import MODULE (as for `ductwork worker`).
Without one here, the new run is queued for a worker that has it. --json prints one JSON
document for scripts.
"""

_STATUS_STYLE = {"completed": "green", "failed": "red", "rolled_back": "yellow",
                 "cancelled": "magenta", "running": "cyan", "pending": "blue",
                 "sleeping": "blue", "waiting": "blue", "skipped": "yellow",
                 "rolled back": "yellow", "preparing": "dim"}


def register(subparsers: Any) -> None:
    common, apps, start = _shared_options()
    runs = subparsers.add_parser("runs", help="list, show and manage workflow runs",
                                 description=RUNS_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")
    runs.set_defaults(func=lambda args: _usage(runs))
    _register_reads(sub, common)
    _register_actions(sub, common, apps)
    _register_reruns(sub, common, apps, start)
    _register_test(subparsers)


def _shared_options() -> tuple[argparse.ArgumentParser, ...]:
    """Option groups shared by subcommands: store/json, where workflows come from, new runs."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL",
                        help="run store URL (default: $DUCTWORK_STORE, else "
                             "sqlite:///.ductwork/runs.db)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    apps = argparse.ArgumentParser(add_help=False)
    apps.add_argument("--specs", metavar="DIR", help="YAML products (default ./specs)")
    apps.add_argument("--app", metavar="MODULE:ATTR", help="a Ductwork instance with Python "
                      "workflows, e.g. myapp.workflows:dw")
    apps.add_argument("--import", dest="imports", action="append", default=[],
                      metavar="MODULE", help="import a module that defines workflows")
    apps.add_argument("--secrets-file", dest="secrets_files", action="append", default=[],
                      metavar="FILE", help="secrets for ${secrets.NAME}: a dotenv or YAML "
                      "file (repeatable; DUCTWORK_SECRET_<NAME> variables win)")
    start = argparse.ArgumentParser(add_help=False)
    start.add_argument("--id", dest="new_id", metavar="ID",
                       help="the new run's workflow id (retrying with it never runs twice)")
    start.add_argument("--queue", action="store_true",
                       help="leave the new run to a worker instead of running it here")
    start.add_argument("--timeout", metavar="DURATION",
                       help="stop waiting after this long (the run goes on)")
    return common, apps, start


def _register_reads(sub: Any, common: argparse.ArgumentParser) -> None:
    """Commands that only read the store (no workflow definitions needed): list, show, ..."""
    p = sub.add_parser("list", parents=[common], help="runs, newest first")
    p.add_argument("--product")
    p.add_argument("--tag")
    p.add_argument("--status", action="append", metavar="STATUS",
                   help="only these statuses (repeatable, or comma-separated)")
    p.add_argument("--since", metavar="WHEN", help="ISO time, or how long ago: 15m, 2h, 1d")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor", help="next_cursor of the previous page")
    p.set_defaults(func=_cmd(cmd_list, needs_app=False))

    p = sub.add_parser("show", parents=[common], help="a run: status, steps, related runs")
    p.add_argument("workflow_id")
    p.set_defaults(func=_cmd(cmd_show, needs_app=False))

    p = sub.add_parser("history", parents=[common], help="a run's events")
    p.add_argument("workflow_id")
    p.add_argument("--logs", action="store_true", help="also the ctx.log lines")
    p.set_defaults(func=_cmd(cmd_history, needs_app=False))

    p = sub.add_parser("prune", parents=[common],
                       help="delete finished runs older than a cutoff, with all they recorded")
    p.add_argument("--older-than", required=True, metavar="AGE|TIME",
                   help="how long ago they finished (30d, 12h, 2w) or an ISO time")
    p.add_argument("--status", action="append", metavar="STATUS",
                   help="only these finished statuses (repeatable, or comma-separated; "
                        "default: completed, failed, rolled_back, cancelled)")
    p.add_argument("--limit", type=int, default=10_000, help="at most this many runs")
    p.set_defaults(func=_cmd(cmd_prune, needs_app=False))


def _register_actions(sub: Any, common: argparse.ArgumentParser,
                      apps: argparse.ArgumentParser) -> None:
    """Commands that act on a live run: signal, cancel, query."""
    p = sub.add_parser("signal", parents=[common, apps], help="send a signal to a run")
    p.add_argument("workflow_id")
    p.add_argument("name")
    p.add_argument("--payload", default="null", metavar="JSON|@FILE")
    p.set_defaults(func=_cmd(cmd_signal))

    p = sub.add_parser("cancel", parents=[common, apps],
                       help="cancel a run (its completed steps are rolled back)")
    p.add_argument("workflow_id")
    p.add_argument("--reason", default="cancelled from the command line")
    p.add_argument("--wait", metavar="DURATION",
                   help="wait this long for a run another process owns to stop")
    p.set_defaults(func=_cmd(cmd_cancel))

    p = sub.add_parser("query", parents=[common, apps],
                       help="answer a declared query from a run's persisted state")
    p.add_argument("workflow_id")
    p.add_argument("name")
    p.set_defaults(func=_cmd(cmd_query))


def _register_reruns(sub: Any, common: argparse.ArgumentParser, apps: argparse.ArgumentParser,
                     start: argparse.ArgumentParser) -> None:
    """Commands that start a new run from an old one: replay, restart, resume."""
    p = sub.add_parser("replay", parents=[common, apps, start],
                       help="a new run with the same input (or from a step)")
    p.add_argument("workflow_id")
    p.add_argument("--reason")
    p.add_argument("--from-step", metavar="TAG",
                   help="reuse the recorded results of the steps before TAG")
    p.add_argument("--output", action="append", default=[], metavar="TAG=JSON",
                   help="with --from-step: use this output for step TAG (repeatable)")
    p.set_defaults(func=_cmd(cmd_replay))

    p = sub.add_parser("restart", parents=[common, apps, start],
                       help="a new run from scratch, with a new or updated input")
    p.add_argument("workflow_id")
    p.add_argument("--input", metavar="JSON|@FILE", help="the whole new input")
    p.add_argument("--merge", metavar="JSON|@FILE", help="fields to change in the old input")
    p.add_argument("--reason")
    p.set_defaults(func=_cmd(cmd_restart))

    p = sub.add_parser("resume", parents=[common, apps, start],
                       help="a new run reusing the results recorded up to a checkpoint/step")
    p.add_argument("workflow_id")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--from-checkpoint", metavar="NAME")
    where.add_argument("--from-step", metavar="TAG")
    p.add_argument("--skip", action="append", default=[], metavar="TAG",
                   help="do not run step TAG again (repeatable)")
    p.set_defaults(func=_cmd(cmd_resume))


def _register_test(subparsers: Any) -> None:
    t = subparsers.add_parser(
        "test", help="run the YAML test cases of workflows (exit 0 when all pass)",
        description="Run the test cases in <product>/tests/*.yaml against the workflows of "
                    "that product, with mocked steps, a fake clock and an in-memory store.")
    t.add_argument("paths", nargs="*", default=["specs"], metavar="PATH",
                   help="specs folder, product folder or test file (default: specs)")
    t.add_argument("-k", dest="keyword", metavar="TEXT",
                   help="only cases whose workflow or name contains TEXT")
    t.add_argument("--json", action="store_true", help="print one JSON document")
    t.set_defaults(func=cmd_test)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# -- plumbing ---------------------------------------------------------------------------------
Command = Callable[["Ductwork", argparse.Namespace, "Console"], Awaitable[int]]


def _cmd(fn: Command, *, needs_app: bool = True) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import asyncio

        dw, origin = _open(args, needs_app)  # user modules are imported outside any event loop
        try:
            return asyncio.run(_run(fn, dw, args, origin))
        except BrokenPipeError:  # `ductwork runs list --json | head`: the reader left early
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open for the exit flush
            return 0

    return run


async def _run(fn: Command, dw: Ductwork, args: argparse.Namespace, origin: str) -> int:
    from rich.console import Console

    # Piped output (less, grep, CI logs) is not squeezed into rich's 80-column default.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
    try:
        # Every `runs` command addresses runs that exist: none of them creates a store.
        await require_store(dw.store, origin)
    except BaseException:
        await dw.aclose()
        raise
    async with dw:
        return await fn(dw, args, Console(highlight=False, soft_wrap=False, width=width))


def _open(args: argparse.Namespace, needs_app: bool) -> tuple[Ductwork, str]:
    """The Ductwork instance of a command, and where its store came from (for messages)."""
    from ductwork.app import Ductwork

    url, origin = store_url(args.store)
    if not needs_app:
        return Ductwork(store=url), origin
    from ductwork.cli.common import load_secrets
    from ductwork.cli.worker import load_app

    dw = load_app(app=args.app, imports=args.imports, specs=args.specs, store=args.store,
                  secrets=load_secrets(args.secrets_files))
    if dw.store.url != url:
        origin = "the store of the app's Ductwork instance"
    return dw, origin


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default, ensure_ascii=False))


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=_json_default,
                                                           ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _styled(status: str | None) -> str:
    if not status:
        return ""
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _time(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _ms(value: Any) -> str:
    if value is None:
        return ""
    ms = int(value)
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _exit_for(status: str) -> int:
    return 1 if status in ("failed", "rolled_back", "cancelled") else 0


# -- commands ---------------------------------------------------------------------------------
async def cmd_list(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    from rich.table import Table

    statuses = [s.strip() for v in args.status or [] for s in v.split(",") if s.strip()]
    page = await dw.workflows.list(product=args.product, tag=args.tag,
                                   status=statuses or None, since=args.since,
                                   limit=args.limit, cursor=args.cursor)
    if args.json:
        print_json(page)
        return 0
    if not page["runs"]:
        out.print("no runs")
        return 0
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("WORKFLOW ID", "WORKFLOW", "ENV", "STATUS", "STARTED", "DURATION"):
        table.add_column(col, no_wrap=True)
    table.add_column("DETAIL", overflow="fold")
    for r in page["runs"]:
        detail = ""
        if r["error"]:
            detail = _short(f"{r['failed_step'] or ''}: {r['error']}".lstrip(": "), 80)
        elif r.get("rerun_of"):
            detail = f"{r['rerun_of']['relation']} of {r['rerun_of']['workflow_id']}"
        elif r["parent_id"]:
            detail = f"child of {r['parent_id']}"
        table.add_row(r["workflow_id"], f"{r['product']}/{r['workflow_tag']}", r["env"],
                      _styled(r["status"]), _time(r["started_at"] or r["created_at"]),
                      _ms(r["execution_time"]), detail)
    out.print(table)
    if page["next_cursor"]:
        out.print(f"\nmore: --cursor '{page['next_cursor']}'")
    return 0


async def cmd_show(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    from rich.table import Table

    from ductwork.interpreter import codec
    from ductwork.workflows.reads import get_run

    wid = args.workflow_id
    engine = await dw._engine()
    run = await get_run(engine, wid)
    status = await dw.workflows.status(wid)
    related = await dw.workflows.related_executions(wid)
    steps = sorted(await engine.store.load_steps(wid), key=lambda s: (s.seq == 0, s.seq))
    journal = [{"key": s.step_key, "tag": s.tag, "kind": s.kind, "status": s.status,
                "attempts": s.attempts, "output": codec.loads(s.result), "error": s.error,
                "rollback_status": s.rollback_status,
                "duration": None if s.started_at is None or s.finished_at is None
                else round((s.finished_at - s.started_at) * 1000)} for s in steps]
    if args.json:
        print_json({"run": status, "input": codec.loads(run.input),
                    "output": codec.loads(run.output), "steps": journal, "related": related})
        return 0
    out.print(f"[bold]{wid}[/bold]  {run.product}/{run.tag}  env {run.env}  "
              f"{_styled(run.status)}")
    out.print(f"started {_time(status['started_at'])}   updated {_time(status['updated_at'])}"
              + (f"   finished {_time(status['finished_at'])}" if status["finished_at"] else ""))
    if run.error:
        out.print(f"[red]error[/red]: {run.error}")
    out.print(f"input: {_short(codec.loads(run.input), 200)}")
    if run.output is not None:
        out.print(f"output: {_short(codec.loads(run.output), 200)}")
    if status["state"]:
        out.print(f"state: {_short(status['state'], 200)}")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("STEP", "KIND", "STATUS", "TRIES", "TIME"):
        table.add_column(col, no_wrap=True)
    table.add_column("RESULT / ERROR", overflow="fold")
    for s in journal:
        st = "rolled back" if s["rollback_status"] == "rolled_back" else s["status"]
        if s["rollback_status"] == "rollback_failed":
            st += " (rollback failed)"
        shown = s["error"] if s["error"] else ("" if s["output"] is None else
                                               _short(s["output"]))
        table.add_row(s["key"], s["kind"], _styled(st), str(s["attempts"] or ""),
                      _ms(s["duration"]), shown)
    out.print()
    out.print(table if journal else "no recorded steps")
    lines = []
    for a in related["ancestors"]:
        lines.append(f"{a['relation'].replace('_', ' ')} {a['workflow_id']}")
    for d in related["descendants"]:
        lines.append(f"{d['relation']}: {d['workflow_id']} ({d['status']})")
    if related["parent"]:
        lines.append(f"child of {related['parent']['workflow_id']}")
    for c in related["children"]:
        lines.append(f"child run: {c['workflow_id']} ({c['status']})")
    if lines:
        out.print("\nrelated:\n  " + "\n  ".join(lines))
    return 0


async def cmd_history(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    from rich.table import Table

    events = await dw.workflows.history(args.workflow_id)
    logs = await dw.workflows.logs(args.workflow_id) if args.logs else []
    if args.json:
        print_json({"events": events, "logs": logs} if args.logs else events)
        return 0
    # The table shows the step in its own column, not again in the data.
    shown_data = [{k: v for k, v in e["data"].items() if k != "step"} for e in events]
    rows = [(e["timestamp"] or "", e["type"], e["step"] or "", _short(d, 70) if d else "")
            for e, d in zip(events, shown_data, strict=True)]
    rows += [(lg["timestamp"] or "", f"log.{lg['level']}", lg["step"] or "",
              _short(lg["message"], 70)) for lg in logs]
    rows.sort(key=lambda r: r[0])
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("TIME", "EVENT", "STEP"):
        table.add_column(col, no_wrap=True)
    table.add_column("DATA", overflow="fold")
    for ts, kind, step, data in rows:
        style = "red" if "fail" in kind or kind == "log.error" else None
        table.add_row(_time(ts) + ts[19:23], f"[{style}]{kind}[/{style}]" if style else kind,
                      step, data)
    out.print(table)
    return 0


async def cmd_signal(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    payload = read_json(args.payload, "--payload")
    res = await dw.workflows.signal(args.workflow_id, args.name, payload)
    if args.json:
        print_json(res)
    else:
        out.print(f"signal '{args.name}' sent to {args.workflow_id}")
    return 0


async def cmd_cancel(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    res = await dw.workflows.cancel(args.workflow_id, args.reason, timeout=args.wait)
    if args.json:
        print_json(res)
        return 0
    status = res.get("status", "cancelled")
    out.print(f"{args.workflow_id}: {_styled(status)}")
    if res.get("rolled_back_steps"):
        out.print("rolled back: " + ", ".join(res["rolled_back_steps"]))
    return 0


async def cmd_query(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    print_json(await dw.workflows.query(args.workflow_id, args.name))
    return 0


async def cmd_prune(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    statuses = [s.strip() for v in args.status or [] for s in v.split(",") if s.strip()]
    res = await dw.workflows.prune(older_than=args.older_than, status=statuses or None,
                                   limit=args.limit)
    if args.json:
        print_json(res)
    else:
        out.print(f"deleted {res['deleted']} finished run(s) older than {args.older_than}"
                  if res["deleted"] else "nothing to delete")
    return 0


def _start_kw(args: argparse.Namespace) -> dict[str, Any]:
    return {"new_workflow_id": args.new_id, "queue": args.queue, "timeout": args.timeout}


def _started(res: dict[str, Any], args: argparse.Namespace, out: Console, what: str) -> int:
    if args.json:
        print_json(res)
        return _exit_for(res["status"])
    out.print(f"{what} {args.workflow_id} -> [bold]{res['workflow_id']}[/bold]: "
              f"{_styled(res['status'])}")
    if res["status"] == "pending":
        out.print("queued: a worker that defines this workflow will run it")
    if res.get("error"):
        out.print(f"[red]error[/red]: {res['error']}")
    elif res.get("output") is not None:
        out.print(f"output: {_short(res['output'], 200)}")
    return _exit_for(res["status"])


async def cmd_replay(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    if args.output and not args.from_step:
        raise ConfigurationError("--output needs --from-step (the outputs replace recorded ones)")
    if args.from_step:
        outputs: dict[str, Any] = {}
        for item in args.output:
            tag, sep, value = item.partition("=")
            if not sep or not tag:
                raise ConfigurationError(f"--output {item!r}: write TAG=JSON, e.g. "
                                         "charge='{\"id\": \"ch_1\"}'")
            outputs[tag] = read_json(value, f"--output {tag}")
        res = await dw.workflows.replay_from_step(args.workflow_id, args.from_step, outputs,
                                                  reason=args.reason, **_start_kw(args))
    else:
        res = await dw.workflows.replay(args.workflow_id, args.reason, **_start_kw(args))
    return _started(res, args, out, "replayed")


async def cmd_restart(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    res = await dw.workflows.restart(args.workflow_id, read_json(args.input, "--input"),
                                     read_json(args.merge, "--merge"), args.reason,
                                     **_start_kw(args))
    return _started(res, args, out, "restarted")


async def cmd_resume(dw: Ductwork, args: argparse.Namespace, out: Console) -> int:
    res = await dw.workflows.resume(args.workflow_id, args.from_checkpoint, args.from_step,
                                    args.skip or None, **_start_kw(args))
    return _started(res, args, out, "resumed")


def cmd_test(args: argparse.Namespace) -> int:
    from ductwork.testing.cases import main

    return main(list(args.paths), keyword=args.keyword, as_json=args.json, stream=sys.stdout)
