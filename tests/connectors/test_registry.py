"""The built-in provider table: every kind's providers and validators resolve to real functions."""

from __future__ import annotations

import importlib

import pytest

from ductwork.connectors import BUILTIN
from ductwork.connectors.base import DEFAULT_PROVIDER, KINDS, PROVIDERS, VALIDATORS


@pytest.mark.parametrize(("kind", "provider"), sorted(BUILTIN))
def test_a_builtin_provider_is_registered_and_importable(kind: str, provider: str) -> None:
    factory, validator = BUILTIN[(kind, provider)]
    assert PROVIDERS[(kind, provider)] == factory
    assert VALIDATORS[(kind, provider)] == validator
    for target in (factory, validator):
        assert target is not None
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name))


def test_every_kind_has_its_default_provider() -> None:
    assert set(DEFAULT_PROVIDER) == set(KINDS)
    for kind, provider in DEFAULT_PROVIDER.items():
        assert (kind, provider) in BUILTIN
