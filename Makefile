# The README's two commands: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

# A Python >= 3.12: the first of these that is one (pyenv's shims honour .python-version).
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

# Tests run on the real services; override these to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/portal
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test check fast-tier install install-dev migrate demo lint typecheck audit policy lock bench clean

# Every install is from a lock (docs/dependencies.md, "Locks and audit"): these versions, hashes
# checked, nothing outside it (--no-deps), so the venv, CI and the image (Dockerfile) run the
# same code every time. The portal itself is then installed editable, without dependencies.
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev-lock.txt
CHECKOV_LOCK := requirements/checkov-lock.txt
PIP_LOCKED = $(PY) -m pip install --quiet --require-hashes --no-deps -r

$(VENV)/.installed: pyproject.toml $(LOCK)
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 not found (tried python3.13, python3.12, python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed $(DEV_LOCK)
	$(PIP_LOCKED) $(DEV_LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# checkov in a venv of its own: its pins (packaging < 24) would hold back the portal's
# Celery, kombu, redis and pytest (docs/dependencies.md).
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
$(CHECKOV_VENV)/.installed: $(CHECKOV_LOCK) | $(VENV)/.installed
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r $(CHECKOV_LOCK)
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Where `make run` listens: `make run PORT=9000`, or `make run ADDR=0.0.0.0:8000`.
PORT ?= 8000
ADDR ?= 127.0.0.1:$(PORT)
# The demo's checks probe the portal's own /demo/ targets, where the web server listens (an
# address that listens everywhere is reached on loopback).
DEMO_ADDR = $(subst [::],[::1],$(subst 0.0.0.0,127.0.0.1,$(ADDR)))

# Embedded mode unless DATABASE_URL / REDIS_URL are set: SQLite and a filesystem broker in var/.
# portal.devenv first records the mode (and DEBUG, a key) in .env for commands in other shells.
run: export DEBUG ?= true
# Links in notifications point where this run listens.
run: export PORTAL_BASE_URL ?= http://$(DEMO_ADDR)
run: install
	$(PY) -m portal.devenv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py register_self
	$(PY) manage.py load_demo --base-url http://$(DEMO_ADDR)
	$(PY) manage.py runportal --addr $(ADDR)

# How the suite runs on PostgreSQL and Redis, in parallel (pytest-xdist: each worker has its
# own test database and Redis database, tests/parallel.py) as far as what is measured allows:
# the system tier's tests that start processes and wait on them three at a time, those whose
# deadlines are the promise alone (tests/conftest.py says which).
PYTEST_PG = PORTAL_ENV_FILE= DEBUG=true DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" $(PY) -m pytest
PARALLEL = -n 3 --dist worksteal

# The suite's parts with an embedded-mode branch of their own (marked sqlite), on SQLite as
# `make run` without DATABASE_URL runs them.
PYTEST_SQLITE = PORTAL_ENV_FILE= PORTAL_TEST_DATABASE=sqlite DEBUG=true \
	DATABASE_URL="sqlite:///$(CURDIR)/var/test.sqlite3" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
	$(PY) -m pytest

# The whole suite: on PostgreSQL the fast tier with the system tier's tests that measure
# nothing (three at a time); then those that start processes and wait on them (three at a
# time) while the SQLite part runs beside them (its own database file and Redis index; its
# output is shown when both end); then the tests whose deadlines are the promise, alone, on
# PostgreSQL and then on SQLite. (Exit status 5: ARGS chose no such test.)
test: install-dev
	$(PYTEST_PG) -m "not processes and not serial" $(PARALLEL) $(ARGS) || [ $$? -eq 5 ]
	mkdir -p var
	$(PYTEST_SQLITE) -m "sqlite and not serial" $(ARGS) >var/test-sqlite.log 2>&1 & lite=$$!; \
	$(PYTEST_PG) -m processes $(PARALLEL) $(ARGS); pg=$$?; \
	wait $$lite; sqlite=$$?; echo "--- the SQLite part, run beside it:"; cat var/test-sqlite.log; \
	{ [ $$pg -eq 0 ] || [ $$pg -eq 5 ]; } && { [ $$sqlite -eq 0 ] || [ $$sqlite -eq 5 ]; }
	$(PYTEST_PG) -m serial $(ARGS) || [ $$? -eq 5 ]
	$(PYTEST_SQLITE) -m "sqlite and serial" $(ARGS) || [ $$? -eq 5 ]

# The type check: mypy with django-stubs over the core and the apps' domain modules (what it
# covers and leaves out, and why: [tool.mypy] in pyproject.toml). Its plugin loads the settings.
TYPECHECK = PORTAL_ENV_FILE= DEBUG=true $(PY) -m mypy

# Before a commit: lint (the type check with it) beside every test outside the system tier,
# in parallel; both must pass. Meant to stay under 3 minutes on this machine's two cores
# (README, "Tests": measured). Lines of the two are kept whole (-Oline).
check: install-dev
	$(MAKE) --no-print-directory -j2 -Oline lint fast-tier

# The fast tier alone (what `make check` runs beside lint).
fast-tier: install-dev
	$(PYTEST_PG) -m "not system" $(PARALLEL) $(ARGS) || [ $$? -eq 5 ]

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	PORTAL_ENV_FILE= DEBUG=true $(PY) manage.py makemigrations --check --dry-run
	$(TYPECHECK)
	$(MAKE) --no-print-directory policy audit

typecheck: install-dev
	$(TYPECHECK)

# Policy: checkov over deploy/, the Dockerfile and docker-compose.yml; each rule it skips is
# written down with its reason in .checkov.yaml.
policy: $(CHECKOV_VENV)/.installed
	$(CHECKOV) --config-file .checkov.yaml

# The locked dependencies against known vulnerabilities (pip-audit): findings answered in
# requirements/audit-ignore.txt. Says so, and passes, when the vulnerability service cannot be
# reached; AUDIT_REQUIRE_SERVICE=1 makes that fail (requirements/audit.py).
audit: install-dev
	$(PY) requirements/audit.py

# Write the locks again from pyproject.toml (after changing a dependency): versions already
# locked are kept where they still fit; `make lock ARGS=--upgrade` takes the newest.
PIP_COMPILE = $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-find-links --no-emit-index-url $(ARGS)
lock: install-dev
	$(PIP_COMPILE) --extra dev -o $(DEV_LOCK) pyproject.toml
	cp $(DEV_LOCK) $(LOCK)
	$(PIP_COMPILE) -o $(LOCK) pyproject.toml
	$(PIP_COMPILE) -o $(CHECKOV_LOCK) requirements/checkov.in

bench: install-dev
	PORTAL_ENV_FILE= DEBUG=true DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" $(PY) bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) var staticfiles
