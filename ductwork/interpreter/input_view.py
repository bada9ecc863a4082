"""ctx.input: read-only input where attribute access means a field, whatever its name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ductwork.errors import ConfigurationError, InputFieldNotFoundError


class _FieldOrMethod:
    """A method of the view that a field of the same name hides: `ctx.input.items` is the
    input's `items` field when it has one (an order's items), the method only when it has
    none. A descriptor, so that plain attribute lookups stay as fast as Python makes them."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.name = fn, fn.__name__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self.fn
        data = obj._data
        if self.name in data:
            return obj._wrap(self.name, data[self.name])
        return self.fn.__get__(obj, owner)


class InputView(Mapping[str, Any]):
    """Read-only input with attribute and item access; a missing field names itself."""

    __slots__ = ("_data", "_path", "_views")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_path", path)
        # Views of nested maps and lists, made once: the input never changes under them.
        object.__setattr__(self, "_views", {})

    def _wrap(self, key: str, value: Any) -> Any:
        if not isinstance(value, Mapping | list):
            return value
        views = self._views
        if key not in views:
            views[key] = _view(value, f"{self._path}{key}.")
        return views[key]

    def __getitem__(self, key: str) -> Any:
        try:
            return self._wrap(key, self._data[key])
        except (KeyError, TypeError):
            raise InputFieldNotFoundError(f"{self._path}{key}") from None

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self[key]

    def __setattr__(self, key: str, value: Any) -> None:
        raise ConfigurationError("ctx.input is read-only; keep changing data in ctx.set_state()")

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, InputView):
            other = other.__ductwork_data__()
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InputView({dict(self._data)!r})"

    def __ductwork_data__(self) -> Mapping[str, Any]:
        """The plain data under the view (for the codec and the connectors); a dunder, so no
        field can hide it."""
        return self._data

    # Each reached only when the input has no field of the same name (_FieldOrMethod).
    @_FieldOrMethod
    def get(self, key: str, default: Any = None) -> Any:
        return self._wrap(key, self._data[key]) if key in self._data else default

    @_FieldOrMethod
    def keys(self) -> Any:
        return self._data.keys()

    @_FieldOrMethod
    def values(self) -> Any:
        return [self._wrap(k, v) for k, v in self._data.items()]

    @_FieldOrMethod
    def items(self) -> Any:
        return [(k, self._wrap(k, v)) for k, v in self._data.items()]

    @_FieldOrMethod
    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)


def _view(value: Any, path: str) -> Any:
    """A mapping as a view, and a list's mappings too (`for item in ctx.input.items:
    item.price`); anything else as it is."""
    if isinstance(value, Mapping):
        return InputView(value, path)
    if isinstance(value, list) and any(isinstance(v, Mapping | list) for v in value):
        return [_view(v, f"{path}{i}.") for i, v in enumerate(value)]
    return value


def plain(value: Any) -> Any:
    """`value` with every InputView inside replaced by its plain data (dicts and lists are
    copied only where one was found), so that connectors and the codec see ordinary JSON."""
    if isinstance(value, InputView):
        return value.__ductwork_data__()
    if isinstance(value, dict):
        out = {k: plain(v) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list | tuple):
        items = [plain(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value
