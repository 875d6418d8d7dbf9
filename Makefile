# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test migrate worker api bench-skill bench-queue chaos screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

migrate: install
	$(VENV)/bin/alembic upgrade head

# run_server.py applies migrations itself.
run: install
	$(PY) run_server.py

api: migrate
	$(VENV)/bin/uvicorn app.main:app --host $${HOST:-127.0.0.1} --port $${PORT:-8000} --log-config logging.ini

worker: migrate
	$(PY) -m worker

test: install
	$(PY) -m pytest -q

# Every reliability scenario at full size (docs/reliability.md); `make test` runs them small.
chaos: install
	$(PY) -m bench.chaos

# The console's screenshots in docs/console, taken by its browser tests (needs chromium).
screenshots: install
	CONSOLE_SCREENSHOTS=docs/console $(PY) -m pytest -q -p no:randomly tests/browser

clean:
	rm -rf $(VENV) .pytest_cache
