# The two commands a new developer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck pytest bench autobahn clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

## run: serve the example app on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/monoceros examples.app:app --host 127.0.0.1 --port 8000

## test: lint, type-check and run the whole test suite with coverage
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check server tests bench examples
	$(BIN)/ruff format --check server tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/pytest --cov=monoceros --cov-report=term-missing $(PYTEST_ARGS)

## bench: monoceros against uvicorn (and the bare-protocol ceiling), side by side
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install -y wrk"; exit 1; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## autobahn: Autobahn|Testsuite fuzzing client against monoceros (needs a python2.7; not in `make test`)
autobahn: $(STAMP)
	bash tests/conformance/autobahn.sh $(AUTOBAHN_ARGS)

clean:
	rm -rf $(VENV) .coverage* .mypy_cache .pytest_cache .ruff_cache
