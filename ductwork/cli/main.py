"""The `ductwork` command: the parser assembled from each command group's `register`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ductwork.cli import connectors, db, runs, specs, worker
from ductwork.errors import DuctworkError

# Each group adds its subcommands; every subcommand sets `func=handler(args) -> int`.
GROUPS = (
    specs,       # validate, schema, run, graph
    worker,      # worker
    runs,        # runs list|show|history|cancel|signal|replay|resume|prune, test
    db,          # db upgrade|status
    connectors,  # import-openapi
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ductwork", description="Durable workflows for Python.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except DuctworkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
