"""CLI subcommands of the connectors layer: `ductwork import-openapi`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ductwork.errors import ConfigurationError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import-openapi",
        help="turn an OpenAPI 3 document into an app block for a product file",
        description="Print (or write) an `apps:` block whose events are the document's "
                    "operations; auth is a stub referring to ${env.<APP>_...} variables.",
    )
    p.add_argument("document", help="OpenAPI 3 document (.yaml, .yml or .json)")
    p.add_argument("--app", required=True, help="app name in the product file, e.g. stripe")
    p.add_argument("--base-url", help="base URL to use instead of the document's servers[0]")
    p.add_argument("--env", action="append", dest="envs", metavar="ENV",
                   help="environment to configure (repeatable; default: dev)")
    p.add_argument("-o", "--output", help="write the YAML here instead of printing it")
    p.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    # Here, not at the top: YAML and the action config are for this command alone.
    from ductwork.connectors.openapi import import_openapi, load_document, render_yaml

    doc = load_document(args.document)
    block, warnings = import_openapi(doc, args.app, base_url=args.base_url,
                                     envs=args.envs or ["dev"])
    text = render_yaml(args.app, block, source=Path(args.document).name)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise ConfigurationError(f"cannot write {args.output}: {e.strerror or e}") from None
        print(f"wrote app '{args.app}' with {len(block['events'])} events to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
