"""Shared fixtures: a Ductwork on a real SQLite file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ductwork import Ductwork


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
async def dw(store_url: str) -> AsyncIterator[Ductwork]:
    d = Ductwork(store=store_url, inline_wait="200ms")
    async with d:
        yield d
