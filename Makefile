# The README's two commands: `make demo` (set up, run the main job) and `make test` (set up, run all tests).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# constraints.txt pins every package, torch included (the CPU build), in one resolution.
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian's chromium, for the dashboard's browser tests (checked on every run: it is not in the venv).
browser:
	bash scripts/browser.sh

setup: $(STAMP) browser

demo: $(STAMP)
	$(BIN)/hwnas sweep launch examples/quick.yaml

test: $(STAMP) browser
	bash scripts/services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy search spaces objectives hw_models dashboards
	$(BIN)/pytest -q

