"""Durations for the engine (the one parser lives in ductwork.durations)."""

from ductwork.durations import parse_ms, to_ms

__all__ = ["parse_ms", "to_ms"]
