# Two commands on a fresh machine (see README.md):
#   make demo   sets everything up, then runs the lab's main job
#   make test   sets everything up, then runs the tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup system-packages demo server test lint notebooks clean

setup: system-packages $(VENV)/.installed

system-packages:
	@scripts/install-system-packages.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

demo: setup
	$(PY) -m tcpchatx demo

server: setup
	$(PY) -m tcpchatx server

test: setup
	$(PY) -m pytest

notebooks: setup  # store every notebook executed in reference mode (CI checks they are fresh)
	$(PY) scripts/store_notebook_outputs.py

lint: setup
	$(VENV)/bin/ruff check .  # the package, tests, benchmarks and notebooks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
