"""Server output is redacted: known secret values, and the values of secret-named keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ductwork.util.secretkeys import secret_key

if TYPE_CHECKING:
    from ductwork.app import Ductwork

MASK = "***"


def redact(dw: Ductwork, value: Any) -> Any:
    """A copy of a JSON-able value for a response: every known secret value masked inside any
    text, and the whole value of a key such as `password` or `api_key` replaced by ***."""
    if isinstance(value, str):
        return dw.redact(value)
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and secret_key(k) and v not in (None, "")
                    else redact(dw, v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(dw, v) for v in value]
    return value
