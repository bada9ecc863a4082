"""The `ductwork` command line: one module per command group, assembled in cli.main."""

from __future__ import annotations

from ductwork.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
