"""The `ductwork` command: each layer registers its own subcommands here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ductwork.errors import DuctworkError

# Modules that define `register(subparsers)`; each subcommand sets `func=handler(args) -> int`.
COMMAND_MODULES = (
    "ductwork.dsl.commands",          # validate, schema, run, graph, test
    "ductwork.interpreter.commands",  # worker, runs ...
    "ductwork.interpreter.runs_cli",  # runs list|show|history|cancel|signal|replay|resume, test
    "ductwork.store.commands",        # db upgrade
    "ductwork.connectors.commands",   # import-openapi
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ductwork", description="Durable workflows for Python.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency inside the module
                raise
            continue
        mod.register(sub)
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


if __name__ == "__main__":
    sys.exit(main())
