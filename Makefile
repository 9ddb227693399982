# The two commands a new developer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The last release published on npm (later ones are GitHub-only).
README_GENERATOR := @bitnami/readme-generator-for-helm@2.7.2
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck pytest pytest-compiled compiled dist wheel docs bench autobahn chart-files chart-readme log-schemas clean fuzz fuzz-ci soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The development install is plain Python (MONOCEROS_COMPILE=0): edits take effect at once and
# coverage sees the source. `make compiled` builds what users install: the hot path compiled
# with mypyc (setup.py), into build/compiled, which the compiled tests and the benchmark use.
$(STAMP): $(BIN)/python pyproject.toml setup.py
	MONOCEROS_COMPILE=0 $(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# What the compiled builds are made from, and setup.py's intermediate files, which each build
# starts afresh (no objects compiled for another interpreter or an older source).
SERVER_SOURCES := $(shell find server -name '*.py')
SETUP_INTERMEDIATES := build/mypyc build/setuptools
COMPILED := $(CURDIR)/build/compiled
$(COMPILED)/.built: $(STAMP) $(SERVER_SOURCES)
	rm -rf $(COMPILED) $(SETUP_INTERMEDIATES)
	MONOCEROS_COMPILE=1 $(BIN)/pip install --quiet --no-deps --no-build-isolation --target $(COMPILED) .
	touch $@

compiled: $(COMPILED)/.built

# `make bench` runs every server on the distribution's Python where there is one (/usr/bin/python3:
# Debian's, built with PGO and LTO like the official images' and python.org's), in a virtualenv of
# its own with monoceros installed compiled. pyenv's and a plain ./configure build have neither,
# and run a Python server about a fifth slower, granian's Rust core much less (docs/performance.md,
# "The interpreter the figures are taken on"). BENCH_PYTHON=... measures on another interpreter.
BENCH_PYTHON ?= $(firstword $(wildcard /usr/bin/python3) $(PYTHON))
BENCH := $(CURDIR)/build/bench
BENCH_BIN := $(BENCH)/venv/bin
# Named after the interpreter, so that another BENCH_PYTHON rebuilds the virtualenv.
BENCH_STAMP := $(BENCH)/.built-$(shell echo '$(BENCH_PYTHON)' | cksum | cut -d' ' -f1)
$(BENCH_STAMP): pyproject.toml setup.py $(SERVER_SOURCES)
	rm -rf $(BENCH) $(SETUP_INTERMEDIATES)
	$(BENCH_PYTHON) -m venv $(BENCH)/venv
	$(BENCH_BIN)/pip install --quiet --upgrade pip
	MONOCEROS_COMPILE=1 $(BENCH_BIN)/pip install --quiet '.[dev]'
	touch $@

# The ASGI floor (bench/asgi_floor.py), compiled like the hot path so the two compare, by the
# benchmark's interpreter.
FLOOR := $(CURDIR)/build/floor
$(FLOOR)/.built: $(BENCH_STAMP) bench/asgi_floor.py
	rm -rf $(FLOOR) && mkdir -p $(FLOOR) && cp bench/asgi_floor.py $(FLOOR)/
	cd $(FLOOR) && { $(BENCH_BIN)/mypyc asgi_floor.py >mypyc.log 2>&1 || { cat mypyc.log; exit 1; }; }
	rm $(FLOOR)/asgi_floor.py
	touch $@

## run: serve the example app on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/monoceros examples.app:app --host 127.0.0.1 --port 8000

## test: lint, type-check, build the docs and the release files, run the whole test suite with
## coverage (which installs and checks those files), then the protocol and unit tests again
## against the compiled build
test: lint typecheck docs dist pytest pytest-compiled fuzz-ci

LINTED := server tests bench examples docs setup.py .ci
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/pytest --cov=monoceros --cov-report=term-missing $(PYTEST_ARGS)

## dist: what a release uploads, in dist/: the sdist, and a wheel built from it with the hot path
## compiled (or the build fails), repaired to a manylinux tag so it installs compiled without a
## compiler; both checked with twine. The release workflow (.github/workflows/release.yml)
## builds the other platforms' wheels the same way, with cibuildwheel.
dist: $(STAMP)
	rm -rf dist build/dist
	MONOCEROS_COMPILE=1 $(BIN)/python -m build --outdir build/dist .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/auditwheel repair --wheel-dir dist build/dist/*.whl
	cp build/dist/*.tar.gz dist/
	$(BIN)/twine check --strict dist/*

wheel: dist

## docs: the documentation site, into site/; --strict: a broken link or anchor, or a page left
## out of the nav, fails the build (mkdocs.yml; docs/hooks/ generates the reference tables)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

pytest-compiled: $(COMPILED)/.built
	MONOCEROS_EXPECT_COMPILED=1 PYTHONPATH=$(COMPILED) $(BIN)/pytest -q tests/unit tests/protocol

## fuzz: each fuzz target (tests/fuzz/: HTTP/1.1, proxy resolution, WebSocket, HTTP/2) under
## atheris for FUZZ_TIME seconds, one after the other, from a seed corpus built from the hostile
## tests; the corpus grows in build/fuzz/corpus and any finding lands in build/fuzz/findings
## (and fails).
## Reproduce one with: .venv/bin/python -m tests.fuzz.run TARGET build/fuzz/findings/FILE
FUZZ_TIME ?= 600
FUZZ_TARGETS := http proxy websocket http2
# Extra libFuzzer options, e.g. -seed=N (fuzz-ci fixes the seed).
FUZZ_FLAGS ?=
fuzz: $(STAMP)
	rm -rf build/fuzz/seeds
	$(BIN)/python -m tests.fuzz.corpus build/fuzz/seeds
	mkdir -p build/fuzz/findings
	set -e; for target in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$target; \
		$(BIN)/python -m tests.fuzz.run $$target -max_total_time=$(FUZZ_TIME) -print_final_stats=1 $(FUZZ_FLAGS) \
			-artifact_prefix=build/fuzz/findings/$$target- \
			build/fuzz/corpus/$$target build/fuzz/seeds/$$target; \
	done

## fuzz-ci: `make fuzz` for 25 seconds a target (part of `make test`), with a fixed seed: on a
## fresh clone (as in CI) the gate's random choices are the same from run to run, so whether
## it fails depends on the commit (and how far 25 s go), not on luck; exploring with fresh
## seeds is `make fuzz`'s job.
fuzz-ci:
	$(MAKE) fuzz FUZZ_TIME=25 FUZZ_FLAGS="-seed=1 $(FUZZ_FLAGS)"

## soak: the compiled server under 10 minutes of mixed load, sampled every second (RSS, fds,
## connections, loop tasks); fails if memory grows or anything stays open (bench/soak.py).
## Not part of `make test`. SOAK_ARGS="--duration 60 --warmup 10" for a short one.
soak: $(COMPILED)/.built
	PYTHONPATH=$(COMPILED) $(BIN)/python bench/soak.py $(SOAK_ARGS)

## bench: monoceros against uvicorn, granian and hypercorn (and the bare-protocol ceiling and the
## ASGI floor), side by side
bench: $(FLOOR)/.built
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install -y wrk"; exit 1; }
	@command -v h2load >/dev/null || { echo "make bench needs h2load: apt-get install -y nghttp2-client"; exit 1; }
	$(BENCH_BIN)/python bench/run.py $(BENCH_ARGS)

## autobahn: Autobahn|Testsuite fuzzing client against monoceros (needs a python2.7; not in `make test`)
autobahn: $(STAMP)
	bash tests/conformance/autobahn.sh $(AUTOBAHN_ARGS)

## chart-files: copy the dashboard and the alert rules into the Helm chart, which reads no file
## outside itself. grafana/ and docker/prometheus/ hold the sources; the Compose stack mounts them
## there. tests/unit/test_chart_consistency.py fails while the copies differ.
chart-files:
	cp grafana/dashboards/monoceros.json helm/monoceros/dashboards/monoceros.json
	cp docker/prometheus/rules/monoceros.yml helm/monoceros/rules/monoceros.yml

## log-schemas: write the JSON schemas of the log lines (docs/reference/log-schemas/) from the table
## of fields in docs/hooks/log_fields.py; tests/unit/test_docs.py fails while they differ.
log-schemas: $(STAMP)
	$(BIN)/python docs/hooks/log_fields.py

## chart-readme: regenerate the values table of helm/monoceros/README.md from the `## @param` lines
## of values.yaml with Bitnami's readme-generator-for-helm (npm; tests/integration/test_helm.py
## checks that the table is current and the metadata complete)
chart-readme:
	npx --yes $(README_GENERATOR) --values helm/monoceros/values.yaml --readme helm/monoceros/README.md

clean:
	rm -rf $(VENV) build dist site .coverage* .mypy_cache .pytest_cache .ruff_cache
	find server -name '*.so' -delete
