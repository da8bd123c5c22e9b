PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: run shell test lint bench install

# Create the virtualenv and install the project (with the dev extra) when pyproject.toml changes.
$(INSTALLED): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	@touch $(INSTALLED)

install: $(INSTALLED)

# Web, worker, beat and Flower together; embedded Redis/SQLite unless REDIS_URL/DATABASE_URL are set.
run: $(INSTALLED)
	$(VENV)/bin/python devtools/devstack.py run

# A Django shell on the same Redis and database as a running `make run` (it writes them to var/run.env).
shell: $(INSTALLED)
	$(VENV)/bin/python manage.py shell

# The lint and type gate: ruff (lint + format check) over the project, mypy (strict on every app; see pyproject.toml).
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The lint gate, then the test suite against REDIS_URL/DATABASE_URL, or an embedded Redis and SQLite when unset.
test: lint
	$(VENV)/bin/python devtools/devstack.py exec -- $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Benchmarks (see bench/README.md).
bench: $(INSTALLED)
	$(VENV)/bin/python devtools/devstack.py exec -- $(VENV)/bin/python -m bench $(BENCH_ARGS)
