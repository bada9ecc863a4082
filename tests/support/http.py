"""A real local HTTP server (pytest-httpserver) on 127.0.0.1 and a free port below 32768."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
