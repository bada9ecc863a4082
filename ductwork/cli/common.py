"""What every command group shares: JSON given on the command line, inline or as @FILE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ductwork.errors import ConfigurationError


def read_json(text: str | None, what: str) -> Any:
    """The value of option `what` (e.g. "--input"): JSON text, or `@file.json`; None if absent.
    A file's JSON error names the file; inline text's error says how to quote it for a shell."""
    if text is None:
        return None
    source = None
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text("utf-8")
        except OSError as e:
            raise ConfigurationError(f"{what}: cannot read {source}: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"({e.msg} at line {e.lineno} column {e.colno})"
        if source is not None:
            raise ConfigurationError(f"{source}: not valid JSON {where}") from None
        raise ConfigurationError(f"{what}: not valid JSON {where}; quote it for the shell: "
                                 "'{\"a\": 1}'") from None
