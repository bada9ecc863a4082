"""Expression test helpers: a scope like the engine builds, evaluate, expect an ExpressionError."""

from __future__ import annotations

from typing import Any

import pytest

from ductwork.dsl.expr.expressions import parse
from ductwork.errors import ExpressionError


def scope() -> dict[str, Any]:
    return {
        "ctx": {
            "input": {
                "email": "ada@example.com",
                "name": "Ada",
                "count": 3,
                "amount": 12.5,
                "items": [1, 2, 3],
                "user": {"email": "u@example.com", "tags": ["a", "b"]},
                "nothing": None,
                "first-name": "Ada",
            },
            "workflow_id": "wf-1",
            "workflow_tag": "user-onboarding",
            "env": "dev",
            "product": "shop",
        },
        "steps": {
            "create-user": {"id": 42, "email": "ada@example.com"},
            "a": 10,
            "a-b": 99,
            "list": [{"id": 1}, {"id": 2}],
        },
        "state": {"counter": 5},
        "env": {"STRIPE_KEY": "sk_test_secret"},
    }


def ev(text: str, sc: dict[str, Any] | None = None) -> Any:
    return parse(text).evaluate(scope() if sc is None else sc)


def err(text: str, sc: dict[str, Any] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        ev(text, sc)
    assert type(info.value) is ExpressionError
    return info.value
