# Two commands: `make run` serves on http://127.0.0.1:8000, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install when pyproject.toml changes (a stamp per extra).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/imgorigin migrate
	$(BIN)/imgorigin serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy origin admin_api imgorigin

# The suite in TEST_WORKERS processes (pytest-xdist), a test file per worker at a time; each
# worker has its own PostgreSQL database beside TEST_DATABASE_URL's (tests/conftest.py).
TEST_WORKERS ?= 2
# A test still running after 600 s, its fixtures included, fails with every thread's stack
# (pytest-timeout; the slowest, the lock file installed into a fresh venv, takes ~20 s).
test: $(VENV)/.installed-dev lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --timeout 600

# The harness's own end-to-end checks first (tests marked bench, ~2 minutes), then the run.
bench: $(VENV)/.installed-dev
	@need=""; for tool in wrk gifsicle; do command -v $$tool >/dev/null 2>&1 || need="$$need $$tool"; done; \
	if [ -n "$$need" ]; then \
	  echo "installing$$need (the load generator; thumbor's GIF engine)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	fi
	$(BIN)/pytest -m bench -q
	$(BIN)/python -m benchmarks

# Memory: 10,500 distinct W1/W3/W5 renders at 16 connections, every worker's RSS sampled
# (benchmarks/soak.py; about 10 minutes on 2 cores).
# The tests marked soak (10,000 mixed requests on one server) run first.
soak: $(VENV)/.installed-dev
	$(BIN)/pytest -m soak -q
	$(BIN)/python -m benchmarks.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
