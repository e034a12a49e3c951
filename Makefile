# The two commands of the README: `make demo` (the main job) and `make test` (every check).
# Both bootstrap what a fresh machine lacks: a virtual environment with the project and its
# extras, and the pinned Node.js + AWS CDK CLI from package-lock.json.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The pinned Node.js and CDK CLI come first on PATH, ahead of the machine's Node.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: demo test bootstrap lint typecheck pytest synth localaws-up localaws-down clean

demo: bootstrap
	$(PY) -m batchwright.demo

test: bootstrap lint typecheck pytest

bootstrap:
	@bash scripts/bootstrap.sh

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(PY) -m pytest $(PYTEST_ARGS)

synth: bootstrap
	cdk synth --quiet

localaws-up: bootstrap
	$(VENV)/bin/batchwright localaws up

localaws-down:
	$(VENV)/bin/batchwright localaws down

clean:
	rm -rf cdk.out .batchwright .pytest_cache .mypy_cache .ruff_cache
