# Allotment: the front door. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test processes (pytest-xdist): the suite waits on servers and databases as much as it computes.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help setup serve test test-fast conformance soak lint format migrate check-migrations bench bench-quick clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install Allotment with its dev tools

serve: $(STAMP) ## Migrate, print an admin key on first start, serve on 127.0.0.1:8888 (SQLite file)
	$(BIN)/allotment serve

test: $(STAMP) ## Run every test, TEST_WORKERS processes (PostgreSQL tests need a server on 127.0.0.1:5432)
	$(BIN)/pytest -n $(TEST_WORKERS)

test-fast: $(STAMP) ## Tests on SQLite only
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not postgres"

conformance: $(STAMP) ## OpenMeter's OpenAPI document against a live server, deeper than make test's run (random, 100 examples per operation)
	ALLOTMENT_CONFORMANCE_RANDOM=1 ALLOTMENT_CONFORMANCE_EXAMPLES=100 $(BIN)/pytest tests/api/test_openmeter_conformance.py -q

soak: $(STAMP) ## Minutes of SIGKILL, database-down, hung-database and hostile-input tests; prints figures
	rm -f /tmp/allotment-soak.txt
	ALLOTMENT_SOAK=1 $(BIN)/pytest tests/soak -s -q
	@cat /tmp/allotment-soak.txt

lint: $(STAMP) ## ruff, formatting, mypy (strict on domain and services), import rules
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(STAMP) ## Apply migrations to $ALLOTMENT_DATABASE_URL (default: ./allotment.db)
	$(BIN)/allotment migrate

bench/loadgen/loadgen: bench/loadgen/*.c bench/loadgen/*.h
	gcc -O2 -Wall -Wextra -o $@ bench/loadgen/loadgen.c

bench: $(STAMP) bench/loadgen/loadgen ## Benchmarks B1-B7 at full scale (10M events; tens of minutes, longer on first build)
	$(BIN)/python -m bench --scale full $(BENCH_ARGS)

bench-quick: $(STAMP) bench/loadgen/loadgen ## Benchmarks B1-B7 at small scale (100k events; about a minute per database)
	$(BIN)/python -m bench --scale quick $(BENCH_ARGS)

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
