# The front door. CI calls these same targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
UV ?= uv
RUN := $(UV) run --frozen

.PHONY: help install up test unit validate e2e cluster bench drills lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## Create .venv from uv.lock (every group)
	$(UV) sync --frozen --all-groups

up: install ## Run Redis, PostgreSQL, vote, worker and result locally
	$(RUN) voting-up

test: install ## Every test that runs here: units, integration, browser, manifests, delivery
	$(RUN) pytest

unit: install ## Only the fast unit tests beside each service
	$(RUN) pytest apps libs

validate: install ## Offline checks of the Kubernetes, Argo CD, Terraform and workflow files
	$(RUN) pytest tests/manifests tests/delivery

e2e: install ## End-to-end on a kind cluster (needs Docker)
	$(RUN) pytest tests/e2e

cluster: ## Create a local kind cluster with Argo CD syncing overlays/dev
	bash scripts/cluster.sh up

bench: install ## Measure each service against its limit (--quick: BENCH_ARGS=--quick)
	$(RUN) python -m devstack.bench $(BENCH_ARGS)

drills: install ## Long-form fault and security drills, printed as a table
	$(RUN) python -m devstack.drills $(DRILLS_ARGS)

lock: ## Refresh uv.lock after editing a pyproject.toml
	$(UV) lock

clean: ## Remove the virtualenv and local data
	rm -rf .venv .data .bench .drills
