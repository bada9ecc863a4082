"""Headers an outgoing HTTP call takes from the context it runs in (W3C trace context)."""

from __future__ import annotations

from collections.abc import Callable

# Each injector adds headers for the current context (contextvars) to the dict it is given.
# Empty unless tracing is on, so an HTTP call without tracing pays one empty-list test.
Injector = Callable[[dict[str, str]], None]
_injectors: list[Injector] = []


def register(injector: Injector) -> None:
    """Add an injector (idempotent)."""
    if injector not in _injectors:
        _injectors.append(injector)


def unregister(injector: Injector) -> None:
    if injector in _injectors:
        _injectors.remove(injector)


def inject(headers: dict[str, str]) -> None:
    """Add the context's headers to `headers`; a header the caller set itself is kept."""
    if not _injectors:
        return
    extra: dict[str, str] = {}
    for injector in _injectors:
        injector(extra)
    present = {k.lower() for k in headers}
    for k, v in extra.items():
        if k.lower() not in present:
            headers[k] = v
