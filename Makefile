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
# Corpus size (1 = about 7 h); empty: tools/run_study.py picks the preset's (0.02 for smoke).
CORPUS_SCALE ?=
# Debian packages the project uses: TTS engines and sentences for the stand-in corpus, a browser for the
# figure check, real recorded speech for the loader smoke test, MathJax 2 and its fonts for the book's
# equations.
# The first three are what the notebooks need to generate the corpus; apt.txt gives Binder the same three.
CORPUS_APT_PACKAGES := espeak-ng flite wordnet-base
APT_PACKAGES := $(CORPUS_APT_PACKAGES) chromium pocketsphinx-testdata libjs-mathjax fonts-mathjax
# Text notebooks (jupytext MyST) and their .ipynb forms (committed: the launch buttons open them; --update keeps
# their cell ids, so an unchanged source writes an identical file).
NOTEBOOK_SOURCES := $(wildcard notebooks/[0-9][0-9]_*.md)
NOTEBOOKS := $(NOTEBOOK_SOURCES:.md=.ipynb)
BOOK_HTML := $(if $(filter study,$(PRESET)),book/_build/html,book/_build/$(PRESET)/_build/html)

.PHONY: help install apt notebooks study corpus book book-check test test-fast clean-book benchmark
.DEFAULT_GOAL := help

help:
	@sed -n '1,5p' Makefile | sed 's/^# \{0,1\}//'
	@echo "Other targets: install apt notebooks corpus book book-check benchmark test-fast clean-book"
	@echo "Variables: PRESET=smoke|lab|study|paper (default study), WORK=folder for corpus and checkpoints (default work)"

# --no-compile: no .pyc for all of torch & co. up front (Python writes them on first import): about half the
# install CPU time and 0.3 GB less.
$(STAMP): requirements.txt pyproject.toml tools/fix_torchaudio.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile --upgrade-strategy only-if-needed -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python tools/fix_torchaudio.py
	$(BIN)/python -m pip check
	@touch $(STAMP)

install: $(STAMP) apt notebooks

apt:
	@tools/ensure_apt.sh $(APT_PACKAGES)

notebooks: $(NOTEBOOKS)

notebooks/%.ipynb: notebooks/%.md $(STAMP)
	$(BIN)/jupytext --quiet --update --to ipynb --output $@ $<
	@touch $@  # --update leaves an unchanged file as it was: its date says it is up to date

corpus: install
	$(BIN)/compress-lib corpus --out $(WORK)/corpus --scale $(or $(CORPUS_SCALE),1)

study: install
	$(BIN)/python tools/run_study.py --preset $(PRESET) --work $(WORK) $(if $(CORPUS_SCALE),--corpus-scale $(CORPUS_SCALE))

book: install
	$(BIN)/python tools/build_book.py --preset $(PRESET)

book-check: book
	$(BIN)/python tools/check_figures.py $(BOOK_HTML)

benchmark: install
	$(BIN)/python benchmarks/efficiency.py

# Tests run in TEST_JOBS worker processes (pytest-xdist), one test file per worker at a time: the files' own
# module-level fixtures and their order stay as written.
TEST_JOBS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile -m "not slow and not browser"

clean-book:
	rm -rf book/_build book/_static/plotly.min.js book/_static/mathjax
