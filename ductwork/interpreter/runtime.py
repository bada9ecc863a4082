"""What an engine is built from (store, definitions, connectors, secrets), and its lazy opening."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ductwork.connectors.base import SecretSet
from ductwork.errors import ConfigurationError
from ductwork.interpreter.definitions import Definitions
from ductwork.interpreter.engine import Engine
from ductwork.interpreter.observe import Observer, combine
from ductwork.interpreter.resources import ConnectorRegistry
from ductwork.store.protocol import RunStore


class Secrets:
    """Secret values: given in Ductwork(secrets=) or read from the environment. Every value
    handed out is remembered, so that redact() keeps it out of the store and the logs."""

    def __init__(self, values: Mapping[str, str] | None, environ: Mapping[str, str]) -> None:
        self.values: dict[str, str] = dict(values or {})
        self.environ = environ
        self.seen = SecretSet()
        for v in self.values.values():
            self.seen.add(str(v))

    def get(self, key: str) -> str:
        if key in self.values:
            return self.values[key]
        if key in self.environ:
            val = self.environ[key]
            self.seen.add(val)
            return val
        raise ConfigurationError(f"secret {key!r} is not set: pass it in "
                                 "Ductwork(secrets={...}) or export it in the environment")

    def update(self, values: Mapping[str, str]) -> None:
        """Add (or replace) secret values, e.g. those the command line read for an app."""
        for k, v in values.items():
            self.values[k] = v
            self.seen.add(str(v))

    def redact(self, text: str) -> str:
        return self.seen.redact(text)


@dataclass(eq=False)
class Runtime:
    """Everything an Engine needs, built once by Ductwork; it outlives any one engine."""

    store: RunStore
    secrets: Secrets
    products: dict[str, Any]   # compiled product specs by name (ductwork.dsl ProductSpec)
    definitions: Definitions
    connectors: ConnectorRegistry
    inline_wait_s: float       # how long a run waits in-process before it suspends
    lease_s: float             # how long a claim on a run lasts without a heartbeat
    # Claims in a row that may end in an engine fault (not the workflow's code) before the
    # run is failed with that error: a poison run must not be re-claimed forever.
    max_faults: int = 3
    # Metrics and tracing (interpreter/observe.py); None: the engine calls nothing.
    observer: Observer | None = None

    def observe(self, observer: Observer) -> None:
        """Add an observer (several may be attached: each gets every call)."""
        self.observer = combine(self.observer, observer)

    def redact(self, text: str) -> str:
        return self.secrets.redact(text)


class LazyEngine:
    """The engine of one Ductwork: opened (with the store) on first use, closed by close();
    the next use opens a new one."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.current: Engine | None = None

    async def get(self) -> Engine:
        if self.current is None:
            store = self.runtime.store
            await store.open()
            self.current = Engine(self.runtime)
            # Signals and child completions announced by other processes end inline waits.
            store.on_wake(self.current.wake)
        return self.current

    async def close(self) -> None:
        if self.current is not None:
            await self.current.close()
            self.current = None
