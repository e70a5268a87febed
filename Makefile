# shufflebook: `make book` builds the executed HTML book, `make test` runs everything CI runs.
# Both create .venv on first use (Python >= 3.10 as `python3`, or set PYTHON=...).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book book-student test test-site lint execute linkcheck cache clean help results

help:
	@echo "make book          create .venv, execute every notebook, build _build/html (zero warnings)"
	@echo "make book-student  the student edition (no solutions) in _build/student/_build/html"
	@echo "make test          ruff, import layers, unit tests, nbval over every notebook, the site in a browser"
	@echo "make test-site     only the site tests (build from the execution cache, browser checks)"
	@echo "make results       train the stored runs of chapters 9-11 (about an hour on 2 cores)"
	@echo "make execute       run each notebook top to bottom and print its wall-clock time"
	@echo "make linkcheck     check the book's external links (needs the internet)"
	@echo "make clean         remove _build (keeps .venv and the downloaded MathJax)"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	@touch $(STAMP)

# Jupyter Book caches each notebook's outputs keyed by the notebook's own code. A change to the
# library, the results store or the requirements must re-execute them too, so the cache is dropped when those change,
# with Sphinx's saved state (.doctrees), without which it would keep the pages it already wrote.
# The stamp is written at once, since everything cached from then on uses the current library.
LIBHASH = $(shell cat requirements.txt pyproject.toml $$(find shufflelib -name '*.py' -o -name manifest.json | LC_ALL=C sort) | sha256sum | cut -c1-16)
CACHE   := _build/.jupyter_cache
STUDENT := _build/student

# One build measures this machine's roofline once (the first chapter that draws it) and every
# chapter reads it from this file (shufflelib.bench.roofline_probe); it goes with the cache.
export SHUFFLEBOOK_ROOFLINE := $(CURDIR)/_build/roofline.json
# Likewise chapter 9 scores the stored networks once and chapter 10 reads its scores
# (shufflelib.results.reevaluate).
export SHUFFLEBOOK_RESCORED := $(CURDIR)/_build/rescored.json

cache:
	@if [ ! -d $(CACHE) ] || [ "$$(cat $(CACHE)/.libhash 2>/dev/null)" != "$(LIBHASH)" ]; then \
		echo "shufflelib or requirements changed: re-executing every notebook"; \
		rm -rf $(CACHE) _build/.doctrees $(STUDENT) $(SHUFFLEBOOK_ROOFLINE) $(SHUFFLEBOOK_ROOFLINE).lock \
			$(SHUFFLEBOOK_RESCORED) $(SHUFFLEBOOK_RESCORED).lock; fi
	@mkdir -p $(CACHE) && echo "$(LIBHASH)" > $(CACHE)/.libhash

# The teacher's edition: exercises with their solutions (the published site).
book: $(STAMP) cache
	$(BIN)/jupyter-book build . -W --keep-going
	@test -f _build/html/index.html || { echo "error: _build/html/index.html was not built"; exit 1; }
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# The student edition: the same sources with hide_solutions, reusing the executed notebooks.
book-student: $(STAMP) cache
	$(BIN)/python _ext/editions.py student $(STUDENT)/_config.yml
	$(BIN)/jupyter-book build . --config $(STUDENT)/_config.yml --path-output $(STUDENT) -W --keep-going
	@test -f $(STUDENT)/_build/html/index.html || { echo "error: the student edition was not built"; exit 1; }
	@echo "The student edition is at $(CURDIR)/$(STUDENT)/_build/html/index.html"

# nbval executes each notebook once; tests/nbval_cache.py stores what it ran in the execution
# cache, and the site tests (run last) build the book from that cache instead of running it again.
test: $(STAMP) lint cache
	$(BIN)/python -m pytest tests book --nbval-lax -p tests.nbval_cache --durations=25

test-site: $(STAMP) cache
	$(BIN)/python -m pytest tests/test_site.py

# ruff, and the layers of shufflelib (.importlinter: each module imports only from below it).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# The results store (shufflelib/store): chapters 9-11's networks trained to a plateau over three seeds
# with python -m shufflelib.train. Only runs missing from the store, or made with other training
# code, are trained; an interrupted one resumes.
results: $(STAMP)
	$(BIN)/python -m shufflelib.results make --jobs 2

execute: $(STAMP)
	$(BIN)/python benchmarks/notebook_times.py

linkcheck: $(STAMP)
	$(BIN)/python _ext/editions.py teacher _build/linkcheck/_config.yml --execute off
	$(BIN)/jupyter-book build . --config _build/linkcheck/_config.yml --path-output _build/linkcheck --builder linkcheck

clean:
	@if [ -d _build ]; then find _build -mindepth 1 -maxdepth 1 ! -name .offline -exec rm -rf {} +; fi
