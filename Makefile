# Everything a user or CI needs; `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint dev serve example clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Import the bundled example archive into the default SQLite database; prints the result JSON.
run: install
	$(BIN)/event-pipeline import

## The whole test suite, on SQLite and the local PostgreSQL, plus ruff and mypy: the tests on 3 workers, then
## the many-archive daemon and Celery runs alone.
test: install lint
	$(BIN)/pytest -n 3 --dist loadfile -m "not load and not celery"
	$(BIN)/pytest -m "load or celery"  # the timing-bound end-to-end runs, alone on the machine

## The fast tier: pure functions (tests/unit), no database, no process started; seconds.
test-fast: install
	$(BIN)/pytest -q tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The Dagster UI (webserver and daemon) on this project's workspace.
dev: install
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster_home} $(BIN)/python -c "import event_pipeline.settings as s; s.dagster_home()"
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster_home} $(BIN)/dagster dev -w workspace.yaml

## The Dagster webserver and daemon plus the HTTP import API, in one command (see README, "HTTP API").
serve: install
	$(BIN)/python -m event_pipeline.api.serve

example: install
	$(BIN)/python scripts/make_example.py

clean:
	rm -rf $(VENV) data
