"""ductwork.testing: run workflows in memory with a fake clock, step mocks and signal injection."""

from ductwork.testing.clock import FakeClock
from ductwork.testing.env import StepMock, WorkflowTestEnv

__all__ = ["FakeClock", "StepMock", "WorkflowTestEnv"]
