"""One connector's health: its harmless call (`Connector.ping`), timed, never raising."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

from ductwork.connectors.base import Connector
from ductwork.errors import DuctworkError

UP, DOWN, UNCHECKED = "up", "down", "unchecked"
DEFAULT_TIMEOUT_S = 10.0


@dataclass
class Health:
    """What one check found: `status` up/down/unchecked, how long it took, and what it did
    (or why it failed, secrets redacted)."""

    kind: str
    resource: str
    member: str  # the provider's name in a `providers:` list, else the provider type
    provider: str  # smtp, http, postgresql, ...
    status: str
    latency_ms: float | None
    detail: str
    checked_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def probe(conn: Connector, *, kind: str, resource: str, member: str, provider: str,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> Health:
    """Run `conn.ping()` within `timeout_s`; a failure is a DOWN row, never an exception."""
    spec = conn.spec
    started = time.monotonic()

    def row(status: str, detail: str, timed: bool = True) -> Health:
        latency = round((time.monotonic() - started) * 1000, 1) if timed else None
        text = spec.redact(detail) if spec is not None else detail
        return Health(kind, resource, member, provider, status, latency, text, time.time())

    try:
        detail = await asyncio.wait_for(conn.ping(), timeout_s)
    except NotImplementedError:
        return row(UNCHECKED, f"no health check for provider {provider} (configured only)",
                   timed=False)
    except TimeoutError:
        return row(DOWN, f"no answer within {timeout_s:g}s")
    except DuctworkError as e:
        return row(DOWN, str(e))
    except Exception as e:  # a client library's own error: the resource is not usable
        return row(DOWN, f"{type(e).__name__}: {e}")
    return row(UP, str(detail))


def failed(kind: str, resource: str, member: str, provider: str, error: BaseException,
           redact: Any = None) -> Health:
    """The row of a resource that could not even be built (a missing secret, a bad config)."""
    text = str(error) if isinstance(error, DuctworkError) else f"{type(error).__name__}: {error}"
    if callable(redact):
        text = redact(text)
    return Health(kind, resource, member, provider, DOWN, None, text, time.time())
