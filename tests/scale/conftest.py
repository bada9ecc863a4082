"""Scale-out tests on a real PostgreSQL started by the suite (one server, a database per test)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.postgres import PgServer, postgres_server  # noqa: F401 (session fixture)


@pytest.fixture
def pg_url(postgres_server: PgServer) -> str:  # noqa: F811
    return postgres_server.create_database("s_" + uuid.uuid4().hex[:16])
