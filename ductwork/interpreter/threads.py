"""Where sync step functions run: a bounded pool of worker threads, off the event loop.

A sync function called on the loop would stall every run of the process (and the lease
heartbeat, so another worker could take the runs over), and no step timeout could interrupt
it. Here it runs in a worker thread with a copy of the caller's contextvars (the current ctx,
the fan-out key scope) while the loop goes on; the awaiting step may give up on it (its
timeout, a cancel). A thread cannot be killed: it runs to its end and what it returns is
dropped, never recorded.

Not the loop's default executor: step functions stuck in I/O would take the threads that the
connectors' own to_thread calls (SDK clients, file I/O, DNS) need. Daemon threads: a function
stuck forever does not keep the process from exiting (concurrent.futures joins its threads at
exit). One pool per process, shared by every Ductwork in it.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from types import FunctionType
from typing import Any

# At most this many sync step functions run at once in a process; more wait for a thread
# (a step's timeout counts that wait too).
MAX_THREADS = 64
# A thread left without work this long exits; the next call starts a new one.
IDLE_S = 60.0

# (loop, future, context, fn): one call, its result delivered to `future` on `loop`.
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context,
             Callable[[], Any]]


class _Worker:
    __slots__ = ("inbox",)

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[_Job] = queue.SimpleQueue()


class _Pool:
    """Idle threads wait on their own inbox and a call is handed to one of them, so that one
    lock decides every hand-over: no call waits while a thread is free or may be started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # LIFO: the busiest threads stay warm, the rest expire
        self._backlog: deque[_Job] = deque()
        self._threads = 0

    def submit(self, job: _Job) -> None:
        with self._lock:
            if self._idle:
                self._idle.pop().inbox.put(job)
                return
            if self._threads >= MAX_THREADS:
                self._backlog.append(job)  # the next thread to finish takes it
                return
            self._threads += 1
        worker = _Worker()
        worker.inbox.put(job)
        try:
            threading.Thread(target=self._work, args=(worker,), name="ductwork-step",
                             daemon=True).start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def _work(self, me: _Worker) -> None:
        while True:
            try:
                job: _Job | None = me.inbox.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if me in self._idle:  # nobody handed this thread a call meanwhile
                        self._idle.remove(me)
                        self._threads -= 1
                        return
                continue  # a call was handed over just now: it is in the inbox
            while job is not None:
                _run(job)
                with self._lock:
                    job = self._backlog.popleft() if self._backlog else None
                    if job is None:
                        self._idle.append(me)


def _run(job: _Job) -> None:
    loop, fut, context, fn = job
    # Read from this thread without the loop's lock: at worst a call given up on a moment ago
    # still runs, and its result is dropped by _settle.
    if fut.cancelled():
        return
    try:
        result, error = context.run(fn), None
    except BaseException as e:  # delivered to the awaiting step, which decides
        result, error = None, e
    try:
        loop.call_soon_threadsafe(_settle, fut, result, error)
    except RuntimeError:  # the loop is closed: nobody waits for this result
        _drop(result)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():  # the step gave up (timeout, cancel): its late result is not recorded
        _drop(result)
    elif error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _drop(result: Any) -> None:
    if inspect.iscoroutine(result):
        result.close()  # never awaited, on purpose: no "never awaited" warning


_pool = _Pool()


def _after_fork() -> None:
    # The child has none of the parent's threads: start from an empty pool.
    global _pool
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


async def run_sync(fn: Callable[[], Any]) -> Any:
    """fn() in a worker thread with a copy of the caller's contextvars; cancelling the awaiting
    task gives up on it (the thread still runs to its end, its result dropped)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    _pool.submit((loop, fut, contextvars.copy_context(), fn))
    return await fut


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling fn starts a coroutine (async def, a partial of one, or an object whose
    __call__ is async): such a function runs on the loop, anything else in a thread."""
    if type(fn) is FunctionType and fn.__code__.co_flags & inspect.CO_COROUTINE:
        return True  # a plain `async def` (the common step), without inspect's unwrapping
    if inspect.iscoroutinefunction(fn):
        return True
    return (not inspect.isroutine(fn) and callable(fn)
            and inspect.iscoroutinefunction(type(fn).__call__))


async def call(fn: Callable[[], Any]) -> Any:
    """What a step's (or a rollback's) function returns: a coroutine function is awaited on
    the loop, any other callable runs in a worker thread and an awaitable it returns (the
    `lambda: ctx.action.run(...)` form) is then awaited on the loop."""
    if is_async(fn):
        return await fn()
    result = await run_sync(fn)
    if inspect.isawaitable(result):
        result = await result
    return result
