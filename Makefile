# spendwatch — `make help` lists the targets. Everything installs into ./.venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DURATION ?= 90
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install browser demo up test unit integration lint format typecheck bench chaos clean

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

# The console's browser test drives Debian's headless Chromium through chromedriver. Installed
# with apt when missing and we are root (CI); otherwise this says so and the test fails with
# the reason (it never skips silently).
browser: ## install Debian's chromium + chromium-driver for the browser test (apt, as root)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make browser: installing Debian's chromium and chromium-driver (apt-get)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium chromium-driver >/dev/null; } \
	  || echo "make browser: *** apt-get could not install chromium: the browser test will FAIL ***" >&2; \
	else \
	  echo "make browser: *** chromium or chromedriver missing and cannot apt-get install them" \
	    "(not root, or no apt): run 'sudo apt-get install chromium chromium-driver';" \
	    "the browser test will FAIL ***" >&2; \
	fi

test: $(STAMP) lint typecheck browser ## lint, typecheck, then every test (unit + integration + browser)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

unit: $(STAMP) ## unit tests only
	$(BIN)/python -m pytest -q -m "not integration" $(PYTEST_ARGS)

integration: $(STAMP) browser ## integration tests only (real Tansu, chDB, SMTP, Slack-speaking HTTP)
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

chaos: $(STAMP) ## chaos run (<= 10 min): kill -9, outages, broker restart; table in bench/RESULTS.md
	$(BIN)/python bench/chaos.py

clean: ## remove local state (.spendwatch) and caches; keeps .venv
	rm -rf .spendwatch .pytest_cache .mypy_cache .ruff_cache
