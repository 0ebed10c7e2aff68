# Two commands do all the set-up on a fresh machine with only python3:
#   make run    install into .venv and serve on the embedded SQLite database (./data)
#   make test   install into .venv and run lint, types and the tests on SQLite and PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

R4B := .cache/r4b

.PHONY: install run test lint bench clean fhir-package

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
	$(BIN)/mypy app schemas mappings scripts bench tests

# The official R4B package (npm, CC0) for the checks that the committed tables under
# schemas/fhir are what scripts/gen_*.py make of it. Without npm those checks are skipped
# (CI requires them: CASEBRIDGE_REQUIRE_R4B_PACKAGE=1 in .ci/run).
$(R4B)/package/package.json:
	@mkdir -p $(R4B)
	@cd $(R4B) && for attempt in 1 2 3; do \
	  npm pack --silent hl7.fhir.r4b.core@4.3.0 >/dev/null 2>&1 \
	    && tar xzf hl7.fhir.r4b.core-4.3.0.tgz && rm -f hl7.fhir.r4b.core-4.3.0.tgz && break; \
	  sleep 2; done; \
	  test -f package/package.json || echo "npm could not fetch hl7.fhir.r4b.core@4.3.0"

fhir-package: $(R4B)/package/package.json

test: lint fhir-package
	CASEBRIDGE_R4B_PACKAGE=$(CURDIR)/$(R4B)/package $(BIN)/pytest -q -n auto

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .cache
