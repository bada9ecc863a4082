"""dw.workflows: define, start and manage runs from outside (reads, re-runs, schedules, worker)."""
