# Scoreboard: the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
HOST ?= 127.0.0.1
PORT ?= 8000
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
TYPED := core accounts scoreboard leaderboard fraud actions config deploy
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install system-deps bench-deps run test test-faults lint format bench bench-quick stack clean backup restore

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

# The Python environment and the local secrets: after `make install`, `.venv/bin/python
# manage.py ...` works for an operator without `make run` first.
install: $(VENV)/.installed .env

# Debian programs that the tests, the local stack and the benchmarks start (installed
# once when run as root with apt-get; otherwise the one command to run is named).
system-deps:
	@scripts/system-deps nginx chromium

# The benchmarks' programs: nginx for the stack, wrk for reads, pgbench for the write
# baseline (no browser).
bench-deps:
	@scripts/system-deps nginx wrk pgbench

# Local secrets, made once and kept out of git. Written to a temporary file and moved
# into place only if no .env exists yet, so instances started at once share one secret.
.env:
	@umask 077; tmp=$$(mktemp .env.XXXXXX); \
	$(PYTHON) -c 'import secrets; print(f"SECRET_KEY={secrets.token_urlsafe(48)}\nJWT_SIGNING_KEY={secrets.token_urlsafe(48)}")' > $$tmp; \
	mv -n $$tmp $@; rm -f $$tmp; echo "local secrets in .env"

run: install
	$(PY) manage.py bootstrap
	@mkdir -p staticfiles
	LOG_FORMAT=$${LOG_FORMAT:-text} $(VENV)/bin/daphne -b $(HOST) -p $(PORT) config.asgi:application

test: install system-deps
	$(PY) -m pytest -m "not faults" $(PYTEST_ARGS)

# The whole fault suite: the long scenarios that break a running stack (Redis, PostgreSQL,
# a Celery worker, a daphne instance), the long fuzzing runs, and the quick part of it
# that `make test` runs too. Under 10 minutes on a 2-core machine.
test-faults: install system-deps
	FAULTS_LONG=1 $(PY) -m pytest -m "faults or quickfaults" $(PYTEST_ARGS)

# Style, the layers (every import runs downhill: pyproject's import-linter contracts) and
# the types (mypy with django-stubs; strict on core and scoreboard).
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy $(TYPED)

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every figure with its baseline in the same run; bench/results/<UTC time>.json and .md.
# BENCH_DATABASE_URL names the database it recreates (one per checkout on a shared machine).
bench: install bench-deps
	$(PY) -m bench $(BENCH_ARGS)

# The reduced run (reads, writes with pgbench, fan-out at 1,000 viewers), meant to take
# under 2 minutes (bench/README.md says what it took on a loaded machine).
bench-quick: install bench-deps
	$(PY) -m bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache staticfiles

# The real stack on loopback (gunicorn x2, daphne x2, nginx, Celery) on the local
# PostgreSQL and Redis: `make stack` then http://127.0.0.1:8080/.
stack: install system-deps
	$(PY) -m deploy.stack $(STACK_ARGS)

# Backups of PostgreSQL (Redis is rebuilt from it): `make backup` writes
# backups/scoreboard-<time>.dump; `make restore FILE=backups/x.dump` restores it into an
# empty database (RESTORE_ARGS=--replace to overwrite one) and rebuilds the index.
backup: install
	$(PY) manage.py backup $(if $(FILE),--output $(FILE),)

restore: install
	@test -n "$(FILE)" || { echo "usage: make restore FILE=backups/scoreboard-....dump"; exit 2; }
	$(PY) manage.py restore $(FILE) $(RESTORE_ARGS)
