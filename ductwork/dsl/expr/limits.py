"""Evaluation limits: sizes, integer digits and a work budget, each checked before allocating."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

# Text and list caps of one value (`"x" * 10**9`, range(10**9), ...).
MAX_TEXT = 1_000_000
MAX_ITEMS = 100_000
# A list or map an expression builds: every value in it, nested ones included and counted as
# often as they repeat (`[[0] * 100000] * 100000` shares one inner list but means 10^10 values
# to any reader), its total text, and its nesting.
MAX_CELLS = 1_000_000
MAX_TOTAL_TEXT = 10_000_000
MAX_NESTING = 100
# Integers: as many digits as a literal may have, and as Python converts to text by default.
MAX_INT_DIGITS = 4000
_MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219280948873626) + 1  # log2(10)
# Work units (characters and items copied, compared or visited) of one evaluation: about a
# second of the slowest work on one core. The wall-clock backstop is generous, as it makes
# the outcome depend on the machine's load (the work budget does not).
MAX_WORK = 2_000_000
MAX_SECONDS = 5.0
# Operations on fewer units are not charged: the number of terms already bounds them.
SMALL = 256
# Spec-level limits, checked when the expression is parsed (at validate time).
MAX_EXPRESSION_LENGTH = 10_000
MAX_EXPRESSION_TERMS = 1_000


_SCALARS = frozenset({int, float, bool, type(None)})


class Fail(Exception):
    """An evaluation failure inside the closures; Expr.evaluate turns it into ExpressionError.

    `missing` marks "this path does not exist" (absent key/index/root, or a null on the
    way), which default()/coalesce()/exists() treat as "no value". The message may be a
    callable, built only when someone reads it: default() discards most missing-path
    failures, and their did-you-mean search is the expensive part.
    """

    def __init__(
        self, message: str | Callable[[], str], pos: int, *, missing: bool = False
    ) -> None:
        super().__init__()
        self._message, self.pos, self.missing = message, pos, missing

    @property
    def message(self) -> str:
        if not isinstance(self._message, str):
            self._message = self._message()
        return self._message

    def __str__(self) -> str:
        return self.message


class _Budget(threading.local):
    """The current evaluation's [work left, start time] (None outside one), per thread:
    evaluation never awaits. Outside an evaluation (a function called from Python as
    ctx.transform.x) nothing is charged: the size caps still hold."""

    state: list[Any] | None = None


_BUDGET = _Budget()


def start() -> None:
    """A fresh budget: called when an evaluation begins."""
    _BUDGET.state = [MAX_WORK, 0.0]


def stop() -> None:
    _BUDGET.state = None


def spend(units: int, pos: int) -> None:
    """Charge `units` of work to the current evaluation, before doing it."""
    state = _BUDGET.state
    if state is None:
        return
    state[0] -= units
    if state[0] < 0:
        raise Fail(f"expression does too much work (more than {MAX_WORK:,} steps of "
                   "copying, comparing or counting); do the heavy part in a python: step", pos)
    now = time.monotonic()
    if not state[1]:
        state[1] = now
    elif now - state[1] > MAX_SECONDS:
        raise Fail(f"expression takes too long (more than {MAX_SECONDS:g} s); do the heavy "
                   "part in a python: step", pos)


def check_int(v: int, pos: int) -> int:
    if v.bit_length() > _MAX_INT_BITS:
        raise Fail(f"number too large (more than {MAX_INT_DIGITS} digits)", pos)
    return v


def int_fits(a: int, b: int, op: str) -> bool:
    """Whether `a op b` stays within the integer limit, known before computing it."""
    la, lb = a.bit_length(), b.bit_length()
    if op == "*":
        return la + lb <= _MAX_INT_BITS
    return max(la, lb) < _MAX_INT_BITS


def whole_digits_ok(v: Any) -> bool:
    """Whether converting the number to an integer stays within the limit (Decimal('1e999999')
    is one short object but a million digits as an int)."""
    if isinstance(v, Decimal):
        return not v.is_finite() or v.adjusted() < MAX_INT_DIGITS
    return True


def measure(v: Any, pos: int, *, times: int = 1, cells: int = MAX_CELLS,
            text: int = MAX_TOTAL_TEXT, what: str = "value") -> tuple[int, int]:
    """(values, characters) of `v`, nested ones included and shared ones counted each time
    they appear; raises Fail as soon as `times` copies of it would pass either limit, or its
    nesting passes MAX_NESTING. Shared lists and maps are measured once (memo by identity),
    so the cost is that of the distinct objects, never of the logical size."""
    t = type(v)
    if t is str:
        return 1, len(v)
    if t is not list and t is not dict and t is not tuple and not isinstance(v, Mapping):
        return 1, 0
    return _Measure(pos, cells, text, times, what).walk(v, 0)


class _Measure:
    __slots__ = ("cells", "max_cells", "max_text", "memo", "pos", "text", "what")

    def __init__(self, pos: int, cells: int, text: int, times: int, what: str) -> None:
        self.pos, self.cells, self.text, self.what = pos, cells, text, what
        self.max_cells, self.max_text = cells // times, text // times
        self.memo: dict[int, tuple[int, int]] = {}

    def walk(self, x: Any, depth: int) -> tuple[int, int]:
        found = self.memo.get(id(x))
        if found is not None:
            return found
        if depth > MAX_NESTING:
            raise Fail(f"{self.what} is nested too deeply (more than {MAX_NESTING} levels)",
                       self.pos)
        if len(x) > SMALL:
            spend(len(x), self.pos)
        n, chars = 1 + len(x), 0
        if type(x) is dict or isinstance(x, Mapping):
            for k in x:
                if type(k) is str:
                    chars += len(k)
            items: Any = x.values()
        else:
            items = x
        for item in items:  # scalars inline: this loop is the whole cost of measuring
            t = type(item)
            if t is str:
                chars += len(item)
            elif t is list or t is dict or t is tuple or (
                    t not in _SCALARS and isinstance(item, Mapping)):
                c, more = self.walk(item, depth + 1)
                n += c - 1
                chars += more
            else:
                continue
            if n > self.max_cells or chars > self.max_text:
                self.too_big(n)
        if n > self.max_cells or chars > self.max_text:
            self.too_big(n)
        self.memo[id(x)] = (n, chars)
        return n, chars

    def too_big(self, n: int) -> None:
        if n > self.max_cells:
            raise Fail(f"{self.what} would hold more than {self.cells:,} values (nested ones "
                       "included, counted each time they repeat)", self.pos)
        raise Fail(f"{self.what} would hold more than {self.text:,} characters of text",
                   self.pos)
