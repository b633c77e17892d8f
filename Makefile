# make run:     install into .venv, migrate, and start the demo (demo/run.sh)
# make test:    install into .venv and run pytest; extra options go in PYTEST_ARGS
# make install: create .venv and install the project with its test and demo extras
# make clean:   remove var/, .venv and the egg-info that the editable install writes
# make bench:   benchmark jwtgate against nginx, HAProxy and django-revproxy; rewrites docs/benchmarks.md

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; a newer pyproject.toml triggers another one.
INSTALL_STAMP := $(VENV)/.jwtgate-installed
PYTEST_ARGS ?=

.PHONY: run test install clean bench

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput
	bash demo/run.sh

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(INSTALL_STAMP)

# bin/pip rather than bin/python marks a finished venv: Debian's python3 without
# the python3-venv package creates bin/python and then fails before installing pip.
$(BIN)/pip:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "jwtgate needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version 2>&1)." >&2; \
		echo "Run make with PYTHON=python3.11 (or newer)." >&2; \
		exit 1; }
	@echo "Creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV) || { \
		echo "Creating $(VENV) failed. On Debian or Ubuntu, install python3-venv and run make again." >&2; \
		exit 1; }

$(INSTALL_STAMP): pyproject.toml | $(BIN)/pip
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[test,demo]'
	touch $(INSTALL_STAMP)

bench: install
	bash bench/run.sh

clean:
	rm -rf var $(VENV) jwtgate.egg-info bench/.venv-peer bench/.venv-tools bench/.venv-gevent bench/.venv-jwtgate bench/.results
