# One-line entry points; README explains them. PY is the project's virtualenv.
PY ?= .venv/bin/python
BIN = $(dir $(PY))
# Chapters from their one registry, kdrepro.chapters.BOOK: the published ones (nbval, the book) and,
# for SMOKE, every chapter, published or being rerun. fidelity is a notebook without runs; history,
# an appendix that reads the book's first runs and trains nothing.
CHAPTERS = fidelity $(shell $(PY) -m kdrepro chapters --published || echo kdrepro-chapters-failed) history
SMOKE = fidelity $(shell $(PY) -m kdrepro chapters || echo kdrepro-chapters-failed) history
export KDREPRO_DATA ?= $(abspath ../shared/data)

.PHONY: install test smoke chapters summary book clean

install:
	python3 -m venv .venv
	$(PY) -m pip install -r requirements.txt

# Lint (ruff, 100 columns), unit tests, then the committed chapters re-executed from results/ alone
# (nothing trains; a missing run fails).
test:
	$(BIN)ruff check && $(BIN)ruff format --check
	$(PY) -m pytest -q --durations=10 tests
	KDREPRO_STORE_ONLY=1 $(PY) -m pytest -q --nbval-lax $(CHAPTERS:%=book/%.ipynb)

# Every chapter end to end at smoke scale, in a throw-away result store and cache.
smoke:
	tmp=$$(mktemp -d) && for c in $(SMOKE); do t0=$$(date +%s); \
	  KDREPRO_RESULTS=$$tmp/results KDREPRO_CACHE=$$tmp/cache $(PY) -m papermill -k python3 \
	    book/$$c.ipynb $$tmp/$$c.ipynb -p profile smoke --log-level WARNING || exit 1; \
	  echo "smoke $$c: $$(( $$(date +%s) - t0 )) s"; done; rm -rf $$tmp

# Execute the chapters in place at budget scale (runs in results/ are read, missing ones trained).
chapters:
	for c in $(CHAPTERS); do $(PY) -m papermill -k python3 book/$$c.ipynb book/$$c.ipynb -p profile budget || exit 1; done

summary:
	$(PY) -m kdrepro summary

book:
	$(BIN)jupyter-book build . -W --keep-going

clean:
	rm -rf _build
