# Two commands do all the set-up on a fresh machine with only python3:
#   make run    install into .venv and serve on the embedded SQLite database (./data)
#   make test   install into .venv and run lint, types and the tests on SQLite and PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p data
	CASEBRIDGE_AUTH=$${CASEBRIDGE_AUTH:-off} CASEBRIDGE_BASE_URL=$${CASEBRIDGE_BASE_URL:-http://$(HOST):$(PORT)/fhir} $(BIN)/casebridge serve --migrate --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check app schemas mappings scripts tests bench
	$(BIN)/ruff format --check app schemas mappings scripts tests bench
	$(BIN)/mypy app schemas mappings scripts bench

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
