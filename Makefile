# Two commands do everything (see README.md):
#   make study   install, generate the stand-in corpus, run the default study, build the book
#   make test    install, run the whole test suite
# Every target is idempotent: what is already built is reused.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= study
WORK ?= work
CORPUS_SCALE ?= 1
# Debian packages the project uses: TTS engines and sentences for the stand-in corpus, a browser for the
# figure check, real recorded speech for the loader smoke test.
APT_PACKAGES := espeak-ng flite wordnet-base chromium pocketsphinx-testdata

.PHONY: help install apt study corpus book book-check test test-fast clean-book benchmark
.DEFAULT_GOAL := help

help:
	@sed -n '1,5p' Makefile | sed 's/^# \{0,1\}//'
	@echo "Other targets: install apt corpus book book-check benchmark test-fast clean-book"

$(STAMP): requirements.txt pyproject.toml tools/fix_torchaudio.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade-strategy only-if-needed -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python tools/fix_torchaudio.py
	$(BIN)/python -m pip check
	@touch $(STAMP)

install: $(STAMP) apt

apt:
	@tools/ensure_apt.sh $(APT_PACKAGES)

corpus: install
	$(BIN)/compress-lib corpus --out $(WORK)/corpus --scale $(CORPUS_SCALE)

study: install
	$(BIN)/python tools/run_study.py --preset $(PRESET) --work $(WORK)

book: install
	$(BIN)/python tools/build_book.py

book-check: book
	$(BIN)/python tools/check_figures.py book/_build/html

benchmark: install
	$(BIN)/python benchmarks/efficiency.py

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

clean-book:
	rm -rf book/_build
