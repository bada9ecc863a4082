"""Test support: real servers on free ports (stopped by PID) and shared test helpers."""
