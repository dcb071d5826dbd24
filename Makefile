# spendwatch — `make help` lists the targets. Everything installs into ./.venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DURATION ?= 90
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install demo up test unit integration lint format typecheck bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' -v d='$(DURATION)' '{gsub(/\$$\(DURATION\)/, d, $$2); printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml sdk/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]' -e ./sdk
	@touch $@

install: $(STAMP) ## create ./.venv with the pipeline, the SDK and the dev tools

demo: $(STAMP) ## run broker + worker + ClickHouse in-process + a demo fleet for $(DURATION) s
	$(BIN)/spendwatch up --demo --duration $(DURATION)

up: $(STAMP) ## run broker + worker + ClickHouse in-process until Ctrl-C (no demo traffic)
	$(BIN)/spendwatch up

test: $(STAMP) lint typecheck ## lint, typecheck, then every test (unit + integration)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

unit: $(STAMP) ## unit tests only
	$(BIN)/python -m pytest -q -m "not integration" $(PYTEST_ARGS)

integration: $(STAMP) ## integration tests only (real Tansu, chDB, SMTP, Slack-speaking HTTP)
	$(BIN)/python -m pytest -q -m integration $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff fix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP) ## mypy on the pipeline and the SDK
	$(BIN)/mypy
	$(BIN)/mypy sdk/src/spendwatch

bench: $(STAMP) ## run the benchmarks (results: bench/RESULTS.md)
	$(BIN)/python bench/run_all.py

clean: ## remove local state (.spendwatch) and caches; keeps .venv
	rm -rf .spendwatch .pytest_cache .mypy_cache .ruff_cache
