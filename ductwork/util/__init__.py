"""Helpers every layer may use; they import only the standard library and ductwork.errors."""
