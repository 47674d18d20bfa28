# carebot: `make demo` runs it, `make test` tests it. Both set up whatever is missing first.
SHELL := /bin/bash
VENV := .venv
RASA_VENV := .venv-rasa
PYTHON311 = $(shell scripts/find-python 3.11)
PYTHON310 = $(shell scripts/find-python 3.10)
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: help setup system-packages demo demo-reset test lint bench lock clean
help:
	@echo "make demo   set up, then run carebot on its embedded defaults;  make demo-reset   forget the demo's data"
	@echo "make test   set up, then run every test"
	@echo "make lint   ruff and mypy;  make bench   benchmarks (JSON in var/bench/);  make lock   re-pin"

setup: $(VENV)/.installed $(RASA_VENV)/.installed system-packages

# The browser tests drive the system Chromium (Debian package chromium); Playwright downloads no browser.
system-packages:
	@command -v chromium >/dev/null || { \
	  echo "Installing the Debian package chromium (browser tests)…"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }; \
	  else sudo apt-get install -y -q chromium; fi; }

$(VENV)/.installed: requirements/app.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON311) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -r requirements/app.lock
	$(VENV)/bin/pip install $(PIP_QUIET) --no-deps -e .
	@touch $@

$(RASA_VENV)/.installed: requirements/rasa.lock
	@test -x $(RASA_VENV)/bin/python || $(PYTHON310) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install $(PIP_QUIET) -r requirements/rasa.lock
	@touch $@

demo: setup
	$(VENV)/bin/carebot up --demo

# The demo's data only (database, sandbox X, passwords, logs); the environments and the NLU model stay.
demo-reset: setup
	$(VENV)/bin/carebot demo-reset

test: setup
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check bot knowledge_base handoff tests bench
	$(VENV)/bin/mypy

bench: setup
	@mkdir -p var/bench
	$(VENV)/bin/python -m bench.nlu --json --out var/bench/nlu.json
	$(VENV)/bin/python -m bench.kb --json --rasa --out var/bench/kb.json
	$(VENV)/bin/python -m bench.throughput --json --out var/bench/throughput.json
	$(VENV)/bin/python -m bench.web --json --out var/bench/web.json
	@if [ -n "$$CAREBOT_BENCH_POSTGRES_URL$$CAREBOT_TEST_POSTGRES_URL" ]; then \
	  $(VENV)/bin/python -m bench.handoff --json --out var/bench/handoff.json; \
	  $(VENV)/bin/python -m bench.reports --json --out var/bench/reports.json; \
	else echo "bench.handoff skipped: it needs PostgreSQL (CAREBOT_BENCH_POSTGRES_URL)"; fi

lock:
	rm -rf var/lock && mkdir -p var/lock
	$(PYTHON311) -m venv var/lock/app && var/lock/app/bin/pip install $(PIP_QUIET) -r requirements/app.in
	(echo "# Pinned by 'make lock' from requirements/app.in. Python 3.11."; var/lock/app/bin/pip freeze) > requirements/app.lock
	$(PYTHON310) -m venv var/lock/rasa && var/lock/rasa/bin/pip install $(PIP_QUIET) -r requirements/rasa.in
	(echo "# Pinned by 'make lock' from requirements/rasa.in. Python 3.10."; var/lock/rasa/bin/pip freeze) > requirements/rasa.lock
	rm -rf var/lock

clean:
	rm -rf $(VENV) $(RASA_VENV) var
