"""A real local HTTP server (pytest-httpserver) on 127.0.0.1 and a free port below 32768."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pytest_httpserver import HTTPServer

from tests.support.ports import free_port


@contextmanager
def local_http_server(*, threaded: bool = True) -> Iterator[HTTPServer]:
    """Start a pytest-httpserver; threaded so one slow handler does not block the next test."""
    server = HTTPServer(host="127.0.0.1", port=free_port(), threaded=threaded)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


@pytest.fixture(scope="module")
def module_http_server() -> Iterator[HTTPServer]:
    """One server per test module (pytest-httpserver's own is on 0.0.0.0 and a high port)."""
    with local_http_server() as server:
        yield server


@pytest.fixture
def httpserver(module_http_server: HTTPServer) -> Iterator[HTTPServer]:
    """The module's server under pytest-httpserver's fixture name, cleared after each test.

    Import both fixtures into a test module: `from tests.support.http import httpserver as
    httpserver` and the same for module_http_server.
    """
    yield module_http_server
    module_http_server.clear()
