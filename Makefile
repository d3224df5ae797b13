# The whole set-up is two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_DB ?= demo.db
CONFIG ?= docs/examples/config.yaml

.PHONY: install run test test-all lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Serve a generated demo database on http://127.0.0.1:8000 while a feeder keeps appending live rows.
run: install
	@test -f $(DEMO_DB) || $(BIN)/cost-api demo --db sqlite:///$(DEMO_DB)
	@$(BIN)/cost-api demo --db sqlite:///$(DEMO_DB) --follow & feeder=$$!; \
	trap 'kill $$feeder 2>/dev/null' EXIT INT TERM; \
	$(BIN)/cost-api serve --db sqlite:///$(DEMO_DB) --config $(CONFIG)

# The whole suite, on SQLite and on a throwaway Postgres cluster the tests start themselves; on
# ClickHouse (chDB, in-process) the subset of tests/conftest.py's CHDB_SUBSET.
test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

# The same, with every test on ClickHouse (chDB) too.
test-all: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest --all-dialects

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.sweep
	$(BIN)/python -m bench.restart
	$(BIN)/python -m bench.tags
	$(BIN)/python -m bench.alerts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
