"""ductwork.testing: run workflows in memory with a fake clock, step mocks and connector doubles."""

from ductwork.testing.clock import FakeClock
from ductwork.testing.doubles import (
    MemoryAction,
    MemoryBroker,
    MemoryDatabase,
    MemoryGraph,
    MemoryNotification,
    MemoryStorage,
)
from ductwork.testing.env import RollbackMock, StepMock, WorkflowTestEnv

__all__ = [
    "FakeClock",
    "MemoryAction",
    "MemoryBroker",
    "MemoryDatabase",
    "MemoryGraph",
    "MemoryNotification",
    "MemoryStorage",
    "RollbackMock",
    "StepMock",
    "WorkflowTestEnv",
]
