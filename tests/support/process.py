"""Server processes for tests: start one on a free port, wait until it listens, stop it by PID."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ports import free_port, wait_port


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Server:
    """A server process on 127.0.0.1, stopped by its PID."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    dir: Path
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def start_server(
    name: str, directory: Path, argv_for_port: Callable[[int], list[str]], *,
    env: dict[str, str] | None = None, attempts: int = 3,
) -> Server:
    """Run `argv_for_port(port)` in `directory` (output to <name>.log) until one listens."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{name}.log"
    last = ""
    for _ in range(attempts):  # another process may grab the free port before the server binds
        port = free_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv_for_port(port), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=directory,
                                    env=env if env is not None else dict(os.environ))
        server = Server(name, port, proc, directory, log)
        try:
            _wait(server)
            return server
        except RuntimeError as e:
            server.stop()
            last = str(e)
    raise RuntimeError(f"{name} did not start: {last}")


def _wait(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        try:
            wait_port(server.port, timeout=0.2)
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} port {server.port} not ready") from None
