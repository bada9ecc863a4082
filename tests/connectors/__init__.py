"""Connector tests: each provider against a real server, and end to end through the engine."""
