# The front door. CI calls these same targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV_VERSION := 0.13.9
# uv itself, pinned, in a private virtualenv: a fresh machine needs only Python 3.11+ and make.
UV := .tools/bin/uv
RUN := $(UV) run --frozen
# Tests and scripts that call `uv` find this same one.
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: help python install up test unit validate e2e cluster cluster-push cluster-down bench drills lock clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# npm ci rebuilds node_modules from scratch, so only when the lock file is newer than the last install.
tools/crd-schemas/node_modules/.package-lock.json: tools/crd-schemas/package-lock.json
	cd tools/crd-schemas && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error

python: $(UV) ## Create .venv and checkov's own from the lock files (all that make up needs)
	$(UV) sync --frozen --all-groups
	$(UV) sync --frozen --project tools/checkov

install: python tools/crd-schemas/node_modules/.package-lock.json ## Also tools/crd-schemas/node_modules (needs Node.js and npm)

up: python ## Run Redis, PostgreSQL, vote, worker and result locally
	@# Straight from .venv, not through `uv run`: a second Ctrl-C relayed by make
	@# would make uv kill the runner before it has stopped the servers.
	.venv/bin/voting-up

test: install ## Every test that runs here: units, integration, browser, manifests, delivery
	$(RUN) pytest

unit: python ## The unit tests beside each service that need no server (no Redis, no PostgreSQL)
	$(RUN) pytest apps libs -m "not servers"

validate: install ## Offline checks of the Kubernetes, Argo CD, Terraform and workflow files
	$(RUN) pytest tests/manifests tests/delivery tests/observability -m "not services"

# Which environment `make cluster` and `make e2e` bring up: dev (the default) or prod.
ENV ?= dev
CHECK_ENV = $(if $(filter dev prod,$(ENV)),:,$(error ENV=$(ENV): choose dev or prod))
# The cluster script and the kind tests use the pinned kubectl in .venv, and its Python.
cluster cluster-push cluster-down e2e: export PATH := $(CURDIR)/.venv/bin:$(PATH)

e2e: install ## End-to-end on kind for ENV=dev (default) or ENV=prod (needs Docker)
	@$(CHECK_ENV)
	$(RUN) pytest tests/e2e -m $(ENV)

cluster: python ## kind + Argo CD syncing overlays/ENV from a git server in the cluster (ENV=dev|prod; needs Docker)
	@$(CHECK_ENV)
	bash scripts/cluster.sh up $(ENV)

cluster-push: python ## Serve the current commit to that Argo CD, with images rebuilt where their inputs changed
	bash scripts/cluster.sh push

cluster-down: ## Delete the local kind cluster and its Terraform state
	bash scripts/cluster.sh down

bench: python ## Measure each service against its limit (--quick: BENCH_ARGS=--quick)
	$(RUN) python -m devstack.bench $(BENCH_ARGS)

drills: python ## Long-form fault and security drills, printed as a table
	$(RUN) python -m devstack.drills $(DRILLS_ARGS)

lock: $(UV) ## Refresh the lock files after editing a pyproject.toml
	$(UV) lock
	$(UV) lock --project tools/checkov

clean: ## Remove the virtualenv and local data
	rm -rf .venv .tools tools/checkov/.venv tools/crd-schemas/node_modules .data .bench .drills
