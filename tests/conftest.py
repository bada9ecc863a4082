"""Shared fixtures: a Ductwork on a real SQLite file per test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from ductwork import Ductwork
from tests.support.postgres import find_bin_dir

# Hypothesis keeps no example database and its caches go to a temporary folder, removed at
# the end, not .hypothesis/ in the working directory: tests write only into temporary folders,
# and a run does not depend on what earlier runs found.
settings.register_profile("ductwork", database=None)
settings.load_profile("ductwork")
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="dw-hypothesis-")
set_hypothesis_home_dir(_HYPOTHESIS_HOME)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Without PostgreSQL's server binaries, one message saying how to get them (rather than
    an error in each of the hundreds of tests that start a private cluster)."""
    if session.config.option.collectonly:
        return
    try:
        find_bin_dir()
    except RuntimeError as e:
        pytest.exit(f"{e}. Then run the tests again.", returncode=4)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
async def dw(store_url: str) -> AsyncIterator[Ductwork]:
    d = Ductwork(store=store_url, inline_wait="200ms")
    async with d:
        yield d
