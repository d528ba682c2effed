# benhan: `make demo` serves a synthetic province on http://127.0.0.1:8000, `make test` runs everything.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install system browser serve bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages (nothing is downloaded at run time): chromium for the Playwright page tests,
# DejaVu fonts for printed PDFs, poppler-utils (pdftoppm) and SoftHSM2 (a PKCS#11 token) for the
# signing tests.
DEBS := chromium fonts-dejavu-core poppler-utils softhsm2
system:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then (apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) \
	  || echo "could not install" $$missing": the tests that need them are skipped with that reason"; fi

browser: system

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) system lint typecheck
	$(BIN)/pytest -n 2 --dist loadgroup

demo: $(STAMP) system
	$(BIN)/benhan demo

serve: $(STAMP)
	$(BIN)/benhan serve

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/read.py
	$(BIN)/python bench/emr.py

clean:
	rm -rf $(VENV) var
