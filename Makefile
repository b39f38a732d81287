# Fresh machine with only Python:  make run   |   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.llamarun-installed
ARGS   ?= smollm2 "What is the capital of France? Answer in one word."
PYTEST_ARGS ?=

.PHONY: run test install model bench clean browser proto reliability leakcheck

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

LLAMA_CPP_PIN := llama-cpp-python==0.3.36
# Build flags for llama.cpp (see scripts/cmake-args; set CMAKE_ARGS for a GPU backend).
LLAMA_CMAKE_ARGS := $(shell sh scripts/cmake-args)
WHEEL_KEY := $(shell printf '%s %s' '$(LLAMA_CPP_PIN)' '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
WHEELHOUSE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llamarun/wheels/$(WHEEL_KEY)

# The first install builds llama.cpp from source (about 6 minutes on 2 cores) into a
# wheelhouse keyed by the pin and the build flags; later installs reuse that wheel.
$(WHEELHOUSE)/.built: | $(BIN)/python
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir \
		--no-binary llama-cpp-python -w $(WHEELHOUSE) '$(LLAMA_CPP_PIN)'
	touch $@

$(STAMP): pyproject.toml setup.py src/llamarun/engine/_fastdraw.c $(WHEELHOUSE)/.built | $(BIN)/python
	$(BIN)/python -m pip install --quiet --find-links $(WHEELHOUSE) '$(LLAMA_CPP_PIN)'
	$(BIN)/python -m pip install --quiet --find-links $(WHEELHOUSE) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# What only the tests need beyond the install: the cluster extra (Ray Serve, about 700 MB).
TEST_STAMP := $(VENV)/.llamarun-test-installed
$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --find-links $(WHEELHOUSE) -e '.[test,cluster]'
	touch $(TEST_STAMP)

model: install
	$(BIN)/llamarun pull smollm2

run: model
	$(BIN)/llamarun run $(ARGS)

# The web page tests (tests/web, marker "browser") drive Debian's chromium; as root it is installed
# here when missing, otherwise those tests fail naming the command to run.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; \
		else echo "chromium is missing: the browser tests will fail; run: sudo apt-get install -y chromium"; fi; \
	fi

test: model browser $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The reliability suite's long run (2,000 requests arriving over 10 minutes, about 13 minutes with the rest): its figures go to
# docs/reliability-figures.json, which docs/reliability.md quotes.
reliability: model $(TEST_STAMP)
	rm -f docs/reliability-figures.json
	LLAMARUN_SOAK_REQUESTS=2000 LLAMARUN_SOAK_SECONDS=600 LLAMARUN_RELIABILITY_FIGURES=$(CURDIR)/docs/reliability-figures.json \
		$(BIN)/python -m pytest -m reliability tests/reliability $(PYTEST_ARGS)

# The engine's load/generate/close loop under valgrind (LEAKCHECK_CYCLES cycles, about 3 s each):
# definitely-lost bytes and memory errors from llamarun's native calls must be zero
# (scripts/leakcheck_report.py; tests/reliability/valgrind-python.supp hides CPython's known records). valgrind cannot run AVX-512
# code ("Illegal instruction"), so the loop runs in its own venv on llama.cpp built for AVX2 only
# (built once into its own wheelhouse, about 6 minutes on 2 cores).
LEAKCHECK_VENV := .venv-leakcheck
LEAKCHECK_CYCLES ?= 20
LEAKCHECK_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
	-DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF
LEAKCHECK_KEY := $(shell printf '%s %s' '$(LLAMA_CPP_PIN)' '$(LEAKCHECK_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
LEAKCHECK_WHEELHOUSE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llamarun/wheels/leakcheck-avx2-$(LEAKCHECK_KEY)
$(LEAKCHECK_VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(LEAKCHECK_VENV)
	$(LEAKCHECK_VENV)/bin/python -m pip install --quiet --upgrade pip
	mkdir -p $(LEAKCHECK_WHEELHOUSE)
	test -n "$$(ls $(LEAKCHECK_WHEELHOUSE)/llama_cpp_python-*.whl 2>/dev/null)" || \
		CMAKE_ARGS='$(LEAKCHECK_CMAKE_ARGS)' $(LEAKCHECK_VENV)/bin/python -m pip wheel --quiet --no-deps \
		--no-cache-dir --no-binary llama-cpp-python -w $(LEAKCHECK_WHEELHOUSE) '$(LLAMA_CPP_PIN)'
	$(LEAKCHECK_VENV)/bin/python -m pip install --quiet --find-links $(LEAKCHECK_WHEELHOUSE) '$(LLAMA_CPP_PIN)' -e .
	touch $@

leakcheck: $(LEAKCHECK_VENV)/.installed
	@command -v valgrind >/dev/null || { echo "valgrind is missing: run sudo apt-get install -y valgrind"; exit 1; }
	PYTHONMALLOC=malloc valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=40 \
		--suppressions=tests/reliability/valgrind-python.supp --log-file=leakcheck.log \
		$(LEAKCHECK_VENV)/bin/python tests/reliability/leakcheck.py $(LEAKCHECK_CYCLES)
	$(LEAKCHECK_VENV)/bin/python scripts/leakcheck_report.py leakcheck.log

bench: model
	$(BIN)/python benchmarks/bench_engine.py

# The gRPC service's Python code, generated from proto/ (committed;
# tests/grpc/test_server.py::test_generated_code_matches_the_proto fails when it is stale).
# grpcio-tools is in the test extra; the package is src/llamarun/grpc/v1.
proto: | $(BIN)/python
	$(BIN)/python -m grpc_tools.protoc -Illamarun/grpc/v1=proto/llamarun/v1 --python_out=src --pyi_out=src \
		--grpc_python_out=src proto/llamarun/v1/llamarun.proto

clean:
	rm -rf $(VENV) $(LEAKCHECK_VENV) build *.egg-info src/*.egg-info src/llamarun/engine/_fastdraw.*.so
