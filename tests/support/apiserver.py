"""A real uvicorn server in a thread of the test process, serving create_app on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

from tests.support.ports import free_port


@dataclass
class ThreadedServer:
    """uvicorn serving `app` on 127.0.0.1:`port` from a daemon thread (its own event loop)."""

    app: Any
    port: int = 0
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3, timeout: float = 30.0) -> ThreadedServer:
        for _ in range(attempts):  # another process may take the free port before we bind
            self.port = free_port()
            config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                    log_level="warning", lifespan="on")
            self.server = uvicorn.Server(config)
            self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
            self.thread.start()
            deadline = time.monotonic() + timeout
            while not self.server.started and self.thread.is_alive():
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"uvicorn did not start within {timeout}s")
                time.sleep(0.02)
            if self.server.started:
                return self
            self.thread.join(5)
        raise RuntimeError(f"uvicorn could not start after {attempts} attempts (see the log)")

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(30)
            if self.thread.is_alive():
                raise RuntimeError("uvicorn did not stop within 30s")
