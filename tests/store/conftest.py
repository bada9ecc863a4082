"""The run-store suite runs against every backend: add a backend by extending BACKENDS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ductwork.store.base import RunStore, open_store


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


# name -> function(tmp_path) -> store URL. The PostgreSQL backend registers itself here.
BACKENDS: dict[str, Callable[[Path], str]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def store_url_any(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(store_url_any: str) -> AsyncIterator[RunStore]:
    s = open_store(store_url_any)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
