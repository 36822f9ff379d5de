# tradesense-operator — every target installs what it needs first (see `deps`).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
IMAGE ?= tradesense-operator:dev
# The default tier mostly waits on real servers and the emulated API, so 4 workers fit 2 cores (one file per worker).
TEST_WORKERS ?= 4
DEBIAN_PKGS := postgresql redis-server prometheus prometheus-alertmanager chromium chromium-driver
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help deps test test-slow lint crds crds-check run demo image e2e bench bench-scale clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml sandbox/pyproject.toml
	@./scripts/install-system-deps.sh $(DEBIAN_PKGS)
	@test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' -e ./sandbox
	@touch $(STAMP)

deps: $(STAMP) ## venv in .venv, Python packages, Debian packages when missing (as root)

lint: $(STAMP) ## ruff, mypy strict, import-linter layer contracts
	$(VENV)/bin/ruff check operator sandbox tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: $(STAMP) lint crds-check ## the whole default test tier (README's test command)
	./scripts/ensure-services.sh
	$(PY) -m pytest -q -m "not slow and not e2e" -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP) ## fault-injection and long tiers
	./scripts/ensure-services.sh
	$(PY) -m pytest -q -m slow -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

crds: $(STAMP) ## regenerate crds/*.yaml from the pydantic models
	$(PY) -m tradesense_operator.api.crdgen --out crds

crds-check: $(STAMP) ## fail when crds/ drift from the models
	$(PY) -m tradesense_operator.api.crdgen --check crds

run: $(STAMP) ## run the operator against the current kubeconfig context
	$(VENV)/bin/tradesense-operator run

demo: $(STAMP) ## the operator on the embedded emulated cluster with sample incidents
	./scripts/ensure-services.sh
	$(PY) -m tradesense_sandbox.demo

image: ## build the container image (needs a Docker engine)
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "make image: no Docker engine reachable (docker info failed)"; exit 2; }
	docker build -t $(IMAGE) .

e2e: $(STAMP) ## kind cluster + image + deploy + tests/e2e (needs kind and a container engine)
	./scripts/e2e-kind.sh $(IMAGE)

bench: $(STAMP) ## benchmarks that print figures and ratios against a same-run baseline
	$(PY) -m pip install -q -e '.[test,bench]'
	./scripts/ensure-services.sh
	for b in bench/*.py; do $(PY) $$b || exit $$?; done

bench-scale: $(STAMP) ## 1,000 incidents vs a minimal kopf operator on the emulated API (INCIDENTS=N for quick runs)
	$(PY) bench/scale.py --incidents $(or $(INCIDENTS),1000)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
