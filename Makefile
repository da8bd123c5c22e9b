PYTHON ?= python3
VENV := .venv
# One stamp per lock, redone when the lock changes, or pyproject.toml (the project's own install) does.
RUNTIME_INSTALLED := $(VENV)/.runtime-installed
DEV_INSTALLED := $(VENV)/.dev-installed
# pip installs the installer (uv, hashed, requirements/installer.txt); uv installs the locks, a few times
# faster than pip. Both refuse a file whose hash the lock does not list.
UV := $(VENV)/bin/uv
UV_INSTALL := $(UV) pip install --quiet --python $(VENV)/bin/python
# The project itself, editable, after a lock: its dependencies and setuptools come from the lock, never from
# a resolver (so no build isolation either, which would fetch setuptools again).
INSTALL_PROJECT := $(UV_INSTALL) --no-deps --no-build-isolation -e .

.PHONY: run shell test lint bench install lock

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(UV): requirements/installer.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/installer.txt
	@touch $@

# What running needs: the hashed runtime lock ([project] dependencies + the dev stack's embedded Redis and SMTP catcher).
$(RUNTIME_INSTALLED): requirements/runtime.txt pyproject.toml $(UV)
	$(UV_INSTALL) --require-hashes -r requirements/runtime.txt
	$(INSTALL_PROJECT)
	@touch $@

# What testing needs: the hashed dev lock (the runtime pins + pytest, playwright, ruff, mypy, ...).
$(DEV_INSTALLED): requirements/dev.txt pyproject.toml $(UV)
	$(UV_INSTALL) --require-hashes -r requirements/dev.txt
	$(INSTALL_PROJECT)
	@touch $@

# Everything needed for tests.
install: $(DEV_INSTALLED)

# Recompile requirements/*.txt from pyproject.toml, keeping every pin it can; UPGRADE=NAME moves one package.
lock: install
	$(VENV)/bin/python devtools/lock.py $(addprefix --upgrade-package ,$(UPGRADE))

# Web, worker, beat and Flower together; embedded Redis/SQLite unless REDIS_URL/DATABASE_URL are set.
run: $(RUNTIME_INSTALLED)
	$(VENV)/bin/python devtools/devstack.py run

# A Django shell on the same Redis and database as a running `make run` (it writes them to var/run.env).
shell: $(RUNTIME_INSTALLED)
	$(VENV)/bin/python manage.py shell

# The lint and type gate: the locks match pyproject.toml (devtools/lock.py), ruff (lint + format check) over the project, mypy (strict on every app; see pyproject.toml).
lint: install
	$(VENV)/bin/python devtools/lock.py --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The lint gate, then the test suite against REDIS_URL/DATABASE_URL, or an embedded Redis and SQLite when unset.
test: lint
	$(VENV)/bin/python devtools/devstack.py exec -- $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Benchmarks (see bench/README.md).
bench: install
	$(VENV)/bin/python devtools/devstack.py exec -- $(VENV)/bin/python -m bench $(BENCH_ARGS)
