"""The harness's own pytest fixture, as a user would get it from the plugin."""

from ductwork.testing.pytest_plugin import workflow_env  # noqa: F401
