# tactful: the two commands a fresh clone needs are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TACTFUL := $(BIN)/tactful

.PHONY: install test test-unit test-integration lint check-deploy demo demo-offline validate bench bench-engine chaos clean browser

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The whole suite: lint, the fast unit tier, the tier against the real broker and
# Redis, then the SRE assets (promtool unit tests of the alert rules, dashboard).
test: install lint test-unit test-integration check-deploy

test-unit: install browser
	$(BIN)/pytest -q -m "not integration" tests

# Chromium from Debian's packages: the HTML report's test opens the page in it (tests/report).
browser:
	@command -v chromium >/dev/null || { echo "installing chromium with apt-get"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; }

lint: install
	$(BIN)/ruff check streams tests bench chaos
	$(BIN)/mypy

# promtool comes from Debian's prometheus package; fetch installs it if missing.
check-deploy: install
	@TACTFUL_PYTHON="$(abspath $(BIN))/python" bash deploy/local/services.sh fetch >/dev/null
	@bash deploy/prometheus/check.sh

validate: install
	$(TACTFUL) validate topologies

# Offline: the shipped synthetic journeys through `tactful replay`.
demo-offline: install
	@mkdir -p out
	$(TACTFUL) generate --customers 200 --seed 7 --out out/demo-events.jsonl
	$(TACTFUL) replay --topologies topologies --events out/demo-events.jsonl --out out/demo-decisions.jsonl
	@echo; echo "First decisions (out/demo-decisions.jsonl):"; head -n 12 out/demo-decisions.jsonl

# Side by side against the local broker (issue: benchmarks). Quix Streams gets a
# virtualenv of its own: it is a peer to measure, not a dependency. The benchmarks
# live in bench/, run from the checkout: they are not part of the tactful wheel.
# RUNS: measure every contender RUNS times in one invocation (median, min-max; each run
# in out/bench/results.json); one run takes about 5 minutes on a quiet 2-core machine, plus
# about 2 for naive Faust (first run only): RUNS=5 about 28 (measured 2026-11-30: 5.3 per run with latency at both guarantees).
# CUSTOMERS=1000000: throughput and recovery at a million customers (as many events, unless
# EVENTS says otherwise). BENCH_ARGS: any other option of `python -m bench pipeline`.
RUNS ?= 1
EVENTS ?=
CUSTOMERS ?=
BENCH_ARGS ?=
bench: install
	$(BIN)/pip install -q -e '.[bench]'
	@test -x .venv-quix/bin/python || { $(PY) -m venv .venv-quix && .venv-quix/bin/pip install -q "quixstreams>=3,<4" fastavro; }
	@$(WITH_SERVICES) $(BIN)/python -m bench pipeline --runs $(RUNS) $(if $(EVENTS),--events $(EVENTS)) \
	  $(if $(CUSTOMERS),--customers $(CUSTOMERS)) $(BENCH_ARGS)

bench-engine: install
	$(BIN)/python -m bench replay --events 1000000 --customers 100000

# The chaos suite (issue 9), not part of `make test`: a few minutes against a Kafka and a
# Redis of its own (services.sh on free ports in a temporary run dir; nobody else's services
# are touched), kill -9, outages, poison records, a decoder fuzz; one table in out/chaos/.
# Exits non-zero when a decision, a dead letter or a Redis key was lost, or anything crashed.
# CHAOS_ARGS: e.g. --events 40000 --seed 3, or --calm (no faults: checks the suite itself).
CHAOS_ARGS ?=
chaos: install
	$(BIN)/python -m chaos $(CHAOS_ARGS)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache

include deploy/local.mk
