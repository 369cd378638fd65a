# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv in the checkout on first use.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: demo test lint bench format

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/demo.ipynb

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The real serving software the tests stream from (llama-server, its model, LiteLLM, the AI SDK)
# is installed into a cache outside the checkout: minutes the first time, seconds after.
test: lint
	PYTHON=python3 bash tests/servers/provision.sh
	node --test tests/js/
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sse.py
	$(BIN)/python benchmarks/bench_stream_cpu.py
	$(BIN)/python benchmarks/bench_pacing.py
	$(BIN)/python benchmarks/bench_render.py
	$(BIN)/python benchmarks/bench_widget_cpu.py
	$(BIN)/python benchmarks/bench_kernel_cost.py
