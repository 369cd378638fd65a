# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv in the checkout on first use.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: demo test test-fast lint bench format constraints test-newest-sdks protocol picture

# Every dependency at the version pinned in constraints.txt: a fresh machine installs what
# main was tested with, and a new release of a dependency cannot turn it red.
$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[demo,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/demo.ipynb

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/mypy src

# The real serving software the tests stream from (llama-server, its model, LiteLLM, the AI SDK)
# is installed into a cache outside the checkout: minutes the first time, seconds after.
test: lint
	PYTHON=python3 bash tests/servers/provision.sh
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	node --test tests/js/
	$(BIN)/pytest

# widget.js's copy of the protocol (constants and typedefs), written from the one declaration,
# streamchat/_messages.py; tests/test_protocol.py fails while the two differ.
protocol: $(STAMP)
	$(BIN)/python tests/js/make_protocol.py

# The unit tier, in under two minutes on a loaded 2-core machine: no browser, no real serving
# software or nginx, no load and nothing that takes seconds (the marks in pyproject.toml).
# No lint and no provisioning: what a person runs while they work.
UNIT := not browser and not nginx and not real_servers and not load and not slow

test-fast: $(STAMP)
	$(BIN)/pytest -m "$(UNIT)"

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks tools
	$(BIN)/ruff format src tests benchmarks tools

# Refresh the pins (by hand, when you mean to move to newer versions): the newest versions
# the extras allow, installed into .venv, then frozen. Run `make test` before committing.
constraints:
	$(BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[demo,test]'
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } \
	  > constraints.new && mv constraints.new constraints.txt
	touch $(STAMP)

# The behaviour that depends on a third-party SDK (its stream objects, its errors and what
# they carry) on the newest releases, unpinned, in a venv of its own: a release that changes
# a shape shows here, not as a red main after someone refreshes the pins.
NEWEST := .venv-newest
SDKS := openai anthropic google-genai ollama litellm langchain-core transformers numpy
SDK_TESTS := tests/test_sources.py tests/test_secrets.py tests/test_secrets_sources.py \
  tests/test_widget_sources.py

test-newest-sdks:
	test -x $(NEWEST)/bin/python || python3 -m venv $(NEWEST)
	$(NEWEST)/bin/python -m pip install --quiet --upgrade pip
	$(NEWEST)/bin/python -m pip install --quiet --upgrade -e . pytest pytest-timeout hypothesis \
	  fastapi sse-starlette $(SDKS)
	$(NEWEST)/bin/python -m pip list --format=freeze 2>/dev/null \
	  | grep -i -E '^($(subst $(eval) ,|,$(SDKS)))=='
	CI=true $(NEWEST)/bin/pytest -p no:cacheprovider $(SDK_TESTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sse.py
	$(BIN)/python benchmarks/bench_stream_cpu.py
	$(BIN)/python benchmarks/bench_pacing.py
	$(BIN)/python benchmarks/bench_render.py
	$(BIN)/python benchmarks/bench_widget_cpu.py
	$(BIN)/python benchmarks/bench_kernel_cost.py
	$(BIN)/python benchmarks/bench_browser.py --scale quick
	$(BIN)/python benchmarks/bench_turn_end.py

# The README's picture (docs/img/chat.png): the demo chat typing an answer in JupyterLab,
# taken in headless Chromium as the browser tests run it. Remake it when the look changes.
picture: $(STAMP)
	$(BIN)/python tools/readme_picture.py
