"""Free TCP ports below the ephemeral range, for servers the tests start on 127.0.0.1."""

from __future__ import annotations

import random
import socket
import time


def free_port(lo: int = 20000, hi: int = 32000) -> int:
    # Ports >= 32768 are ephemeral here: polling one nobody listens on can self-connect.
    for _ in range(200):
        port = random.randint(lo, hi)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32000")


def wait_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} not ready after {timeout}s") from None
            time.sleep(0.05)
