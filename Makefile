# PagerBridge developer entry points. `make help` lists them.
PYTHON ?= python3
CLUSTER_DIR ?= .cluster
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install tools test test-unit test-e2e lint format crds crds-check cluster-up cluster-down cluster-status demo

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

install: ## install pagerbridge (editable) with its test and lint extras
	$(PYTHON) -m pip install -e '.[test,lint]'

tools: ## build/cache etcd, kube-apiserver, kube-controller-manager, kubectl, helm (once)
	bash hack/controlplane/build.sh

test: ## all tests: unit + e2e against a local control plane (or $PAGERBRIDGE_E2E_KUBECONFIG)
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

test-unit: ## unit tests only
	$(PYTHON) -m pytest -q tests/unit $(PYTEST_ARGS)

test-e2e: ## e2e tests only
	$(PYTHON) -m pytest -q -m e2e tests/e2e $(PYTEST_ARGS)

lint: ## ruff, ruff format --check, mypy --strict, import layers, CRDs up to date
	ruff check operator tests
	ruff format --check operator tests
	mypy
	lint-imports
	$(PYTHON) -m pagerbridge crds --check

format: ## apply ruff's formatting and fixes
	ruff format operator tests
	ruff check --fix operator tests

crds: ## regenerate crds/*.yaml (and the chart's copy) from the models
	$(PYTHON) -m pagerbridge crds --output-dir crds
	$(PYTHON) -m pagerbridge crds --output-dir charts/pagerbridge/crds

crds-check: ## exit 1 when crds/ is stale
	$(PYTHON) -m pagerbridge crds --output-dir crds --check
	$(PYTHON) -m pagerbridge crds --output-dir charts/pagerbridge/crds --check

cluster-up: ## start etcd + kube-apiserver + controller-manager in the background; kubeconfig in .cluster/
	$(PYTHON) -m pagerbridge.localcluster up --dir $(CLUSTER_DIR)

cluster-down: ## stop the local control plane and remove .cluster/
	$(PYTHON) -m pagerbridge.localcluster down --dir $(CLUSTER_DIR)

cluster-status: ## show the local control plane's processes
	$(PYTHON) -m pagerbridge.localcluster status --dir $(CLUSTER_DIR)

demo: ## play an incident's life end to end (pagerbridge demo)
	$(PYTHON) -m pagerbridge demo
