"""Servers for the server tests: create_app on a real uvicorn, tokens in the test's folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ductwork.server import ServerSettings, create_app
from ductwork.server.auth import TokenFile
from tests.support.apiserver import ThreadedServer


@pytest.fixture
def tokens_path(tmp_path: Path) -> Path:
    return tmp_path / "tokens.json"


@pytest.fixture
def tokens(tokens_path: Path) -> dict[str, str]:
    """A read token and an operator token, by scope."""
    tf = TokenFile(tokens_path)
    return {scope: tf.create(scope, f"test-{scope}")[1] for scope in ("read", "operator")}


@pytest.fixture
def serve(tmp_path: Path, tokens_path: Path) -> Iterator[Callable[..., ThreadedServer]]:
    """serve(**ServerSettings fields) -> a started server (stopped after the test). The store
    defaults to a SQLite file in the test's folder."""
    started: list[ThreadedServer] = []

    def start(**kw: Any) -> ThreadedServer:
        if kw.get("ductwork") is None:
            kw.setdefault("store", f"sqlite:///{tmp_path / 'runs.db'}")
        kw.setdefault("tokens_file", tokens_path)
        srv = ThreadedServer(create_app(ServerSettings(**kw))).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def client(srv: ThreadedServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=srv.url, headers=headers, timeout=30)
