# The front door. `make` lists every target. Python dependencies install themselves into .venv
# (again only when pyproject.toml changes). With nothing configured, targets use the embedded
# PostgreSQL in .pgdata/ (make db-up); DATABASE_URL from the environment or .env points them elsewhere.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MIGRATE := $(PY) scripts/migrate.py
# TARGETS=file: db-migrate, db-migrate-down, -status, -verify and -check run on every database of that file
FLEET := $(if $(TARGETS),--targets "$(TARGETS)")
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo venv test test-fast lint bench clean \
        db-up db-down db-status db-connect db-init db-migrate db-migrate-down db-migrate-status \
        db-migrate-create db-migrate-force db-migrate-redo db-migrate-verify db-migrate-plan db-migrate-check \
        db-seed db-reset db-schema-dump

help: ## list every target with what it does
	@echo "usage: make TARGET [VAR=value]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST) \
	  | { if [ -t 1 ] && [ -z "$$NO_COLOR" ]; then cat; else sed 's/\x1b\[[0-9;]*m//g'; fi }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@# setuptools' editable install loads an import hook at every interpreter start (about 10 ms);
	@# a plain path entry in the same .pth file does the same job for free.
	@for pth in $(VENV)/lib/python3*/site-packages/__editable__.pgmigrate-*.pth; do \
	  [ -e "$$pth" ] && echo "$(CURDIR)" > "$$pth"; done; true
	@touch $@

venv: $(STAMP) ## create .venv and install the project with its test dependencies

demo: $(STAMP) ## the main job: start the embedded PostgreSQL (unless a database is configured), migrate, seed, show status
	$(MIGRATE) server start --if-unconfigured
	$(MIGRATE) init
	$(MIGRATE) up
	$(MIGRATE) seed
	$(MIGRATE) status

test: $(STAMP) ## run the whole test suite against a real PostgreSQL (starts a throwaway one if none is reachable)
	$(PY) -m pytest -q -n auto

test-fast: $(STAMP) ## the test suite without the slow fault-injection tests
	$(PY) -m pytest -q -n auto -m "not slow"

lint: $(STAMP) ## ruff over the package, scripts, tests and benchmarks
	$(VENV)/bin/ruff check pgmigrate scripts tests benchmarks

bench: $(STAMP) ## benchmark against the psql floor on throwaway databases; writes benchmarks/results.md (BENCH_ARGS="--runs 9")
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

db-up: $(STAMP) ## start the embedded PostgreSQL in .pgdata/ (port LOCAL_PG_PORT, default 54329) and create its database
	$(MIGRATE) server start

db-down: $(STAMP) ## stop the embedded PostgreSQL
	$(MIGRATE) server stop

db-status: $(STAMP) ## show whether the embedded PostgreSQL runs, and where
	$(MIGRATE) server status

db-connect: $(STAMP) ## open psql on the configured database
	@$(MIGRATE) psql

db-init: $(STAMP) ## create the database if missing and the tracking table
	$(MIGRATE) init

db-migrate: $(STAMP) ## apply every pending migration (TARGETS=file: on every database listed in it)
	$(MIGRATE) $(FLEET) up

db-migrate-down: $(STAMP) ## roll back the newest migration, or N of them: make db-migrate-down N=2
	$(MIGRATE) $(FLEET) down $(or $(N),1)

db-migrate-status: $(STAMP) ## list every migration and its state
	$(MIGRATE) $(FLEET) status

db-migrate-create: $(STAMP) ## write the next migration's up/down files: make db-migrate-create NAME=add_users
	@test -n "$(NAME)" || { echo "error: give the migration a name: make db-migrate-create NAME=add_users" >&2; exit 2; }
	$(MIGRATE) create "$(NAME)"

db-migrate-force: $(STAMP) ## re-run version V's up file and clear its dirty mark: make db-migrate-force V=3
	@test -n "$(V)" || { echo "error: say which version: make db-migrate-force V=3" >&2; exit 2; }
	$(MIGRATE) force "$(V)"

db-migrate-redo: $(STAMP) ## roll back the newest migration and apply it again
	$(MIGRATE) redo

db-migrate-verify: $(STAMP) ## check files and history: duplicates, edits, missing files, dirty, out of order
	$(MIGRATE) $(FLEET) verify

db-migrate-plan: $(STAMP) ## print the exact SQL that db-migrate would run: make db-migrate-plan > plan.sql, then scripts/migrate.py psql -f plan.sql
	@$(MIGRATE) up --sql

db-migrate-check: $(STAMP) ## run the migrations on a throwaway database: locks, rewrites, scans, downs that do not revert (AGAINST=URL, FORMAT=json)
	@$(MIGRATE) $(FLEET) check $(if $(AGAINST),--against "$(AGAINST)") $(if $(FORMAT),--format "$(FORMAT)")

db-seed: $(STAMP) ## load the seed files (idempotent)
	$(MIGRATE) seed

db-reset: $(STAMP) ## drop everything, re-apply every migration and seed (asks first; YES=1 skips the question)
	$(MIGRATE) fresh $(if $(YES),--yes)
	$(MIGRATE) seed

db-schema-dump: $(STAMP) ## write database/schemas/<schema>.sql and docs/schema.md from a freshly migrated database
	$(MIGRATE) dump-schema

clean: ## remove .venv and caches (keeps .pgdata; run make db-down first to stop the server)
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
