"""What a server is pointed at: its store, its specs, how callers authenticate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ductwork.app import Ductwork

DEFAULT_TOKENS_FILE = ".ductwork/tokens.json"


def default_tokens_file() -> Path:
    """$DUCTWORK_TOKENS_FILE, else .ductwork/tokens.json (beside the default SQLite store)."""
    return Path(os.environ.get("DUCTWORK_TOKENS_FILE") or DEFAULT_TOKENS_FILE)


@dataclass
class ServerSettings:
    """create_app's settings. Either `ductwork` (an instance built by the caller, with its
    Python workflows defined) or `store` + `specs` (the server builds a YAML-only instance)."""

    store: str | None = None              # run store URL (None: $DUCTWORK_STORE or SQLite)
    specs: str | None = None              # folder of YAML products
    ductwork: Ductwork | None = None      # an instance to serve instead of building one
    tokens_file: str | Path | None = None  # None: default_tokens_file()
    insecure_local: bool = False          # no tokens: every caller on 127.0.0.1 is an operator
    worker: bool = True                   # run a worker in the server (due runs, schedules)
    worker_concurrency: int = 10
    metrics: bool = True                  # /metrics (Prometheus text format)
    # Secrets for ${secrets.X} (webhook keys...); None: the process environment.
    secrets: dict[str, str] | None = None

    def tokens_path(self) -> Path:
        return Path(self.tokens_file) if self.tokens_file is not None else default_tokens_file()
