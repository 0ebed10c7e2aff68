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

.PHONY: install run test lint bench clean fhir-package axe

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

# The R4 examples package (npm, CC0): R4's StructureDefinitions, for the R4 type list the
# server uses when a client asks for FHIR 4.0 (scripts/gen_r4_resource_types.py).
R4EX := .cache/r4-examples
$(R4EX)/package/package.json:
	@mkdir -p $(R4EX)
	@cd $(R4EX) && for attempt in 1 2 3; do \
	  npm pack --silent hl7.fhir.r4.examples@4.0.1 >/dev/null 2>&1 \
	    && tar xzf hl7.fhir.r4.examples-4.0.1.tgz && rm -f hl7.fhir.r4.examples-4.0.1.tgz && break; \
	  sleep 2; done; \
	  test -f package/package.json || echo "npm could not fetch hl7.fhir.r4.examples@4.0.1"

fhir-package: $(R4B)/package/package.json $(R4EX)/package/package.json

# axe-core (npm, MPL-2.0) for the web app's accessibility checks in the browser tests;
# without npm those checks are skipped (CI requires them: CASEBRIDGE_REQUIRE_BROWSER=1).
AXE := .cache/axe
$(AXE)/package/axe.min.js:
	@mkdir -p $(AXE)
	@cd $(AXE) && for attempt in 1 2 3; do \
	  npm pack --silent axe-core@4.14.1 >/dev/null 2>&1 \
	    && tar xzf axe-core-4.14.1.tgz && rm -f axe-core-4.14.1.tgz && break; \
	  sleep 2; done; \
	  test -f package/axe.min.js || echo "npm could not fetch axe-core@4.14.1"

axe: $(AXE)/package/axe.min.js

test: lint fhir-package axe
	CASEBRIDGE_R4B_PACKAGE=$(CURDIR)/$(R4B)/package CASEBRIDGE_R4_EXAMPLES=$(CURDIR)/$(R4EX)/package \
	  CASEBRIDGE_AXE=$(CURDIR)/$(AXE)/package/axe.min.js \
	  $(BIN)/pytest -q -n auto

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .cache
