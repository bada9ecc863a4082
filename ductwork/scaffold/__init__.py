"""Project templates written by `ductwork init` (package data: starter, blank, example)."""
