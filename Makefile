# Two entry points: `make run` (the onboarding example on embedded SQLite) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: venv run test lint bench
venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python examples/onboarding.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check ductwork tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Runs the benchmarks and prints each figure beside bench/results/baseline.jsonl.
bench: $(STAMP)
	$(BIN)/python bench/run.py --scripts engine,hotpath,dsl,latency,scale,tracing,startup
