# The two commands of the README: `make demo` (the main job) and `make test` (every check).
# Both bootstrap what a fresh machine lacks: a virtual environment with the project and its
# extras, and the pinned Node.js + AWS CDK CLI from package-lock.json.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The pinned Node.js and CDK CLI come first on PATH, ahead of the machine's Node.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

FLOWS := sample_app/flows
DEMO_FLOW := pairing_flow.py

.PHONY: demo demo-localaws test bootstrap lint typecheck scan pytest synth localaws-up localaws-down clean

# The main job, with no cloud and no Docker: synthesize the sample environment, show what
# it offers, plan the sample flow against it (from cdk.out alone) and run the flow with its
# @batch steps executed locally through the same task entrypoint.
demo: bootstrap
	cdk synth --quiet
	batchwright env show --static
	cd $(FLOWS) && $(CURDIR)/$(PY) $(DEMO_FLOW) plan --static
	cd $(FLOWS) && $(CURDIR)/$(PY) $(DEMO_FLOW) run --run-batch-locally

# The same flow on the local AWS: real containers on the emulated Batch of the deployed
# sample environment.
demo-localaws: bootstrap
	batchwright localaws up
	cdk synth --quiet
	batchwright localaws deploy --outputs-file cdk-outputs.json
	eval "$$(batchwright localaws env)" && cd $(FLOWS) && \
		$(CURDIR)/$(PY) $(DEMO_FLOW) run --outputs-file $(CURDIR)/cdk-outputs.json

test: bootstrap lint typecheck scan pytest

bootstrap:
	@bash scripts/bootstrap.sh

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck:
	$(VENV)/bin/mypy

# checkov's CloudFormation checks on the synthesized sample (its own venv; see the script).
scan: bootstrap
	@bash scripts/scan.sh

pytest:
	$(PY) -m pytest $(PYTEST_ARGS)

synth: bootstrap
	cdk synth --quiet

localaws-up: bootstrap
	$(VENV)/bin/batchwright localaws up

localaws-down:
	$(VENV)/bin/batchwright localaws down

clean:
	rm -rf cdk.out .venv-checkov .batchwright .pytest_cache .mypy_cache .ruff_cache
