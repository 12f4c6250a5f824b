# Sextant: the two commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
HOST   ?= 127.0.0.1
PORT   ?= 8000
EVENTS ?= 1000000

.PHONY: run test lint fmt typecheck pytest demo migrate bench-ingest bench-query browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/sextant migrate

run: $(STAMP)
	$(BIN)/sextant migrate
	$(BIN)/sextant serve --host $(HOST) --port $(PORT)

demo: $(STAMP)
	$(BIN)/sextant migrate
	$(BIN)/sextant demo --events $(EVENTS)

# Debian's Chromium for the browser tests; installed only when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

fmt: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP) browser
	$(BIN)/pytest

test: lint typecheck pytest

bench-ingest: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

bench-query: $(STAMP)
	$(BIN)/python benchmarks/query.py

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
