# gateway-proxy developer entry points. Everything runs from .venv; a fresh
# machine needs only python3 (>= 3.11) and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit tools demo demo-traffic bench clean

install: $(STAMP)

# Re-install only when the project's metadata changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# External programs the tests drive for real (prometheus/promtool, helm).
# Each script is idempotent and returns at once when the tool is present.
tools: $(STAMP)
	@bash scripts/install-tools.sh

lint: $(STAMP)
	$(BIN)/ruff check proxy tests bench
	$(BIN)/ruff format --check proxy tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict proxy

test: lint typecheck tools
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest --cov --cov-report=term

demo: $(STAMP)
	$(BIN)/gateway-proxy demo --config config/demo.yaml

demo-traffic: $(STAMP)
	$(BIN)/python -m bench.traffic --duration 60

bench: $(STAMP) tools
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov dist build
