"""ctx: the handler's one argument, a thin facade over the run's journal."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ductwork.connectors import idempotency
from ductwork.errors import ConfigurationError
from ductwork.interpreter import codec
from ductwork.interpreter import rollback as saga
from ductwork.interpreter.children import run_child
from ductwork.interpreter.components import Components
from ductwork.interpreter.input_view import InputView
from ductwork.interpreter.journal import key_scope
from ductwork.interpreter.result import checkpoint_ref
from ductwork.interpreter.transform import Transform
from ductwork.util.durations import to_ms

if TYPE_CHECKING:
    from ductwork.interpreter.journal import Journal


class Log:
    """ctx.log: stored with the run (flushed with the next commit), mirrored to `logging`."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def debug(self, message: str, data: Any = None) -> None:
        self._journal.log("debug", message, data)

    def info(self, message: str, data: Any = None) -> None:
        self._journal.log("info", message, data)

    def warn(self, message: str, data: Any = None) -> None:
        self._journal.log("warn", message, data)

    warning = warn

    def error(self, message: str, data: Any = None) -> None:
        self._journal.log("error", message, data)


_DEFAULT_DELAY_MS = 1000.0  # between a step's retries


def _opt(options: Mapping[str, Any] | None, name: str, kw: Any, default: Any) -> Any:
    if kw is not None:
        return kw
    if options and name in options and options[name] is not None:
        return options[name]
    return default


P = ParamSpec("P")
R = TypeVar("R")


