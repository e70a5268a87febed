# shufflebook: `make book` builds the executed HTML book, `make test` runs everything CI runs.
# Both create .venv on first use (Python >= 3.10 as `python3`, or set PYTHON=...).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test execute lint clean help

help:
	@echo "make book     create .venv, execute every notebook, build _build/html (zero warnings)"
	@echo "make test     ruff, unit tests, nbval over every notebook, a warnings-as-errors build"
	@echo "make execute  run each notebook top to bottom and print its wall-clock time"
	@echo "make clean    remove _build (keeps .venv)"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	@touch $(STAMP)

# Jupyter Book caches each notebook's outputs keyed by the notebook's own code. A change to the
# library or the requirements must re-execute them too, so the cache is dropped when those change.
LIBHASH = $(shell cat requirements.txt $$(find shufflelib -name '*.py' | sort) | sha256sum | cut -c1-16)
CACHE   := _build/.jupyter_cache

book: $(STAMP)
	@if [ -d $(CACHE) ] && [ "$$(cat $(CACHE)/.libhash 2>/dev/null)" != "$(LIBHASH)" ]; then \
		echo "shufflelib or requirements changed: re-executing every notebook"; rm -rf $(CACHE); fi
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "$(LIBHASH)" > $(CACHE)/.libhash
	@test -f _build/html/index.html
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: $(STAMP) lint
	$(BIN)/python -m pytest tests book --nbval-lax

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

execute: $(STAMP)
	$(BIN)/python benchmarks/notebook_times.py

clean:
	rm -rf _build
