# riskstream: the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test install dev lint bench services-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(DEVSTAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e ".[dev]"
	touch $@

install: $(STAMP)
dev: $(DEVSTAMP)

## Run the whole system embedded (trains a first model if none exists): http://127.0.0.1:8000
run: $(STAMP)
	$(VENV)/bin/riskstream run

## Install dev extras, check what the tests need (Chromium, Redis, PostgreSQL), check the
## layering (import-linter), run everything.
test: $(DEVSTAMP)
	bash scripts/test-prereqs.sh
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VENV)/bin/riskstream bench --rows 1000000 --batch-size 10000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