def _awaited(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Remember each operation the handler asks for until it starts: a handler that returns
    while one never started forgot an `await`, and the run must not complete as if the step
    had run (never_awaited() reports it)."""
    name = method.__name__

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        journal = args[0]._journal  # type: ignore[attr-defined]
        first = args[1] if len(args) > 1 else kwargs.get("tag")
        if journal.outcome is not None:  # a ctx kept past its run: it would write nowhere
            raise ConfigurationError(
                f"{_shown(name, first)} was called after run {journal.workflow_id} ended "
                f"({journal.outcome}): a ctx works only while its workflow's handler runs; "
                "do not keep it for later (in a global, a callback or a background task)")
        coro = method(*args, **kwargs)
        asked = journal.asked
        if len(asked) >= journal.asked_limit:  # amortized: a gather of n steps stays O(n)
            asked[:] = [a for a in asked if _unstarted(a[0])]
            journal.asked_limit = max(8, 2 * len(asked))
        asked.append((coro, name, first))
        return coro

    return call


def _unstarted(coro: Coroutine[Any, Any, Any]) -> bool:
    return (coro.cr_frame is not None and not coro.cr_running  # type: ignore[attr-defined]
            and not coro.cr_suspended)  # type: ignore[attr-defined]


def _shown(name: str, first: Any) -> str:
    return f"ctx.{name}({first!r})" if isinstance(first, str) else f"ctx.{name}()"


def never_awaited(ctx: WorkflowContext) -> list[str]:
    """The ctx operations the handler asked for and never awaited, as `ctx.step('tag')`;
    closed, so that Python does not also warn about them."""
    out = []
    asked = ctx._journal.asked
    for coro, name, first in asked:
        if _unstarted(coro):
            coro.close()
            out.append(_shown(name, first))
    asked.clear()
    return out


class WorkflowContext(Components):
    """One per execution attempt of a run; the handler runs from the top on every attempt and
    recorded operations return their journaled outcome instead of running again. Everything
    durable is the journal's; this class checks the user's arguments and delegates."""

    # What a run reads when it was started without caller metadata (context, session, auth)
    # or re-run flags, as most runs are: class attributes, so that a new ctx sets only what
    # its run row holds (a ctx is made for every run and every resumption).
    context: Any = None
    session: Any = None
    auth: Any = None
    is_replay = False
    is_restart = False
    is_restored = False
    replayed_from: Any = None
    restarted_from: Any = None
    resumed_from: Any = None
    replay_reason: Any = None
    restart_reason: Any = None
    restored_checkpoint: Any = None
    transform = Transform()  # stateless: one for every ctx

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        run = journal.run
        self.workflow_id = run.workflow_id
        self.workflow_tag = run.tag
        self.product = run.product
        self.env = run.env
        self.name = journal.wf.name
        raw_input = codec.loads(run.input)
        if raw_input is None:
            raw_input = {}
        self.input: Any = InputView(raw_input) if type(raw_input) is dict or isinstance(
            raw_input, Mapping) else raw_input
        self.original_input: Any = raw_input
        if run.context is None:
            journal.bind(self, {})
            return
        extra = codec.loads(run.context) or {}
        self.context = extra.get("context")
        self.session = extra.get("session")
        self.auth = extra.get("auth")
        fl = dict(extra.get("flags") or {})
        self.is_replay = bool(fl.get("is_replay"))
        self.is_restart = bool(fl.get("is_restart"))
        self.is_restored = bool(fl.get("is_restored"))
        self.replayed_from = fl.get("replayed_from")
        self.restarted_from = fl.get("restarted_from")
        self.resumed_from = fl.get("resumed_from")
        self.replay_reason = fl.get("replay_reason")
        self.restart_reason = fl.get("restart_reason")
        self.restored_checkpoint = checkpoint_ref(fl)
        self.original_input = fl.get("original_input", raw_input)
        # Outputs preset by resume/replay_from_step (under flags: child runs do not inherit).
        journal.bind(self, dict(fl.get("presets") or {}))

    @cached_property
    def log(self) -> Log:
        """ctx.log (made on first use: most handlers never log)."""
        return Log(self._journal)

    # -- read-only views of the journal --------------------------------------------------------
    @property
    def state(self) -> Mapping[str, Any]:
        return MappingProxyType(self._journal.state)

    @property
    def steps(self) -> Mapping[str, Any]:
        return MappingProxyType(self._journal.steps)

    @property
    def completed_steps(self) -> list[str]:
        return list(self._journal.completed)

    @property
    def replaying(self) -> bool:
        """True while recorded operations remain to be replayed."""
        return bool(self._journal.unconsumed)

    @property
    def current_step(self) -> str | None:
        return self._journal.current_step

    @property
    def checkpoint_name(self) -> str | None:
        return self._journal.checkpoint_name

    @property
    def checkpoint_data(self) -> Any:
        return self._journal.checkpoint_data

    @property
    def manual_rollback(self) -> dict[str, Any] | None:
        """What the last ctx.trigger_rollback() did, or None."""
        return self._journal.manual_rollback

    @property
    def cancel_reason(self) -> str | None:
        """Why the run is being cancelled, once a cancel was asked for."""
        return self._journal.cancel_reason

    @property
    def idempotency_key(self) -> str:
        """The running step's idempotency key: the same on every attempt, replay and takeover
        of this step of this run, different for any other step or run (a UUID derived from
        the run id and the step key). Inside a rollback function: its compensation's key."""
        keys = idempotency.current.get()
        if keys is None or keys.workflow_id != self.workflow_id:
            raise ConfigurationError(
                "ctx.idempotency_key exists only while a step's function or a rollback runs: "
                "read it inside the function you give to ctx.step(tag, fn)")
        return keys.first

    def default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None or value == "" else value

    def token(self, key: str) -> str:
        return self._journal.engine.runtime.secrets.get(key)

    def variable(self, app: str, key: str) -> Any:
        """The app's variable `key` in this run's env (`variables:` under the app's env
        config in the product file; `${secrets.NAME}` references resolved)."""
        return self._journal.engine.runtime.connectors.app_value(
            "variables", app, self.product, self.env, key)

    def constant(self, app: str, key: str) -> Any:
        """The app's constant `key` (`constants:` of the app in the product file)."""
        return self._journal.engine.runtime.connectors.app_value(
            "constants", app, self.product, self.env, key)

    # -- steps ----------------------------------------------------------------------------------
    @_awaited
    async def step(
        self,
        tag: str,
        fn: Callable[[], Any],
        rollback: Callable[..., Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        allow_fail: bool | None = None,
        retries: int | None = None,
        retry_delay: Any = None,
        timeout: Any = None,
        critical: bool | None = None,
        _input: Any = None,
    ) -> Any:
        """Run `fn` once durably; its result is committed before this returns."""
        if not isinstance(tag, str) or not tag or tag.startswith("@"):
            raise ConfigurationError(
                f"ctx.step: the tag must be a non-empty string not starting with '@', got {tag!r}")
        if "#" in tag or "/" in tag:
            # 'charge#2' is the second 'charge'; '0/charge' the first foreach item's: a tag
            # spelled like one collides with it in the store (a fault of the run, not a step).
            raise ConfigurationError(
                f"ctx.step({tag!r}): a tag cannot contain '#' or '/', which name a step's "
                "later occurrences ('charge#2') and the steps of a loop or branch ('0/charge'); "
                "use '-' or '_'")
        if not callable(fn):
            raise ConfigurationError(_not_a_function(tag, fn))
        if rollback is not None and not callable(rollback):
            raise ConfigurationError(
                f"ctx.step('{tag}'): rollback must be a function or None"
                + (f"; the options dict goes fourth: ctx.step('{tag}', fn, None, "
                   f"{dict(rollback)!r}) (or keywords: allow_fail=True ...)"
                   if isinstance(rollback, Mapping) else ""))
        if options is not None and not isinstance(options, Mapping):
            raise ConfigurationError(f"ctx.step('{tag}'): options must be a dict like "
                                     "{'allow_fail': True}")
        if options:
            unknown = set(options) - _STEP_OPTIONS
            if unknown:
                raise ConfigurationError(
                    f"ctx.step('{tag}'): unknown option(s) {sorted(unknown)}; "
                    f"known: {sorted(_STEP_OPTIONS)}")
        if (not options and allow_fail is None and retries is None and retry_delay is None
                and timeout is None and critical is None):
            # The common call, ctx.step(tag, fn): the defaults below, without parsing them.
            return await self._journal.step(tag, fn, rollback, False, 0, _DEFAULT_DELAY_MS,
                                            None, False, _input)
        allow = bool(_opt(options, "allow_fail", allow_fail, False))
        n_retries = int(_opt(options, "retries", retries, 0))
        delay_ms = to_ms(_opt(options, "retry_delay", retry_delay, _DEFAULT_DELAY_MS),
                         f"step '{tag}' retry_delay")
        t_opt = _opt(options, "timeout", timeout, None)
        timeout_ms = None if t_opt is None else to_ms(t_opt, f"step '{tag}' timeout")
        if timeout_ms is not None and timeout_ms <= 0:
            raise ConfigurationError(f"ctx.step('{tag}'): timeout must be more than 0 (0 fails "
                                     "every attempt at once); leave it out for no limit")
        is_critical = bool(_opt(options, "critical", critical, False))

        return await self._journal.step(tag, fn, rollback, allow, n_retries, delay_ms,
                                        timeout_ms, is_critical, _input)

    # -- durable timers, checkpoints, state -----------------------------------------------------
    @_awaited
    async def sleep(self, duration: Any) -> None:
        """Durable sleep: short ones wait here, long ones release the process until due."""
        await self._journal.sleep(to_ms(duration, "ctx.sleep"))

    @_awaited
    async def checkpoint(self, name: str, metadata: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("ctx.checkpoint: the name must be a non-empty string")
        await self._journal.checkpoint(name, metadata)

    @_awaited
    async def set_state(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key:
            raise ConfigurationError("ctx.set_state: the key must be a non-empty string")
        await self._journal.set_state(key, value)

    def get_state(self, key: str, default: Any = None) -> Awaitable[Any]:
        """Awaited, the value stored under `key`, else `default`."""
        return _StateRead(key, self._journal.state.get(key, default))

    # -- signals --------------------------------------------------------------------------------
    @_awaited
    async def wait_for_signal(self, name: str | Iterable[str], options: Any = None, *,
                              timeout: Any = None) -> Any:
        """The payload of the next signal named `name` (or any of several names); `options`
        may be the docs' positional dict {"timeout": "24h"} or, as before, the timeout."""
        if isinstance(options, Mapping):
            unknown = sorted(set(options) - {"timeout"})
            if unknown:
                raise ConfigurationError(f"ctx.wait_for_signal: unknown option(s) {unknown}; "
                                         "the one option is 'timeout'")
            if timeout is not None and options.get("timeout") is not None:
                raise ConfigurationError("ctx.wait_for_signal: give the timeout once, in the "
                                         "options dict or as timeout=")
            timeout = options.get("timeout", timeout)
        elif options is not None:
            if timeout is not None:
                raise ConfigurationError("ctx.wait_for_signal: give the timeout once")
            timeout = options
        names = [name] if isinstance(name, str) else list(name)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigurationError("ctx.wait_for_signal: give a signal name or a list of names")
        known = self._journal.wf.signals
        if known:
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigurationError(
                    f"ctx.wait_for_signal: signal(s) {unknown} are not declared on workflow "
                    f"{self.product}/{self.workflow_tag} (declared: {sorted(known)})")
        return await self._journal.wait_for_signal(names, timeout)

    # -- rollback -------------------------------------------------------------------------------
    @_awaited
    async def trigger_rollback(self, reason: str = "") -> dict[str, Any]:
        """Run the rollbacks now (for rollback_strategy 'none' and manual compensation)."""
        return dict(await saga.trigger(self._journal, reason))

    # -- fan-out --------------------------------------------------------------------------------
    @_awaited
    async def parallel(self, branches: Iterable[Callable[[], Awaitable[Any]] | Awaitable[Any]]
                       ) -> list[Any]:
        """Run branches concurrently; results in branch order. A failure cancels the others.
        Steps inside branch j are identified as "b<j>/<tag>"."""
        branches = list(branches)
        for j, b in enumerate(branches):
            if not callable(b) and not inspect.isawaitable(b):
                for other in branches:  # none of them will run: no "never awaited" warning
                    if inspect.iscoroutine(other):
                        other.close()
                raise ConfigurationError(
                    f"ctx.parallel: branch {j} is {type(b).__name__}, not a function or an "
                    "awaitable; pass functions (lambda: ctx.step(...)) or awaitables "
                    "(ctx.step(...))")
        outer = key_scope.get()

        async def branch(j: int, b: Callable[[], Awaitable[Any]] | Awaitable[Any]) -> Any:
            key_scope.set(f"{outer}b{j}/")
            return await (b() if callable(b) else b)

        return await _gather_all([branch(j, b) for j, b in enumerate(branches)])

    @_awaited
    async def foreach(self, items: Iterable[Any], fn: Callable[..., Awaitable[Any]], *,
                      concurrency: int = 10) -> list[Any]:
        """fn(item) or fn(item, index) for each item, at most `concurrency` at a time.
        Steps inside item i are identified as "<i>/<tag>"."""
        items = list(items)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError("ctx.foreach: concurrency must be an integer >= 1")
        if not callable(fn):
            raise ConfigurationError(f"ctx.foreach: fn must be a function of the item, got "
                                     f"{type(fn).__name__}")
        takes_index = _arity(fn) >= 2
        if not _takes_one(fn):
            raise ConfigurationError(
                "ctx.foreach: fn is called with each item (and its index when it takes two "
                "arguments): write it as `async def one(item): ...` or `lambda item, i: ...`")
        sem = asyncio.Semaphore(concurrency)
        outer = key_scope.get()

        async def one(i: int, item: Any) -> Any:
            async with sem:
                key_scope.set(f"{outer}{i}/")
                return await (fn(item, i) if takes_index else fn(item))

        return await _gather_all([one(i, it) for i, it in enumerate(items)])

    @_awaited
    async def workflow(self, child_id: str, tag: str, input: Any = None,
                       options: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        """Run a child workflow durably and return its output (see the lifecycle docs); the
        options (timeout, retries, parent_close_policy, idempotency_key, ...) may be the docs'
        positional dict, keywords, or both when they do not overlap."""
        if options is not None:
            if not isinstance(options, Mapping):
                raise ConfigurationError(
                    f"ctx.workflow({child_id!r}): options must be a dict like "
                    "{'timeout': '5m', 'retries': 2}, got " + type(options).__name__)
            both = sorted(set(options) & set(kw))
            if both:
                raise ConfigurationError(f"ctx.workflow({child_id!r}): {both} given both in "
                                         "the options dict and as keywords; give each once")
            unknown = sorted(set(options) - _CHILD_OPTIONS)
            if unknown:
                raise ConfigurationError(
                    f"ctx.workflow({child_id!r}): unknown option(s) {unknown}; known: "
                    f"{sorted(_CHILD_OPTIONS)}")
            kw = {**options, **kw}
        return await run_child(self._journal, child_id, tag, input, **kw)


def _not_a_function(tag: str, fn: Any) -> str:
    head = (f"ctx.step('{tag}'): the second argument must be a function (sync or async), "
            f"got {type(fn).__name__}")
    if inspect.iscoroutine(fn):
        name = getattr(fn, "__qualname__", "fn")
        fn.close()  # never to run: Python would also warn that it was never awaited
        return (f"{head}: {name}(...) was called, not passed; pass the function itself, "
                f"ctx.step('{tag}', {name}), or a lambda: ctx.step('{tag}', lambda: "
                f"{name}(...))")
    if isinstance(fn, str):
        return head
    return (f"{head}: was the function called before the step and its result passed? It ran "
            f"outside the step, not recorded, and runs again on every replay; pass the function "
            f"itself, or a lambda around the call: ctx.step('{tag}', lambda: f(...))")


async def _gather_all(coros: list[Awaitable[Any]]) -> list[Any]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _takes_one(fn: Callable[..., Any]) -> bool:
    """Whether fn can be called with the item, or the item and its index (unknown
    signatures: yes)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    for args in ((None,), (None, None)):
        try:
            sig.bind(*args)
            return True
        except TypeError:
            pass
    return False


class _StateRead:
    """What ctx.get_state() returns: awaiting it gives the value. Tested for truth without
    the await (the docs' JavaScript writes `ctx.getState('k') || 0`), it says so instead of
    being true."""

    __slots__ = ("_key", "_value")

    def __init__(self, key: str, value: Any) -> None:
        self._key, self._value = key, value

    def __await__(self) -> Generator[Any, None, Any]:
        return self._value
        yield  # a generator that finishes at once: awaiting it does not suspend

    def __bool__(self) -> bool:
        raise ConfigurationError(
            f"ctx.get_state({self._key!r}) was used without await: write "
            f"`await ctx.get_state({self._key!r})` (state is stored durably, so reading it is "
            "awaited; in a query function ctx.get_state() needs no await)")

    def __repr__(self) -> str:
        return f"<ctx.get_state({self._key!r}), not awaited>"


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               and p.default is p.empty)


_STEP_OPTIONS = frozenset({"allow_fail", "retries", "retry_delay", "timeout", "critical"})
_CHILD_OPTIONS = frozenset({"timeout", "retries", "parent_close_policy", "idempotency_key",
                            "product", "env", "rollback", "critical"})


class AppValues(Mapping[str, Any]):
    """`variables.<app>.<name>` / `constants.<app>.<name>` in YAML expressions: an app's values
    of the product file, read when an expression reaches them (ctx.variable / ctx.constant in
    Python). An unknown app or name is a missing key, so default() covers it and the
    expression's error lists what there is."""

    def __init__(self, ctx: WorkflowContext, section: str) -> None:
        self._ctx, self._section = ctx, section

    def _registry(self) -> Any:
        return self._ctx._journal.engine.runtime.connectors

    def __getitem__(self, app: str) -> Any:
        registry = self._registry()
        if app not in registry.app_names(self._ctx.product):
            raise KeyError(app)
        return registry.app_values(self._section, app, self._ctx.product, self._ctx.env)

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry().app_names(self._ctx.product))

    def __len__(self) -> int:
        return len(self._registry().app_names(self._ctx.product))
