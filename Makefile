# Xiaoer — two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and exactly, so that no resolver pulls a multi-GB CUDA build for the CPU path.
TORCH_SPEC ?= torch==2.13.0
# llama-cpp-python compiles from source: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
# -march=native turns on llama.cpp's AMX kernels on CPUs that have AMX (Sapphire Rapids and newer
# Xeons), and those crash on every prompt of more than one token (segfault in
# ggml_backend_amx_mul_mat, seen on this project's machines): build without them. Not cached,
# so a wheel built with other flags is never reused.
LLAMA_SPEC := $(shell grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml)
LLAMA_CFLAGS ?= $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)

STAMP_RUN := $(VENV)/.xiaoer-run
STAMP_DEV := $(VENV)/.xiaoer-dev
STAMP_INSTALLER := $(VENV)/.xiaoer-installer
# `make installer FLAVOUR=full` also bundles the training stack (torch, transformers, peft).
FLAVOUR ?= lite
BUNDLE := dist/$(if $(filter full,$(FLAVOUR)),xiaoer-full,xiaoer)

.PHONY: run test test-fast setup setup-dev lint typecheck bench clean installer installer-smoke

run: setup
	$(BIN)/xiaoer

test: setup-dev
	$(BIN)/python -m pytest

# The edit-test loop: every test that loads no real model weights (those are marked `slow`).
test-fast: setup-dev
	$(BIN)/python -m pytest -m "not slow" -n auto --maxprocesses 4

setup: $(STAMP_RUN)
setup-dev: $(STAMP_DEV)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Xiaoer needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install "$(TORCH_SPEC)"
	CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" $(BIN)/pip install --no-cache-dir "$(LLAMA_SPEC)"
	$(BIN)/pip install -e ".[hf,teacher]"
	$(BIN)/xiaoer models provision qwen2.5-0.5b qwen2.5-1.5b
	@touch $@

$(STAMP_DEV): $(STAMP_RUN)
	$(BIN)/pip install -e ".[hf,teacher,dev]"
	@touch $@

# The desktop bundle (Linux, one folder): $(BUNDLE)/xiaoer, with installer/linux/ beside it.
installer: $(STAMP_INSTALLER)
	XIAOER_FLAVOUR=$(FLAVOUR) $(BIN)/pyinstaller --noconfirm --clean --distpath dist \
		--workpath build/pyinstaller installer/xiaoer.spec
	cp installer/linux/install.sh installer/linux/xiaoer.desktop installer/xiaoer.png $(BUNDLE)/
	@du -sh $(BUNDLE)

# Starts the built bundle offscreen on a fresh data dir: first-start model assembly, a draft, the
# window with a scored draft (15 s to 2 minutes here, with the load). Not part of `make test`: see README, "Install".
installer-smoke:
	installer/smoke_test.sh $(BUNDLE)

$(STAMP_INSTALLER): $(STAMP_RUN)
	$(BIN)/pip install -e ".[installer]"
	@touch $@

lint: setup-dev
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests

typecheck: setup-dev
	$(BIN)/mypy app

bench: setup
	$(BIN)/xiaoer bench engine

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
