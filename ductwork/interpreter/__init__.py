"""Executing one run: engine, ctx, journal, rollback, children, plan runner, components."""
