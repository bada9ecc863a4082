"""The `ductwork` command: the parser assembled from each command group's `register`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence

from ductwork.cli import connectors, db, doctor, init, runs, server, specs, worker
from ductwork.errors import DuctworkError

# Each group adds its subcommands; every subcommand sets `func=handler(args) -> int`.
GROUPS = (
    init,        # init
    specs,       # validate, schema, run, graph
    worker,      # worker
    runs,        # runs list|show|history|cancel|signal|replay|resume|prune, test
    db,          # db upgrade|status
    connectors,  # import-openapi
    server,      # server, server token create|list|revoke
    doctor,      # doctor
)


# One example line per command, shown at the end of its --help.
EXAMPLES = {
    "init": "ductwork init shop && cd shop && ductwork validate",
    "validate": "ductwork validate specs/shop --strict",
    "schema": "ductwork schema product > product.schema.json",
    "run": "ductwork run shop checkout --env dev --input '{\"order_id\": 42}'",
    "graph": "ductwork graph shop checkout > checkout.mmd",
    "worker": "ductwork worker --specs specs --concurrency 20 --metrics-port 9464",
    "runs": "ductwork runs list --status failed --since 1h",
    "runs list": "ductwork runs list --product shop --status failed --since 1h",
    "runs show": "ductwork runs show shop-checkout-42",
    "runs history": "ductwork runs history shop-checkout-42 --logs",
    "runs prune": "ductwork runs prune --older-than 30d",
    "runs signal": "ductwork runs signal shop-checkout-42 approved --payload '{\"by\": \"ann\"}'",
    "runs cancel": "ductwork runs cancel shop-checkout-42 --reason 'duplicate order'",
    "runs query": "ductwork runs query shop-checkout-42 progress",
    "runs replay": "ductwork runs replay shop-checkout-42 --from-step charge",
    "runs restart": "ductwork runs restart shop-checkout-42 --merge '{\"qty\": 2}'",
    "runs resume": "ductwork runs resume shop-checkout-42 --from-step ship",
    "test": "ductwork test specs/shop -k checkout",
    "db": "ductwork db upgrade --store postgresql://localhost/ductwork",
    "db upgrade": "ductwork db upgrade --store postgresql://localhost/ductwork",
    "db status": "ductwork db status --json",
    "server": "ductwork server --specs specs --insecure-local",
    "server token": "ductwork server token create --scope operator --name deploy-bot",
    "import-openapi": "ductwork import-openapi stripe.yaml --app stripe -o stripe.yaml.part",
    "doctor": "ductwork doctor --env prd --json",
}


def _version() -> str:
    """The installed distribution's version, else the package's own."""
    from importlib import metadata

    try:
        return metadata.version("ductwork")
    except metadata.PackageNotFoundError:
        import ductwork

        return ductwork.__version__


class _VersionAction(argparse.Action):
    """`--version`: reads the installed version only when asked (importlib.metadata is slow
    to import, and every other command would pay for it)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0,
                         help=help or "show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"ductwork {_version()}")  # on stdout, as argparse's own version action
        parser.exit()


def _subparsers(parser: argparse.ArgumentParser,
                prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (command path, parser) below `parser`, e.g. ("runs list", <parser>)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = f"{prefix}{name}"
                yield path, child
                yield from _subparsers(child, path + " ")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ductwork", description="Durable workflows for Python.",
                                     epilog="example: ductwork validate specs")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    for path, child in _subparsers(parser):
        if child.epilog is None and path in EXAMPLES:
            child.epilog = f"example: {EXAMPLES[path]}"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`ductwork schema | head -3`): as the Python docs recommend,
        # point stdout at devnull so the flush at exit does not fail again, and end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  extra: list[str]) -> None:
    """argparse's own error, or for a JSON value written without its option (`ductwork run
    shop order '{...}'`), the option it belongs to."""
    option = next((o for o in ("input", "payload") if hasattr(args, o)), None)
    value = next((x for x in extra if x.lstrip()[:1] in ("{", "[")), None)
    if option is not None and value is not None:
        print(f"error: {value!r} looks like the {option}: give it with --{option} "
              f"'{value}'", file=sys.stderr)
        raise SystemExit(2)
    parser.error(f"unrecognized arguments: {' '.join(extra)}")


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unrecognized(parser, args, extra)
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
