"""The one JSON codec for inputs, step results, state and outputs."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from typing import Any

# Tagged forms keep a replayed value the same type as the value first returned.
_TAG = "__dw__"


def _default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime):
        return {_TAG: "datetime", "v": obj.isoformat()}
    if isinstance(obj, dt.date):
        return {_TAG: "date", "v": obj.isoformat()}
    if isinstance(obj, dt.time):
        return {_TAG: "time", "v": obj.isoformat()}
    if isinstance(obj, decimal.Decimal):
        return {_TAG: "decimal", "v": str(obj)}
    if isinstance(obj, uuid.UUID):
        return {_TAG: "uuid", "v": str(obj)}
    if isinstance(obj, bytes | bytearray | memoryview):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    dump = getattr(obj, "model_dump", None)  # pydantic v2 models
    if callable(dump) and hasattr(type(obj), "model_fields"):
        return dump(mode="json")
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


_DECODERS: dict[str, Any] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "bytes": lambda v: base64.b64decode(v),
}


def _hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is not None and len(obj) == 2 and "v" in obj:
        dec = _DECODERS.get(tag)
        if dec is not None:
            return dec(obj["v"])
    return obj


_encoder = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"),
                            allow_nan=False)
_decoder = json.JSONDecoder(object_hook=_hook)


def dumps(value: Any) -> str:
    """Encode; raises TypeError/ValueError for what cannot be stored (callers add context)."""
    return _encoder.encode(value)


def loads(text: str | None) -> Any:
    if text is None:
        return None
    return _decoder.decode(text)


SUPPORTED = ("dict, list, str, int, float, bool, None, datetime, date, Decimal, UUID, bytes "
             "or a pydantic model")
