"""The run-store suite runs against every backend: add a backend by extending BACKENDS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ductwork.store import RunStore, open_store
from tests.support.postgres import PgServer, postgres_server  # noqa: F401 (session fixture)


def _sqlite(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _postgres(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    # One private server for the session, one fresh database per test.
    server: PgServer = request.getfixturevalue("postgres_server")
    return server.create_database("t_" + uuid.uuid4().hex[:16])


# name -> function(tmp_path, request) -> URL of an empty store.
BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], str]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
def store_url_any(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[request.param](tmp_path, request)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty PostgreSQL database (for PostgreSQL-only tests)."""
    return _postgres(tmp_path, request)


@pytest.fixture
async def store(store_url_any: str) -> AsyncIterator[RunStore]:
    s = open_store(store_url_any)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
