# modelpier: two commands. `make up` runs the platform; `make test` runs every check and test.
# Both work from a fresh clone on a fresh machine (Python 3.11, pip, gcc, git): they create .venv and
# install the package, each with what it needs (see UP_EXTRAS below); `make test` also installs the system
# services the tests need (PostgreSQL, ...) when root.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# `make test` installs the developer stack ('.[dev]': every flavor incl. torch, the browser, linters, ~2.9 GB);
# `make up` only what the platform and its iris example need ('.[sklearn]', ~0.4 GB). Serve other flavors with
# `make up UP_EXTRAS=sklearn,xgboost` (or `all`); docs/serving.md lists which extra each flavor needs.
UP_EXTRAS ?= sklearn
comma    := ,
STAMP    := $(VENV)/.installed
UP_STAMP := $(VENV)/.installed-up-$(subst $(comma),-,$(UP_EXTRAS))

constraints: $(STAMP)
	( sed -n 1,3p constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^py-spy' | sed 's/+cpu$$//' ) > constraints.new
	mv constraints.new constraints.txt

.PHONY: constraints up test k8s-assets install lint typecheck importlint unit integration generate clean bench-registry help screenshots test-k8s-node

help:
	@echo "make up     - install the platform ('.[$(UP_EXTRAS)]') and run it with the example model (prints where to look)"
	@echo "make test   - install the developer stack ('.[dev]') and run lint, type checks, layering checks and all tests"
	@echo "make test-k8s-node - only the end-to-end tests on a real Kubernetes node (root, ~7 min; needs ../shared/k8s)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -e '.[dev]' -c constraints.txt
	touch $(STAMP)

$(UP_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -e '.[$(UP_EXTRAS)]' -c constraints.txt
	touch $(UP_STAMP)

install: $(STAMP)

up: $(UP_STAMP)
	$(BIN)/pier up

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

importlint: $(STAMP)
	$(BIN)/lint-imports

system-deps:
	bash scripts/install-system-deps.sh

# The real Kubernetes (v1.28 control plane + node) of ../shared/k8s, when this machine has it: its binaries are
# unpacked once into a cache folder that KUBEBUILDER_ASSETS names, as envtest reads it. Without the folder the
# tests that need a cluster skip, saying why (tests/support/k8s.py).
K8S_SHARED ?= $(firstword $(wildcard ../shared/k8s ../../shared/k8s))
K8S_ASSETS ?= $(HOME)/.cache/modelpier/k8s-assets
ifneq ($(wildcard $(K8S_SHARED)/test-cluster.sh),)
export KUBEBUILDER_ASSETS ?= $(abspath $(K8S_ASSETS))
export PIER_TEST_CLUSTER_SCRIPT ?= $(abspath $(K8S_SHARED))/test-cluster.sh
# The end-to-end tests on a real node (kubelet, containerd; the platform image built in the session) run
# in `make test` too where the cluster recipe is there: ~7 min on one worker, beside the rest.
export PIER_TEST_K8S_NODE ?= 1
test: k8s-assets
endif

k8s-assets:
	@[ -x "$(KUBEBUILDER_ASSETS)/kube-apiserver" ] || "$(PIER_TEST_CLUSTER_SCRIPT)" assets "$(KUBEBUILDER_ASSETS)"

# Three workers, one test file each at a time: the suite mostly waits on real processes (servers,
# replicas, browsers, API servers), so files run side by side; ~21 min on an idle 2-core machine instead
# of well over an hour. A test past its timeout ends its worker and the run goes on
# (tests/support/xdist_recovery.py); should the run itself ever stall, an interrupt after 60 min still
# ends it with the summary of what failed, inside CI's 90.
test: $(STAMP) system-deps lint typecheck importlint
	timeout --signal=INT --kill-after=120 3600 $(BIN)/pytest -p no:cacheprovider -n 3 --dist loadfile --durations=15

# The end-to-end tests on a real node alone (kubelet, containerd, the platform's image built and pushed in
# the session; ~7 min, root): the platform itself running as pods. `make test` runs them as well.
test-k8s-node: $(STAMP) system-deps
	PIER_TEST_K8S_NODE=1 $(BIN)/pytest -p no:cacheprovider tests/integration/kubernetes/test_platform_e2e.py tests/integration/kubernetes/test_backend_node_e2e.py

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

bench-registry: $(STAMP)
	$(BIN)/python benchmarks/registry.py

# Regenerate docs/screenshots/*.png: the dashboard's main pages on a throwaway `pier up`, photographed by
# Debian's Chromium through Playwright (the setup of the dashboard's browser tests).
screenshots: $(STAMP) system-deps
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
