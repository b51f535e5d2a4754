# One entry point per task; the README documents these and CI runs `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: setup engine ui demo images test test-rust test-ui test-python test-chaos bench bench-smoke clean

## setup: create .venv, install Python deps, build the Rust engine into it and the dashboard
setup: $(VENV)/.deps engine ui

$(VENV)/.deps: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) is required" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

engine: $(VENV)/.deps
	cd engine-crate && maturin develop --release -q

## ui: build the dashboard (ui/, React + Vite) into the API package, served at /ui/
UI_BUILT := api/pravah_api/ui_dist/index.html
ui: $(UI_BUILT)

$(UI_BUILT): ui/package-lock.json ui/index.html $(shell find ui/src ui/public -type f 2>/dev/null) $(wildcard ui/*.ts ui/*.json)
	@command -v npm >/dev/null || { echo "error: npm (Node.js 20+) is required to build ui/" >&2; exit 1; }
	cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build

## demo: profile the bundled sample data
demo: setup
	pravah run examples/data --op stats --include '**/*.csv'

## images: build the runner, operator and api images from the Dockerfile (scripts/images:
## buildah, as root); with REGISTRY=host[:port]/path also push them there, as
## $(REGISTRY)/pravah-<name>:$(VERSION) (the project's version unless given)
REGISTRY ?=
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
images:
	@set -euo pipefail; built="$$(scripts/images)"; echo "$$built"; \
	if [[ -n "$(REGISTRY)" ]]; then \
	    python3 -c 'import json, sys; [print(k, v["image"]) for k, v in json.load(sys.stdin).items() if k != "pause"]' \
	        <<<"$$built" | while read -r name image; do \
	        echo "pushing docker://$(REGISTRY)/pravah-$$name:$(VERSION)" >&2; \
	        buildah push "$$image" "docker://$(REGISTRY)/pravah-$$name:$(VERSION)"; \
	    done; \
	fi

## test: every test, from nothing: Rust, the dashboard's own, Python unit, and the real platform
test: setup test-rust test-ui test-python

test-ui: ui
	cd ui && npm test

test-rust:
	cd engine-crate && cargo test --release -q

# `own_cluster` tests start a local cluster of their own (`pravah dev up`); real nodes are
# the machine's, so they run in a session before the suite's cluster starts.
test-python: setup
	scripts/platform-prereqs
	$(PY) -m pytest -q -m own_cluster
	$(PY) -m pytest -q -m "not own_cluster"
	PRAVAH_CHAOS=1 $(PY) -m pytest -q $(CHAOS_SHORT)

# A few e2e tests in chaos mode: a few minutes, enough for faults of every kind and a pod deletion.
CHAOS_SHORT := tests/e2e/test_jobs.py \
	-k "example_on_volume and stats or four_shards or operator_killed_mid_job or s3_source_and_output"

## test-chaos: the e2e suite while the operator's API calls fail at random and its pod is deleted
test-chaos: setup
	scripts/platform-prereqs
	PRAVAH_CHAOS=1 $(PY) -m pytest -q tests/e2e

## bench: the side-by-side benchmark against DuckDB, Polars and the classic tools, and the cluster path
bench: setup
	scripts/platform-prereqs
	$(PY) benchmarks/run.py --cluster

bench-smoke: setup
	$(PY) benchmarks/run.py --smoke

clean:
	rm -rf $(VENV) engine-crate/target
