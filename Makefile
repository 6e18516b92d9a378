# The two commands of the README: `make demo` and `make test`. Each sets up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint gpu-test clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not gpu" $(PYTEST_ARGS)

gpu-test:
	python3 -m pytest -m gpu $(PYTEST_ARGS)

clean:
	rm -rf out dist .pytest_cache .ruff_cache
