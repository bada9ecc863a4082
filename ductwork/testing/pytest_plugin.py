"""pytest fixture `workflow_env`: add `pytest_plugins = ["ductwork.testing.pytest_plugin"]`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from ductwork.testing.env import WorkflowTestEnv


@pytest_asyncio.fixture
async def workflow_env() -> AsyncIterator[WorkflowTestEnv]:
    """A started WorkflowTestEnv (in-memory store, fake clock), closed after the test."""
    async with WorkflowTestEnv() as env:
        yield env
