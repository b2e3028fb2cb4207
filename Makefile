# ivr-engine — the two commands a newcomer needs are `make demo` and `make test`.
# Everything else here is a step they depend on.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
KEEP   ?= 0
PYTEST_ARGS ?=
FAULTS_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test lint unit bench faults system-deps venv sounds sandbox-build lock clean

# System packages (Debian): debootstrap for the Asterisk sandbox, sipp for the test phones,
# espeak-ng + sox to render prompts, the PostgreSQL server binaries for throwaway clusters,
# chromium for the panel's browser tests.
system-deps:
	bash scripts/install-system-deps.sh

# Two distributions, both editable: the engine (with the test tools) and its development kit
# (devkit/: sandbox, simulated phones, throwaway PostgreSQL, demo), which the engine's wheel
# leaves out.
$(BIN)/ivr-engine: pyproject.toml devkit/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -e ./devkit
	touch $@

venv: $(BIN)/ivr-engine

sounds: venv system-deps
	$(BIN)/ivr-engine sounds render

sandbox-build: venv system-deps sounds
	$(BIN)/ivr-engine sandbox build

demo: sandbox-build
	$(BIN)/ivr-engine demo $(if $(filter 1,$(KEEP)),--keep,)

lint: venv
	$(BIN)/python scripts/check_layers.py src ivr_engine
	$(BIN)/ruff check src devkit tests
	$(BIN)/ruff format --check src devkit tests
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

test: sandbox-build lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

# requirements.lock: the engine's runtime dependencies, pinned (the Dockerfile installs them).
lock: venv
	bash scripts/lock.sh

# Not part of `make test`: the engine against the same consultation flow in pure dialplan,
# side by side, and the claim's cost with 100,000 waiting requests (at most 15 minutes;
# BENCH_ARGS=--quick: about 3). Prints a table, writes build/bench/*.json and bench.png.
bench: sandbox-build
	$(BIN)/python -m ivr_devkit.bench $(BENCH_ARGS)

# Not part of `make test`: a load of consultations while the engine is killed, stopped and its
# PostgreSQL restarted at random (seeded) moments; prints a table, fails on any dropped call,
# wrong bill or lost request. FAULTS_ARGS="--consultations 20 --seed 7" passes options.
faults: sandbox-build
	$(BIN)/python -m ivr_devkit.faults $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) build devkit/build .pytest_cache .mypy_cache .ruff_cache
