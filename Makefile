# The two commands of the README: `make demo` and `make test`. Each sets up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint gpu-test clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# Test-only extras: Ray (an optional extra of the product) for the batch tests, and the Khronos glTF
# Validator (npm, pinned by tests/node/package-lock.json) for the export tests.
$(TEST_STAMP): $(STAMP) requirements-ray.txt tests/node/package-lock.json
	$(PY) -m pip install --quiet -r requirements-ray.txt
	npm ci --prefix tests/node --no-audit --no-fund --silent
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

# Two pytest-xdist workers (CI has 2 cores; each test runs torch on one thread): modules stay whole on one worker.
test: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not gpu" -n 2 --dist loadgroup $(PYTEST_ARGS)

gpu-test:
	python3 -m pytest -m gpu $(PYTEST_ARGS)

clean:
	rm -rf out dist .pytest_cache .ruff_cache
