"""Idempotency keys: one per step (run id + step key), handed to the provider calls it makes."""

from __future__ import annotations

import contextvars
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

# uuid5 namespace of ductwork's keys: the same run and step give the same key on any machine.
NAMESPACE = uuid.UUID("6f1d3c52-9a7e-5b0c-8d4f-2e6a1b9c7d30")


def key_for(workflow_id: str, step_key: str, role: str = "", n: int = 1) -> str:
    """The n-th key of a step (role "") or of its compensation (role "rollback"): a UUID, so
    that it fits every provider's length and format rules, unambiguous whatever the ids hold."""
    return str(uuid.uuid5(NAMESPACE, json.dumps([workflow_id, step_key, role, n])))


class CallKeys:
    """The keys of one attempt of a step or compensation. `first` is the step's key
    (ctx.idempotency_key); the n-th provider call made through a connector gets the n-th key,
    so a step that calls two APIs sends each its own key, the same on every attempt."""

    __slots__ = ("_first", "_n", "role", "step_key", "workflow_id")

    def __init__(self, workflow_id: str, step_key: str, role: str = "") -> None:
        self.workflow_id, self.step_key, self.role = workflow_id, step_key, role
        self._n = 0
        self._first: str | None = None

    @property
    def first(self) -> str:
        if self._first is None:  # computed on first use: most steps never ask
            self._first = key_for(self.workflow_id, self.step_key, self.role)
        return self._first

    def next(self) -> str:
        self._n += 1
        return self.first if self._n == 1 else key_for(self.workflow_id, self.step_key,
                                                       self.role, self._n)


class _OneCall(CallKeys):
    """Inside one logical call: every provider call sends the same key."""

    __slots__ = ("_key",)

    def __init__(self, outer: CallKeys, key: str) -> None:
        super().__init__(outer.workflow_id, outer.step_key, outer.role)
        self._first, self._key = outer.first, key

    def next(self) -> str:
        return self._key


# Set by the engine while a step's (or a compensation's) function runs; None elsewhere.
current: contextvars.ContextVar[CallKeys | None] = contextvars.ContextVar(
    "ductwork_idempotency", default=None)


def next_key() -> str | None:
    """The key for the provider call about to be made, or None outside a step."""
    keys = current.get()
    return None if keys is None else keys.next()


@contextmanager
def one_call() -> Iterator[None]:
    """The provider calls made inside are one logical call (a pool's retries and fallbacks to
    other providers): they all send the key that call has, not one each."""
    keys = current.get()
    if keys is None:
        yield
        return
    token = current.set(_OneCall(keys, keys.next()))
    try:
        yield
    finally:
        current.reset(token)
