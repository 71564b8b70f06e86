# Workflow Hub — `make run` sets up and runs the product; `make test` sets up and runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv comes from PyPI into a project-local tools venv when it is not on PATH already.
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: help install run test lint bench test-real-llm bench-agents clean sandbox-tools

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

$(STAMP): pyproject.toml uv.lock libs/common/pyproject.toml cli/pyproject.toml services/*/pyproject.toml | $(UV)
	$(UV) sync --frozen --all-packages
	@touch $@

install: $(STAMP) ## Create .venv with every service and the `wf` command (idempotent)
	@echo "installed: $(VENV)/bin/wf"

run: install ## Install if needed, then start everything with `wf start`
	$(VENV)/bin/wf start $(ARGS)

# The agents' tools for the bubblewrap sandbox (which uses this machine's /usr): a venv on Debian's
# python3 with bandit, pip-audit, pytest and playwright (Chromium is Debian's /usr/bin/chromium), bound
# read-only into each sandbox through sandbox.tools_dir. Exact versions (transitive too) are in
# deploy/sandbox/tools.txt, compiled from tools.in; `uv pip sync` makes the venv hold exactly those.
SANDBOX_TOOLS := .tools/sandbox
SANDBOX_PYTHON ?= /usr/bin/python3
SANDBOX_REQUIREMENTS := deploy/sandbox/tools.txt
$(SANDBOX_TOOLS)/.installed: $(SANDBOX_REQUIREMENTS) | $(UV)
	$(UV) venv -q --allow-existing --python $(SANDBOX_PYTHON) --system-site-packages $(SANDBOX_TOOLS)
	$(UV) pip sync -q --python $(SANDBOX_TOOLS)/bin/python $(SANDBOX_REQUIREMENTS)
	@touch $@

sandbox-tools: $(SANDBOX_TOOLS)/.installed ## Tools for the bubblewrap sandbox (bandit, pip-audit, playwright)

test: install sandbox-tools ## Install if needed, then run the whole test suite
	$(VENV)/bin/python -m pytest $(ARGS)

lint: install ## ruff (rules and format) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy libs/common/src cli/src services/*/src tests

bench: install ## Benchmarks: JetStream latency, orchestration overhead, transitions/s
	$(VENV)/bin/python -m benchmarks $(ARGS)

test-real-llm: install ## Opt-in: PM and DEV against a real local model (first run builds llama-cpp-python, ~13 min)
	$(VENV)/bin/python scripts/real_llm.py test $(ARGS)

bench-agents: install sandbox-tools ## Opt-in: single agent vs pipeline on benchmarks/agent_tasks with the local model (ARGS=--record)
	$(VENV)/bin/python scripts/real_llm.py bench $(ARGS)

clean: ## Remove the virtual environments and caches
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
