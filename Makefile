# The words a newcomer types. Each target sets up what it needs (virtualenv, dependencies, servers).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench chaos clean setup previous-release

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,postgres,imap,web]"
	touch $(STAMP)

setup: $(STAMP)

## demo: the main job on embedded SQLite (a demo database in ./demo/)
demo: $(STAMP)
	@mkdir -p demo
	$(BIN)/chunksync --db sqlite:///demo/demo.db demo --fresh
	$(BIN)/chunksync --db sqlite:///demo/demo.db demo-mail demo/Maildir

## test: the whole suite (starts its own PostgreSQL and Dovecot)
test: $(STAMP)
	bash scripts/test-servers.sh
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

## bench: every benchmark, each ending with a name=value line
bench: $(STAMP)
	bash scripts/test-servers.sh
	bash scripts/bench-setup.sh
	@# Byte-compiled like an installed package: an editable install under
	@# PYTHONDONTWRITEBYTECODE=1 would recompile every module at each command's start.
	$(BIN)/python -m compileall -q src
	$(BIN)/python -m benchmarks

## chaos: workers killed and frozen, PostgreSQL and Dovecot restarted, a faulty proxy (docs/reliability.md)
chaos: $(STAMP)
	bash scripts/test-servers.sh
	$(BIN)/python -m tests.chaos

## previous-release: keep a release's code for the rolling-upgrade test (make previous-release TAG=v0.1.0)
previous-release:
	git archive --format=tar --prefix=chunksync-$(TAG:v%=%)/ $(TAG) src/chunksync \
		| gzip -n -9 > tests/upgrade/chunksync-$(TAG:v%=%).tar.gz

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
