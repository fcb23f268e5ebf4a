# waybillguard — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
# Debian's interpreter is built with PGO/LTO and runs this workload ~25-40% faster
# than an unoptimised one; use it when it can create virtual environments.
PYTHON ?= $(shell /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && echo /usr/bin/python3 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PACKAGES := sqlite3 postgresql fonts-wqy-zenhei poppler-utils chromium
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint typecheck contracts unit deps system-deps bench clean

demo: $(STAMP)
	$(VENV)/bin/waybillguard demo --serve --rows 100000

test: system-deps $(STAMP) lint typecheck contracts unit

# Debian packages the tests need: the sqlite3 shell (tamper tests) and PostgreSQL.
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

deps: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

contracts: $(STAMP)
	$(VENV)/bin/lint-imports

# Two pytest workers (pytest-xdist): one process alone kept ~0.85 of the 2 cores busy,
# the rest was waiting on subprocesses, servers and disks. Each worker has its own
# PostgreSQL and temporary directories; a module's tests stay on one worker (loadscope),
# so module-scoped homes and servers are built once; the longest modules are handed out
# first (tests/conftest.py: LONG_MODULES), not by their number of tests.
unit: $(STAMP)
	$(VENV)/bin/pytest -n 2 --dist loadscope --no-loadscope-reorder

bench: $(STAMP)
	$(VENV)/bin/waybillguard bench ingest --count 1000000 --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
