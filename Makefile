# agora: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= runs/schelling_city.toml
ARGS   ?=

.PHONY: help install run schelling test test-fast lint bench clean

help:
	@echo "make run        the main job: 225-agent Schelling city, board on, offline backend"
	@echo "make schelling  the same, from CONFIG=$(CONFIG) with ARGS='--ticks 50 ...'"
	@echo "make test       the test suite"
	@echo "make lint       ruff, mypy and the import contracts"
	@echo "make bench      benchmarks; tables go to bench/results/"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: schelling

schelling: $(STAMP)
	$(BIN)/agora run $(CONFIG) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench.client_cpu

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
