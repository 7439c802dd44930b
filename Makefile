# agora: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= runs/schelling_city.toml
ARGS   ?=

.PHONY: help install run schelling schelling-experiment test test-fast lint bench clean
.PHONY: image up down sweep-docker

# Docker: Compose v2's plugin where there is one, else the standalone docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
DOCKER_SERVICE ?= agora
DOCKER_PROFILE ?=
# The compose files' own variables, so a value exported in the shell works the same.
AGORA_CONFIG   ?= runs/schelling_altruism_served.toml
AGORA_ARGS     ?= $(ARGS)
DOCKER_PROFILES := --profile vllm --profile vllm-fleet --profile ollama

help:
	@echo "make run        the main job: 225-agent Schelling city, board on, offline backend"
	@echo "make schelling  the same, from CONFIG=$(CONFIG) with ARGS='--ticks 50 ...'"
	@echo "make schelling-experiment  the altruism experiment: sweep + report (offline mixes)"
	@echo "make test       the test suite"
	@echo "make lint       ruff, mypy and the import contracts"
	@echo "make bench      benchmarks; tables go to bench/results/"
	@echo "make image      build the Docker image agora:latest"
	@echo "make up         docker compose: the sweep against the mock model server (no GPU, no keys)"
	@echo "make sweep-docker  AGORA_CONFIG=$(AGORA_CONFIG) swept in the agora container;"
	@echo "                 DOCKER_SERVICE=agora-vllm DOCKER_PROFILE=vllm for a real server"
	@echo "make down       stop and remove the compose services (outputs stay in their volume)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: schelling

schelling: $(STAMP)
	$(BIN)/agora run $(CONFIG) $(ARGS)

# Models × conditions × seeds as resumable runs (a rerun skips finished ones), then one report.
EXPERIMENT ?= runs/schelling_altruism.toml
EXPERIMENT_OUT ?= runs/out/schelling_altruism
schelling-experiment: $(STAMP)
	$(BIN)/agora sweep $(EXPERIMENT) --out $(EXPERIMENT_OUT) $(ARGS)
	$(BIN)/agora report $(EXPERIMENT_OUT)

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
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

image:
	docker build -t agora:latest .

up:
	AGORA_CONFIG='$(AGORA_CONFIG)' AGORA_ARGS='$(AGORA_ARGS)' \
		$(COMPOSE) $(if $(DOCKER_PROFILE),--profile $(DOCKER_PROFILE)) \
		up --exit-code-from $(DOCKER_SERVICE) $(DOCKER_SERVICE)

# The service's own command (`agora sweep ...` against its server), with the config and flags
# from here; the sweep half of `make schelling-experiment` (report: see the README).
sweep-docker:
	AGORA_CONFIG='$(AGORA_CONFIG)' AGORA_ARGS='$(AGORA_ARGS)' \
		$(COMPOSE) $(if $(DOCKER_PROFILE),--profile $(DOCKER_PROFILE)) run --rm $(DOCKER_SERVICE)

down:
	$(COMPOSE) $(DOCKER_PROFILES) down --remove-orphans
