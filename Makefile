# One place for set-up: every target creates what it needs from the project's own files.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UI     := api/static/index.html
DB     ?= riskgraph-demo.db
# Debian packages the browser tests and PDF reports need (installed when missing and root).
SYSTEM_PACKAGES := chromium fonts-wqy-zenhei libpango-1.0-0 libpangoft2-1.0-0

.PHONY: venv ui demo test check lint typecheck format neo4j-dev system-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The analyst workbench, bundled from npm packages at build time (no CDN at run time).
ui: $(UI)

$(UI): frontend/package.json frontend/package-lock.json frontend/build.mjs $(wildcard frontend/src/*)
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (browser tests and PDF reports skip without them)"; \
	  fi; \
	fi

demo: venv ui
	$(BIN)/riskgraph demo --db $(DB)

test: venv ui system-deps
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

check: lint typecheck test

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A real Neo4j 5 server from Maven Central artefacts, on a free local port, until Ctrl-C.
neo4j-dev: venv
	$(BIN)/python -m kg.neo4j_server

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info api/static frontend/node_modules
