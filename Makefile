# The two commands of the README: `make demo` and `make test`. Each sets up .venv on a fresh machine
# (`make venv` alone does only that; `make venv TORCH=cpu` without the CUDA libraries).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# TORCH=cpu: PyTorch's CPU-only build, for machines without an NVIDIA GPU. It leaves out the CUDA libraries
# (torch, nvidia-*, cuda-*, triton: 5.3 GB of the 7.1 GB .venv) and takes torch/torchvision at the pinned
# versions from PyTorch's CPU index; the rest of requirements.txt is installed as pinned.
TORCH ?= cuda
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
CPU_REQUIREMENTS := $(VENV)/requirements-without-cuda.txt
CUDA_PACKAGES := ^(torch|torchvision|triton|nvidia-[a-z0-9-]*|cuda-[a-z-]*)==

.PHONY: demo test lint gpu-test clean venv

venv: $(STAMP)

ifeq ($(TORCH),cpu)
$(STAMP): $(CPU_REQUIREMENTS)
endif
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifeq ($(TORCH),cpu)
	$(PY) -m pip install --quiet --index-url $(TORCH_CPU_INDEX) $$(grep -E '^(torch|torchvision)==' requirements.txt)
	$(PY) -m pip install --quiet -r $(CPU_REQUIREMENTS)
else
	$(PY) -m pip install --quiet -r requirements.txt
endif
	touch $(STAMP)

# requirements.txt without the CUDA build of torch and the libraries only it needs (TORCH=cpu)
$(CPU_REQUIREMENTS): requirements.txt
	mkdir -p $(dir $@)
	grep -v -E '$(CUDA_PACKAGES)' requirements.txt > $@

# Test-only extras: Ray (an optional extra of the product) for the batch tests, and the Khronos glTF
# Validator (npm, pinned by tests/node/package-lock.json) for the export tests.
$(TEST_STAMP): $(STAMP) requirements-ray.txt tests/node/package-lock.json
	$(PY) -m pip install --quiet -r requirements-ray.txt
	npm ci --prefix tests/node --no-audit --no-fund --silent
	touch $(TEST_STAMP)

# Without weights and no way to fetch them the script says so in one line (exit 4); make adds its own line.
demo: $(STAMP)
	@$(PY) scripts/demo.py

# Two pytest-xdist workers (CI has 2 cores; each test runs torch on one thread): modules stay whole on one worker.
test: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not gpu" -n 2 --dist loadgroup $(PYTEST_ARGS)

gpu-test:
	python3 -m pytest -m gpu $(PYTEST_ARGS)

clean:
	rm -rf out dist .pytest_cache .ruff_cache
