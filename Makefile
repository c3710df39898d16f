# HepaTrack: `make run` starts the dashboard on the sample cohort; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HEPATRACK_HOME ?= $(CURDIR)/.hepatrack
PORT ?= 8501
export HEPATRACK_HOME

APT_PACKAGES := orthanc orthanc-dicomweb postgresql chromium chromium-driver fonts-dejavu-core

.PHONY: run test install install-test services demo lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Debian packages for the real services the tests use (root only; otherwise say what is missing).
services:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "services: all installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "services: installing$$missing"; \
	  (apt-get install -y -qq $$missing >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing)) \
	   || { echo "services: apt-get failed for$$missing"; exit 1; }; \
	else echo "services: missing$$missing (install as root: apt-get install$$missing)"; fi

demo: install
	$(BIN)/hepatrack demo

run: install
	$(BIN)/hepatrack demo
	$(BIN)/hepatrack serve --port $(PORT)

test: install-test services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Every benchmark runs; `make bench` fails, naming them, when any of them failed.
BENCHMARKS ?= $(filter-out benchmarks/harness.py,$(wildcard benchmarks/*.py))

bench: install-test
	@failed=""; \
	for b in $(BENCHMARKS); do \
	  echo "== $$b"; \
	  $(BIN)/python $$b || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "bench: failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
