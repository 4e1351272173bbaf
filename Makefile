# The two commands of the quick start (`make demo`, `make test`) bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit integration e2e bench bench-scale soak clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tenant-sync needs Python 3.11 or newer (PYTHON=$(PYTHON) is " + sys.version.split()[0] + ")")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tenant-sync demo

# Two workers: most tests wait on processes and sockets, not the CPU. One file stays on one worker
# (its module fixtures, such as a running service, are shared by its tests).
test: lint typecheck
	$(BIN)/python -m pytest -m "unit or integration or e2e" -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check worker tenant_sync_sandbox tenant_sync_demo tests scripts
	$(BIN)/ruff format --check worker tenant_sync_sandbox tenant_sync_demo tests scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -m unit -q

integration: $(STAMP)
	$(BIN)/python -m pytest -m integration -q

e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e -q

bench: $(STAMP)
	$(BIN)/python -m pytest -m bench -q -s tests/bench

# The start-up and ceiling benchmarks alone, then one job over TENANT_SYNC_SCALE_USERS generated
# users (default 1,000,000) on SQLite and PostgreSQL (TENANT_SYNC_SCALE_DATABASES; PostgreSQL at
# TENANT_SYNC_SCALE_POSTGRESQL_USERS, default 100,000) with 110 jobs at a 1-minute interval
# beside it (TENANT_SYNC_JOBS_MINUTES, default 10). tests/bench/run_scale.py says why; figures in
# bench-results/ (cli, ceiling, scale, jobs and bench-scale.json).
bench-scale: $(STAMP)
	$(BIN)/python -m tests.bench.run_scale

soak: $(STAMP)
	$(BIN)/python -m pytest -m soak -q -rA tests/e2e

clean:
	rm -rf $(VENV) .tenant-sync .tenant-sync-demo .pytest_cache .mypy_cache .ruff_cache
