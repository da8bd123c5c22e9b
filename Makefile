PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: run test bench install

# Create the virtualenv and install the project (with the dev extra) when pyproject.toml changes.
$(INSTALLED): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	@touch $(INSTALLED)

install: $(INSTALLED)

# Web, worker, beat and Flower together; embedded Redis/SQLite unless REDIS_URL/DATABASE_URL are set.
run: $(INSTALLED)
	$(VENV)/bin/python config/devstack.py run

# The test suite against REDIS_URL/DATABASE_URL, or an embedded Redis and SQLite when unset.
test: $(INSTALLED)
	$(VENV)/bin/python config/devstack.py exec -- $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Benchmarks (see bench/README.md).
bench: $(INSTALLED)
	$(VENV)/bin/python config/devstack.py exec -- $(VENV)/bin/python -m bench $(BENCH_ARGS)
