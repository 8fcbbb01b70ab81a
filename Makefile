# PagerBridge developer entry points. `make help` lists them.
#
# Everything runs from a project virtual environment (.venv), never the system
# interpreter: `make install` creates it with $(PYTHON) (>= 3.11; the distribution's own
# /usr/bin/python3 is fine, it is only used to create the venv).
PYTHON ?= python3
VENV ?= .venv
CLUSTER_DIR ?= .cluster
NODE_DIR ?= .node
PYTEST_ARGS ?=
# The chart's CRDs are templates (helm upgrade updates them), generated with crds/.
CHART_CRDS := charts/pagerbridge/templates/crds

VENV_BIN := $(abspath $(VENV))/bin
PY := $(VENV_BIN)/python
# The venv's console scripts (pagerbridge, pytest, ruff, mypy, hadolint) come first on PATH
# for every target, so subprocesses started by tests find them too.
export PATH := $(VENV_BIN):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))

.DEFAULT_GOAL := help
.PHONY: help install tools image node-up node-down node-status test-realnode test test-unit test-e2e lint format crds crds-check lock cluster-up cluster-down cluster-status demo

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv and install pagerbridge (editable) with its test and lint extras

# Re-run only when the dependency declarations change: a second `make install` is a no-op.
$(VENV)/.installed: pyproject.toml devkit/pyproject.toml requirements/dev.lock hack/venv.sh
	PYTHON="$(PYTHON)" VENV="$(VENV)" bash hack/venv.sh
	@touch $@

tools: ## build/cache etcd, kube-apiserver, kube-controller-manager, kubectl, helm, promtool (once)
	bash hack/controlplane/build.sh
	bash hack/promtool/build.sh

test: install ## all tests: unit + e2e against a local control plane (or $PAGERBRIDGE_E2E_KUBECONFIG) + realnode (Linux, root)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: install ## unit tests only
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

test-e2e: install ## e2e tests only
	$(PY) -m pytest -q -m e2e tests/e2e $(PYTEST_ARGS)

lint: install ## ruff, ruff format --check, mypy --strict, import layers, CRDs up to date
	$(VENV_BIN)/ruff check operator devkit tests
	$(VENV_BIN)/ruff format --check operator devkit tests
	$(VENV_BIN)/mypy
	$(VENV_BIN)/lint-imports
	$(PY) -m pagerbridge crds --output-dir crds --chart-templates-dir $(CHART_CRDS) --check

format: install ## apply ruff's formatting and fixes
	$(VENV_BIN)/ruff format operator devkit tests
	$(VENV_BIN)/ruff check --fix operator devkit tests

crds: install ## regenerate crds/*.yaml and the chart's CRD templates from the models
	$(PY) -m pagerbridge crds --output-dir crds --chart-templates-dir $(CHART_CRDS)

crds-check: install ## exit 1 when crds/ or the chart's CRD templates are stale
	$(PY) -m pagerbridge crds --output-dir crds --chart-templates-dir $(CHART_CRDS) --check

lock: install ## regenerate requirements/*.lock (hash-pinned, from pyproject.toml; needs PyPI)
	bash hack/lock.sh

cluster-up: install ## start etcd + kube-apiserver + controller-manager in the background; kubeconfig in .cluster/
	$(PY) -m pagerbridge_devkit.localcluster up --dir $(CLUSTER_DIR)

cluster-down: install ## stop the local control plane and remove .cluster/
	$(PY) -m pagerbridge_devkit.localcluster down --dir $(CLUSTER_DIR)

node-up: install ## one real node for the running cluster-up plane: containerd, kubelet, scheduler, kube-proxy (Linux, root)
	bash hack/node/install-runtime.sh
	bash hack/node/build.sh >/dev/null
	$(PY) -m pagerbridge_devkit.localcluster node-up --dir $(CLUSTER_DIR) --node-dir $(NODE_DIR)

node-down: install ## stop the real node and undo every change it made to the machine
	$(PY) -m pagerbridge_devkit.localcluster node-down --node-dir $(NODE_DIR)

node-status: install ## show the real node's processes
	$(PY) -m pagerbridge_devkit.localcluster node-status --node-dir $(NODE_DIR)

image: install ## build the Dockerfile with buildah (base from debootstrap; no registry); import into the node
	bash hack/node/install-runtime.sh
	bash hack/node/image.sh

test-realnode: install ## the realnode tier only (Linux, root; builds node binaries and the image)
	$(PY) -m pytest -q -m realnode tests/realnode $(PYTEST_ARGS)

cluster-status: install ## show the local control plane's processes
	$(PY) -m pagerbridge_devkit.localcluster status --dir $(CLUSTER_DIR)

demo: install ## play an incident's life end to end (pagerbridge demo)
	$(PY) -m pagerbridge demo
