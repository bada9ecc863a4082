"""Benchmarks of the YAML DSL, printing JSON lines: `python bench/dsl.py [expression|compile]`.

expression: parse and evaluate `${...}` expressions (target: a path <= 2 us per evaluation).
compile:    compile a generated 100-step spec (target <= 50 ms), added by the compiler side
            as `bench_compile()` in this file.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any


def _per_call_us(fn: Callable[[], Any], *, min_seconds: float = 0.3) -> float:
    """Best-of-5 microseconds per call, each round at least min_seconds / 5 long."""
    n = 1
    while True:  # calibrate the batch size
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_seconds / 5:
            break
        n *= 2
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def _emit(bench: str, **fields: Any) -> None:
    print(json.dumps({"bench": bench, **fields}), flush=True)


def bench_expressions() -> None:
    from ductwork.dsl import expr_parser
    from ductwork.dsl.expressions import _parse_cached, compile_value, parse

    t0 = time.perf_counter()
    expr_parser.parser()
    _emit("expr_grammar_build", ms=round((time.perf_counter() - t0) * 1e3, 2))

    scope = {
        "ctx": {
            "input": {"user": {"email": "ada@example.com", "name": "Ada"}, "amount": 1250,
                      "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]},
            "workflow_id": "wf-1", "workflow_tag": "checkout", "env": "dev", "product": "shop",
        },
        "steps": {"create-user": {"id": 42, "email": "ada@example.com"}},
        "state": {"attempts": 1},
        "env": {"STRIPE_KEY": "sk_test"},
    }
    target = 2.0
    paths = {
        "expr_eval_path": "ctx.input.user.email",
        "expr_eval_step_path": "steps.create-user.id",
        "expr_eval_short_path": "ctx.workflow_id",
        "expr_eval_index_path": "ctx.input.items[1].sku",
    }
    for name, text in paths.items():
        expr = parse(text)
        us = _per_call_us(lambda expr=expr: expr.evaluate(scope))
        _emit(name, expression=text, us_per_eval=round(us, 3), target_us=target,
              ok=us <= target)

    others = {
        "expr_eval_arith": "ctx.input.amount * 2 + 1",
        "expr_eval_compare": "ctx.input.amount > 1000 and state.attempts < 3",
        "expr_eval_call": "upper(ctx.input.user.name)",
        "expr_eval_default": "default(ctx.input.coupon, 'none')",
        "expr_eval_cond": "'big' if ctx.input.amount > 1000 else 'small'",
    }
    for name, text in others.items():
        expr = parse(text)
        us = _per_call_us(lambda expr=expr: expr.evaluate(scope))
        _emit(name, expression=text, us_per_eval=round(us, 3))

    whole = compile_value("${steps.create-user.id}")
    _emit("value_eval_whole", us_per_eval=round(_per_call_us(lambda: whole.evaluate(scope)), 3))
    template = compile_value("Hello ${ctx.input.user.name}, order ${ctx.workflow_id} is ready")
    _emit("value_eval_template",
          us_per_eval=round(_per_call_us(lambda: template.evaluate(scope)), 3))
    tree = compile_value({"body": {"amount": "${ctx.input.amount}", "currency": "usd",
                                   "customer": "${steps.create-user.id}",
                                   "note": "order ${ctx.workflow_id}"}})
    _emit("value_eval_tree", us_per_eval=round(_per_call_us(lambda: tree.evaluate(scope)), 3))

    # Parsing (cache bypassed): what the compiler pays once per expression.
    for name, text in {"expr_parse_path": "steps.create-user.id",
                       "expr_parse_complex": "default(ctx.input.coupon, 'none') if "
                                             "size(ctx.input.items) > 1 else upper('x')"}.items():
        us = _per_call_us(lambda text=text: _parse_cached.__wrapped__(text))
        _emit(name, expression=text, us_per_parse=round(us, 2))


def main(argv: list[str]) -> None:
    sections = argv or ["expression", "compile"]
    if "expression" in sections:
        bench_expressions()
    if "compile" in sections:
        compile_bench = globals().get("bench_compile")
        if callable(compile_bench):
            compile_bench()


if __name__ == "__main__":
    main(sys.argv[1:])
