"""ctx.transform: the small data helpers of the original SDK."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sized
from typing import Any

from ductwork.interpreter import codec


class Transform:
    @staticmethod
    def size(value: Any) -> int:
        return len(value) if isinstance(value, Sized) else 0

    length = size

    @staticmethod
    def parse_json(text: str | bytes) -> Any:
        return json.loads(text)

    @staticmethod
    def stringify(value: Any) -> str:
        return codec.dumps(value)

    @staticmethod
    def upper(text: str) -> str:
        return str(text).upper()

    @staticmethod
    def lower(text: str) -> str:
        return str(text).lower()

    @staticmethod
    def trim(text: str) -> str:
        return str(text).strip()

    @staticmethod
    def split(text: str, sep: str | None = None) -> list[str]:
        return str(text).split(sep)

    @staticmethod
    def join(items: list[Any], sep: str = "") -> str:
        return sep.join(str(i) for i in items)

    @staticmethod
    def now() -> str:
        return dt.datetime.now(dt.UTC).isoformat()

    @staticmethod
    def format_date(value: Any, fmt: str = "%Y-%m-%d") -> str:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif isinstance(value, int | float):
            value = dt.datetime.fromtimestamp(value, dt.UTC)
        return str(value.strftime(fmt))
